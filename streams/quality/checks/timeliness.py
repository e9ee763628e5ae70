"""Timeliness (及时性): uploaded soon enough after the event (docs/domain.md §7).

Clinical events 24 h, death records 7 days, class A infectious diseases 2 h. Upload delay = the envelope's
``emitted_at`` (when the source wrote the record to its exchange database) − ``occurred_at``: both come
from the source, so a replay or a slow pipeline never makes a hospital late.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from foundation.standards.blank import is_blank
from foundation.standards.icd10 import in_category_range
from streams.quality.checks import CheckFn, EvaluationContext, check_kind, memoised
from streams.quality.field_paths import compile_path


@check_kind(
    "upload_delay",
    params=("limit_hours", "urgent_limit_hours", "urgent_ranges", "diagnosis_fields"),
    paths=("diagnosis_fields",),
    reads=("envelope.occurred_at", "envelope.emitted_at"),
)
def upload_delay(params: dict[str, Any]) -> CheckFn:
    """``limit_hours`` by default; ``urgent_limit_hours`` when a diagnosis falls in ``urgent_ranges``."""
    limit = dt.timedelta(hours=float(params["limit_hours"]))
    urgent = dt.timedelta(hours=float(params.get("urgent_limit_hours", params["limit_hours"])))
    ranges = [(r["from"], r["to"]) for r in params.get("urgent_ranges", ())]
    getters = [compile_path(p) for p in params.get("diagnosis_fields", ())]
    is_urgent = memoised(lambda code: any(in_category_range(code, lo, hi) for lo, hi in ranges))

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        envelope = event["envelope"]
        allowed = limit
        if ranges:
            codes = [v for get in getters for _, v in get(event) if not is_blank(v)]
            if any(is_urgent(c) for c in codes):
                allowed = urgent
        return ["envelope.emitted_at"] if envelope["emitted_at"] - envelope["occurred_at"] > allowed else []

    return check

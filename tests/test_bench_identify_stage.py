"""`healthbus bench empi-stream` end to end on a small run: every row is there and positive (no timing
thresholds: a benchmark is not a timed test)."""

from __future__ import annotations

from foundation.settings import Settings
from ops.bench.identify_stage import run


def test_bench_identify_stage_reports_every_row(settings: Settings) -> None:
    rows = {r.label: r.value for r in run(settings, events=3000)}
    assert set(rows) == {
        "identify events/s (known residents, warm cache)",
        "passthrough events/s (same input)",
        "identify / passthrough ratio",
        "identify events/s (known residents, cold cache)",
        "new residents resolved/s (index warm-up, batch of 1000)",
        "events",
        "record keys",
    }
    assert all(v > 0 for v in rows.values()), rows
    assert rows["identify events/s (known residents, warm cache)"] > 0
    assert rows["events"] == 3000

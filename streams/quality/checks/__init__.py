"""Check kinds: what a rule declaration's ``check:`` names. Each is a factory ``params → CheckFn``.

A ``CheckFn(event, ctx)`` returns None when the rule does not apply to this event (it then weighs
nothing in the score), otherwise the field paths that fail (an empty list: the rule passed). Checks are
plain functions over the decoded event (fastavro's values: UTC datetimes, dates) — no I/O; what they need
from outside (registered deaths) comes in the `EvaluationContext`.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Facts outside the event a rule may read. ``deaths``: platform person id → registered time of death."""

    deaths: Mapping[str, dt.datetime] = field(default_factory=dict)


CheckFn = Callable[[dict[str, Any], EvaluationContext], "list[str] | None"]
CheckFactory = Callable[[dict[str, Any]], CheckFn]

CHECK_KINDS: dict[str, CheckFactory] = {}
CHECK_PARAMS: dict[str, frozenset[str]] = {}  # the params each kind reads: a misspelt one is refused at load


def check_kind(name: str, params: tuple[str, ...] = ()) -> Callable[[CheckFactory], CheckFactory]:
    def register(factory: CheckFactory) -> CheckFactory:
        if name in CHECK_KINDS:
            raise ValueError(f"check kind {name!r} registered twice")
        CHECK_KINDS[name] = factory
        CHECK_PARAMS[name] = frozenset(params)
        return factory

    return register


def memoised(fn: Callable[[str], bool], limit: int = 200_000) -> Callable[[str], bool]:
    """A per-check cache of a code lookup: the same few hundred codes (institutions, diagnoses) recur in
    every batch; the cache is dropped when it grows past ``limit`` (ID numbers never repeat much)."""
    cache: dict[str, bool] = {}

    def lookup(code: str) -> bool:
        hit = cache.get(code)
        if hit is None:
            if len(cache) >= limit:
                cache.clear()
            hit = cache[code] = fn(code)
        return hit

    return lookup


def load_check_kinds() -> dict[str, CheckFactory]:
    # Importing the modules registers their kinds: one module per quality dimension (docs/domain.md §7).
    for dimension in ("completeness", "correctness", "logic", "timeliness"):
        importlib.import_module(f"streams.quality.checks.{dimension}")
    return CHECK_KINDS

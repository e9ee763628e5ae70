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

from foundation.standards.blank import is_blank

PersonOf = Callable[[Mapping[str, Any]], "str | None"]


def platform_person(envelope: Mapping[str, Any]) -> str | None:
    """The person an event is about, as the stream knows it: the platform person id the identify stage
    attached (None when there is none, or it is blank)."""
    person = envelope.get("person_id")
    return person if isinstance(person, str) and not is_blank(person) else None


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Facts outside the event a rule may read. ``deaths``: person → registered time of death; ``person_of``:
    an event's envelope → its person, the key of ``deaths`` (the platform person id in the stream stage; the
    file's own linkage in `healthbus quality check`, which has none: streams/quality/file_persons.py)."""

    deaths: Mapping[str, dt.datetime] = field(default_factory=dict)
    person_of: PersonOf = platform_person


CheckFn = Callable[[dict[str, Any], EvaluationContext], "list[str] | None"]
CheckFactory = Callable[[dict[str, Any]], CheckFn]

CHECK_KINDS: dict[str, CheckFactory] = {}
CHECK_PARAMS: dict[str, frozenset[str]] = {}  # the params each kind reads: a misspelt one is refused at load
CHECK_PATHS: dict[str, frozenset[str]] = {}  # those params that are field paths (a path or a list of them)
CHECK_PATHS_EVERYWHERE: dict[str, frozenset[str]] = {}  # path params whose absence fails the rule
CHECK_READS: dict[str, tuple[str, ...]] = {}  # fields the kind reads by itself, whatever its params


def check_kind(
    name: str,
    params: tuple[str, ...] = (),
    paths: tuple[str, ...] = (),
    everywhere: tuple[str, ...] = (),
    reads: tuple[str, ...] = (),
) -> Callable[[CheckFactory], CheckFactory]:
    """Register a check kind. ``paths``: the params naming field paths, which must exist in the Avro schema
    of one of a rule's event types at least (a rule for every type reads a field where the type has it);
    ``everywhere``: those of them that must exist in all (``required`` reports an absent field as missing);
    ``reads``: the paths the check reads by itself, which must exist in all (rule_set.py checks them)."""

    def register(factory: CheckFactory) -> CheckFactory:
        if name in CHECK_KINDS:
            raise ValueError(f"check kind {name!r} registered twice")
        CHECK_KINDS[name] = factory
        CHECK_PARAMS[name] = frozenset(params)
        CHECK_PATHS[name] = frozenset(paths) | frozenset(everywhere)
        CHECK_PATHS_EVERYWHERE[name] = frozenset(everywhere)
        CHECK_READS[name] = reads
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

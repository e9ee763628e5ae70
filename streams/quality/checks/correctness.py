"""Correctness (正确性): codes valid in their standard, values in range, formats."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from foundation.standards.blank import is_blank
from foundation.standards.china_time import CST
from foundation.standards.citizen_id import parse_citizen_id
from foundation.standards.credit_code import is_valid_credit_code
from foundation.standards.icd10 import icd10_valid
from foundation.standards.region_codes import region_valid
from streams.quality.checks import CheckFn, EvaluationContext, check_kind, memoised
from streams.quality.field_paths import compile_path


def _present(getters: list, event: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(p, v) for get in getters for p, v in get(event) if not is_blank(v)]


@check_kind("citizen_id", params=("number", "type"), paths=("number", "type"))
def citizen_id(params: dict[str, Any]) -> CheckFn:
    """GB 11643: an ID number given as a resident ID card (type ``01``, or no type) has 18 characters (or the
    old 15 digits) and a check character that holds."""
    number = compile_path(params["number"])
    id_type = compile_path(params["type"])

    def well_formed(value: str) -> bool:
        parsed = parse_citizen_id(value)
        return parsed is not None and parsed.valid

    valid = memoised(well_formed)  # a resident's number recurs on each of their events

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        path, value = number(event)[0]
        if is_blank(value) or id_type(event)[0][1] not in ("01", None, ""):
            return None
        return [] if valid(value) else [path]

    return check


@check_kind("credit_code", params=("field",), paths=("field",))
def credit_code(params: dict[str, Any]) -> CheckFn:
    """GB 32100: an institution's unified social credit code, both check characters."""
    getter = compile_path(params["field"])
    valid = memoised(is_valid_credit_code)

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        path, value = getter(event)[0]
        if is_blank(value):
            return None
        return [] if valid(value) else [path]

    return check


@check_kind("code_in_set", params=("fields", "codes"), paths=("fields",))
def code_in_set(params: dict[str, Any]) -> CheckFn:
    """A coded value from a fixed value domain (GB/T 2261.1 sex, WS 364 ID types and blood types)."""
    getters = [compile_path(p) for p in params["fields"]]
    allowed = frozenset(params["codes"])

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        present = _present(getters, event)
        if not present:
            return None
        return [p for p, v in present if v not in allowed]

    return check


def event_year(event: dict[str, Any]) -> int:
    """The year the event occurred in, in China's time zone (what the code table of that year governs)."""
    return event["envelope"]["occurred_at"].astimezone(CST).year


@check_kind("region_code", params=("fields",), paths=("fields",), reads=("envelope.occurred_at",))
def region_code(params: dict[str, Any]) -> CheckFn:
    """GB/T 2260: the code exists in the code table of the year the event occurred (docs/domain.md §1)."""
    getters = [compile_path(p) for p in params["fields"]]
    cache: dict[tuple[str, int], bool] = {}

    def valid(code: str, year: int) -> bool:
        hit = cache.get((code, year))
        if hit is None:
            if len(cache) > 100_000:
                cache.clear()
            hit = cache[(code, year)] = region_valid(code, year)
        return hit

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        present = _present(getters, event)
        if not present:
            return None
        year = event_year(event)
        return [p for p, v in present if not valid(v, year)]

    return check


@check_kind("icd10", params=("fields",), paths=("fields",))
def icd10(params: dict[str, Any]) -> CheckFn:
    """ICD-10 (national clinical edition over WHO ICD-10): docs/domain.md §3."""
    getters = [compile_path(p) for p in params["fields"]]
    valid = memoised(icd10_valid)

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        present = _present(getters, event)
        if not present:
            return None
        return [p for p, v in present if not valid(v)]

    return check


@check_kind("range", params=("fields", "min", "max"), paths=("fields",))
def value_range(params: dict[str, Any]) -> CheckFn:
    """A number within [min, max] (physiologically possible, not "normal"): temperature, blood pressure,
    birth weight. Absent values are completeness's business, not this rule's."""
    getters = [compile_path(p) for p in params["fields"]]
    low, high = float(params["min"]), float(params["max"])

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        present = [(p, v) for get in getters for p, v in get(event) if v is not None]
        if not present:
            return None
        return [p for p, v in present if not (isinstance(v, (int, float)) and math.isfinite(v) and low <= v <= high)]

    return check


@check_kind(
    "lab_numeric",
    reads=("items[*].numeric_value", "items[*].unit", "items[*].reference_low", "items[*].reference_high"),
)
def lab_numeric(params: dict[str, Any]) -> CheckFn:
    """Lab items with a numeric result: finite, not negative, carry a unit, and a reference range whose low
    end is not above its high end."""

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        failed: list[str] = []
        applied = False
        for k, item in enumerate(event.get("items") or ()):
            value = item.get("numeric_value")
            if value is None:
                continue
            applied = True
            if not math.isfinite(value) or value < 0:
                failed.append(f"items[{k}].numeric_value")
            if is_blank(item.get("unit")):
                failed.append(f"items[{k}].unit")
            low, high = item.get("reference_low"), item.get("reference_high")
            if low is not None and high is not None and low > high:
                failed.append(f"items[{k}].reference_low")
        return failed if applied else None

    return check


@check_kind("not_in_future", params=("fields", "skew_minutes"), paths=("fields",), reads=("envelope.emitted_at",))
def not_in_future(params: dict[str, Any]) -> CheckFn:
    """A business time is not after the moment the source uploaded the record (beyond clock skew)."""
    getters = [compile_path(p) for p in params["fields"]]
    skew = dt.timedelta(minutes=float(params.get("skew_minutes", 10)))

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        limit = event["envelope"]["emitted_at"] + skew
        present = [(p, v) for get in getters for p, v in get(event) if isinstance(v, dt.datetime)]
        return [p for p, v in present if v > limit] if present else None

    return check

"""Logical consistency (逻辑性): times in order, nothing clinical after a registered death, diagnoses that fit
the patient's sex and age, death records that agree with themselves (docs/domain.md §7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from foundation.standards.blank import is_blank
from foundation.standards.china_time import CST
from foundation.standards.icd10 import icd10_category, in_category_range
from streams.quality.checks import CheckFn, EvaluationContext, check_kind
from streams.quality.field_paths import compile_path


@check_kind("not_before", params=("later", "earlier"), paths=("later", "earlier"))
def not_before(params: dict[str, Any]) -> CheckFn:
    """``later`` is not before ``earlier`` (discharge ≥ admission, report ≥ collection)."""
    later, earlier = compile_path(params["later"]), compile_path(params["earlier"])

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        (path, a), (_, b) = later(event)[0], earlier(event)[0]
        if a is None or b is None:
            return None
        return [path] if a < b else []

    return check


@check_kind("after_birth", params=("fields",), paths=("fields",), reads=("envelope.patient.birth_date",))
def after_birth(params: dict[str, Any]) -> CheckFn:
    """Business times are not before the patient's birth date (in China's time zone)."""
    getters = [compile_path(p) for p in params["fields"]]

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        birth = event["envelope"]["patient"].get("birth_date")
        if birth is None:
            return None
        times = [(p, v) for get in getters for p, v in get(event) if isinstance(v, dt.datetime)]
        return [p for p, v in times if v.astimezone(CST).date() < birth] if times else None

    return check


@check_kind("after_registered_death", params=("grace_hours",), reads=("envelope.occurred_at",))
def after_registered_death(params: dict[str, Any]) -> CheckFn:
    """A clinical event dated after the person's registered death (with ``grace_hours`` for reports finished
    after a death, e.g. a lab result of a sample taken before it)."""
    grace = dt.timedelta(hours=float(params.get("grace_hours", 2)))

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        if not ctx.deaths:
            return None
        envelope = event["envelope"]
        person = ctx.person_of(envelope)
        died_at = ctx.deaths.get(person) if person is not None else None
        if died_at is None:
            return None
        return ["envelope.occurred_at"] if envelope["occurred_at"] > died_at + grace else []

    return check


def _diagnosis_codes(event: dict[str, Any], getters: list) -> list[tuple[str, str]]:
    return [(p, v) for get in getters for p, v in get(event) if not is_blank(v)]


@check_kind("sex_specific_diagnosis", params=("fields", "ranges"), paths=("fields",), reads=("envelope.patient.sex",))
def sex_specific_diagnosis(params: dict[str, Any]) -> CheckFn:
    """Diagnoses that only one sex can have (pregnancy O00–O9A female; N40–N51, C60–C63 male). Judged
    against the patient's GB/T 2261.1 sex when it is 1 or 2."""
    getters = [compile_path(p) for p in params["fields"]]
    ranges = [(r["from"], r["to"], str(r["sex"])) for r in params["ranges"]]
    # code → the sex it is restricted to ("" when none)
    restricted: dict[str, str] = {}

    def only_for(code: str) -> str:
        hit = restricted.get(code)
        if hit is None:
            if len(restricted) > 100_000:
                restricted.clear()
            hit = restricted[code] = next((s for lo, hi, s in ranges if in_category_range(code, lo, hi)), "")
        return hit

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        sex = event["envelope"]["patient"].get("sex")
        if sex not in ("1", "2"):
            return None
        codes = _diagnosis_codes(event, getters)
        if not codes:
            return None
        return [p for p, code in codes if only_for(code) not in ("", sex)]

    return check


def age_in_days(birth: dt.date, moment: dt.datetime) -> int:
    return (moment.astimezone(CST).date() - birth).days


@check_kind(
    "age_specific_diagnosis",
    params=("fields", "ranges"),
    paths=("fields",),
    reads=("envelope.patient.birth_date", "envelope.occurred_at"),
)
def age_specific_diagnosis(params: dict[str, Any]) -> CheckFn:
    """Diagnoses bound to an age (P00–P96 perinatal conditions: infants)."""
    getters = [compile_path(p) for p in params["fields"]]
    ranges = [(r["from"], r["to"], int(r.get("min_age_days", 0)), int(r["max_age_days"])) for r in params["ranges"]]
    bounds: dict[str, tuple[int, int] | None] = {}  # code → the ages it is bound to

    def ages_for(code: str) -> tuple[int, int] | None:
        if code not in bounds:
            if len(bounds) > 100_000:
                bounds.clear()
            bounds[code] = next(((y, o) for lo, hi, y, o in ranges if in_category_range(code, lo, hi)), None)
        return bounds[code]

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        envelope = event["envelope"]
        birth = envelope["patient"].get("birth_date")
        codes = _diagnosis_codes(event, getters)
        if birth is None or not codes:
            return None
        bound = [(p, ages_for(code)) for p, code in codes]
        if all(b is None for _, b in bound):
            return []
        age = age_in_days(birth, envelope["occurred_at"])
        return [p for p, b in bound if b is not None and not (b[0] <= age <= b[1])]

    return check


@check_kind(
    "death_record_consistency",
    reads=("envelope.patient.birth_date", "died_at", "cause_chain[*].code", "underlying_cause_code"),
)
def death_record_consistency(params: dict[str, Any]) -> CheckFn:
    """A death certificate agrees with itself: death not before birth, and the underlying cause is one of the
    causes on the certificate's chain (same ICD-10 category)."""

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        failed: list[str] = []
        birth = event["envelope"]["patient"].get("birth_date")
        if birth is not None and event["died_at"].astimezone(CST).date() < birth:
            failed.append("died_at")
        chain = {icd10_category(c["code"]) for c in event.get("cause_chain") or () if c.get("code")}
        chain.discard(None)
        underlying = icd10_category(event.get("underlying_cause_code") or "")
        if chain and underlying is not None and underlying not in chain:
            failed.append("underlying_cause_code")
        return failed

    return check


@check_kind("discharge_death_consistency", reads=("died_at", "discharge_method", "admitted_at", "discharged_at"))
def discharge_death_consistency(params: dict[str, Any]) -> CheckFn:
    """A discharge says death (离院方式 5) exactly when it has a time of death, and that time lies within
    the stay."""

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        died_at, method = event.get("died_at"), event.get("discharge_method")
        if (method == "DEATH") != (died_at is not None):
            return ["died_at" if method == "DEATH" else "discharge_method"]
        if died_at is not None and not (
            event["admitted_at"] <= died_at <= event["discharged_at"] + dt.timedelta(days=1)
        ):
            return ["died_at"]
        return []

    return check

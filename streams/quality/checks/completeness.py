"""Completeness (完整性): required data elements are present."""

from __future__ import annotations

from typing import Any

from foundation.standards.blank import is_blank
from foundation.standards.icd10 import in_category_range
from streams.quality.checks import CheckFn, EvaluationContext, check_kind
from streams.quality.field_paths import compile_path


@check_kind(
    "required",
    params=("fields", "when", "when_in", "when_icd10", "unless", "unless_in"),
    paths=("when", "unless"),
    everywhere=("fields",),
)
def required(params: dict[str, Any]) -> CheckFn:
    """Every listed field is present and not blank. Conditions: ``when`` names a field whose value must be
    one of ``when_in`` (an ID number is required when the ID type says ID card) or an ICD-10 code within one
    of ``when_icd10``'s ranges; ``unless`` + ``unless_in`` exempt (a follow-up by telephone measures no
    blood pressure)."""
    getters = [compile_path(p) for p in params["fields"]]
    when = compile_path(params["when"]) if "when" in params else None
    when_in = set(params.get("when_in", ()))
    when_icd10 = [(r["from"], r["to"]) for r in params.get("when_icd10", ())]
    unless = compile_path(params["unless"]) if "unless" in params else None
    unless_in = set(params.get("unless_in", ()))

    def applies(event: dict[str, Any]) -> bool:
        if when is not None:
            value = when(event)[0][1]
            if when_icd10:
                if not isinstance(value, str) or not any(in_category_range(value, lo, hi) for lo, hi in when_icd10):
                    return False
            elif value not in when_in:
                return False
        return unless is None or unless(event)[0][1] not in unless_in

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        if not applies(event):
            return None
        return [path for get in getters for path, value in get(event) if is_blank(value)]

    return check


@check_kind("required_any", params=("fields",), everywhere=("fields",))
def required_any(params: dict[str, Any]) -> CheckFn:
    """At least one of the fields is present (department code or name, say)."""
    getters = [compile_path(p) for p in params["fields"]]
    report = params["fields"][0]

    def check(event: dict[str, Any], ctx: EvaluationContext) -> list[str] | None:
        for get in getters:
            if any(not is_blank(v) for _, v in get(event)):
                return []
        return [report]

    return check

"""The detection plan: which early-warning method(s), with which parameters, judge which series.

``detection_plan.yaml`` beside this module is the shipped plan; ``HEALTHBUS_SURVEILLANCE_DETECTION_PLAN`` names
another. The file has:

* ``groups``: the population groups judged as series of their own besides ``ALL`` (syndrome × county, all
  groups summed), which is always judged: any of child, student, adult, elderly, UNKNOWN.
* ``defaults``: the methods of every series no rule matches, a list of ``{method: …, <param>: …}``.
* ``rules``: a list of ``{syndromes: […], counties: […], groups: […], methods: […]}``; a missing key matches
  everything; the **last** rule that matches a series decides its methods (so write general rules first,
  county-specific ones after them). ``methods: []`` switches a series off.

Parameters per method (the names of ``DetectionParams``): EARS C1/C2/C3 ``baseline``, ``min_sigma``,
``alpha``; EWMA ``min_sigma``, ``alpha`` (the yellow level), ``ewma_red_alpha``, ``ewma_baseline``,
``guard``, ``ewma_lambdas``. The pseudo-syndrome VISITS (the denominator) is never judged. An unknown
syndrome, group, method or parameter, a method listed twice for one series, or a value DetectionParams
refuses, is an error naming the place in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from streams.surveillance.case_store import ALL_GROUPS, UNKNOWN_GROUP
from streams.surveillance.detection import DetectionParams, Method, first_judged_day
from streams.surveillance.syndromes import Syndrome

DEFAULT_PLAN_FILE = Path(__file__).with_name("detection_plan.yaml")
GROUPS = ("child", "student", "adult", "elderly", UNKNOWN_GROUP)  # population groups of case_store
SYNDROMES = frozenset(s.value for s in Syndrome)
_EARS_PARAMS = frozenset({"baseline", "min_sigma", "alpha"})
_EWMA_PARAMS = frozenset({"min_sigma", "alpha", "ewma_red_alpha", "ewma_baseline", "guard", "ewma_lambdas"})
_COUNTY = re.compile(r"^\d{6}$")


class PlanError(ValueError):
    """A problem in a detection plan file (the message names the file and the place)."""


@dataclass(frozen=True)
class MethodPlan:
    method: Method
    params: DetectionParams = DetectionParams()

    @property
    def history_days(self) -> int:
        """Days before the judged day that one judgement reads (the baseline, guard band, C3's two days)."""
        return first_judged_day(self.method, self.params)


@dataclass(frozen=True)
class PlanRule:
    methods: tuple[MethodPlan, ...]
    syndromes: frozenset[str] | None = None
    counties: frozenset[str] | None = None
    groups: frozenset[str] | None = None

    def matches(self, syndrome: str, county: str, group: str) -> bool:
        return (
            (self.syndromes is None or syndrome in self.syndromes)
            and (self.counties is None or county in self.counties)
            and (self.groups is None or group in self.groups)
        )


@dataclass(frozen=True)
class DetectionPlan:
    groups: tuple[str, ...]  # per-group series judged besides ALL
    defaults: tuple[MethodPlan, ...]
    rules: tuple[PlanRule, ...] = ()
    source: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def judges_group(self, group: str) -> bool:
        return group == ALL_GROUPS or group in self.groups

    def methods_for(self, syndrome: str, county: str, group: str) -> tuple[MethodPlan, ...]:
        """The methods judging one series (none for VISITS, unknown syndromes and groups not in the plan)."""
        key = (syndrome, county, group)
        found = self._cache.get(key)
        if found is None:
            found = ()
            if syndrome in SYNDROMES and self.judges_group(group):
                found = self.defaults
                for rule in self.rules:
                    if rule.matches(syndrome, county, group):
                        found = rule.methods
            self._cache[key] = found
        return found

    def method_plan(self, syndrome: str, county: str, group: str, method: Method) -> MethodPlan:
        """The plan's parameters for ``method`` on that series; DetectionParams() when the plan no longer
        names the method there (an alert left open by an earlier plan is still judged, so it can close)."""
        for mp in self.methods_for(syndrome, county, group):
            if mp.method is method:
                return mp
        return MethodPlan(method)

    @property
    def history_days(self) -> int:
        """The longest history any judgement of this plan needs before its day (at least the default
        parameters' of every method, for alerts a former plan opened)."""
        plans = [*self.defaults, *(m for r in self.rules for m in r.methods), *(MethodPlan(m) for m in Method)]
        return max(p.history_days for p in plans)


def _method_plan(raw: Any, where: str) -> MethodPlan:
    if not isinstance(raw, dict) or "method" not in raw:
        raise PlanError(f"{where}: expected a mapping with 'method' (one of {', '.join(m.value for m in Method)})")
    try:
        method = Method(raw["method"])
    except ValueError:
        raise PlanError(
            f"{where}: unknown method {raw['method']!r} (one of {', '.join(m.value for m in Method)})"
        ) from None
    allowed = _EWMA_PARAMS if method is Method.EWMA else _EARS_PARAMS
    params = {k: v for k, v in raw.items() if k != "method"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise PlanError(
            f"{where}: {method.value} has no parameter {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    if "ewma_lambdas" in params:
        if not isinstance(params["ewma_lambdas"], list):
            raise PlanError(f"{where}: ewma_lambdas: a list of two smoothing weights")
        params["ewma_lambdas"] = tuple(params["ewma_lambdas"])
    for name, value in params.items():
        numbers = value if name == "ewma_lambdas" else (value,)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
            raise PlanError(f"{where}: {name}: a number, got {value!r}")
        if name in ("baseline", "ewma_baseline", "guard") and int(value) != value:
            raise PlanError(f"{where}: {name}: a whole number of days, got {value!r}")
    try:
        detection = DetectionParams(**params)
        detection.guard_for(method)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{where}: {exc}") from None
    if method is Method.EWMA and not detection.ewma_red_alpha < detection.alpha_for(method):
        raise PlanError(
            f"{where}: the red level ewma_red_alpha {detection.ewma_red_alpha} must be below the "
            f"yellow alpha {detection.alpha_for(method)}"
        )
    return MethodPlan(method, detection)


def _methods(raw: Any, where: str) -> tuple[MethodPlan, ...]:
    if not isinstance(raw, list):
        raise PlanError(f"{where}: expected a list of methods")
    plans = tuple(_method_plan(m, f"{where}[{i}]") for i, m in enumerate(raw))
    names = [p.method.value for p in plans]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PlanError(f"{where}: {', '.join(twice)} listed twice (one alert per series and method)")
    return plans


def _names(raw: Any, where: str, valid: frozenset[str] | None, what: str) -> frozenset[str]:
    if not isinstance(raw, list) or not raw:
        raise PlanError(f"{where}: expected a non-empty list of {what}")
    out = set()
    for item in raw:
        text = str(item)
        if valid is not None and text not in valid:
            raise PlanError(f"{where}: unknown {what[:-1]} {text!r} (one of {', '.join(sorted(valid))})")
        if valid is None and not _COUNTY.match(text):
            raise PlanError(f"{where}: county {text!r} is not a six-digit GB/T 2260 code (quote it in YAML)")
        out.add(text)
    return frozenset(out)


def parse_plan(raw: Any, source: str = "<plan>") -> DetectionPlan:
    if not isinstance(raw, dict):
        raise PlanError(f"{source}: expected a mapping with groups, defaults and rules")
    unknown = sorted(set(raw) - {"version", "groups", "defaults", "rules"})
    if unknown:
        raise PlanError(f"{source}: unknown key(s) {', '.join(unknown)} (expected version, groups, defaults, rules)")
    if "defaults" not in raw:
        raise PlanError(f"{source}: 'defaults' is missing (the methods of every series no rule matches)")
    groups: tuple[str, ...] = ()
    if raw.get("groups"):
        named = _names(raw["groups"], f"{source}: groups", frozenset((ALL_GROUPS, *GROUPS)), "groups")
        groups = tuple(g for g in GROUPS if g in named)
    defaults = _methods(raw["defaults"], f"{source}: defaults")
    rules: list[PlanRule] = []
    for i, rule in enumerate(raw.get("rules") or []):
        where = f"{source}: rules[{i}]"
        if not isinstance(rule, dict):
            raise PlanError(f"{where}: expected a mapping")
        extra = sorted(set(rule) - {"syndromes", "counties", "groups", "methods", "note"})
        if extra:
            raise PlanError(
                f"{where}: unknown key(s) {', '.join(extra)} (expected syndromes, counties, groups, methods)"
            )
        if "methods" not in rule:
            raise PlanError(f"{where}: 'methods' is missing")
        if "VISITS" in (rule.get("syndromes") or []):
            raise PlanError(f"{where}: VISITS is the denominator, never judged")
        rules.append(
            PlanRule(
                _methods(rule["methods"], f"{where}: methods"),
                _names(rule["syndromes"], f"{where}: syndromes", SYNDROMES, "syndromes")
                if "syndromes" in rule
                else None,
                _names(rule["counties"], f"{where}: counties", None, "counties") if "counties" in rule else None,
                _names(rule["groups"], f"{where}: groups", frozenset((ALL_GROUPS, *GROUPS)), "groups")
                if "groups" in rule
                else None,
            )
        )
    return DetectionPlan(groups, defaults, tuple(rules), source)


def load_plan(path: Path | None = None) -> DetectionPlan:
    """Read and validate a plan file (None: the shipped one); raises PlanError naming the problem."""
    path = Path(path) if path is not None else DEFAULT_PLAN_FILE
    return _load(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load(path: str, _mtime: int) -> DetectionPlan:
    try:
        raw = yaml.safe_load(Path(path).read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from None
    return parse_plan(raw, path)

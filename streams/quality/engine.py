"""The rule engine: one event in, one verdict out. The stream stage and `healthbus quality check` both
call `RuleEngine.judge`; nothing here touches Kafka or a database.

Score: the weighted pass rate of the rules that applied to the event (docs/domain.md §7): 1 − failed weight /
applied weight (1.0 when no rule applied). A rule that fails on several fields counts once. ``passed`` is
false exactly when an error-severity rule failed; ``late`` when a timeliness rule failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.quality.checks import EvaluationContext
from streams.quality.rule_set import Category, Rule, RuleSet, Severity

NO_CONTEXT = EvaluationContext()


@dataclass(frozen=True, slots=True)
class Violation:
    rule_id: str
    category: Category
    severity: Severity
    field: str


@dataclass(frozen=True, slots=True)
class Verdict:
    event_id: str
    event_type: str
    rule_set_version: str
    passed: bool
    late: bool
    score: float
    weight_applied: float
    weight_failed: float
    violations: tuple[Violation, ...]

    @property
    def errors(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity is Severity.WARNING)

    def output_json(self) -> dict[str, Any]:
        """The batch CLI's line (issue #5 §5)."""
        return {
            "event_id": self.event_id,
            "passed": self.passed,
            "score": round(self.score, 6),
            "violations": [
                {"rule_id": v.rule_id, "category": v.category.value, "severity": v.severity.value, "field": v.field}
                for v in self.violations
            ],
        }


class RuleEngine:
    def __init__(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set
        self._plans: dict[tuple[str, bool], tuple[Rule, ...]] = {}

    def _plan(self, event_type: str, cancelled: bool) -> tuple[Rule, ...]:
        key = (event_type, cancelled)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self.rule_set.for_event_type(event_type, cancelled)
        return plan

    def judge(self, event_type: str, event: dict[str, Any], ctx: EvaluationContext = NO_CONTEXT) -> Verdict:
        envelope = event["envelope"]
        applied = failed = 0.0
        passed = True
        late = False
        violations: list[Violation] = []
        for rule in self._plan(event_type, envelope["cancelled"]):
            fields = rule.check(event, ctx)
            if fields is None:
                continue
            applied += rule.weight
            if not fields:
                continue
            failed += rule.weight
            if rule.severity is Severity.ERROR:
                passed = False
            if rule.category is Category.TIMELINESS:
                late = True
            violations.extend(Violation(rule.id, rule.category, rule.severity, f) for f in dict.fromkeys(fields))
        score = 1.0 - failed / applied if applied else 1.0
        return Verdict(
            envelope["event_id"],
            event_type,
            self.rule_set.version,
            passed,
            late,
            score,
            applied,
            failed,
            tuple(violations),
        )

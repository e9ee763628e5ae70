"""`healthbus quality check`: the rule engine over a file of events in the JSON form (one per line).

Output: one JSON object per input line, in input order (issue #5 §5):
``{"event_id", "passed", "score", "violations": [{"rule_id", "category", "severity", "field"}]}``.
A line that is not an event in the JSON form still gets its line: ``passed`` false, score 0 and one
``INPUT-FORMAT`` error naming the field (``event_id`` is null when it can't be read).

Deaths: the stream stage reads registered deaths from PostgreSQL; here, the death records in the file
itself (those that pass their own rules, and discharges by death) are the register, read in a first pass,
so "nothing clinical after a registered death" is judged across the file whatever its order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from avro_schemas.json_form import JsonFormError, event_from_json_line
from streams.quality.checks import EvaluationContext
from streams.quality.engine import RuleEngine
from streams.quality.registered_deaths import death_registration

INPUT_FORMAT_RULE = "INPUT-FORMAT"
_DEATH_HINTS = ('"death.record"', '"DEATH"')


@dataclass
class CheckSummary:
    lines: int = 0
    passed: int = 0
    rejected: int = 0
    unreadable: int = 0
    deaths_registered: int = 0
    failures_by_rule: dict[str, int] = field(default_factory=dict)


def _event_id_of(line: str) -> str | None:
    try:
        value = json.loads(line)["envelope"]["event_id"]
        return value if isinstance(value, str) else None
    except (ValueError, KeyError, TypeError):
        return None


def unreadable_result(line: str, error: JsonFormError) -> dict[str, Any]:
    return {
        "event_id": _event_id_of(line),
        "passed": False,
        "score": 0.0,
        "violations": [
            {
                "rule_id": INPUT_FORMAT_RULE,
                "category": "correctness",
                "severity": "error",
                "field": error.field or "<event>",
                "error": error.code,
            }
        ],
    }


def registered_deaths(lines: Iterator[str], engine: RuleEngine) -> dict[str, dt.datetime]:
    """Deaths registered by the file's own passing death records (cancellations withdraw them)."""
    deaths: dict[str, dt.datetime] = {}
    for line in lines:
        if not any(h in line for h in _DEATH_HINTS):
            continue
        try:
            event_type, event = event_from_json_line(line)
        except JsonFormError:
            continue
        registration = death_registration(event_type, event)
        if registration is None or not engine.judge(event_type, event).passed:
            continue
        if registration.died_at is None:
            deaths.pop(registration.person_id, None)
        else:
            deaths[registration.person_id] = registration.died_at
    return deaths


def check_lines(
    lines: Iterator[str], engine: RuleEngine, ctx: EvaluationContext, out: TextIO, summary: CheckSummary
) -> None:
    for line in lines:
        if not line.strip():
            continue
        summary.lines += 1
        try:
            event_type, event = event_from_json_line(line)
        except JsonFormError as exc:
            summary.unreadable += 1
            result = unreadable_result(line, exc)
        else:
            result = engine.judge(event_type, event, ctx).output_json()
        if result["passed"]:
            summary.passed += 1
        else:
            summary.rejected += 1
        for rule_id in {v["rule_id"] for v in result["violations"]}:
            summary.failures_by_rule[rule_id] = summary.failures_by_rule.get(rule_id, 0) + 1
        out.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")


def check_file(input_path: Path, output_path: Path, engine: RuleEngine) -> CheckSummary:
    summary = CheckSummary()
    with input_path.open(encoding="utf-8") as f:
        deaths = registered_deaths(iter(f), engine)
    summary.deaths_registered = len(deaths)
    with input_path.open(encoding="utf-8") as f, output_path.open("w", encoding="utf-8") as out:
        check_lines(iter(f), engine, EvaluationContext(deaths), out, summary)
    return summary

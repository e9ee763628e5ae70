"""`healthbus quality check`: the rule engine over a file of events in the JSON form (one per line).

Output: one JSON object per input line, in input order (issue #5 §5):
``{"event_id", "passed", "score", "violations": [{"rule_id", "category", "severity", "field"}]}``.
A line that is not an event in the JSON form still gets its line: ``passed`` false, score 0 and one
``INPUT-FORMAT`` error naming the field (``event_id`` is null when it can't be read).

The file is read by foundation/text_files.py, like the other batch commands' files: UTF-8 with or without
BOM (JSON's own encoding), or GB18030/GBK, detected unless named. A file that cannot be used stops the check
before any verdict is written, with an `InputFileError` naming the file and the line: bytes that are not
text in its encoding, a NUL byte, a line over 1 MiB (text_files.py), JSON nested deeper than
``MAX_JSON_DEPTH``, or a truncated line (its JSON ends inside a value: the file was cut short). A complete
line that is simply not JSON, or not an event, is judged ``INPUT-FORMAT``.

Deaths: the stream stage reads registered deaths from PostgreSQL; here, the death records in the file
itself (those that pass their own rules, and discharges by death) are the register, read in a first pass,
so "nothing clinical after a registered death" is judged across the file whatever its order. A file
checked offline may carry no platform person ids: its records are linked by their own identifiers
(streams/quality/file_persons.py), and the register and the rule read persons through that linkage with
the stage's own functions (`death_registration`, the rule's check).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from avro_schemas.json_form import JsonFormError, event_from_json_line
from foundation.text_files import MAX_JSON_DEPTH, InputFileError, TextInput, json_too_deep, lines, open_text
from streams.quality.checks import EvaluationContext, PersonOf
from streams.quality.engine import RuleEngine
from streams.quality.file_persons import FilePersons
from streams.quality.registered_deaths import death_registration

INPUT_FORMAT_RULE = "INPUT-FORMAT"
_DEATH_HINTS = ('"death.record"', '"DEATH"')
_NOT_JSON = object()
_JSON_WORDS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_NUMBER_TAIL = re.compile(r"[-+.eE0-9]+")


@dataclass
class CheckSummary:
    lines: int = 0
    passed: int = 0
    rejected: int = 0
    unreadable: int = 0
    deaths_registered: int = 0
    failures_by_rule: dict[str, int] = field(default_factory=dict)


def numbered_lines(source: TextInput) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of every line of a checked file (blank lines count)."""
    for number, line in enumerate(lines(source), 1):
        yield number, line.rstrip("\r\n")


def _cut_short(text: str, exc: json.JSONDecodeError) -> bool:
    """The JSON ended inside a value (``{"a": "x``, ``{"a": [1,``, ``{"a": tr``): the line was cut off."""
    if exc.msg == "Extra data":
        return False
    rest = text[exc.pos :].rstrip()
    return (
        not rest
        or exc.msg.startswith("Unterminated string")
        or (exc.msg.startswith("Invalid \\uXXXX escape") and len(rest) < 5)
        or any(word.startswith(rest) for word in _JSON_WORDS)
        or _NUMBER_TAIL.fullmatch(rest) is not None
    )


def parse_line(path: Path, number: int, text: str) -> Any:
    """The JSON value of a line, or ``_NOT_JSON`` for a complete line that is not JSON (judged
    INPUT-FORMAT). Raises `InputFileError` for a truncated line or one nested deeper than MAX_JSON_DEPTH."""
    if json_too_deep(text):
        raise InputFileError(path, f"JSON nested deeper than {MAX_JSON_DEPTH} levels: not an event", number)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if _cut_short(text, exc):
            raise InputFileError(
                path, f"truncated JSON: the line ends inside a value (column {exc.pos + 1}); was the file cut?", number
            ) from None
        return _NOT_JSON


def _event_id_of(line: str) -> str | None:
    try:
        value = json.loads(line)["envelope"]["event_id"]
        return value if isinstance(value, str) else None
    except (ValueError, KeyError, TypeError, RecursionError):
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


def registered_deaths(lines: Iterable[str], engine: RuleEngine, person_of: PersonOf) -> dict[str, dt.datetime]:
    """Deaths registered by the file's own passing death records (cancellations withdraw them), in order."""
    deaths: dict[str, dt.datetime] = {}
    for line in lines:
        try:
            event_type, event = event_from_json_line(line)
        except JsonFormError:
            continue
        registration = death_registration(event_type, event, person_of)
        if registration is None or not engine.judge(event_type, event).passed:
            continue
        if registration.died_at is None:
            deaths.pop(registration.person_id, None)
        else:
            deaths[registration.person_id] = registration.died_at
    return deaths


@dataclass(frozen=True)
class FileScan:
    """What the first pass learns of a file: who is who, and the deaths it registers."""

    persons: FilePersons
    deaths: dict[str, dt.datetime]

    def context(self) -> EvaluationContext:
        return EvaluationContext(self.deaths, self.persons.person_of)


def scan_file(source: TextInput, engine: RuleEngine) -> FileScan:
    """The first pass: every line read and parsed (a broken file stops here, before any verdict), every
    record's identifiers linked, then the death records registered against the linked persons."""
    persons = FilePersons()
    death_lines: list[str] = []
    path = source.path
    for number, text in numbered_lines(source):
        if not text.strip():
            continue
        value = parse_line(path, number, text)
        envelope = value.get("envelope") if isinstance(value, dict) else None
        if isinstance(envelope, dict):
            persons.add(envelope)
            if any(h in text for h in _DEATH_HINTS):
                death_lines.append(text)
    return FileScan(persons, registered_deaths(death_lines, engine, persons.person_of))


def check_lines(
    lines: Iterable[tuple[int, str]],
    path: Path,
    engine: RuleEngine,
    ctx: EvaluationContext,
    out: TextIO,
    summary: CheckSummary,
) -> None:
    for number, line in lines:
        if not line.strip():
            continue
        summary.lines += 1
        try:
            event_type, event = event_from_json_line(line)
        except JsonFormError as exc:
            summary.unreadable += 1
            result = unreadable_result(line, exc)
        except RecursionError:  # the file changed since the first pass read it
            raise InputFileError(path, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", number) from None
        else:
            result = engine.judge(event_type, event, ctx).output_json()
        if result["passed"]:
            summary.passed += 1
        else:
            summary.rejected += 1
        for rule_id in {v["rule_id"] for v in result["violations"]}:
            summary.failures_by_rule[rule_id] = summary.failures_by_rule.get(rule_id, 0) + 1
        out.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")


def check_file(input_path: Path, output_path: Path, engine: RuleEngine, encoding: str | None = None) -> CheckSummary:
    """Judge every line of ``input_path`` (``encoding`` None: detected) into ``output_path``. Raises
    `InputFileError` (nothing written) when the input can't be used; OSError when the output can't be written."""
    source = open_text(input_path, encoding)  # the whole file's bytes are checked first
    scan = scan_file(source, engine)  # … and every line's JSON, before the output is opened
    summary = CheckSummary(deaths_registered=len(scan.deaths))
    try:
        with output_path.open("w", encoding="utf-8") as out:
            check_lines(numbered_lines(source), input_path, engine, scan.context(), out, summary)
    except InputFileError:
        output_path.unlink(missing_ok=True)  # the file changed under us: no half output
        raise
    return summary

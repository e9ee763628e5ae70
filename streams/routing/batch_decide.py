"""`healthbus routing decide`: the routing decisions for a file of events, without state.

The same claim functions as the routing stage (``routes.claims_of``), so an integration engineer
can see, for a sample of their institution's events, which collaboration routes each one feeds and with
what facts, before anything is published. Registration versus evidence, episodes and merges need the
ledger's state and are the stage's business; this shows the claims the stage starts from.

The file is read by foundation/text_files.py: UTF-8 with or without BOM (JSON's own encoding), or GB18030/GBK,
detected unless named; CRLF line ends. A file that cannot be read as text (undecodable bytes, a NUL byte, a
line over 1 MiB) raises ``InputFileError`` with the line before anything is written. A line that is not an
event in the JSON form, or nests deeper than ``MAX_JSON_DEPTH``, gets an error line and the others carry on;
``line`` is the file's line number (blank lines count, as in an editor).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from avro_schemas.json_form import JsonFormError, event_from_json_line
from foundation.text_files import MAX_JSON_DEPTH, InputFileError, json_too_deep, open_text
from foundation.text_files import lines as file_lines
from streams.routing.claims import Claim, iso
from streams.routing.routes import claims_of


@dataclass
class DecideSummary:
    lines: int = 0
    unreadable: int = 0
    routed: int = 0  # events with at least one claim
    claims_by_route: Counter[str] = field(default_factory=Counter)


def claim_json(claim: Claim) -> dict[str, Any]:
    return {
        "route": claim.route,
        "subject": claim.subject,
        "person_id": claim.person_id,
        "county_code": claim.county_code,
        "at": iso(claim.at),
        "precedence": claim.precedence,
        "facts": claim.facts,
    }


def _nothing(line: int, error: JsonFormError) -> None:
    pass


def decide_lines(
    lines: Iterable[str], out: TextIO, on_error: Callable[[int, JsonFormError], None] = _nothing
) -> DecideSummary:
    """One output line per event line (``line`` counts every input line from 1); ``on_error`` hears of the
    unreadable ones."""
    summary = DecideSummary()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        summary.lines += 1
        try:
            if json_too_deep(line):
                raise JsonFormError("too_deep", f"arrays and objects nested deeper than {MAX_JSON_DEPTH} levels")
            event_type, event = event_from_json_line(line)
        except JsonFormError as exc:
            summary.unreadable += 1
            on_error(number, exc)
            out.write(
                json.dumps(
                    {"line": number, "error": {"code": exc.code, "field": exc.field, "message": exc.message}},
                    ensure_ascii=False,
                )
                + "\n"
            )
            continue
        claims = claims_of(event_type, event)
        summary.routed += bool(claims)
        summary.claims_by_route.update(c.route for c in claims)
        out.write(
            json.dumps(
                {
                    "line": number,
                    "event_id": event["envelope"]["event_id"],
                    "event_type": event_type,
                    "claims": [claim_json(c) for c in claims],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    return summary


def decide_file(
    input_path: Path,
    output_path: Path,
    encoding: str | None = None,
    on_error: Callable[[int, JsonFormError], None] = _nothing,
) -> DecideSummary:
    """Decide every line of ``input_path`` (``encoding`` None: detected) into ``output_path``."""
    source = open_text(input_path, encoding)  # the whole file is checked before the output is opened
    try:
        with output_path.open("w", encoding="utf-8") as out:
            return decide_lines(file_lines(source), out, on_error)
    except InputFileError:
        output_path.unlink(missing_ok=True)  # the file changed under us: no half output
        raise

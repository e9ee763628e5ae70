"""`healthbus routing decide`: the routing decisions for a file of events, without state.

The same claim functions as the routing stage (``routes.claims_of``), so an integration engineer
can see, for a sample of their institution's events, which collaboration routes each one feeds and with
what facts, before anything is published. Registration versus evidence, episodes and merges need the
ledger's state and are the stage's business; this shows the claims the stage starts from.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from avro_schemas.json_form import JsonFormError, event_from_json_line
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


def decide_lines(lines: Iterable[str], out: TextIO) -> DecideSummary:
    summary = DecideSummary()
    for line in lines:
        if not line.strip():
            continue
        summary.lines += 1
        try:
            event_type, event = event_from_json_line(line)
        except JsonFormError as exc:
            summary.unreadable += 1
            out.write(
                json.dumps(
                    {"line": summary.lines, "error": {"code": exc.code, "field": exc.field, "message": exc.message}},
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
                    "line": summary.lines,
                    "event_id": event["envelope"]["event_id"],
                    "event_type": event_type,
                    "claims": [claim_json(c) for c in claims],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    return summary


def decide_file(input_path: Path, output_path: Path) -> DecideSummary:
    with input_path.open(encoding="utf-8") as source, output_path.open("w", encoding="utf-8") as out:
        return decide_lines(source, out)

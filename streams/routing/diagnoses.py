"""The diagnoses an event carries, with the moment each was made: what the diagnosis routes read."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

# Event types whose ``diagnoses`` list the routes read.
DIAGNOSIS_EVENT_TYPES: frozenset[str] = frozenset({"outpatient.visit", "inpatient.admission", "inpatient.discharge"})
# ICD-O-3 morphology as hospitals code it beside ICD-10 ("M81403/3", "M8140/3"): histology and behaviour.
_MORPHOLOGY = re.compile(r"M?(\d{4})\d?/(\d)")


@dataclass(frozen=True, slots=True)
class Diagnosis:
    code: str
    name: str | None
    at: dt.datetime  # diagnosed_at when the source gives it, else when the visit / admission / discharge happened
    is_primary: bool


def diagnoses_of(event_type: str, event: dict[str, Any]) -> list[Diagnosis]:
    if event_type not in DIAGNOSIS_EVENT_TYPES:
        return []
    occurred = event["envelope"]["occurred_at"]
    return [
        Diagnosis(d["code"], d.get("name"), d.get("diagnosed_at") or occurred, d.get("is_primary", False))
        for d in event.get("diagnoses") or ()
    ]


def morphology_of(event_type: str, event: dict[str, Any]) -> str | None:
    """The first ICD-O-3 morphology code ("8140/3") among an event's diagnosis codes, if any."""
    for d in event.get("diagnoses") or () if event_type in DIAGNOSIS_EVENT_TYPES else ():
        m = _MORPHOLOGY.fullmatch(d["code"].strip().upper())
        if m:
            return f"{m.group(1)}/{m.group(2)}"
    return None

"""Chronic disease management (基本公卫慢病管理): a diagnosis in the managed sets → a registration request to
the county of residence the first time for that person × disease; later diagnoses and the county's own
follow-ups (ph.chronic_followup) are evidence on the same registration, never a second one.

A follow-up for a person the platform has no hospital diagnosis of means the county already manages
them: the item it opens is marked ``already_managed`` and starts acknowledged (ledger.py), so nobody is
asked to register a patient they follow up themselves.
"""

from __future__ import annotations

from typing import Any

from streams.routing.claims import Claim, RouteSpec, county_of, iso, routable, source_of
from streams.routing.code_sets import chronic_disease
from streams.routing.diagnoses import DIAGNOSIS_EVENT_TYPES, diagnoses_of

ROUTE = "chronic_disease"


def claims(event_type: str, event: dict[str, Any]) -> list[Claim]:
    if not routable(event):
        return []
    person, county = event["envelope"]["person_id"], county_of(event)
    if event_type == "ph.chronic_followup":
        disease = chronic_disease(event["disease_code"])
        if disease is None:
            return []
        facts = {
            "disease": disease.name,
            "disease_zh": disease.zh,
            "basic_public_health": disease.basic_public_health,
            "evidence": "followup",
            "diagnosis_code": event["disease_code"],
            "diagnosis_name": None,
            "followup_class": event["followup_class"],
            "next_followup_date": iso(event.get("next_followup_date")),
            "already_managed": True,
        }
        return [Claim(ROUTE, disease.name, person, county, event["followup_at"], facts, source_of(event_type, event))]
    found: dict[str, Claim] = {}
    for d in diagnoses_of(event_type, event):
        disease = chronic_disease(d.code)
        if disease is None or disease.name in found:  # one claim per disease per record: the first diagnosis
            continue
        facts = {
            "disease": disease.name,
            "disease_zh": disease.zh,
            "basic_public_health": disease.basic_public_health,
            "evidence": "diagnosis",
            "diagnosis_code": d.code,
            "diagnosis_name": d.name,
            "followup_class": None,
            "next_followup_date": None,
            "already_managed": False,
        }
        found[disease.name] = Claim(ROUTE, disease.name, person, county, d.at, facts, source_of(event_type, event))
    return list(found.values())


SPEC = RouteSpec(ROUTE, DIAGNOSIS_EVENT_TYPES | {"ph.chronic_followup"}, claims, zh="慢病管理")

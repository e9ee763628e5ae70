"""Notifiable infectious disease (法定传染病报告): a class A / B / C (or locally monitored) diagnosis → a
report to the county CDC with the class, the deadline (2 h class A, 24 h otherwise, from the diagnosis)
and whether the institution's upload met it; one report per person × disease within 30 days (later
diagnoses in the window are evidence, a diagnosis 30 days after the report's opens a new one).

Each report carries the age, population group (docs/domain.md §5) and occupation at diagnosis, for the CDC's
trends by county, age group and occupation (ClickHouse ``notifiable_trends``). "Met" compares the source's own upload time (envelope ``emitted_at``) with the deadline, so the
platform's processing lag never makes a hospital late.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from foundation.standards.china_time import CST
from foundation.standards.population_groups import age_at, population_group
from streams.routing.claims import Claim, RouteSpec, county_of, iso, routable, source_of
from streams.routing.code_sets import notifiable_disease
from streams.routing.diagnoses import DIAGNOSIS_EVENT_TYPES, diagnoses_of

ROUTE = "infectious_disease"
EPISODE = dt.timedelta(days=30)


def disease_key(en: str) -> str:
    return en.upper().replace(",", "").replace("/", "_").replace("-", "_").replace(" ", "_")


def claims(event_type: str, event: dict[str, Any]) -> list[Claim]:
    if not routable(event):
        return []
    envelope = event["envelope"]
    person, county, reported = envelope["person_id"], county_of(event), envelope["emitted_at"]
    patient = envelope["patient"]
    birth = patient.get("birth_date")
    found: dict[str, Claim] = {}
    for d in diagnoses_of(event_type, event):
        disease = notifiable_disease(d.code)
        if disease is None:
            continue
        key = disease_key(disease.en)
        if key in found:
            continue
        deadline = d.at + disease.report_deadline
        age = age_at(birth, d.at.astimezone(CST).date())
        facts = {
            "disease": key,
            "disease_zh": disease.zh,
            "disease_class": disease.disease_class.name,
            "diagnosis_code": d.code,
            "diagnosis_name": d.name,
            "diagnosed_at": iso(d.at),
            "deadline_at": iso(deadline),
            "reported_at": iso(reported),
            "deadline_met": reported <= deadline,
            "age_years": age,
            "population_group": population_group(age),
            "occupation": patient.get("occupation"),
        }
        found[key] = Claim(ROUTE, key, person, county, d.at, facts, source_of(event_type, event))
    return list(found.values())


SPEC = RouteSpec(ROUTE, DIAGNOSIS_EVENT_TYPES, claims, episode=EPISODE, zh="传染病报告", item_kind="report")

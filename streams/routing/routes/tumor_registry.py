"""Tumour registry (肿瘤登记): malignant C00–C97, in situ D00–D09 and CNS D32–D33 / D42–D43 → one
registration per person × site (the 3-character ICD-10 category), later diagnoses as evidence.

The ICD-O-3 morphology travels with a claim when the hospital coded it beside the diagnosis; it does not
split the key, because most records of one tumour carry no morphology and would otherwise open a second
registration. A death certificate whose underlying cause is a tumour is evidence too (or registers a
death-certificate-only case, as registries do).
"""

from __future__ import annotations

from typing import Any

from streams.routing.claims import Claim, RouteSpec, county_of, routable, source_of
from streams.routing.code_sets import tumour_site
from streams.routing.diagnoses import DIAGNOSIS_EVENT_TYPES, diagnoses_of, morphology_of

ROUTE = "tumor_registry"


def claims(event_type: str, event: dict[str, Any]) -> list[Claim]:
    if not routable(event):
        return []
    person, county = event["envelope"]["person_id"], county_of(event)
    if event_type == "death.record":
        tumour = tumour_site(event["underlying_cause_code"])
        if tumour is None:
            return []
        facts = {
            "site": tumour.site,
            "behaviour": tumour.behaviour.name,
            "diagnosis_code": event["underlying_cause_code"],
            "diagnosis_name": event.get("underlying_cause_name"),
            "morphology": None,
            "basis": "death_certificate",
        }
        return [Claim(ROUTE, tumour.site, person, county, event["died_at"], facts, source_of(event_type, event))]
    morphology = morphology_of(event_type, event)
    found: dict[str, Claim] = {}
    for d in diagnoses_of(event_type, event):
        tumour = tumour_site(d.code)
        if tumour is None or tumour.site in found:
            continue
        facts = {
            "site": tumour.site,
            "behaviour": tumour.behaviour.name,
            "diagnosis_code": d.code,
            "diagnosis_name": d.name,
            "morphology": morphology,
            "basis": "clinical",
        }
        found[tumour.site] = Claim(ROUTE, tumour.site, person, county, d.at, facts, source_of(event_type, event))
    return list(found.values())


SPEC = RouteSpec(ROUTE, DIAGNOSIS_EVENT_TYPES | {"death.record"}, claims, zh="肿瘤登记")

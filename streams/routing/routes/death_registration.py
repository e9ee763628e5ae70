"""Death → record deregistration: a death record, or a discharge with outcome death, registers the death
and its cause for the county, and (through the ledger's death hook, ledger.py) seals the person's health
record in the master patient index (status deceased, with date and source; record_lifecycle.py). A
cancelled or corrected death record withdraws or amends the item, which re-opens or re-seals the record.

One item per person (subject "death"). When both a death certificate and a hospital discharge by death
report it, the certificate is primary (precedence): it carries the underlying cause as certified.
"""

from __future__ import annotations

from typing import Any

from streams.routing.claims import Claim, Primary, RouteSpec, county_of, iso, routable, source_of

ROUTE = "death_registration"
SUBJECT = "death"
_CERTIFICATE, _DISCHARGE = 1, 0


def claims(event_type: str, event: dict[str, Any]) -> list[Claim]:
    if not routable(event):
        return []
    person, county = event["envelope"]["person_id"], county_of(event)
    if event_type == "death.record":
        chain = [
            {"line": c["line"], "code": c.get("code"), "description": c.get("description")}
            for c in event.get("cause_chain") or ()
        ]
        facts = {
            "died_at": iso(event["died_at"]),
            "cause_code": event["underlying_cause_code"],
            "cause_name": event.get("underlying_cause_name"),
            "cause_chain": chain,
            "death_place": event.get("death_place"),
            "certificate_no": event.get("certificate_no"),
            "basis": "death_certificate",
        }
        return [
            Claim(ROUTE, SUBJECT, person, county, event["died_at"], facts, source_of(event_type, event), _CERTIFICATE)
        ]
    if event_type == "inpatient.discharge" and event.get("discharge_method") == "DEATH" and event.get("died_at"):
        primary = next((d for d in event.get("diagnoses") or () if d.get("is_primary")), None)
        facts = {
            "died_at": iso(event["died_at"]),
            "cause_code": primary["code"] if primary else None,
            "cause_name": primary.get("name") if primary else None,
            "cause_chain": [],
            "death_place": "hospital",
            "certificate_no": None,
            "basis": "discharge",
        }
        return [
            Claim(ROUTE, SUBJECT, person, county, event["died_at"], facts, source_of(event_type, event), _DISCHARGE)
        ]
    return []


SPEC = RouteSpec(
    ROUTE,
    frozenset({"death.record", "inpatient.discharge"}),
    claims,
    Primary.LATEST,
    zh="死亡登记",
    item_kind="death_registration",
)

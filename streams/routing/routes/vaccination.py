"""Vaccination → the immunisation record (预防接种档案): every dose given, from the vaccination clinics'
records and from the vaccines given at birth (hepatitis B and BCG in the delivery hospital, dose 1). One
item per person × vaccine × dose: a second record of the same dose (the hospital's and the county's
copy) is evidence, not a second dose.
"""

from __future__ import annotations

from typing import Any

from streams.routing.claims import Claim, RouteSpec, county_of, iso, routable, source_of

ROUTE = "vaccination"


def _claim(
    event_type: str,
    event: dict[str, Any],
    code: str,
    name: str | None,
    dose: int,
    at: Any,
    batch: str | None,
    manufacturer: str | None,
    given_at_birth: bool,
) -> Claim:
    facts = {
        "vaccine_code": code,
        "vaccine_name": name,
        "dose_number": dose,
        "administered_at": iso(at),
        "batch_no": batch,
        "manufacturer": manufacturer,
        "given_at_birth": given_at_birth,
        "org_code": event["envelope"]["source"]["org_code"],
    }
    return Claim(
        ROUTE,
        f"{code}:{dose}",
        event["envelope"]["person_id"],
        county_of(event),
        at,
        facts,
        source_of(event_type, event),
    )


def claims(event_type: str, event: dict[str, Any]) -> list[Claim]:
    if not routable(event):
        return []
    if event_type == "vaccination.record":
        return [
            _claim(
                event_type,
                event,
                event["vaccine_code"],
                event.get("vaccine_name"),
                event["dose_number"],
                event["administered_at"],
                event.get("batch_no"),
                event.get("manufacturer"),
                False,
            )
        ]
    if event_type == "birth.record":
        out: dict[str, Claim] = {}
        for v in event.get("vaccines_at_birth") or ():
            out.setdefault(
                v["vaccine_code"],
                _claim(
                    event_type,
                    event,
                    v["vaccine_code"],
                    v.get("vaccine_name"),
                    1,
                    v["administered_at"],
                    v.get("batch_no"),
                    None,
                    True,
                ),
            )
        return list(out.values())
    return []


SPEC = RouteSpec(
    ROUTE, frozenset({"vaccination.record", "birth.record"}), claims, zh="预防接种", item_kind="immunisation"
)

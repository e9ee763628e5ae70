"""Resident updates → the resident's basic record (个人基本信息): blood type recorded in hospital, and past
history (allergies, operations, family history, past diseases), each element with its source and time;
the newest wins per element (primary LATEST), and a cancelled newest value falls back to the one before.

Elements: ``abo_blood_type``, ``rh_blood_type`` (unknown values, WS 364 "5" / "3", update nothing), and
``<kind>:<code or description>`` per history item.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from streams.routing.claims import Claim, Primary, RouteSpec, county_of, iso, routable, source_of

ROUTE = "resident_update"
UNKNOWN_ABO, UNKNOWN_RH = "5", "3"  # WS 364 CV04.50.005 不详, CV04.50.020 不详


def _history_element(kind: str, code: str | None, description: str | None) -> str | None:
    what = (code or "").strip().upper() or unicodedata.normalize("NFKC", description or "").strip()
    return f"{kind.lower()}:{what}" if what else None


def claims(event_type: str, event: dict[str, Any]) -> list[Claim]:
    if event_type != "patient.registered" or not routable(event):
        return []
    person, county = event["envelope"]["person_id"], county_of(event)
    source, at = source_of(event_type, event), event["envelope"]["occurred_at"]
    out: dict[str, Claim] = {}

    def add(element: str, value: str | None, description: str | None, when: Any, kind: str) -> None:
        facts = {
            "element": element,
            "kind": kind,
            "value": value,
            "description": description,
            "recorded_at": iso(when),
            "org_code": source.org_code,
        }
        out[element] = Claim(ROUTE, element, person, county, when, facts, source)

    if event.get("abo_blood_type") and event["abo_blood_type"] != UNKNOWN_ABO:
        add("abo_blood_type", event["abo_blood_type"], None, at, "BLOOD_TYPE")
    if event.get("rh_blood_type") and event["rh_blood_type"] != UNKNOWN_RH:
        add("rh_blood_type", event["rh_blood_type"], None, at, "BLOOD_TYPE")
    for item in event.get("history") or ():
        element = _history_element(item["kind"], item.get("code"), item.get("description"))
        if element is not None:
            add(element, item.get("code"), item.get("description"), item.get("recorded_at") or at, item["kind"])
    return list(out.values())


SPEC = RouteSpec(
    ROUTE, frozenset({"patient.registered"}), claims, Primary.LATEST, zh="居民档案更新", item_kind="record_element"
)

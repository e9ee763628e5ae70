"""What a source record claims of a route: the unit every collaboration route is built from.

A route (chronic disease, tumour registry, death registration, notifiable disease, vaccination, resident
update) is a pure function ``claims(event_type, event) -> list[Claim]``: "this record is evidence that
person P has <subject> at time T, with these facts". Claims of one person × subject make one work item
(its business key); the item's facts are those of its *primary* claim, the earliest (a registration is
made from the first evidence) or the latest (a resident's blood type: newest wins), per route, after
``precedence`` (a death certificate outranks a discharge by death).

Why claims rather than items: a source record can be corrected or cancelled, and an identity change can
move it to another person. Keeping what each record claims lets the ledger (ledger.py) recompute the
affected items from the claims that remain: a cancelled sole claim withdraws its item (no orphan
registrations), a corrected diagnosis moves the claim to another subject, a merge re-keys claims to the
survivor. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avro_schemas.json_form import timestamp_text
from foundation.standards.china_time import CST
from foundation.standards.region_codes import residence_county


class Primary(str, enum.Enum):
    """Which claim an item shows."""

    EARLIEST = "earliest"  # registrations: the first evidence registers, later ones are evidence
    LATEST = "latest"  # resident record elements: the newest value wins


@dataclass(frozen=True, slots=True)
class SourceRef:
    """The source record a claim comes from (what a correction or cancellation re-sends)."""

    org_code: str
    record_key: str
    local_patient_id: str
    event_id: str
    record_version: int
    event_type: str


@dataclass(frozen=True, slots=True)
class Claim:
    route: str
    subject: str  # what the item is about, without the person: "HYPERTENSION", "C34", "HepB:1", "abo_blood_type"
    person_id: str
    county_code: str  # county of residence that must act on it (GB/T 2260, 6 digits)
    at: dt.datetime  # clinical time: diagnosed, died, administered, recorded
    facts: dict[str, Any]  # the route's detail, JSON-able (timestamps as ISO text)
    source: SourceRef
    precedence: int = 0  # a higher one is primary before time is compared (a death certificate over a discharge)

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the claim within its source record."""
        return self.route, self.subject


ClaimFunction = Callable[[str, dict[str, Any]], list[Claim]]


@dataclass(frozen=True)
class RouteSpec:
    """One collaboration route: its name (= work-queue table and topic suffix), what it reads, its claims."""

    name: str
    event_types: frozenset[str]
    claims: ClaimFunction
    primary: Primary = Primary.EARLIEST
    episode: dt.timedelta | None = None  # claims this far apart are separate items (one report per 30 days)
    zh: str = ""
    item_kind: str = "registration"  # what an item of this route is, in the work-queue table's ``kind``


def source_of(event_type: str, event: dict[str, Any]) -> SourceRef:
    envelope = event["envelope"]
    source = envelope["source"]
    return SourceRef(
        source["org_code"],
        source["record_key"],
        envelope["patient"]["local_patient_id"],
        envelope["event_id"],
        envelope["record_version"],
        event_type,
    )


def county_of(event: dict[str, Any]) -> str:
    """The county of residence an item is addressed to (the reporting institution's when the address is
    unknown: that is where an unknown-address resident is followed up, as the county CDCs do today)."""
    return residence_county(event["envelope"])


def routable(event: dict[str, Any]) -> bool:
    """Only records with a platform person claim anything; a cancellation claims nothing (it withdraws)."""
    envelope = event["envelope"]
    return bool(envelope.get("person_id")) and not envelope["cancelled"]


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """Facts hold the JSON form of the topic schemas (docs/topics.md), so a change message is built from
    them with ``from_json`` and stored as JSON in PostgreSQL without a second representation."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return timestamp_text(value)
    return value.isoformat()


def local_day(value: dt.datetime) -> str:
    """The China-time calendar day of a moment (episode keys, 24 h deadlines read in local days)."""
    return value.astimezone(CST).strftime("%Y%m%d")

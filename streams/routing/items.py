"""Work items from claims, as plain functions: the business key a claim files under, the item's view of
its claims (primary claim, evidence count), and what kind of change a new set of claims makes.

The ledger (ledger.py) keeps claims and items in PostgreSQL and calls these; they do no I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.routing.claims import Claim, Primary, RouteSpec, iso, local_day


class ChangeKind(str, enum.Enum):
    REGISTERED = "REGISTERED"  # a new item, or a withdrawn one re-opened by new evidence
    EVIDENCE = "EVIDENCE"  # another record supports the item; what it shows is unchanged
    AMENDED = "AMENDED"  # the item's facts changed (its primary claim was corrected, cancelled or outranked)
    WITHDRAWN = "WITHDRAWN"  # no record supports it any more (cancelled, corrected away, moved)
    REASSIGNED = "REASSIGNED"  # an EMPI merge or unmerge moved it to another person


def primary_of(spec: RouteSpec, claims: Iterable[Claim]) -> Claim:
    """The claim an item shows: highest precedence, then earliest (registrations) or latest (newest value
    wins); ties by event id so every worker picks the same one."""
    if spec.primary is Primary.EARLIEST:
        return min(claims, key=lambda c: (-c.precedence, c.at, c.source.event_id))
    return max(claims, key=lambda c: (c.precedence, c.at, c.source.event_id))


def item_payload(spec: RouteSpec, claims: Sequence[Claim]) -> dict[str, Any]:
    """What the work-queue row's ``payload`` holds: the primary claim's facts and where they came from."""
    p = primary_of(spec, claims)
    return {
        "detail": p.facts,
        "primary_event_id": p.source.event_id,
        "primary_org_code": p.source.org_code,
        "primary_record_key": p.source.record_key,
        "at": iso(p.at),
        "evidence_count": len(claims),
        "first_at": iso(min(c.at for c in claims)),
        "last_at": iso(max(c.at for c in claims)),
    }


def change_kind(
    before_status: str | None, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, claim_added: bool
) -> ChangeKind | None:
    """The change from an item's stored state (status, payload) to its recomputed payload (None: no claims)."""
    live_before = before_status is not None and before_status != "withdrawn"
    if after is None:
        return ChangeKind.WITHDRAWN if live_before else None
    if not live_before or before is None:
        return ChangeKind.REGISTERED
    if before.get("detail") != after["detail"] or before.get("primary_event_id") != after["primary_event_id"]:
        return ChangeKind.AMENDED
    if claim_added:
        return ChangeKind.EVIDENCE
    if before.get("evidence_count") != after["evidence_count"]:
        return ChangeKind.AMENDED  # supporting evidence was withdrawn, the item stands
    return None


def business_key(
    spec: RouteSpec, person_id: str, subject: str, at: dt.datetime, episodes: Mapping[str, dt.date] | None = None
) -> str:
    """``<person>:<subject>``, or for an episode route ``<person>:<subject>:<YYYYMMDD>`` where the day
    anchors the episode: the nearest existing episode of this person × subject whose anchor is less than
    ``spec.episode`` away, else a new one anchored on the claim's own day (China time)."""
    if spec.episode is None:
        return f"{person_id}:{subject}"
    day = dt.datetime.strptime(local_day(at), "%Y%m%d").date()
    best: tuple[dt.timedelta, str] | None = None
    for key, anchor in (episodes or {}).items():
        gap = abs(dt.datetime.combine(day, dt.time()) - dt.datetime.combine(anchor, dt.time()))
        if gap < spec.episode and (best is None or (gap, key) < best):
            best = (gap, key)
    return best[1] if best is not None else f"{person_id}:{subject}:{day:%Y%m%d}"


def episode_anchor(key: str) -> dt.date:
    return dt.datetime.strptime(key.rsplit(":", 1)[1], "%Y%m%d").date()

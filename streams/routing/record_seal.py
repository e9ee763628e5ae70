"""Death registration → the health record seal: the death route's hook into the EMPI record lifecycle.

When the death_registration item of a person is registered or amended, the person's health record is
sealed (deregistered, status deceased) with the item's primary death record — a certificate outranks a
discharge by death, the ledger decides which. When the item is withdrawn (its last death record was
cancelled or corrected away), the seal that record made is lifted. Each change is published on
``record.deregistered``; a merge or unmerge moves seals inside the EMPI itself (record_lifecycle.py).
"""

from __future__ import annotations

from typing import Any

import psycopg

from avro_schemas.json_form import timestamp_text
from avro_schemas.topics import RECORD_DEREGISTERED
from streams.identity.master_index.record_lifecycle import LifecycleChange, deregister, reinstate
from streams.routing.items import ChangeKind
from streams.routing.ledger import ACTOR, ChangeMessage, ItemChange, ItemHook
from streams.routing.routes.death_registration import ROUTE


def seal_on_death(conn: psycopg.Connection, change: ItemChange) -> list[ChangeMessage]:
    lifecycle: LifecycleChange | None = None
    if change.kind in (ChangeKind.REGISTERED, ChangeKind.AMENDED) and change.primary is not None:
        p = change.primary
        lifecycle = deregister(
            conn,
            change.item.person_id,
            p.at,
            p.source.org_code,
            p.source.record_key,
            p.source.local_patient_id,
            p.source.event_id,
            p.facts.get("cause_code"),
            ACTOR,
            f"death registered from {p.facts['basis']} / 死亡登记",
            cause_id=change.cause.cause_id,
        )
    elif change.kind is ChangeKind.WITHDRAWN and change.withdrawn is not None:
        w = change.withdrawn
        lifecycle = reinstate(
            conn,
            change.item.person_id,
            w.source.org_code,
            w.source.record_key,
            change.cause.cause_id,
            ACTOR,
            change.item.status_reason or "death record withdrawn",
        )
    if lifecycle is None:
        return []
    return [
        ChangeMessage(
            lifecycle.change_id,
            change.cause.cause_id,
            RECORD_DEREGISTERED,
            lifecycle.person_id,
            "record.lifecycle_change",
            lifecycle_value(lifecycle, change.cause.cause_id),
        )
    ]


def lifecycle_value(change: LifecycleChange, source_event_id: str) -> dict[str, Any]:
    """The ``record.lifecycle_change`` message, JSON form."""
    deregistered = change.action == "deregistered"
    return {
        "change_id": change.change_id,
        "action": "DEREGISTERED" if deregistered else "REINSTATED",
        "person_id": change.person_id,
        "status": "deceased" if deregistered else "active",
        "died_at": timestamp_text(change.died_at) if change.died_at else None,
        "cause_code": change.cause_code,
        "org_code": change.org_code,
        "record_key": change.record_key,
        "source_event_id": source_event_id,
        "occurred_at": timestamp_text(change.occurred_at),
        "actor": change.actor,
        "reason": change.reason,
    }


def death_hooks() -> dict[str, list[ItemHook]]:
    return {ROUTE: [seal_on_death]}

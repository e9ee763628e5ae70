"""The resident health record lifecycle (docs/domain.md §8): sealed on a registered death, re-opened on its reversal.

Each person has one health record (健康档案) keyed by the platform person id. Its status is the person's
status in ``empi.persons``: ``active``; ``deceased`` (a death is registered: the record is deregistered and
sealed, 注销/封档, with the date, the source record and the underlying cause in ``empi.deregistrations``);
``merged`` (redirected to the survivor). A person is ``deceased`` exactly when it has a deregistration row.

- A death record, or a discharge with outcome death, seals the record (`deregister`); per person the latest
  death record wins, and a correction of the sealing record (another died_at or cause) is a new change.
- A cancelled death record re-opens the record (`reinstate`) only when it is the record that sealed it: a
  cancelled duplicate from another source leaves a standing seal alone.
- Merges (`on_merge`, called by `store.merge_persons`) move a seal to the survivor (if the survivor has none
  of its own, else the absorbed person's is dropped); an unmerge of the death record's patient record
  (`on_record_unmerged`, called by `operator_actions.unmerge`) takes the seal with it.

Every function runs in the caller's transaction, follows merges to the live person (locking its row, so a
concurrent merge or unmerge waits or is waited for), audits what it changes (who, when, why; the detail
holds dates, codes and source keys, no personal data) and is idempotent: a replayed event changes nothing
and returns None. Change ids are UUIDv5 of (action, person id as given, source event id).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from streams.identity.master_index.audit_log import write_audit

DEREGISTERED = "deregistered"
REINSTATED = "reinstated"
DROPPED = "dropped"  # a merge or unmerge met two seals: the survivor's stands, the other is deleted
_NAMESPACE = uuid.UUID("6c1d2e3f-4a5b-5c6d-9e7f-8a9b0c1d2e3f")
_AUDIT_ACTION = {DEREGISTERED: "deregister", REINSTATED: "reinstate", DROPPED: "deregistration_dropped"}
_SEAL_COLUMNS = "died_at, org_code, record_key, local_patient_id, source_event_id, cause_code, sealed_at"


class UnknownPerson(LookupError):
    """No such person in the master index (a death event must carry a person id the index gave out)."""


@dataclass(frozen=True, slots=True)
class LifecycleChange:
    change_id: str
    action: str  # deregistered | reinstated
    person_id: str  # the live person it applied to (after following merges)
    died_at: dt.datetime | None  # the registered death; for a reinstatement, the death that was withdrawn
    org_code: str  # the death record's institution
    record_key: str  # the death record's source key
    cause_code: str | None  # ICD-10 underlying cause (None when the source gave none)
    actor: str
    reason: str
    occurred_at: dt.datetime


@dataclass(frozen=True, slots=True)
class HealthRecordStatus:
    requested_person_id: str
    person_id: str  # the live person the requested id resolves to (itself unless merged)
    status: str  # the requested person's own status: active | deceased | merged
    merged_into: str | None  # the survivor the requested person was merged into (None unless merged)
    died_at: dt.datetime | None = None  # the live person's seal, if any
    org_code: str | None = None
    record_key: str | None = None
    cause_code: str | None = None
    sealed_at: dt.datetime | None = None

    @property
    def sealed(self) -> bool:
        return self.died_at is not None


@dataclass(frozen=True, slots=True)
class _Seal:
    died_at: dt.datetime
    org_code: str
    record_key: str
    local_patient_id: str | None
    source_event_id: str
    cause_code: str | None
    sealed_at: dt.datetime


def lifecycle_change_id(action: str, person_id: str, event_id: str) -> str:
    """Deterministic: a replay of the same event against the same person id yields the same change."""
    return str(uuid.uuid5(_NAMESPACE, f"{action}|{person_id}|{event_id}"))


def _timestamp(value: dt.datetime | int | str) -> dt.datetime:
    """died_at as an aware datetime (Avro timestamp-millis decodes to one; epoch ms and ISO text accepted)."""
    if isinstance(value, bool):
        raise TypeError("died_at must be a datetime")
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("died_at must carry a time zone (a naive time would be read in the server's zone)")
    return value


def _lock_live(conn: psycopg.Connection, person_id: str) -> str:
    """The person, or the survivor it was merged into, row-locked (FOR UPDATE: re-read after a concurrent merge
    commits, which then redirects us on)."""
    person = person_id
    for _ in range(100):
        row = conn.execute(
            "SELECT status, merged_into::text FROM empi.persons WHERE person_id = %s FOR UPDATE", (person,)
        ).fetchone()
        if row is None:
            raise UnknownPerson(f"no person {person}")
        if row[0] != "merged":
            return person
        person = row[1]
    raise RuntimeError(f"merge chain from person {person_id} does not end")


def _seal(conn: psycopg.Connection, person: str, lock: bool = True) -> _Seal | None:
    row = conn.execute(
        f"SELECT {_SEAL_COLUMNS} FROM empi.deregistrations WHERE person_id = %s" + (" FOR UPDATE" if lock else ""),
        (person,),
    ).fetchone()
    return _Seal(*row) if row else None


def _applied(conn: psycopg.Connection, change: str, action: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM empi.audit_log WHERE change_id = %s AND action = %s LIMIT 1", (change, _AUDIT_ACTION[action])
        ).fetchone()
        is not None
    )


def _detail(seal: _Seal | None = None, **extra: Any) -> dict[str, Any]:
    """What the audit keeps of a seal: dates, codes and source keys only (no personal data)."""
    out: dict[str, Any] = {}
    if seal is not None:
        out = {
            "died_at": seal.died_at.isoformat(),
            "org_code": seal.org_code,
            "record_key": seal.record_key,
            "cause_code": seal.cause_code,
            "source_event_id": seal.source_event_id,
        }
    out.update(extra)
    return out


def _record(org_code: str, local_patient_id: str | None) -> tuple[str, str] | None:
    return (org_code, local_patient_id) if local_patient_id else None


def _set_status(conn: psycopg.Connection, person: str, status: str) -> None:
    conn.execute(
        "UPDATE empi.persons SET status = %s, updated_at = now() WHERE person_id = %s AND status <> %s",
        (status, person, status),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- death registered / cancelled ----------------------------------------------------------------------


def deregister(
    conn: psycopg.Connection,
    person_id: str,
    died_at: dt.datetime | int | str,
    org_code: str,
    record_key: str,
    local_patient_id: str | None,
    event_id: str,
    cause_code: str | None,
    actor: str,
    reason: str,
    cause_id: str | None = None,
) -> LifecycleChange | None:
    """Seal the person's health record on a registered death; None when nothing changed (a replay of the
    event, or a re-send of the sealing record with the same values). ``cause_id``, when the seal is made
    because of another event (the cancellation of a certificate falls back to a discharge already seen),
    joins the change id so that the same death record can seal again for a new cause."""
    died = _timestamp(died_at)
    change = lifecycle_change_id(DEREGISTERED, person_id, event_id if cause_id is None else f"{cause_id}:{event_id}")
    live = _lock_live(conn, person_id)
    if _applied(conn, change, DEREGISTERED):
        return None
    current = _seal(conn, live)
    if current is not None and (
        current.died_at,
        current.org_code,
        current.record_key,
        current.local_patient_id,
        current.cause_code,
    ) == (died, org_code, record_key, local_patient_id, cause_code):
        return None
    conn.execute(
        "INSERT INTO empi.deregistrations (person_id, died_at, org_code, record_key, local_patient_id, "
        "source_event_id, cause_code, change_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (person_id) DO UPDATE SET died_at = EXCLUDED.died_at, org_code = EXCLUDED.org_code, "
        "record_key = EXCLUDED.record_key, local_patient_id = EXCLUDED.local_patient_id, "
        "source_event_id = EXCLUDED.source_event_id, cause_code = EXCLUDED.cause_code, "
        "change_id = EXCLUDED.change_id, sealed_at = now()",
        (live, died, org_code, record_key, local_patient_id, event_id, cause_code, change),
    )
    _set_status(conn, live, "deceased")
    sealed = _Seal(died, org_code, record_key, local_patient_id, event_id, cause_code, _now())
    replaced = (
        None
        if current is None
        else {"died_at": current.died_at.isoformat(), "org_code": current.org_code, "record_key": current.record_key}
    )
    write_audit(
        conn,
        actor,
        _AUDIT_ACTION[DEREGISTERED],
        live,
        person_id if person_id != live else None,
        record=_record(org_code, local_patient_id),
        change=change,
        reason=reason,
        detail=_detail(sealed, replaced=replaced),
    )
    return LifecycleChange(
        change, DEREGISTERED, live, died, org_code, record_key, cause_code, actor, reason, sealed.sealed_at
    )


def reinstate(
    conn: psycopg.Connection, person_id: str, org_code: str, record_key: str, event_id: str, actor: str, reason: str
) -> LifecycleChange | None:
    """Re-open the person's health record when its seal came from this death record (now cancelled); None
    otherwise (not sealed, sealed by another record, or a replay)."""
    change = lifecycle_change_id(REINSTATED, person_id, event_id)
    live = _lock_live(conn, person_id)
    if _applied(conn, change, REINSTATED):
        return None
    current = _seal(conn, live)
    if current is None or (current.org_code, current.record_key) != (org_code, record_key):
        return None
    conn.execute("DELETE FROM empi.deregistrations WHERE person_id = %s", (live,))
    _set_status(conn, live, "active")
    write_audit(
        conn,
        actor,
        _AUDIT_ACTION[REINSTATED],
        live,
        person_id if person_id != live else None,
        record=_record(org_code, current.local_patient_id),
        change=change,
        reason=reason,
        detail=_detail(current, cancelling_event_id=event_id),
    )
    return LifecycleChange(
        change, REINSTATED, live, current.died_at, org_code, record_key, current.cause_code, actor, reason, _now()
    )


def record_status(conn: psycopg.Connection, person_id: str) -> HealthRecordStatus:
    """The requested person's status, the live person it resolves to, and that person's seal (if any)."""
    rows = conn.execute(
        "WITH RECURSIVE chain(person_id, status, merged_into, depth) AS ("
        "  SELECT person_id, status, merged_into, 0 FROM empi.persons WHERE person_id = %s"
        "  UNION ALL SELECT p.person_id, p.status, p.merged_into, c.depth + 1 FROM empi.persons p"
        "  JOIN chain c ON p.person_id = c.merged_into WHERE c.depth < 100) "
        "SELECT person_id::text, status, merged_into::text FROM chain ORDER BY depth",
        (person_id,),
    ).fetchall()
    if not rows:
        raise UnknownPerson(f"no person {person_id}")
    live = rows[-1][0]
    seal = _seal(conn, live, lock=False)
    base = HealthRecordStatus(rows[0][0], live, rows[0][1], rows[0][2])
    if seal is None:
        return base
    return HealthRecordStatus(
        base.requested_person_id,
        live,
        base.status,
        base.merged_into,
        seal.died_at,
        seal.org_code,
        seal.record_key,
        seal.cause_code,
        seal.sealed_at,
    )


# -- identity changes ----------------------------------------------------------------------------------


def _move_seal(
    conn: psycopg.Connection, seal: _Seal, source: str, target: str, *, actor: str, why: str, cause: str
) -> list[LifecycleChange]:
    """Move ``source``'s seal to ``target`` (which then is deceased), or drop it if ``target`` has its own."""
    record = _record(seal.org_code, seal.local_patient_id)
    if (
        conn.execute("SELECT 1 FROM empi.deregistrations WHERE person_id = %s FOR UPDATE", (target,)).fetchone()
        is not None
    ):
        change = lifecycle_change_id(DROPPED, source, cause)
        conn.execute("DELETE FROM empi.deregistrations WHERE person_id = %s", (source,))
        write_audit(
            conn,
            actor,
            _AUDIT_ACTION[DROPPED],
            source,
            target,
            record=record,
            change=change,
            reason=f"{why}: person {target} has a death registration of its own, which stands",
            detail=_detail(seal, cause=cause),
        )
        return []
    change = lifecycle_change_id(DEREGISTERED, target, cause)
    conn.execute(
        "UPDATE empi.deregistrations SET person_id = %s, change_id = %s WHERE person_id = %s", (target, change, source)
    )
    _set_status(conn, target, "deceased")
    reason = f"{why}: the death registered for person {source} is this person's"
    write_audit(
        conn,
        actor,
        _AUDIT_ACTION[DEREGISTERED],
        target,
        source,
        record=record,
        change=change,
        reason=reason,
        detail=_detail(seal, cause=cause),
    )
    return [
        LifecycleChange(
            change,
            DEREGISTERED,
            target,
            seal.died_at,
            seal.org_code,
            seal.record_key,
            seal.cause_code,
            actor,
            reason,
            _now(),
        )
    ]


def on_merge(
    conn: psycopg.Connection, survivor: str, absorbed: str, *, merge_change: str, actor: str
) -> list[LifecycleChange]:
    """After ``absorbed`` merged into ``survivor`` (store.merge_persons): its seal moves to the survivor, or is
    dropped when the survivor has one. The absorbed person stays 'merged' (it redirects to the survivor)."""
    seal = _seal(conn, absorbed)
    if seal is None:
        return []
    return _move_seal(
        conn, seal, absorbed, survivor, actor=actor, why=f"merge {merge_change}", cause=f"merge:{merge_change}"
    )


def on_record_unmerged(
    conn: psycopg.Connection,
    org_code: str,
    local_id: str,
    source: str,
    target: str,
    *,
    unmerge_change: str,
    actor: str,
    reason: str,
) -> list[LifecycleChange]:
    """After the record (org_code, local_id) moved from ``source`` to ``target`` (operator unmerge): when
    ``source``'s seal came from that record's death record, it goes with the record and ``source`` re-opens."""
    seal = _seal(conn, source)
    if seal is None or (seal.org_code, seal.local_patient_id) != (org_code, local_id):
        return []
    why = f"unmerge {unmerge_change} of record {org_code}:{local_id} ({reason})"
    cause = f"unmerge:{unmerge_change}"
    changes = _move_seal(conn, seal, source, target, actor=actor, why=why, cause=cause)
    _set_status(conn, source, "active")
    change = lifecycle_change_id(REINSTATED, source, cause)
    reopened = f"{why}: the death registered by that record belongs to person {target}"
    write_audit(
        conn,
        actor,
        _AUDIT_ACTION[REINSTATED],
        source,
        target,
        record=(org_code, local_id),
        change=change,
        reason=reopened,
        detail=_detail(seal, cause=cause),
    )
    return [
        *changes,
        LifecycleChange(
            change,
            REINSTATED,
            source,
            seal.died_at,
            seal.org_code,
            seal.record_key,
            seal.cause_code,
            actor,
            reopened,
            _now(),
        ),
    ]

"""Operator actions on the master patient index: merge, unmerge, review decisions, and a masked view.

What `healthbus empi merge|unmerge|review|show` call. Each action runs in one transaction and goes
through the same paths as the identify stage (`store.merge_persons`, `record_moves`, the audit log, the
outbox), so downstream stages and sinks learn every change from the empi.* topics. Every action is
idempotent: repeating one that already took effect is a no-op success naming the earlier change, and a
refusal (`OperatorError`, with a stable ``code``) changes nothing.

Unmerge undoes one record's last move: the record goes back to the person it came from (reactivated if
that person had been merged into the record's person), or, if it founded or was first linked into its
person, to a new person. Identifiers it carries follow it unless a remaining record of the old person
carries them too. A separation row keeps the identify stage from merging the two again.

Nothing here prints or raises personal data: errors name persons by id and records by their key, and
`show_person` masks every personal field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.errors
import redis
from psycopg.types.json import Jsonb

from streams.deadlock_retry import retry_on_deadlock
from streams.identity.features import CITIZEN_ID, MatchFeatures, extract_features
from streams.identity.master_index.audit_log import write_audit
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.record_lifecycle import on_record_unmerged, record_status
from streams.identity.master_index.store import (
    change_id,
    merge_persons,
    now_ms,
    person_facts,
    queue_change,
    record_from_row,
)
from streams.identity.record import CSV_HEADER, RecordKey
from streams.privacy import mask_address, mask_birth_date, mask_card, mask_id_number, mask_name, mask_phone

OPERATOR_RULE = "operator"
LIVE_STATUSES = ("active", "deceased")  # not merged away
REVIEW_ACCEPT_RULE = "review_accept"
_RECORD_FIELDS = CSV_HEADER[3:]  # name … address, the columns of empi.records after the key
_RETRIES = 3  # a deadlock with the identify stage (it locks persons unordered) is retried, then raised

T = TypeVar("T")


class OperatorError(Exception):
    """A refused action. ``code`` is stable and machine-readable; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class MergeResult:
    change_id: str
    survivor_person_id: str
    absorbed_person_id: str
    records_moved: tuple[RecordKey, ...]
    already_done: bool = False  # the persons were one already: nothing changed, change_id is the earlier merge
    forced_over: tuple[str, ...] = ()  # vetoes the operator overrode with force
    cache_error: str = ""  # committed, but Redis could not take the moved records' tombstones (see _invalidate)
    moved_versions: tuple[int, ...] = ()  # each moved record's mapping version after the move, as records_moved


@dataclass(frozen=True, slots=True)
class UnmergeResult:
    change_id: str
    org_code: str
    local_id: str
    from_person_id: str
    to_person_id: str
    person_reactivated: bool = False  # the target had been merged away and is active again
    new_person: bool = False  # the record founded its person: it went to a new one
    identifiers_moved: tuple[str, ...] = ()  # kinds only (no values: they are personal data)
    already_done: bool = False  # the record's last move was this unmerge: nothing changed
    cache_error: str = ""
    deregistration_moved: bool = False  # the death registered by this record went with it (record_lifecycle)
    mapping_version: int = 0  # the record's mapping version after the move (0 when nothing changed)


@dataclass(frozen=True, slots=True)
class ReviewView:
    review_id: int
    org_code: str
    local_id: str
    record_person_id: str
    candidate_person_id: str
    reason: str
    weight: float | None
    status: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    decision_reason: str | None
    detail: dict[str, Any]  # comparison levels and weights (no personal data)


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    review_id: int
    status: str  # accepted, rejected
    change_id: str
    merge: MergeResult | None = None  # accept: the merge it made (None if the persons were one already)
    already_decided: bool = False
    cache_error: str = ""


@dataclass(frozen=True, slots=True)
class RecordView:
    """One linked record, every personal field masked."""

    org_code: str
    local_id: str
    name: str
    sex: str
    birth_date: str
    id_type: str
    id_number: str
    health_card: str
    insurance_card: str
    phone: str
    address: str
    link_rule: str
    link_weight: float | None
    linked_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AuditView:
    at: dt.datetime
    actor: str
    action: str
    person_id: str | None
    other_person_id: str | None
    record: str | None  # "ORG:LOCAL"
    change_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class PersonView:
    requested_person_id: str
    person_id: str  # the active person the requested id resolves to (itself unless merged)
    merge_chain: tuple[str, ...]  # requested → … → person_id
    status: str
    sex: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    records: tuple[RecordView, ...]
    identifiers: tuple[tuple[str, str], ...]  # (kind, masked value)
    open_reviews: tuple[ReviewView, ...]
    audit: tuple[AuditView, ...]  # the latest entries first
    died_at: dt.datetime | None = None  # the health record is sealed (status deceased): the registered death
    death_source: str | None = None  # "ORG:RECORD_KEY" of the death record that sealed it


# -- masking (what an operator may see) ------------------------------------------------------------------


def _mask_identifier(kind: str, value: str) -> str:
    if kind == CITIZEN_ID:
        return mask_id_number(value)
    if kind == "document":  # "03:E12345678": the type is no personal data
        doc_type, _, number = value.partition(":")
        return f"{doc_type}:{mask_id_number(number)}"
    return mask_card(value)


# -- helpers -------------------------------------------------------------------------------------------


def _retrying(action: Callable[[], T]) -> T:
    return retry_on_deadlock(action, _RETRIES)


def _person_uuid(person_id: str) -> str:
    try:
        return str(uuid.UUID(person_id.strip()))
    except ValueError:
        raise OperatorError("invalid_person_id", f"{person_id!r} is not a person id (a UUID)") from None


def _chain(conn: psycopg.Connection, person_id: str) -> list[tuple[str, str]]:
    """[(person, status), …] from ``person_id`` along merged_into to the person it resolves to."""
    rows = conn.execute(
        "WITH RECURSIVE chain(person_id, status, merged_into, depth) AS ("
        "  SELECT person_id, status, merged_into, 0 FROM empi.persons WHERE person_id = %s"
        "  UNION ALL SELECT p.person_id, p.status, p.merged_into, c.depth + 1 FROM empi.persons p"
        "  JOIN chain c ON p.person_id = c.merged_into WHERE c.depth < 100) "
        "SELECT person_id::text, status FROM chain ORDER BY depth",
        (person_id,),
    ).fetchall()
    if not rows:
        raise OperatorError("unknown_person", f"no person {person_id}")
    return [(p, s) for p, s in rows]


def _resolve_active(conn: psycopg.Connection, person_id: str) -> tuple[str, list[str]]:
    """(the person ``person_id`` resolves to, the chain of ids); refuses a person that is not live. A
    deceased person is live: a duplicate found after the death must still merge into its record."""
    chain = _chain(conn, person_id)
    final, status = chain[-1]
    if status not in LIVE_STATUSES:
        raise OperatorError("person_not_active", f"person {final} is {status}")
    return final, [p for p, _ in chain]


def _advisory_lock(conn: psycopg.Connection, keys: Iterable[str]) -> None:
    """The identify stage's locks (record keys r:…, identifier keys i:…), taken the way it takes them:
    one sorted statement, so a stage batch touching these records or identifiers waits for us, or we for it."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(k, 0) AS h "
        "FROM unnest(%s::text[]) AS k ORDER BY 1) AS ordered",
        (sorted(set(keys)),),
    )


def _lock_persons_content(conn: psycopg.Connection, persons: Sequence[str]) -> None:
    keys = [
        f"r:{org}:{local}"
        for org, local in conn.execute(
            "SELECT org_code, local_id FROM empi.records WHERE person_id = ANY(%s::uuid[])", (list(persons),)
        )
    ]
    keys += [
        f"i:{kind}:{value}"
        for kind, value in conn.execute(
            "SELECT kind, value FROM empi.identifiers WHERE person_id = ANY(%s::uuid[])", (list(persons),)
        )
    ]
    _advisory_lock(conn, keys)


def _lock_person_rows(conn: psycopg.Connection, persons: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """FOR UPDATE in id order (two operators never deadlock); person → (status, merged_into)."""
    rows = conn.execute(
        "SELECT person_id::text, status, merged_into::text FROM empi.persons "
        "WHERE person_id = ANY(%s::uuid[]) ORDER BY person_id FOR UPDATE",
        (sorted(set(persons)),),
    ).fetchall()
    return {p: (s, m) for p, s, m in rows}


def _separation_pair(a: str, b: str) -> tuple[str, str]:
    low, high = sorted((a, b))
    return low, high


def _merge_vetoes(conn: psycopg.Connection, survivor: str, absorbed: str) -> list[str]:
    facts = person_facts(conn, [survivor, absorbed])
    s, a = facts[survivor], facts[absorbed]
    vetoes = []
    if s.citizen_ids and a.citizen_ids and s.citizen_ids != a.citizen_ids:
        vetoes.append("different_citizen_ids")
    if s.sex and a.sex and s.sex != a.sex:
        vetoes.append("different_sexes")
    return vetoes


def _last_merge_change(conn: psycopg.Connection, absorbed_ids: Sequence[str]) -> str:
    row = conn.execute(
        "SELECT change_id FROM empi.audit_log WHERE action = 'merge' "
        "AND other_person_id = ANY(%s::uuid[]) ORDER BY audit_id DESC LIMIT 1",
        (list(absorbed_ids),),
    ).fetchone()
    return row[0] if row else ""


def _merge_locked(
    conn: psycopg.Connection,
    survivor_given: str,
    absorbed_given: str,
    *,
    actor: str,
    reason: str,
    force: bool,
    rule: str,
    change: Callable[[str, str], str],
) -> MergeResult:
    """The merge, inside the caller's transaction. ``change(survivor, absorbed)`` names the change."""
    for _ in range(_RETRIES):
        survivor, survivor_chain = _resolve_active(conn, survivor_given)
        absorbed, absorbed_chain = _resolve_active(conn, absorbed_given)
        if survivor == absorbed:  # one person already (merged earlier, either way round): a no-op
            earlier = _last_merge_change(conn, absorbed_chain[:-1] or survivor_chain[:-1])
            return MergeResult(earlier, survivor, absorbed_given, (), already_done=True)
        _lock_persons_content(conn, [survivor, absorbed])
        locked = _lock_person_rows(conn, [survivor, absorbed])
        if all(locked.get(p, ("", None))[0] in LIVE_STATUSES for p in (survivor, absorbed)):
            break
        # Someone merged one of them between our look and our lock: resolve again.
    else:
        raise OperatorError("concurrent_change", "the persons kept changing under this action; try again")

    vetoes = _merge_vetoes(conn, survivor, absorbed)
    if vetoes and not force:
        raise OperatorError(
            vetoes[0],
            f"persons {survivor} and {absorbed} have {vetoes[0].replace('_', ' ')}: "
            "they cannot be one resident (--force overrides, if the data is wrong)",
        )
    change_key = change(survivor, absorbed)
    low, high = _separation_pair(survivor, absorbed)
    if conn.execute(
        "DELETE FROM empi.separations WHERE person_a = %s AND person_b = %s RETURNING change_id", (low, high)
    ).fetchone():
        # The operator now says they are one: the earlier separation no longer holds.
        write_audit(conn, actor, "separation_removed", survivor, absorbed, change=change_key, reason=reason)
    # A forced merge says so in its own audit entry (the log is append-only: nothing is added later).
    moved = merge_persons(
        conn,
        survivor,
        absorbed,
        rule=rule,
        actor=actor,
        reason=reason,
        change=change_key,
        audit_detail={"forced": True, "overridden": vetoes} if vetoes else None,
    )
    return MergeResult(
        change_key,
        survivor,
        absorbed,
        tuple(m.record for m in moved),
        forced_over=tuple(vetoes),
        moved_versions=tuple(m.version for m in moved),
    )


def _invalidate(cache: PersonCache | None, records: Sequence[RecordKey], versions: Sequence[int]) -> str:
    """Tombstone the moved records' cache entries at their new versions; returns why that failed ("" when
    it did not).

    After commit, so that a reader cannot refill the old person before the move is visible; a reader that
    read it before and writes it back after loses to the tombstone (a newer version). A Redis failure does not
    undo a committed action: the caller reports it, and the identify stage tombstones the entries itself from
    `empi.cache_invalidations` (filed with the move) at its next batch once Redis answers."""
    if cache is None or not records:
        return ""
    try:
        cache.tombstone_many(zip(records, versions, strict=True))
    except redis.RedisError as exc:
        return (
            f"{len(records)} cache entries not invalidated ({type(exc).__name__}: {exc}); the identify stage "
            "invalidates them from empi.cache_invalidations once Redis answers"
        )
    return ""


def _need_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise OperatorError("reason_required", "every operator action needs a reason for the audit log")
    return reason


# -- merge ---------------------------------------------------------------------------------------------


def merge(
    conn: psycopg.Connection,
    survivor: str,
    absorbed: str,
    actor: str,
    reason: str,
    force: bool = False,
    cache: PersonCache | None = None,
) -> MergeResult:
    """Merge ``absorbed`` into ``survivor`` (ids of merged persons act on their survivors).

    Refuses a person into itself, an unknown or non-active person, and (unless ``force``) persons with
    different valid citizen IDs or different known sexes. Persons that are one already: a no-op."""
    survivor, absorbed = _person_uuid(survivor), _person_uuid(absorbed)
    reason = _need_reason(reason)
    if survivor == absorbed:
        raise OperatorError("self_merge", f"person {survivor} cannot be merged into itself")

    def run() -> MergeResult:
        with conn.transaction():

            def name(s: str, a: str) -> str:
                # The n-th operator merge of this pair: a merge undone by unmerge can be made again
                # (a fixed id would collide in the outbox), and a retry of a rolled-back one gets the same id.
                earlier = conn.execute(
                    "SELECT count(*) FROM empi.audit_log WHERE action = 'merge' "
                    "AND person_id = %s AND other_person_id = %s",
                    (s, a),
                ).fetchone()
                return change_id("operator_merge", s, a, str(earlier[0] if earlier else 0))

            return _merge_locked(
                conn, survivor, absorbed, actor=actor, reason=reason, force=force, rule=OPERATOR_RULE, change=name
            )

    result = _retrying(run)
    return dataclasses.replace(result, cache_error=_invalidate(cache, result.records_moved, result.moved_versions))


# -- unmerge -------------------------------------------------------------------------------------------


def parse_record_key(text: str) -> RecordKey:
    """ "ORG_CODE:LOCAL_ID" → (org, local); the local id may itself contain ':'."""
    org, sep, local = text.strip().partition(":")
    if not sep or not org or not local:
        raise OperatorError("invalid_record_key", f"{text!r} is not ORG_CODE:LOCAL_ID")
    return org, local


def _record_features(row: Sequence[Any]) -> MatchFeatures:
    """Features of an empi.records row selected as (org_code, local_id, name … address)."""
    return extract_features(record_from_row(row))


def unmerge(
    conn: psycopg.Connection, org_code: str, local_id: str, actor: str, reason: str, cache: PersonCache | None = None
) -> UnmergeResult:
    """Move one record out of its person, undoing the move that brought it there (see the module doc)."""
    reason = _need_reason(reason)
    key = (org_code, local_id)
    cols = ", ".join(_RECORD_FIELDS)

    def run() -> UnmergeResult:
        with conn.transaction():
            row = conn.execute(
                f"SELECT org_code, local_id, {cols} FROM empi.records WHERE org_code = %s AND local_id = %s", key
            ).fetchone()
            if row is None:
                raise OperatorError("unknown_record", f"no record {org_code}:{local_id}")
            features = _record_features(row)
            _advisory_lock(conn, [f"r:{org_code}:{local_id}", *(f"i:{k}:{v}" for k, v in features.identifier_keys())])
            current = conn.execute(
                "SELECT person_id::text FROM empi.records WHERE org_code = %s AND local_id = %s FOR UPDATE", key
            ).fetchone()
            assert current is not None  # records are never deleted
            person = current[0]
            last = conn.execute(
                "SELECT m.move_id, m.from_person_id::text, m.change_id, "
                "       EXISTS (SELECT 1 FROM empi.audit_log a WHERE a.action = 'unmerge' "
                "               AND a.change_id = m.change_id AND a.org_code = m.org_code AND a.local_id = m.local_id) "
                "FROM empi.record_moves m WHERE m.org_code = %s AND m.local_id = %s AND m.to_person_id = %s "
                "ORDER BY m.move_id DESC LIMIT 1",
                (*key, person),
            ).fetchone()
            if last is not None and last[3]:
                # Its last move was an unmerge: this is a repeat (or a retry after the commit). Undoing that
                # unmerge would re-merge; an operator who means it runs `empi merge`.
                return UnmergeResult(last[2], org_code, local_id, last[1] or "", person, already_done=True)
            others = conn.execute(
                f"SELECT org_code, local_id, {cols} FROM empi.records WHERE person_id = %s "
                "AND NOT (org_code = %s AND local_id = %s)",
                (person, *key),
            ).fetchall()
            if not others:
                raise OperatorError(
                    "record_alone",
                    f"record {org_code}:{local_id} is the only record of person "
                    f"{person}: there is nothing to separate it from",
                )

            undone_move = last[0] if last is not None else 0
            change = change_id("unmerge", org_code, local_id, str(undone_move))
            source = last[1] if last is not None else None
            reactivated = new_person = False
            if source is None:
                # It founded (or was first linked into) this person: the operator says that link is wrong.
                target = str(uuid.uuid4())
                conn.execute("INSERT INTO empi.persons (person_id, sex) VALUES (%s, %s)", (target, features.sex))
                new_person = True
                _lock_person_rows(conn, [person])
            else:
                chain = [p for p, _ in _chain(conn, source)]
                _lock_person_rows(conn, [person, *chain])
                if person in chain[1:]:
                    # Its old person was merged (directly or via others) into this one: bring it back (its
                    # health record sealed if it holds a death registration; a merge normally moved that on).
                    conn.execute(
                        "UPDATE empi.persons SET status = CASE WHEN EXISTS (SELECT 1 FROM "
                        "empi.deregistrations d WHERE d.person_id = %s) THEN 'deceased' ELSE 'active' END, "
                        "merged_into = NULL, updated_at = now() WHERE person_id = %s",
                        (source, source),
                    )
                    target, reactivated = source, True
                else:
                    # Its old person is active, or was merged elsewhere by a later decision: follow that.
                    target = chain[-1]

            other_keys = {k for o in others for k in _record_features(o).identifier_keys()}
            moved_kinds: list[str] = []
            for kind, value in features.identifier_keys():
                if (kind, value) in other_keys:
                    continue  # a remaining record still proves it belongs to the old person
                updated = conn.execute(
                    "UPDATE empi.identifiers SET person_id = %s WHERE kind = %s AND value = %s AND person_id = %s",
                    (target, kind, value, person),
                )
                if updated.rowcount:
                    moved_kinds.append(kind)
            # The move raises the record's mapping version and files its cache invalidation (the trigger).
            if new_person:
                relinked = conn.execute(
                    "UPDATE empi.records SET person_id = %s, link_rule = %s, link_weight = NULL, "
                    "link_detail = %s, linked_at = now(), updated_at = now() "
                    "WHERE org_code = %s AND local_id = %s RETURNING mapping_version",
                    (target, OPERATOR_RULE, Jsonb({"unmerged_from": person}), *key),
                ).fetchone()
            else:
                # Back where its own link evidence put it: that link rule and weight are true again.
                relinked = conn.execute(
                    "UPDATE empi.records SET person_id = %s, updated_at = now() WHERE org_code = %s AND local_id = %s "
                    "RETURNING mapping_version",
                    (target, *key),
                ).fetchone()
            assert relinked is not None  # the row is locked FOR UPDATE above
            conn.execute(
                "INSERT INTO empi.record_moves (org_code, local_id, from_person_id, to_person_id, change_id) "
                "VALUES (%s, %s, %s, %s, %s)",
                (*key, person, target, change),
            )
            conn.execute(
                "INSERT INTO empi.separations (person_a, person_b, change_id) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (*_separation_pair(person, target), change),
            )
            _refresh_sex(conn, person, [_record_features(o) for o in others])
            if features.sex:
                conn.execute(
                    "UPDATE empi.persons SET sex = %s, updated_at = now() WHERE person_id = %s AND sex IS NULL",
                    (features.sex, target),
                )
            write_audit(
                conn,
                actor,
                "unmerge",
                person,
                target,
                record=key,
                change=change,
                reason=reason,
                detail={
                    "undid_move": undone_move,
                    "person_reactivated": reactivated,
                    "new_person": new_person,
                    "identifiers_moved": moved_kinds,
                },
            )
            # A death registered by this record's death record is the target's: the seal goes with it.
            sealed = any(
                c.person_id == target
                for c in on_record_unmerged(
                    conn, org_code, local_id, person, target, unmerge_change=change, actor=actor, reason=reason
                )
            )
            queue_change(
                conn,
                change,
                "empi.record_relinked",
                target,
                {
                    "change_id": change,
                    "occurred_at": now_ms(),
                    "org_code": org_code,
                    "local_patient_id": local_id,
                    "from_person_id": person,
                    "to_person_id": target,
                    "person_reactivated": reactivated,
                    "action": "unmerge",
                    "actor": actor,
                    "reason": reason,
                },
            )
            return UnmergeResult(
                change,
                org_code,
                local_id,
                person,
                target,
                reactivated,
                new_person,
                tuple(moved_kinds),
                deregistration_moved=sealed,
                mapping_version=relinked[0],
            )

    result = _retrying(run)
    if result.already_done:
        return result
    return dataclasses.replace(result, cache_error=_invalidate(cache, [key], [result.mapping_version]))


def _refresh_sex(conn: psycopg.Connection, person: str, remaining: Sequence[MatchFeatures]) -> None:
    """A person's known sex (it vetoes links) must come from its own records: after a record leaves, a sex
    that only the leaving record (or the person merged in with it) supplied is no longer known."""
    sexes = {f.sex for f in remaining if f.sex}
    row = conn.execute("SELECT sex FROM empi.persons WHERE person_id = %s", (person,)).fetchone()
    current = row[0] if row else None
    if current is None or current in sexes or len(sexes) > 1:
        return
    conn.execute(
        "UPDATE empi.persons SET sex = %s, updated_at = now() WHERE person_id = %s",
        (next(iter(sexes)) if sexes else None, person),
    )


# -- review --------------------------------------------------------------------------------------------

_REVIEW_COLUMNS = (
    "review_id, org_code, local_id, record_person_id::text, candidate_person_id::text, reason, weight, "
    "status, created_at, decided_at, decided_by, decision_reason, detail"
)


def _review_view(row: Sequence[Any]) -> ReviewView:
    return ReviewView(*row[:12], detail=row[12] or {})  # type: ignore[misc]  # 12 positional fields, then detail


def list_reviews(conn: psycopg.Connection, status: str = "open", limit: int = 50) -> list[ReviewView]:
    """Review items of one status, oldest first (the open queue is worked front to back)."""
    if status not in ("open", "accepted", "rejected"):
        raise OperatorError("invalid_status", f"status must be open, accepted or rejected; got {status!r}")
    rows = conn.execute(
        f"SELECT {_REVIEW_COLUMNS} FROM empi.review_items WHERE status = %s ORDER BY review_id LIMIT %s",
        (status, limit),
    ).fetchall()
    return [_review_view(r) for r in rows]


def _locked_review(conn: psycopg.Connection, review_id: int) -> ReviewView:
    row = conn.execute(
        f"SELECT {_REVIEW_COLUMNS} FROM empi.review_items WHERE review_id = %s FOR UPDATE", (review_id,)
    ).fetchone()
    if row is None:
        raise OperatorError("unknown_review", f"no review item {review_id}")
    return _review_view(row)


def _decided_already(item: ReviewView, decision: str, action: str) -> ReviewDecision:
    if item.status != decision:
        when = f"{item.decided_at:%Y-%m-%d %H:%M}" if item.decided_at else "an unknown time"
        raise OperatorError(
            "review_decided",
            f"review item {item.review_id} was {item.status} by {item.decided_by} "
            f"at {when}; it cannot be {decision} now",
        )
    return ReviewDecision(item.review_id, decision, change_id(action, str(item.review_id)), already_decided=True)


def _record_person(conn: psycopg.Connection, item: ReviewView) -> str:
    """The record's person now (an unmerge may have moved it since the item was raised)."""
    row = conn.execute(
        "SELECT person_id::text FROM empi.records WHERE org_code = %s AND local_id = %s", (item.org_code, item.local_id)
    ).fetchone()
    return row[0] if row else item.record_person_id


def _decide(conn: psycopg.Connection, review_id: int, status: str, actor: str, reason: str) -> None:
    conn.execute(
        "UPDATE empi.review_items SET status = %s, decided_at = now(), decided_by = %s, "
        "decision_reason = %s WHERE review_id = %s",
        (status, actor, reason, review_id),
    )


def accept_review(
    conn: psycopg.Connection,
    review_id: int,
    actor: str,
    reason: str,
    force: bool = False,
    cache: PersonCache | None = None,
) -> ReviewDecision:
    """ "These are the same resident": the record's person (all its records) merges into the candidate."""
    reason = _need_reason(reason)
    action = "review_accept"

    def run() -> ReviewDecision:
        with conn.transaction():
            item = _locked_review(conn, review_id)
            if item.status != "open":
                return _decided_already(item, "accepted", action)
            change = change_id(action, str(review_id))
            survivor, _ = _resolve_active(conn, item.candidate_person_id)
            absorbed, _ = _resolve_active(conn, _record_person(conn, item))
            merged: MergeResult | None = None
            if survivor != absorbed:
                merged = _merge_locked(
                    conn,
                    survivor,
                    absorbed,
                    actor=actor,
                    reason=reason,
                    force=force,
                    rule=REVIEW_ACCEPT_RULE,
                    change=lambda _s, _a: change,
                )
            _decide(conn, review_id, "accepted", actor, reason)
            write_audit(
                conn,
                actor,
                action,
                survivor,
                absorbed,
                record=(item.org_code, item.local_id),
                change=change,
                reason=reason,
                detail={
                    "review_id": review_id,
                    "review_reason": item.reason,
                    "weight": item.weight,
                    "merged": merged is not None,
                },
            )
            return ReviewDecision(review_id, "accepted", change, merged)

    result = _retrying(run)
    if result.merge is None:
        return result
    return dataclasses.replace(
        result, cache_error=_invalidate(cache, result.merge.records_moved, result.merge.moved_versions)
    )


def reject_review(conn: psycopg.Connection, review_id: int, actor: str, reason: str) -> ReviewDecision:
    """ "These are two residents": the item closes and the two persons are separated for good."""
    reason = _need_reason(reason)
    action = "review_reject"

    def run() -> ReviewDecision:
        with conn.transaction():
            item = _locked_review(conn, review_id)
            if item.status != "open":
                return _decided_already(item, "rejected", action)
            change = change_id(action, str(review_id))
            candidate = _chain(conn, item.candidate_person_id)[-1][0]
            record_person = _chain(conn, _record_person(conn, item))[-1][0]
            if candidate == record_person:
                raise OperatorError(
                    "already_same_person",
                    f"the record {item.org_code}:{item.local_id} and the "
                    f"candidate are one person ({candidate}) already; unmerge the record instead",
                )
            conn.execute(
                "INSERT INTO empi.separations (person_a, person_b, change_id) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (*_separation_pair(candidate, record_person), change),
            )
            _decide(conn, review_id, "rejected", actor, reason)
            write_audit(
                conn,
                actor,
                action,
                record_person,
                candidate,
                record=(item.org_code, item.local_id),
                change=change,
                reason=reason,
                detail={"review_id": review_id, "review_reason": item.reason, "weight": item.weight},
            )
            return ReviewDecision(review_id, "rejected", change)

    return _retrying(run)


# -- show ----------------------------------------------------------------------------------------------


def show_person(conn: psycopg.Connection, person_id: str, audit_limit: int = 10) -> PersonView:
    """The person a given id resolves to, its records and identifiers masked, open reviews, recent audit."""
    requested = _person_uuid(person_id)
    chain = [p for p, _ in _chain(conn, requested)]
    person = chain[-1]
    status, sex, created, updated = conn.execute(  # type: ignore[misc]  # the chain ends at an existing person
        "SELECT status, sex, created_at, updated_at FROM empi.persons WHERE person_id = %s", (person,)
    ).fetchone()
    records = tuple(
        RecordView(
            org,
            local,
            mask_name(name),
            sex_,
            mask_birth_date(birth),
            id_type,
            mask_id_number(id_number),
            mask_card(health),
            mask_card(insurance),
            mask_phone(phone),
            mask_address(address),
            rule,
            weight,
            linked,
        )
        for org, local, name, sex_, birth, id_type, id_number, health, insurance, phone, address, rule, weight, linked in conn.execute(
            f"SELECT org_code, local_id, {', '.join(_RECORD_FIELDS)}, link_rule, link_weight, linked_at "
            "FROM empi.records WHERE person_id = %s ORDER BY linked_at, org_code, local_id",
            (person,),
        )
    )
    identifiers = tuple(
        (kind, _mask_identifier(kind, value))
        for kind, value in conn.execute(
            "SELECT kind, value FROM empi.identifiers WHERE person_id = %s ORDER BY kind, first_seen", (person,)
        )
    )
    reviews = tuple(
        _review_view(r)
        for r in conn.execute(
            f"SELECT {_REVIEW_COLUMNS} FROM empi.review_items WHERE status = 'open' "
            "AND (record_person_id = %s OR candidate_person_id = %s) ORDER BY review_id",
            (person, person),
        )
    )
    audit = tuple(
        AuditView(at, actor, action, p, other, f"{org}:{local}" if org else None, change, reason)
        for at, actor, action, p, other, org, local, change, reason in conn.execute(
            "SELECT at, actor, action, person_id::text, other_person_id::text, org_code, local_id, change_id, reason "
            "FROM empi.audit_log WHERE person_id = ANY(%s::uuid[]) OR other_person_id = ANY(%s::uuid[]) "
            "ORDER BY audit_id DESC LIMIT %s",
            (chain, chain, audit_limit),
        )
    )
    health_record = record_status(conn, person)
    death_source = f"{health_record.org_code}:{health_record.record_key}" if health_record.sealed else None
    return PersonView(
        requested,
        person,
        tuple(chain),
        status,
        sex,
        created,
        updated,
        records,
        identifiers,
        reviews,
        audit,
        health_record.died_at,
        death_source,
    )

"""The master patient index in PostgreSQL: look up what `resolution.decide` needs, apply what it decides.

One record is resolved per transaction, under transaction-scoped advisory locks on its record key and
identifier keys (taken in one sorted statement, so two workers never deadlock). Two workers that see the
same new resident at once serialise on the shared identifier: the second finds the first's person. A
kill -9 mid-batch rolls back the open transaction; the replayed record then resolves afresh, and the
person it founds has the same id (derived from the record), so nothing is duplicated or lost.

Merges (automatic or by an operator) go through `merge_persons`, relinks through the operator actions'
unmerge and review decisions (operator_actions.py); both keep the invariants: a record never points at a merged person; identifiers follow their records; every move
is in `record_moves` (what unmerge restores from), in the audit log, and in the outbox for publishing.

A record's `mapping_version` rises (by a trigger, schema.sql) with every change of its person or fingerprint,
and a change of person files a row in `cache_invalidations`: what keeps the Redis cache from serving or
taking back a mapping older than the index's (cache.py, resolver.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
from psycopg.types.json import Jsonb

from streams.deadlock_retry import retry_on_deadlock
from streams.identity.blocking import MAX_RECORDS_PER_KEY, index_keys, query_keys
from streams.identity.features import CITIZEN_ID, MatchFeatures, extract_features
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.audit_log import write_audit
from streams.identity.master_index.record_lifecycle import on_merge
from streams.identity.record import CSV_HEADER, RecordKey, SourceRecord
from streams.identity.resolution import Candidate, MatchDecision, MatchRule, PersonFacts, decide, new_person_id

STAGE_ACTOR = "identify-stage"
_RECORD_FIELDS = CSV_HEADER[3:]  # name … address (record_id, org_code, local_id are the key)
_CHANGE_NAMESPACE = uuid.UUID("0b3f7c1e-2d4a-5b6c-8e9f-a1b2c3d4e5f6")


def fingerprint(record: SourceRecord) -> str:
    """Hash of the identity fields: an unchanged re-send of a known record needs no write."""
    # getattr, not dataclasses.astuple: astuple deep-copies every field (10x the cost, on every event).
    return hashlib.blake2b(
        "\x1f".join([getattr(record, f) for f in _RECORD_FIELDS]).encode(), digest_size=8
    ).hexdigest()


def change_id(*parts: str) -> str:
    """Deterministic id of an identity change: a replay of the same change yields the same id."""
    return str(uuid.uuid5(_CHANGE_NAMESPACE, "|".join(parts)))


@dataclass(frozen=True, slots=True)
class Resolution:
    person_id: str
    rule: str
    weight: float | None = None
    review: bool = False
    moved_records: tuple[RecordKey, ...] = ()  # records that changed person (merges): their cache is stale
    version: int = 0  # the record's mapping version once resolved (0: not known, nothing to cache)
    moved_versions: tuple[int, ...] = ()  # each moved record's mapping version after the move, as moved_records


class RecordMapping(NamedTuple):
    """A record's person and fingerprint as the index holds them, and their mapping version."""

    person_id: str
    fingerprint: str
    version: int


class MovedRecord(NamedTuple):
    record: RecordKey
    version: int  # its mapping version after the move


def known_records(conn: psycopg.Connection, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordMapping]:
    """(org, local) → (person id, fingerprint, mapping version) for records already in the index; one query."""
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT r.org_code, r.local_id, r.person_id::text, r.fingerprint, r.mapping_version FROM empi.records r "
        "JOIN unnest(%s::text[], %s::text[]) AS k(org_code, local_id) USING (org_code, local_id)",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    return {(org, local): RecordMapping(person, fp, version) for org, local, person, fp, version in rows}


@dataclass(frozen=True, slots=True)
class InvalidationCursor:
    """Where a reader of `cache_invalidations` stands: the snapshot of its last read. Rows of transactions
    that were running then (``running``) or had not begun (ids from ``next_txid`` on) may have come since."""

    next_txid: int = 0  # the snapshot's xmax
    running: tuple[int, ...] = ()  # the snapshot's in-progress transaction ids


def cache_invalidations(
    conn: psycopg.Connection, cursor: InvalidationCursor
) -> tuple[InvalidationCursor, list[tuple[RecordKey, int]]]:
    """The `cache_invalidations` rows committed since ``cursor``: (record, mapping version after the move),
    and the cursor to read from next time; one statement (the connection is in autocommit).

    Ids are drawn before commit, so paging by id would skip a row whose transaction commits after a later
    one's. Paging by the statement's snapshot instead: a row visible now whose transaction had not ended at
    the last read is new; every other visible row was read before. Nothing is read twice."""
    rows = conn.execute(
        "WITH s AS (SELECT pg_current_snapshot() AS snap) "
        "SELECT pg_snapshot_xmax(s.snap)::text, ARRAY(SELECT x::text FROM pg_snapshot_xip(s.snap) AS x), "
        "       i.org_code, i.local_id, i.mapping_version "
        "FROM s LEFT JOIN empi.cache_invalidations i "
        "  ON i.txid >= %s::text::xid8 OR i.txid = ANY(%s::text[]::xid8[]) "
        "ORDER BY i.invalidation_id",
        (str(cursor.next_txid), [str(x) for x in cursor.running]),
    ).fetchall()
    after = InvalidationCursor(int(rows[0][0]), tuple(int(x) for x in rows[0][1]))
    return after, [((org, local), version) for _, _, org, local, version in rows if org is not None]


def prune_cache_invalidations(conn: psycopg.Connection, older_than_seconds: float) -> int:
    """Delete invalidations older than the cache can hold an entry: they have nothing left to kill."""
    return conn.execute(
        "DELETE FROM empi.cache_invalidations WHERE created_at < now() - make_interval(secs => %s)",
        (older_than_seconds,),
    ).rowcount


def record_from_row(row: Sequence[str]) -> SourceRecord:
    org, local = row[0], row[1]
    return SourceRecord(f"{org}:{local}", org, local, *row[2:])


def _candidates(conn: psycopg.Connection, features: MatchFeatures) -> list[Candidate]:
    keys = query_keys(features)
    if not keys:
        return []
    cols = ", ".join(f"r.{c}" for c in _RECORD_FIELDS)
    rows = conn.execute(
        f"SELECT DISTINCT ON (r.org_code, r.local_id) r.person_id::text, r.org_code, r.local_id, {cols} "
        "FROM unnest(%s::text[]) AS q(block_key) "
        "CROSS JOIN LATERAL (SELECT org_code, local_id FROM empi.block_keys b WHERE b.block_key = q.block_key "
        "                    ORDER BY filed_at DESC LIMIT %s) AS hit "
        "JOIN empi.records r USING (org_code, local_id) "
        "WHERE NOT (r.org_code = %s AND r.local_id = %s)",
        (keys, MAX_RECORDS_PER_KEY, features.org_code, features.local_id),
    ).fetchall()
    return [Candidate(row[0], extract_features(record_from_row(row[1:]))) for row in rows]


def person_facts(conn: psycopg.Connection, persons: Iterable[str]) -> dict[str, PersonFacts]:
    ids = sorted(set(persons))
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT p.person_id::text, p.sex, array_remove(array_agg(i.value), NULL) FROM empi.persons p "
        "LEFT JOIN empi.identifiers i ON i.person_id = p.person_id AND i.kind = %s "
        "WHERE p.person_id = ANY(%s::uuid[]) GROUP BY p.person_id, p.sex",
        (CITIZEN_ID, ids),
    ).fetchall()
    return {person: PersonFacts(frozenset(citizen_ids), sex) for person, sex, citizen_ids in rows}


def _live_person(conn: psycopg.Connection, person: str) -> str:
    """The person itself, or the survivor it was merged into, share-locked against a concurrent merge."""
    while True:
        row = conn.execute(
            "SELECT status, merged_into::text FROM empi.persons WHERE person_id = %s FOR SHARE", (person,)
        ).fetchone()
        if row is None or row[0] != "merged":
            return person
        person = row[1]


def _separated(conn: psycopg.Connection, a: str, b: str) -> bool:
    low, high = sorted((a, b))
    return (
        conn.execute("SELECT 1 FROM empi.separations WHERE person_a = %s AND person_b = %s", (low, high)).fetchone()
        is not None
    )


def queue_change(
    conn: psycopg.Connection, change: str, event_type: str, person_key: str, payload: dict[str, object]
) -> None:
    """Put an identity change in the outbox, in the caller's transaction (outbox.py publishes it)."""
    conn.execute(
        "INSERT INTO empi.outbox (change_id, event_type, person_key, payload) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (change_id) DO NOTHING",
        (change, event_type, person_key, Jsonb(payload)),
    )


def now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def merge_persons(
    conn: psycopg.Connection,
    survivor: str,
    absorbed: str,
    *,
    rule: str,
    actor: str,
    reason: str,
    change: str,
    audit_detail: dict[str, object] | None = None,
) -> list[MovedRecord]:
    """Move every record and identifier of ``absorbed`` to ``survivor``; returns the records moved (each with
    its new mapping version; the trigger filed their cache invalidations).

    Runs inside the caller's transaction. A person merged away redirects to its survivor. A sealed health
    record (a registered death) goes with the absorbed person to the survivor (record_lifecycle.on_merge).
    ``audit_detail`` goes into the merge's audit entry (a forced merge's overridden vetoes)."""
    moved = [
        MovedRecord((org, local), version)
        for org, local, version in conn.execute(
            "UPDATE empi.records SET person_id = %s, updated_at = now() WHERE person_id = %s "
            "RETURNING org_code, local_id, mapping_version",
            (survivor, absorbed),
        ).fetchall()
    ]
    for (org, local), _version in moved:
        conn.execute(
            "INSERT INTO empi.record_moves (org_code, local_id, from_person_id, to_person_id, change_id) "
            "VALUES (%s, %s, %s, %s, %s)",
            (org, local, absorbed, survivor, change),
        )
    conn.execute("UPDATE empi.identifiers SET person_id = %s WHERE person_id = %s", (survivor, absorbed))
    conn.execute(
        "UPDATE empi.persons SET status = 'merged', merged_into = %s, updated_at = now() WHERE person_id = %s",
        (survivor, absorbed),
    )
    conn.execute(
        "UPDATE empi.persons s SET sex = COALESCE(s.sex, a.sex), updated_at = now() "
        "FROM empi.persons a WHERE s.person_id = %s AND a.person_id = %s",
        (survivor, absorbed),
    )
    write_audit(
        conn,
        actor,
        "merge",
        survivor,
        absorbed,
        change=change,
        reason=reason,
        detail={"rule": rule, "records_moved": len(moved), **(audit_detail or {})},
    )
    on_merge(conn, survivor, absorbed, merge_change=change, actor=actor)
    queue_change(
        conn,
        change,
        "empi.person_merged",
        survivor,
        {
            "change_id": change,
            "occurred_at": now_ms(),
            "survivor_person_id": survivor,
            "absorbed_person_id": absorbed,
            "records_moved": len(moved),
            "rule": rule,
            "actor": actor,
            "reason": reason,
        },
    )
    return moved


def _file_record(
    conn: psycopg.Connection,
    record: SourceRecord,
    features: MatchFeatures,
    person: str,
    decision: MatchDecision,
    fp: str,
    existed: bool,
) -> psycopg.Cursor[tuple[int]]:
    """File the record's fields (and its link, if new); returns the cursor that will hold its mapping version
    (fetch it once the pipeline has synced: no round trip of its own)."""
    key = (record.org_code, record.local_id)
    values = [getattr(record, f) for f in _RECORD_FIELDS]
    filed: psycopg.Cursor[tuple[int]]
    if existed:
        filed = conn.execute(
            f"UPDATE empi.records SET ({', '.join(_RECORD_FIELDS)}, fingerprint, updated_at) = "
            f"({', '.join(['%s'] * len(_RECORD_FIELDS))}, %s, now()) WHERE org_code = %s AND local_id = %s "
            "RETURNING mapping_version",
            (*values, fp, *key),
        )
        conn.execute("DELETE FROM empi.block_keys WHERE org_code = %s AND local_id = %s", key)
    else:
        filed = conn.execute(
            f"INSERT INTO empi.records (org_code, local_id, person_id, {', '.join(_RECORD_FIELDS)}, fingerprint, "
            f"link_rule, link_weight, link_detail) VALUES (%s, %s, %s, {', '.join(['%s'] * len(_RECORD_FIELDS))}, "
            "%s, %s, %s, %s) RETURNING mapping_version",
            (*key, person, *values, fp, decision.rule.value, decision.weight, Jsonb(decision.detail)),
        )
        link = change_id("link", *key)
        conn.execute(
            "INSERT INTO empi.record_moves (org_code, local_id, from_person_id, to_person_id, change_id) "
            "VALUES (%s, %s, NULL, %s, %s)",
            (*key, person, link),
        )
        write_audit(
            conn,
            STAGE_ACTOR,
            "link",
            person,
            record=key,
            change=link,
            detail={"rule": decision.rule.value, "weight": decision.weight, **decision.detail},
        )
    # One statement per table, arrays unnested server-side: a row per statement costs a round of parsing each.
    conn.execute(
        "INSERT INTO empi.block_keys (block_key, org_code, local_id) "
        "SELECT k, %s, %s FROM unnest(%s::text[]) AS k ON CONFLICT DO NOTHING",
        (*key, index_keys(features)),
    )
    identifiers = features.identifier_keys()
    if identifiers:
        conn.execute(
            "INSERT INTO empi.identifiers (kind, value, person_id) "
            "SELECT kind, value, %s FROM unnest(%s::text[], %s::text[]) AS k(kind, value) "
            "ON CONFLICT (kind, value) DO NOTHING",
            (person, [k for k, _ in identifiers], [v for _, v in identifiers]),
        )
    if features.sex:
        conn.execute(
            "UPDATE empi.persons SET sex = %s, updated_at = now() WHERE person_id = %s AND sex IS NULL",
            (features.sex, person),
        )
    return filed


def _lock_keys(record: SourceRecord, features: MatchFeatures) -> set[str]:
    return {f"r:{record.org_code}:{record.local_id}", *(f"i:{k}:{v}" for k, v in features.identifier_keys())}


def resolve_records(
    conn: psycopg.Connection, records: Sequence[SourceRecord], model: MatchModel, actor: str = STAGE_ACTOR
) -> list[Resolution]:
    """Resolve records in order against the index and apply each decision, all in one transaction.

    Every lock the batch needs is taken up front in one sorted statement: two workers' lock sets then
    never wait on each other in a cycle, and one commit per batch (not per record) keeps new residents
    cheap. Later records of the batch see earlier ones (same transaction)."""
    prepared = [(record, extract_features(record)) for record in records]
    locks = sorted(set().union(*(_lock_keys(r, f) for r, f in prepared))) if prepared else []

    def resolve() -> list[Resolution]:
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(k, 0) AS h "
                "FROM unnest(%s::text[]) AS k ORDER BY 1) AS ordered",
                (locks,),
            )
            return [_resolve_locked(conn, record, features, model, actor) for record, features in prepared]

    # Person rows are share-locked as records link to them; a routing worker sealing a person or an operator
    # merging may hold one in another order: PostgreSQL aborts one of us and we run the batch again.
    return retry_on_deadlock(resolve)


def resolve_record(
    conn: psycopg.Connection, record: SourceRecord, model: MatchModel, actor: str = STAGE_ACTOR
) -> Resolution:
    return resolve_records(conn, [record], model, actor)[0]


def _resolve_locked(
    conn: psycopg.Connection, record: SourceRecord, features: MatchFeatures, model: MatchModel, actor: str
) -> Resolution:
    key = (record.org_code, record.local_id)
    fp = fingerprint(record)
    row = conn.execute(
        "SELECT person_id::text, fingerprint, mapping_version FROM empi.records WHERE org_code = %s AND local_id = %s",
        key,
    ).fetchone()
    if row is not None and row[1] == fp:
        return Resolution(row[0], MatchRule.RECORD_KEY.value, version=row[2])
    identifier_persons: dict[tuple[str, str], str] = {}
    identifier_keys = features.identifier_keys()
    if identifier_keys:
        for kind, value, person in conn.execute(
            "SELECT kind, value, person_id::text FROM empi.identifiers "
            "JOIN unnest(%s::text[], %s::text[]) AS k(kind, value) USING (kind, value)",
            ([k for k, _ in identifier_keys], [v for _, v in identifier_keys]),
        ).fetchall():
            identifier_persons[(kind, value)] = person
    candidates = [] if row is not None else _candidates(conn, features)
    persons = {c.person_id for c in candidates} | set(identifier_persons.values())
    if row is not None:
        persons.add(row[0])
    decision = decide(
        features,
        record_person=row[0] if row else None,
        identifier_persons=identifier_persons,
        candidates=candidates,
        person_facts=person_facts(conn, persons),
        model=model,
    )
    # An operator may have merged the chosen person away since it was read: follow it (the share lock holds
    # it until this transaction ends).
    person = _live_person(conn, decision.person_id) if decision.person_id else new_person_id(features)
    # The writes need no answers (but a merge's): one pipelined round trip instead of a dozen.
    with conn.pipeline():
        if decision.person_id is None:
            conn.execute("INSERT INTO empi.persons (person_id) VALUES (%s) ON CONFLICT DO NOTHING", (person,))
        moved: list[MovedRecord] = []
        for absorbed in sorted({_live_person(conn, p) for p in decision.merge_person_ids} - {person}):
            if _separated(conn, person, absorbed):
                continue  # an operator said these are two people
            change = change_id("merge", person, absorbed)
            moved += merge_persons(
                conn,
                person,
                absorbed,
                rule=decision.rule.value,
                actor=actor,
                reason=f"record {key[0]}:{key[1]} links both ({decision.rule.value})",
                change=change,
            )
        filed = _file_record(conn, record, features, person, decision, fp, existed=row is not None)
        for item in decision.reviews:
            conn.execute(
                "INSERT INTO empi.review_items (org_code, local_id, record_person_id, candidate_person_id, reason, "
                "weight, detail) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (org_code, local_id, candidate_person_id, reason) DO NOTHING",
                (
                    *key,
                    person,
                    item.candidate_person_id,
                    item.reason.value,
                    item.weight,
                    Jsonb(json.loads(json.dumps(item.detail, default=str))),
                ),
            )
    filed_row = filed.fetchone()  # the pipeline has synced: no round trip
    return Resolution(
        person,
        decision.rule.value,
        decision.weight,
        bool(decision.reviews),
        tuple(m.record for m in moved),
        version=filed_row[0] if filed_row else 0,
        moved_versions=tuple(m.version for m in moved),
    )

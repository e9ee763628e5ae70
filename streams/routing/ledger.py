"""The routing ledger in PostgreSQL: claims per source record, items per business key, a change log.

For each event, in order, the ledger compares what its source record claims now (the routes' pure
``claims``) with what that record claimed before, files the difference under business keys, recomputes
the items it touched (items.py) and writes, in the caller's transaction:

- ``routing.claims``: one row per source record × route × subject (what a correction or cancellation
  replaces);
- ``routing.source_records``: the newest version seen of each record that ever claimed something (a late,
  older re-send changes nothing);
- ``routing.<route>``: the work items (work_queue.py), status and all;
- ``routing.changes``: every item change as the message to publish, keyed by its cause (the source event
  id or the EMPI change id). The stage publishes the changes of a batch's causes *after* commit and again
  on a replay, so a crash between commit and publish loses nothing and consumers dedupe by change id.

Identity changes move claims: a merge re-keys the absorbed person's claims to the survivor (the item moves
whole when the survivor has none of its own, else the claims join the survivor's item and the absorbed
person's is withdrawn as a duplicate); an unmerge moves one source patient's claims the same way.

Concurrency: workers lock (route, person, subject) with transaction-scoped advisory locks in sorted order
before reading, so two records of one person on two partitions cannot both open an item.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from avro_schemas.json_form import timestamp_text
from avro_schemas.topics import COLLAB_ROUTES, collab_topic_name
from streams.routing.claims import Claim, RouteSpec, SourceRef, iso
from streams.routing.items import ChangeKind, business_key, change_kind, episode_anchor, item_payload, primary_of
from streams.routing.routes import SPEC_BY_NAME, claims_of
from streams.routing.work_queue import DEFAULT_ROLE_PREFIX, ItemRow, ensure_work_queues, save_items
from streams.routing.work_queue import item_id as new_item_id

ACTOR = "healthbus-routing"
CHANGE_NAMESPACE = uuid.UUID("8f5b1d0e-6a43-4c7e-9d2b-3a1f7c9e5b60")

DDL = """
CREATE TABLE IF NOT EXISTS routing.claims (
    route            text        NOT NULL,
    subject          text        NOT NULL,
    org_code         text        NOT NULL,
    record_key       text        NOT NULL,
    business_key     text        NOT NULL,
    person_id        text        NOT NULL,
    county_code      char(6)     NOT NULL,
    at               timestamptz NOT NULL,
    precedence       int         NOT NULL DEFAULT 0,
    facts            jsonb       NOT NULL,
    local_patient_id text        NOT NULL,
    event_id         text        NOT NULL,
    record_version   int         NOT NULL,
    event_type       text        NOT NULL,
    PRIMARY KEY (route, org_code, record_key, subject)
);
CREATE INDEX IF NOT EXISTS claims_item ON routing.claims (route, business_key);
CREATE INDEX IF NOT EXISTS claims_person ON routing.claims (person_id, route, subject);
CREATE INDEX IF NOT EXISTS claims_patient ON routing.claims (org_code, local_patient_id);
CREATE TABLE IF NOT EXISTS routing.source_records (
    route          text NOT NULL,
    org_code       text NOT NULL,
    record_key     text NOT NULL,
    record_version int  NOT NULL,
    event_id       text NOT NULL,
    PRIMARY KEY (route, org_code, record_key)
);
CREATE TABLE IF NOT EXISTS routing.changes (
    seq          bigserial,
    change_id    uuid        PRIMARY KEY,
    cause_id     text        NOT NULL,
    topic        text        NOT NULL,
    message_key  text        NOT NULL,
    event_type   text        NOT NULL,
    value        jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS changes_cause ON routing.changes (cause_id, seq);
COMMENT ON TABLE routing.claims IS '来源记录对协同业务的声明 / What each source record claims of each route.';
COMMENT ON TABLE routing.changes IS '协同工作项变更日志 (发布前先落库) / Work-item changes, written before they are published.';
"""


@dataclass(frozen=True, slots=True)
class Cause:
    """What caused a change: a source event, or an EMPI change."""

    cause_id: str
    org_code: str | None = None
    record_key: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeMessage:
    """One message to publish: ``topic`` without the deployment prefix; ``value`` in the JSON form."""

    change_id: str
    cause_id: str
    topic: str
    key: str
    event_type: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ItemChange:
    """What a hook sees: the item after the change, its primary claim (None when withdrawn), the claim that
    was withdrawn last (for WITHDRAWN), and the cause."""

    spec: RouteSpec
    kind: ChangeKind
    item: ItemRow
    primary: Claim | None
    withdrawn: Claim | None
    cause: Cause


ItemHook = Callable[[psycopg.Connection, ItemChange], list[ChangeMessage]]


def _lock_id(route: str, person: str, subject: str) -> int:
    digest = hashlib.blake2b(f"{route}\x1f{person}\x1f{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def change_id(item: str, cause: str, kind: ChangeKind) -> str:
    return str(uuid.uuid5(CHANGE_NAMESPACE, f"{item}\x1f{cause}\x1f{kind.value}"))


def ensure_ledger(conn: psycopg.Connection, role_prefix: str = DEFAULT_ROLE_PREFIX) -> None:
    ensure_work_queues(conn, role_prefix)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.routing.ledger.ddl'))")
        conn.execute(DDL)


_CLAIM_COLUMNS = (
    "route, subject, org_code, record_key, business_key, person_id, county_code, at, precedence, facts, "
    "local_patient_id, event_id, record_version, event_type"
)


def _claim_from_row(row: Sequence[Any]) -> tuple[Claim, str]:
    (
        route,
        subject,
        org,
        record_key,
        key,
        person,
        county,
        at,
        precedence,
        facts,
        local,
        event_id,
        version,
        event_type,
    ) = row
    source = SourceRef(org, record_key, local, event_id, version, event_type)
    return Claim(route, subject, person, county.strip(), at, facts, source, precedence), key


class _Work:
    """The claims and items one transaction reads and changes, kept in memory and written at the end."""

    def __init__(self, conn: psycopg.Connection, specs: dict[str, RouteSpec]) -> None:
        self.conn = conn
        self.specs = specs  # the routes this ledger runs; claims of other routes are not read or written
        self.routes = sorted(specs)
        self.by_item: dict[tuple[str, str], dict[tuple[str, str], Claim]] = {}  # (route, key) → record → claim
        self.by_record: dict[tuple[str, str], dict[tuple[str, str], tuple[Claim, str]]] = {}
        self.episodes: dict[tuple[str, str, str], set[str]] = {}  # (route, person, subject) → business keys
        self.loaded_triples: set[tuple[str, str, str]] = set()
        self.items: dict[tuple[str, str], ItemRow | None] = {}
        self.versions: dict[tuple[str, str, str], tuple[int, str]] = {}  # (route, org, record key) →
        self.claim_writes: dict[tuple[str, str, str, str], tuple[Claim, str] | None] = {}  # None: delete
        self.item_writes: dict[str, ItemRow] = {}
        self.version_writes: dict[tuple[str, str, str], tuple[int, str]] = {}
        self.messages: list[ChangeMessage] = []

    # -- loading ---------------------------------------------------------------------------------------
    def lock(self, triples: Iterable[tuple[str, str, str]]) -> None:
        ids = sorted({_lock_id(*t) for t in triples})
        if ids:
            self.conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", (ids,))

    def prior_claims(self, records: Iterable[tuple[str, str]]) -> list[tuple[Claim, str]]:
        orgs, keys = zip(*records) if records else ((), ())
        if not orgs:
            return []
        rows = self.conn.execute(
            f"SELECT {_CLAIM_COLUMNS} FROM routing.claims c JOIN unnest(%s::text[], %s::text[]) AS r(o, k) "
            "ON c.org_code = r.o AND c.record_key = r.k WHERE c.route = ANY(%s)",
            (list(orgs), list(keys), self.routes),
        ).fetchall()
        return [_claim_from_row(r) for r in rows]

    def load_records(self, records: list[tuple[str, str]]) -> None:
        for claim, key in self.prior_claims(records):
            self._index(claim, key)
        if records:
            orgs, keys = zip(*records)
            for route, org, rk, version, event_id in self.conn.execute(
                "SELECT s.route, s.org_code, s.record_key, s.record_version, s.event_id FROM routing.source_records s "
                "JOIN unnest(%s::text[], %s::text[]) AS r(o, k) ON s.org_code = r.o AND s.record_key = r.k "
                "WHERE s.route = ANY(%s)",
                (list(orgs), list(keys), self.routes),
            ).fetchall():
                self.versions[(route, org, rk)] = (version, event_id)

    def load_triples(self, triples: Iterable[tuple[str, str, str]]) -> None:
        todo = sorted(set(triples) - self.loaded_triples)
        if not todo:
            return
        self.loaded_triples.update(todo)
        routes, persons, subjects = (list(x) for x in zip(*todo))
        rows = self.conn.execute(
            f"SELECT {_CLAIM_COLUMNS} FROM routing.claims c JOIN unnest(%s::text[], %s::text[], %s::text[]) "
            "AS t(r, p, s) ON c.route = t.r AND c.person_id = t.p AND c.subject = t.s",
            (routes, persons, subjects),
        ).fetchall()
        for row in rows:
            claim, key = _claim_from_row(row)
            if (claim.route, claim.source.org_code, claim.source.record_key, claim.subject) not in self.claim_writes:
                self._index(claim, key)
        for route, person, subject in todo:
            self.episodes.setdefault((route, person, subject), set())
        self.load_items([(c.route, k) for c, k in (_claim_from_row(r) for r in rows)])

    def load_items(self, keys: Iterable[tuple[str, str]]) -> None:
        by_route: dict[str, list[str]] = {}
        for route, key in keys:
            if (route, key) not in self.items:
                by_route.setdefault(route, []).append(key)
        for route, wanted in by_route.items():
            for k in wanted:
                self.items[(route, k)] = None
            rows = self.conn.execute(
                sql.SQL(
                    "SELECT item_id::text, business_key, person_id, county_code, kind, payload, source_event_ids, "
                    "status, status_by, status_at, status_reason FROM routing.{} WHERE business_key = ANY(%s)"
                ).format(sql.Identifier(route)),
                (wanted,),
            ).fetchall()
            for r in rows:
                self.items[(route, r[1])] = ItemRow(
                    route, r[0], r[1], r[2], r[3].strip(), r[4], r[5], list(r[6]), r[7], r[8], r[9], r[10]
                )

    def _index(self, claim: Claim, key: str) -> None:
        record = (claim.source.org_code, claim.source.record_key)
        self.by_record.setdefault(record, {})[claim.key] = (claim, key)
        self.by_item.setdefault((claim.route, key), {})[record] = claim
        self.episodes.setdefault((claim.route, claim.person_id, claim.subject), set()).add(key)

    # -- changing claims -------------------------------------------------------------------------------
    def remove_claim(self, claim: Claim, key: str) -> None:
        record = (claim.source.org_code, claim.source.record_key)
        self.by_record.get(record, {}).pop(claim.key, None)
        holders = self.by_item.get((claim.route, key), {})
        holders.pop(record, None)
        self.claim_writes[(claim.route, *record, claim.subject)] = None

    def add_claim(self, claim: Claim, key: str) -> None:
        record = (claim.source.org_code, claim.source.record_key)
        self._index(claim, key)
        self.claim_writes[(claim.route, *record, claim.subject)] = (claim, key)

    def key_for(self, claim: Claim) -> str:
        spec = self.specs[claim.route]
        if spec.episode is None:
            return business_key(spec, claim.person_id, claim.subject, claim.at)
        live = {
            k: episode_anchor(k)
            for k in self.episodes.get((claim.route, claim.person_id, claim.subject), ())
            if self.by_item.get((claim.route, k))
        }
        return business_key(spec, claim.person_id, claim.subject, claim.at, live)

    # -- recomputing items -----------------------------------------------------------------------------
    def settle(
        self,
        route: str,
        key: str,
        cause: Cause,
        added: bool,
        withdrawn: Claim | None,
        person_hint: Claim | None,
        reason: str,
        hooks: dict[str, list[ItemHook]],
        previous_person: str | None = None,
        force_kind: ChangeKind | None = None,
    ) -> None:
        """Recompute one item from its claims and record the change (if any)."""
        spec = self.specs[route]
        if (route, key) not in self.items:
            self.load_items([(route, key)])
        item = self.items[(route, key)]
        claims = list(self.by_item.get((route, key), {}).values())
        after = item_payload(spec, claims) if claims else None
        kind = force_kind or change_kind(item.status if item else None, item.payload if item else None, after, added)
        if kind is None:
            return
        now = dt.datetime.now(dt.UTC)
        if item is None:
            base = person_hint or claims[0]
            item = ItemRow(
                route,
                new_item_id(route, f"{key}\x1f{cause.cause_id}"),
                key,
                base.person_id,
                base.county_code,
                spec.item_kind,
                None,
                [],
                "pending",
                stored=False,
            )
            self.items[(route, key)] = item
        primary = primary_of(spec, claims) if claims else None
        if after is not None:
            item.payload = after
            item.source_event_ids = sorted({c.source.event_id for c in claims})
            item.person_id = claims[0].person_id
        if kind is ChangeKind.REGISTERED:
            managed = bool(primary and primary.facts.get("already_managed"))
            item.status = "acknowledged" if managed else "pending"
            item.status_by = primary.source.org_code if managed and primary else ACTOR
            item.status_at = now
            item.status_reason = (
                "already under county management (follow-up) / 县区已在管理" if managed else (reason or None)
            )
        elif kind is ChangeKind.WITHDRAWN:
            item.status, item.status_by, item.status_at, item.status_reason = "withdrawn", ACTOR, now, reason
            item.source_event_ids = []
        self.item_writes[item.item_id] = item
        self._message(spec, kind, item, primary, withdrawn, cause, reason, previous_person, len(claims), now)
        change = ItemChange(spec, kind, item, primary, withdrawn, cause)
        for hook in hooks.get(route, ()):
            self.messages.extend(hook(self.conn, change))

    def _message(
        self,
        spec: RouteSpec,
        kind: ChangeKind,
        item: ItemRow,
        primary: Claim | None,
        withdrawn: Claim | None,
        cause: Cause,
        reason: str,
        previous_person: str | None,
        evidence: int,
        now: dt.datetime,
    ) -> None:
        shown = primary or withdrawn
        assert shown is not None
        value: dict[str, Any] = {
            "change_id": change_id(item.item_id, cause.cause_id, kind),
            "item_id": item.item_id,
            "route": spec.name,
            "kind": kind.value,
            "business_key": item.business_key,
            "subject": shown.subject,
            "person_id": item.person_id,
            "previous_person_id": previous_person,
            "county_code": item.county_code,
            "status": item.status,
            "at": iso(shown.at),
            "changed_at": timestamp_text(now),
            "evidence_count": evidence,
            "cause_id": cause.cause_id,
            "cause_org_code": cause.org_code,
            "cause_record_key": cause.record_key,
            "reason": reason,
        }
        for route in self.specs:
            value[route] = shown.facts if route == spec.name else None
        self.messages.append(
            ChangeMessage(
                value["change_id"],
                cause.cause_id,
                collab_topic_name(spec.name),
                item.person_id,
                "collab.work_item_change",
                value,
            )
        )

    # -- writing ---------------------------------------------------------------------------------------
    def flush(self) -> None:
        with self.conn.cursor() as cur:
            deletes = [k for k, v in self.claim_writes.items() if v is None]
            if deletes:
                cur.executemany(
                    "DELETE FROM routing.claims WHERE route = %s AND org_code = %s AND record_key = %s "
                    "AND subject = %s",
                    deletes,
                )
            upserts = [v for v in self.claim_writes.values() if v is not None]
            if upserts:
                cur.executemany(
                    f"INSERT INTO routing.claims ({_CLAIM_COLUMNS}) VALUES ({', '.join(['%s'] * 14)}) "
                    "ON CONFLICT (route, org_code, record_key, subject) DO UPDATE SET business_key = EXCLUDED.business_key, "
                    "person_id = EXCLUDED.person_id, county_code = EXCLUDED.county_code, at = EXCLUDED.at, "
                    "precedence = EXCLUDED.precedence, facts = EXCLUDED.facts, local_patient_id = EXCLUDED.local_patient_id, "
                    "event_id = EXCLUDED.event_id, record_version = EXCLUDED.record_version, event_type = EXCLUDED.event_type",
                    [
                        (
                            c.route,
                            c.subject,
                            c.source.org_code,
                            c.source.record_key,
                            k,
                            c.person_id,
                            c.county_code,
                            c.at,
                            c.precedence,
                            Jsonb(c.facts),
                            c.source.local_patient_id,
                            c.source.event_id,
                            c.source.record_version,
                            c.source.event_type,
                        )
                        for c, k in upserts
                    ],
                )
            if self.version_writes:
                cur.executemany(
                    "INSERT INTO routing.source_records (route, org_code, record_key, record_version, event_id) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (route, org_code, record_key) DO UPDATE SET "
                    "record_version = EXCLUDED.record_version, event_id = EXCLUDED.event_id",
                    [(r, o, k, v, e) for (r, o, k), (v, e) in self.version_writes.items()],
                )
            save_items(self.conn, list(self.item_writes.values()))
            if self.messages:
                cur.executemany(
                    "INSERT INTO routing.changes (change_id, cause_id, topic, message_key, event_type, value) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (change_id) DO NOTHING",
                    [(m.change_id, m.cause_id, m.topic, m.key, m.event_type, Jsonb(m.value)) for m in self.messages],
                )


@dataclass
class RoutingLedger:
    """Routes events and identity changes into claims, items and changes (in the caller's transaction)."""

    conn: psycopg.Connection
    hooks: dict[str, list[ItemHook]] = field(default_factory=dict)
    routes: tuple[str, ...] = COLLAB_ROUTES  # a worker may run some routes only (its own consumer group)

    def __post_init__(self) -> None:
        unknown = set(self.routes) - set(SPEC_BY_NAME)
        if unknown or not self.routes:
            raise ValueError(f"unknown routes {sorted(unknown)}; routes: {', '.join(SPEC_BY_NAME)}")
        self._specs = {r: SPEC_BY_NAME[r] for r in self.routes}

    def reads(self, event_type: str) -> bool:
        return any(event_type in s.event_types for s in self._specs.values())

    # -- events ----------------------------------------------------------------------------------------
    def apply_events(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[ChangeMessage]:
        """Route events in order; returns the changes they made (also stored in routing.changes)."""
        decided = [(t, e, claims_of(t, e, self.routes)) for t, e in events if self.reads(t)]
        if not decided:
            return []
        work = _Work(self.conn, self._specs)
        records = sorted(
            {(e["envelope"]["source"]["org_code"], e["envelope"]["source"]["record_key"]) for _, e, _ in decided}
        )
        prior = work.prior_claims(records)
        triples = {(c.route, c.person_id, c.subject) for _, _, cs in decided for c in cs}
        triples |= {(c.route, c.person_id, c.subject) for c, _ in prior}
        work.lock(triples)
        work.load_records(records)
        work.load_triples(triples)
        work.load_items(
            [(c.route, work.key_for(c)) for _, _, cs in decided for c in cs if self._specs[c.route].episode is None]
        )
        for event_type, event, claims in decided:
            self._apply_event(work, event_type, event, claims)
        work.flush()
        return work.messages

    def _apply_event(self, work: _Work, event_type: str, event: dict[str, Any], claims: list[Claim]) -> None:
        envelope = event["envelope"]
        source = envelope["source"]
        record = (source["org_code"], source["record_key"])
        version, event_id = envelope["record_version"], envelope["event_id"]
        old = dict(work.by_record.get(record, {}))
        new = {c.key: c for c in claims}
        for route in {k[0] for k in old} | {k[0] for k in new}:  # versions are kept per route
            seen = work.versions.get((route, *record))
            if seen is not None and (seen[0] > version or seen[1] == event_id):
                # an older version arriving late, or this very event again (a replay): this route keeps its claims
                old = {k: v for k, v in old.items() if k[0] != route}
                new = {k: v for k, v in new.items() if k[0] != route}
            else:
                work.versions[(route, *record)] = work.version_writes[(route, *record)] = (version, event_id)
        if not old and not new:
            return
        cause = Cause(event_id, record[0], record[1])
        touched: dict[tuple[str, str], tuple[bool, Claim | None, Claim | None]] = {}
        for claim_key in sorted(old.keys() | new.keys()):
            before = old.get(claim_key)
            after = new.get(claim_key)
            if before is not None and after is not None and _same(before[0], after):
                work.add_claim(after, before[1])  # the new version restates it: refresh the source, no change
                continue
            if before is not None:
                work.remove_claim(*before)
                added_before, _, hint = touched.get((before[0].route, before[1]), (False, None, None))
                touched[(before[0].route, before[1])] = (added_before, before[0], hint or before[0])
            if after is not None:
                key = work.key_for(after)
                work.add_claim(after, key)
                _, withdrawn, _ = touched.get((after.route, key), (False, None, None))
                touched[(after.route, key)] = (True, withdrawn, after)
        reason = _reason(envelope)
        for (route, key), (added, withdrawn, hint) in touched.items():
            work.settle(route, key, cause, added, withdrawn, hint, reason, self.hooks)

    # -- identity changes --------------------------------------------------------------------------------
    def apply_merge(self, change: dict[str, Any]) -> list[ChangeMessage]:
        """empi.person_merged: the absorbed person's claims go to the survivor."""
        survivor, absorbed = change["survivor_person_id"], change["absorbed_person_id"]
        return self._move(
            change["change_id"],
            "person_id = %s",
            (absorbed,),
            survivor,
            f"merged into person {survivor} (EMPI change {change['change_id']}) / 身份合并",
        )

    def apply_relink(self, change: dict[str, Any]) -> list[ChangeMessage]:
        """empi.record_relinked: one source patient's claims go from one person to the other."""
        return self._move(
            change["change_id"],
            "person_id = %s AND org_code = %s AND local_patient_id = %s",
            (change["from_person_id"], change["org_code"], change["local_patient_id"]),
            change["to_person_id"],
            f"record relinked by {change['action']} (EMPI change {change['change_id']}) / 身份拆分或复核",
        )

    def _move(
        self, change: str, where: str, params: tuple[str, ...], to_person: str, reason: str
    ) -> list[ChangeMessage]:
        work = _Work(self.conn, self._specs)
        moving = [
            _claim_from_row(r)
            for r in self.conn.execute(
                f"SELECT {_CLAIM_COLUMNS} FROM routing.claims WHERE route = ANY(%s) AND {where}",
                (list(self.routes), *params),
            ).fetchall()
        ]
        if not moving:
            return []
        triples = {(c.route, c.person_id, c.subject) for c, _ in moving} | {
            (c.route, to_person, c.subject) for c, _ in moving
        }
        work.lock(triples)
        work.load_triples(triples)
        cause = Cause(change)
        groups: dict[tuple[str, str], list[Claim]] = {}
        for claim, key in moving:
            groups.setdefault((claim.route, key), []).append(claim)
        for (route, old_key), claims in sorted(groups.items()):
            holders = work.by_item.get((route, old_key), {})
            staying = [c for rec, c in holders.items() if c not in claims]
            moved = [replace(c, person_id=to_person) for c in claims]
            target_key = work.key_for(primary_of(self._specs[route], moved))
            work.load_items([(route, old_key), (route, target_key)])
            target_row = work.items.get((route, target_key))
            old_row = work.items.get((route, old_key))
            for c in claims:
                work.remove_claim(c, old_key)
            for c in moved:
                work.add_claim(c, target_key)
            if not staying and target_row is None and old_row is not None:
                # The whole item moves: same item id, new business key and person (the county keeps its status).
                del work.items[(route, old_key)]
                old_row.business_key, old_row.person_id = target_key, to_person
                work.items[(route, target_key)] = old_row
                work.settle(
                    route,
                    target_key,
                    cause,
                    False,
                    None,
                    moved[0],
                    reason,
                    self.hooks,
                    previous_person=claims[0].person_id,
                    force_kind=ChangeKind.REASSIGNED,
                )
            else:
                work.settle(route, old_key, cause, False, claims[0], claims[0], reason, self.hooks)
                work.settle(route, target_key, cause, True, None, moved[0], reason, self.hooks)
        work.flush()
        return work.messages

    # -- publishing ------------------------------------------------------------------------------------
    def changes_for(self, cause_ids: Sequence[str], topics: Sequence[str]) -> list[ChangeMessage]:
        """Every stored change of these causes on these topics, oldest first: what a batch publishes after
        commit (and again on a replay)."""
        if not cause_ids or not topics:
            return []
        rows = self.conn.execute(
            "SELECT change_id::text, cause_id, topic, message_key, event_type, value FROM routing.changes "
            "WHERE cause_id = ANY(%s) AND topic = ANY(%s) ORDER BY seq",
            (list(cause_ids), list(topics)),
        ).fetchall()
        return [ChangeMessage(*r) for r in rows]


def _same(stored: Claim, new: Claim) -> bool:
    return (
        stored.person_id == new.person_id
        and stored.at == new.at
        and stored.facts == new.facts
        and stored.precedence == new.precedence
    )


def _reason(envelope: dict[str, Any]) -> str:
    if envelope["cancelled"]:
        return "source record cancelled / 来源记录已撤销"
    if envelope["record_version"] > 1:
        return f"source record corrected (version {envelope['record_version']}) / 来源记录已更正"
    return ""


def messages_json(messages: Iterable[ChangeMessage]) -> str:
    """The messages as JSON lines (for the CLI and tests)."""
    return "\n".join(json.dumps(m.value, ensure_ascii=False) for m in messages)

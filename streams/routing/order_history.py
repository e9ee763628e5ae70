"""Clinical reminders' state in PostgreSQL: each person's recent orders, and the reminders raised from them.

Tables (schema ``routing``):

* ``order_records``: one row per source record seen (prescription, lab report, exam report): its latest
  version, whether it is cancelled, its person. It decides which version wins (a late, older version is
  ignored; a cancellation at the same version wins over the record) and remembers cancellations after
  their orders are gone.
* ``order_history``: the orders of the current version of each record (clinical_reminders.Order), primary
  key (org_code, record_key, kind, item), so a corrected record replaces its orders.
* ``clinical_reminders``: one row per reminder, ACTIVE or WITHDRAWN, with ``changed_by``: the event (or
  identity change) that last changed it. Its id is ``Order.reminder_key``: ordering record × kind × item
  for drug classes and exam items, ordering record × kind for lab reports (one row lists the report's
  repeated items in ``repeats``, jsonb).

Reminders are a function of the order history: whenever a batch adds, removes, corrects or moves orders,
every reminder an order of a touched person × kind × item from the earliest touched time on belongs to is
evaluated again, whole: all the orders of its reminder key (for a lab report, every item of the report,
touched or not) against the history of each of their items (``reminder_for``). A reminder row is then
inserted, updated (it now lists other items or names another earlier order, or its order's event
changed), re-activated or withdrawn to match. So the result does not depend on the order events arrive
in: a late upload of an earlier prescription reminds the later order, a cancelled earlier order makes the
later order's reminder name the next qualifying earlier order, drop the items only it repeated, or
withdraw the reminder when nothing repeats any more.

What a call returns, (raised, withdrawn): every reminder whose ``changed_by`` is an event of the batch, in
its current state, whether this call changed it or an earlier run of the same events did. A replay after a
crash between the database commit and the publish therefore publishes again what it may have lost;
downstream upserts by reminder id, so publishing twice is harmless. A replay changes no row.

Concurrency: a batch locks its persons (transaction advisory locks, in sorted order, so two workers never
deadlock on them) before it reads their history, so two institutions' orders for one person processed by
two workers at once still see each other. Call everything inside the caller's transaction; the locks hold
until it commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streams.routing.clinical_reminders import (
    ORDER_EVENT_TYPES,
    Order,
    OrderKind,
    Reminder,
    ReminderKey,
    ReminderStatus,
    ReminderWindows,
    Repeat,
    orders_of,
    reminder_for,
    reminder_id,
)

_DDL = """
CREATE SCHEMA IF NOT EXISTS routing;
CREATE TABLE IF NOT EXISTS routing.order_records (
    org_code         text        NOT NULL,
    record_key       text        NOT NULL,
    record_version   integer     NOT NULL,
    cancelled        boolean     NOT NULL,
    event_id         text        NOT NULL,
    person_id        text,
    local_patient_id text        NOT NULL,
    at               timestamptz NOT NULL,
    PRIMARY KEY (org_code, record_key)
);
CREATE INDEX IF NOT EXISTS order_records_at ON routing.order_records (at);
CREATE INDEX IF NOT EXISTS order_records_person ON routing.order_records (person_id);
CREATE INDEX IF NOT EXISTS order_records_patient ON routing.order_records (org_code, local_patient_id);
CREATE TABLE IF NOT EXISTS routing.order_history (
    person_id        text        NOT NULL,
    kind             text        NOT NULL,
    item             text        NOT NULL,
    item_name        text,
    org_code         text        NOT NULL,
    record_key       text        NOT NULL,
    local_patient_id text        NOT NULL,
    event_id         text        NOT NULL,
    record_version   integer     NOT NULL,
    at               timestamptz NOT NULL,
    days             integer,
    PRIMARY KEY (org_code, record_key, kind, item)
);
CREATE INDEX IF NOT EXISTS order_history_person ON routing.order_history (person_id, kind, item, at);
CREATE INDEX IF NOT EXISTS order_history_patient ON routing.order_history (org_code, local_patient_id);
CREATE INDEX IF NOT EXISTS order_history_at ON routing.order_history (at);
CREATE TABLE IF NOT EXISTS routing.clinical_reminders (
    reminder_id        uuid        PRIMARY KEY,
    kind               text        NOT NULL,
    item               text        NOT NULL,
    item_name          text,
    person_id          text        NOT NULL,
    org_code           text        NOT NULL,
    record_key         text        NOT NULL,
    local_patient_id   text        NOT NULL,
    event_id           text        NOT NULL,
    at                 timestamptz NOT NULL,
    earlier_org_code   text        NOT NULL,
    earlier_record_key text        NOT NULL,
    earlier_event_id   text        NOT NULL,
    earlier_at         timestamptz NOT NULL,
    same_institution   boolean     NOT NULL,
    window_seconds     bigint      NOT NULL,
    repeats            jsonb       NOT NULL DEFAULT '[]',
    status             text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'WITHDRAWN')),
    raised_at          timestamptz NOT NULL,
    withdrawn_at       timestamptz,
    changed_by         text        NOT NULL,
    changed_at         timestamptz NOT NULL
);
ALTER TABLE routing.clinical_reminders ADD COLUMN IF NOT EXISTS repeats jsonb NOT NULL DEFAULT '[]';
CREATE INDEX IF NOT EXISTS clinical_reminders_event ON routing.clinical_reminders (event_id);
CREATE INDEX IF NOT EXISTS clinical_reminders_earlier_event ON routing.clinical_reminders (earlier_event_id);
CREATE INDEX IF NOT EXISTS clinical_reminders_changed_by ON routing.clinical_reminders (changed_by);
"""

_ORDER_COLUMNS = "person_id, kind, item, item_name, org_code, record_key, local_patient_id, event_id, at, days"
# The columns that make a reminder's content; a row whose content differs from the evaluation is rewritten.
_CONTENT_COLUMNS = (
    "kind",
    "item",
    "item_name",
    "person_id",
    "org_code",
    "record_key",
    "local_patient_id",
    "event_id",
    "at",
    "earlier_org_code",
    "earlier_record_key",
    "earlier_event_id",
    "earlier_at",
    "same_institution",
    "window_seconds",
    "repeats",
)
_REMINDER_COLUMNS = ("reminder_id",) + _CONTENT_COLUMNS + ("status",)
_LOCK_CLASS = "healthbus.routing.orders"

Key = tuple[str, OrderKind, str]  # person × kind × item


def ensure_order_history(conn: psycopg.Connection) -> None:
    """Create the schema, tables and indexes (idempotent, one creator at a time)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.routing.orders.ddl'))")
        conn.execute(_DDL)


@dataclass
class _Touched:
    """What a batch changed, to evaluate again: per key the earliest time touched and the last cause."""

    keys: dict[Key, tuple[dt.datetime, str]] = field(default_factory=dict)
    gone: dict[ReminderKey, str] = field(default_factory=dict)  # reminders of removed orders → their cause

    def touch(self, order: Order, cause: str) -> None:
        since, _ = self.keys.get(order.key, (order.at, cause))
        self.keys[order.key] = (min(since, order.at), cause)


def _order(row: Sequence[Any]) -> Order:
    person_id, kind, item, item_name, org_code, record_key, local_patient_id, event_id, at, days = row
    return Order(
        person_id, OrderKind(kind), item, item_name, org_code, record_key, local_patient_id, event_id, at, days
    )


def _reminder(row: Sequence[Any]) -> Reminder:
    values = dict(zip(_REMINDER_COLUMNS, row))
    return Reminder(
        str(values["reminder_id"]),
        OrderKind(values["kind"]),
        values["item"],
        values["item_name"],
        values["person_id"],
        values["org_code"],
        values["record_key"],
        values["local_patient_id"],
        values["event_id"],
        values["at"],
        values["earlier_org_code"],
        values["earlier_record_key"],
        values["earlier_at"],
        values["earlier_event_id"],
        values["same_institution"],
        dt.timedelta(seconds=values["window_seconds"]),
        ReminderStatus(values["status"]),
        tuple(
            Repeat(
                r["item"],
                r["item_name"],
                r["earlier_org_code"],
                r["earlier_record_key"],
                r["earlier_event_id"],
                dt.datetime.fromisoformat(r["earlier_at"]),
            )
            for r in values["repeats"]
        ),
    )


def _content(r: Reminder) -> tuple[Any, ...]:
    """What makes a reminder's row, to compare (repeats as Repeat tuples: aware times compare by instant)."""
    return (
        r.kind.value,
        r.item,
        r.item_name,
        r.person_id,
        r.org_code,
        r.record_key,
        r.local_patient_id,
        r.event_id,
        r.at,
        r.earlier_org_code,
        r.earlier_record_key,
        r.earlier_event_id,
        r.earlier_at,
        r.same_institution,
        int(r.window.total_seconds()),
        r.repeats,
    )


def _params(r: Reminder) -> tuple[Any, ...]:
    """``_content`` as query parameters."""
    return (
        *_content(r)[:-1],
        Jsonb(
            [
                {
                    "item": x.item,
                    "item_name": x.item_name,
                    "earlier_org_code": x.earlier_org_code,
                    "earlier_record_key": x.earlier_record_key,
                    "earlier_event_id": x.earlier_event_id,
                    "earlier_at": x.earlier_at.isoformat(),
                }
                for x in r.repeats
            ]
        ),
    )


def _lock_persons(cur: psycopg.Cursor[Any], persons: Iterable[str]) -> None:
    ordered = sorted(set(persons))
    if ordered:  # sorted, so two batches sharing persons take the locks in the same order
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(p)) "
            "FROM (SELECT p FROM unnest(%s::text[]) WITH ORDINALITY AS u(p, n) ORDER BY n) AS s",
            (_LOCK_CLASS, ordered),
        )


def _supersedes(version: int, cancelled: bool, stored_version: int, stored_cancelled: bool) -> bool:
    """Whether an event replaces the stored state of its record: a newer version does; at the same
    version a cancellation does, and a re-send does unless the record was cancelled at that version."""
    if version != stored_version:
        return version > stored_version
    return cancelled or not stored_cancelled


def record_batch(
    conn: psycopg.Connection,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    windows: ReminderWindows = ReminderWindows(),
    now: dt.datetime | None = None,
) -> tuple[list[Reminder], list[Reminder]]:
    """Apply a batch of decoded events (event type, event) in order and return (raised, withdrawn).

    Prescriptions, lab and exam reports replace their record's orders (a cancellation or a correction
    without an order removes them); other event types are ignored, as is an uncancelled event without a
    person id (nothing to say about nobody). Later events of the batch see the earlier ones."""
    now = now or dt.datetime.now(dt.UTC)
    relevant = [(t, e) for t, e in events if t in ORDER_EVENT_TYPES]
    if not relevant:
        return [], []
    causes = [e["envelope"]["event_id"] for _, e in relevant]
    with conn.transaction(), conn.cursor() as cur:
        records = sorted(
            {(e["envelope"]["source"]["org_code"], e["envelope"]["source"]["record_key"]) for _, e in relevant}
        )
        persons = {e["envelope"]["person_id"] for _, e in relevant if e["envelope"].get("person_id")}
        persons |= {person for person, *_ in _stored_records(cur, records).values() if person}
        _lock_persons(cur, persons)
        stored = _stored_records(cur, records)  # again, under the locks
        current = _record_orders(cur, records)
        touched = _Touched()
        writes = _Writes()
        for event_type, event in relevant:
            _apply(event_type, event, stored, current, writes, touched)
        writes.flush(cur, current)
        _reevaluate(cur, touched, windows, now)
        return _changed_by(cur, causes)


def record_orders(
    conn: psycopg.Connection,
    event_type: str,
    event: Mapping[str, Any],
    windows: ReminderWindows = ReminderWindows(),
    now: dt.datetime | None = None,
) -> tuple[list[Reminder], list[Reminder]]:
    """``record_batch`` for one event."""
    return record_batch(conn, [(event_type, event)], windows, now)


def _stored_records(
    cur: psycopg.Cursor[Any], records: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str | None, int, bool]]:
    cur.execute(
        "SELECT r.org_code, r.record_key, r.person_id, r.record_version, r.cancelled "
        "FROM unnest(%s::text[], %s::text[]) AS k(org_code, record_key) "
        "JOIN routing.order_records r USING (org_code, record_key)",
        ([org for org, _ in records], [key for _, key in records]),
    )
    return {(org, key): (person, version, cancelled) for org, key, person, version, cancelled in cur.fetchall()}


def _record_orders(cur: psycopg.Cursor[Any], records: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[Order]]:
    """The stored orders of each record (a record without any is absent), read once per batch under the locks."""
    cur.execute(
        f"SELECT {', '.join('h.' + c.strip() for c in _ORDER_COLUMNS.split(','))} "
        "FROM unnest(%s::text[], %s::text[]) AS k(org_code, record_key) "
        "JOIN routing.order_history h USING (org_code, record_key)",
        ([org for org, _ in records], [key for _, key in records]),
    )
    current: dict[tuple[str, str], list[Order]] = {}
    for row in cur.fetchall():
        order = _order(row)
        current.setdefault(order.record, []).append(order)
    return current


@dataclass
class _Writes:
    """A batch's record replacements, kept in memory (later events of the batch see the earlier ones) and
    written in a few statements before the reminders are evaluated, instead of three per event."""

    versions: dict[tuple[str, str], int] = field(default_factory=dict)  # replaced record → its version now
    records: list[tuple[Any, ...]] = field(default_factory=list)  # order_records upserts, in event order

    def flush(self, cur: psycopg.Cursor[Any], current: Mapping[tuple[str, str], list[Order]]) -> None:
        if not self.versions:
            return
        replaced = sorted(self.versions)
        cur.execute(
            "DELETE FROM routing.order_history h USING unnest(%s::text[], %s::text[]) "
            "AS k(org_code, record_key) WHERE h.org_code = k.org_code AND h.record_key = k.record_key",
            ([org for org, _ in replaced], [key for _, key in replaced]),
        )
        rows = [
            (
                o.person_id,
                o.kind.value,
                o.item,
                o.item_name,
                o.org_code,
                o.record_key,
                o.local_patient_id,
                o.event_id,
                o.at,
                o.days,
                self.versions[record],
            )
            for record in replaced
            for o in current.get(record, ())
        ]
        if rows:
            cur.executemany(
                f"INSERT INTO routing.order_history ({_ORDER_COLUMNS}, record_version) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        cur.executemany(  # in event order: a record's later event overwrites, its person id only when it has one
            "INSERT INTO routing.order_records (org_code, record_key, record_version, cancelled, event_id, person_id, "
            "local_patient_id, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (org_code, record_key) DO UPDATE SET record_version = EXCLUDED.record_version, "
            "cancelled = EXCLUDED.cancelled, event_id = EXCLUDED.event_id, "
            "person_id = coalesce(EXCLUDED.person_id, order_records.person_id), "
            "local_patient_id = EXCLUDED.local_patient_id, at = EXCLUDED.at",
            self.records,
        )


def _apply(
    event_type: str,
    event: Mapping[str, Any],
    stored: dict[tuple[str, str], tuple[str | None, int, bool]],
    current: dict[tuple[str, str], list[Order]],
    writes: _Writes,
    touched: _Touched,
) -> None:
    env = event["envelope"]
    source = env["source"]
    record = (source["org_code"], source["record_key"])
    version, cancelled, event_id = env["record_version"], bool(env.get("cancelled")), env["event_id"]
    if not cancelled and not env.get("person_id"):
        return
    if record in stored and not _supersedes(version, cancelled, *stored[record][1:]):
        return  # an older version arriving late, or the record re-sent after its cancellation
    old = current.pop(record, [])
    new = orders_of(event_type, event)
    if new:
        current[record] = new
    writes.versions[record] = version
    at = max((o.at for o in new), default=env["occurred_at"])
    writes.records.append(
        (*record, version, cancelled, event_id, env.get("person_id"), env["patient"]["local_patient_id"], at)
    )
    stored[record] = (env.get("person_id") or stored.get(record, (None, 0, False))[0], version, cancelled)
    for o in old + new:
        touched.touch(o, event_id)
    for o in old:
        touched.gone[o.reminder_key] = event_id
    for o in new:
        touched.gone.pop(o.reminder_key, None)


def _reevaluate(cur: psycopg.Cursor[Any], touched: _Touched, windows: ReminderWindows, now: dt.datetime) -> None:
    """Bring the reminders of every order at or after a touched point (and of removed orders) in line with
    the history as it now is: each evaluated whole, from all the orders of its reminder key."""
    if not touched.keys:
        return
    bounds = {key: since - windows.longest for key, (since, _) in touched.keys.items()}
    history = _history(cur, bounds)
    causes: dict[ReminderKey, str] = {}  # the reminders to evaluate again → why (the last touch)
    for key, (since, cause) in touched.keys.items():
        for order in history.get(key, ()):
            if order.at >= since:
                causes[order.reminder_key] = cause
    for rkey, cause in touched.gone.items():
        causes.setdefault(rkey, cause)
    groups = _reminder_orders(cur, causes)
    # A lab report's other items, and items touched only after this report, need history back from it.
    more: dict[Key, dt.datetime] = {}
    for orders in groups.values():
        for order in orders:
            bound = order.at - windows.longest
            if bound < bounds.get(order.key, order.at):
                more[order.key] = min(bound, more.get(order.key, bound))
    history.update(_history(cur, more))  # from an earlier bound, so each list is a superset of the one it replaces
    wanted: dict[str, tuple[Reminder | None, str]] = {}  # reminder id → what it should be, and why
    for rkey, cause in causes.items():
        orders = groups.get(rkey, [])
        earlier = [other for key in {o.key for o in orders} for other in history.get(key, ())]
        wanted[reminder_id(*rkey)] = (reminder_for(orders, earlier, windows), cause)
    cur.execute(
        f"SELECT {', '.join(_REMINDER_COLUMNS)} FROM routing.clinical_reminders WHERE reminder_id = ANY(%s::uuid[])",
        (list(wanted),),
    )
    current = {str(row[0]): _reminder(row) for row in cur.fetchall()}
    for rid, (reminder, cause) in wanted.items():
        _write(cur, rid, reminder, current.get(rid), cause, now)


def _history(cur: psycopg.Cursor[Any], bounds: Mapping[Key, dt.datetime]) -> dict[Key, list[Order]]:
    """The orders of each person × kind × item at or after its bound."""
    if not bounds:
        return {}
    keys = list(bounds)
    cur.execute(
        f"SELECT {', '.join('h.' + c.strip() for c in _ORDER_COLUMNS.split(','))} "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]) AS k(person_id, kind, item, since) "
        "JOIN routing.order_history h ON h.person_id = k.person_id AND h.kind = k.kind AND h.item = k.item "
        "AND h.at >= k.since",
        ([p for p, _, _ in keys], [k.value for _, k, _ in keys], [i for _, _, i in keys], [bounds[k] for k in keys]),
    )
    history: dict[Key, list[Order]] = {key: [] for key in keys}
    for row in cur.fetchall():
        order = _order(row)
        history[order.key].append(order)
    return history


def _reminder_orders(cur: psycopg.Cursor[Any], rkeys: Iterable[ReminderKey]) -> dict[ReminderKey, list[Order]]:
    """The current orders of each reminder key (all the items of a lab report); a key without any is absent."""
    rkeys = list(rkeys)
    cur.execute(
        f"SELECT {', '.join('h.' + c.strip() for c in _ORDER_COLUMNS.split(','))} "
        "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS k(org_code, record_key, kind, item) "
        "JOIN routing.order_history h ON h.org_code = k.org_code AND h.record_key = k.record_key "
        "AND h.kind = k.kind AND (k.item IS NULL OR h.item = k.item)",
        ([r[0] for r in rkeys], [r[1] for r in rkeys], [r[2].value for r in rkeys], [r[3] for r in rkeys]),
    )
    groups: dict[ReminderKey, list[Order]] = {}
    for row in cur.fetchall():
        order = _order(row)
        groups.setdefault(order.reminder_key, []).append(order)
    return groups


def _write(
    cur: psycopg.Cursor[Any],
    rid: str,
    reminder: Reminder | None,
    current: Reminder | None,
    cause: str,
    now: dt.datetime,
) -> None:
    if reminder is None:
        if current is not None and current.status is ReminderStatus.ACTIVE:
            cur.execute(
                "UPDATE routing.clinical_reminders SET status = 'WITHDRAWN', withdrawn_at = %s, "
                "changed_by = %s, changed_at = %s WHERE reminder_id = %s",
                (now, cause, now, rid),
            )
        return
    if current is None:
        cur.execute(
            f"INSERT INTO routing.clinical_reminders ({', '.join(_REMINDER_COLUMNS)}, raised_at, changed_by, "
            f"changed_at) VALUES ({', '.join(['%s'] * (len(_REMINDER_COLUMNS) + 3))})",
            (rid, *_params(reminder), ReminderStatus.ACTIVE.value, now, cause, now),
        )
    elif current.status is ReminderStatus.WITHDRAWN or _content(current) != _content(reminder):
        assignments = ", ".join(f"{c} = %s" for c in _CONTENT_COLUMNS)
        cur.execute(
            f"UPDATE routing.clinical_reminders SET {assignments}, status = 'ACTIVE', withdrawn_at = NULL, "
            "raised_at = CASE WHEN status = 'WITHDRAWN' THEN %s ELSE raised_at END, changed_by = %s, changed_at = %s "
            "WHERE reminder_id = %s",
            (*_params(reminder), now, cause, now, rid),
        )


def _changed_by(cur: psycopg.Cursor[Any], causes: Sequence[str]) -> tuple[list[Reminder], list[Reminder]]:
    cur.execute(
        f"SELECT {', '.join(_REMINDER_COLUMNS)} FROM routing.clinical_reminders "
        "WHERE changed_by = ANY(%s::text[]) ORDER BY at, reminder_id",
        (list(causes),),
    )
    reminders = [_reminder(row) for row in cur.fetchall()]
    return (
        [r for r in reminders if r.status is ReminderStatus.ACTIVE],
        [r for r in reminders if r.status is ReminderStatus.WITHDRAWN],
    )


def move_person(
    conn: psycopg.Connection,
    absorbed: str,
    survivor: str,
    *,
    windows: ReminderWindows = ReminderWindows(),
    cause: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[list[Reminder], list[Reminder]]:
    """An EMPI merge: the absorbed person's orders become the survivor's, so the survivor's later orders
    see them (and orders already there may now remind of each other). ``cause``: the merge's change id
    (what ``changed_by`` records, so a replay of the merge returns the same reminders)."""
    cause = cause or f"merge:{absorbed}>{survivor}"
    now = now or dt.datetime.now(dt.UTC)
    with conn.transaction(), conn.cursor() as cur:
        _lock_persons(cur, (absorbed, survivor))
        cur.execute("UPDATE routing.order_records SET person_id = %s WHERE person_id = %s", (survivor, absorbed))
        cur.execute(
            f"UPDATE routing.order_history SET person_id = %s WHERE person_id = %s RETURNING {_ORDER_COLUMNS}",
            (survivor, absorbed),
        )
        touched = _Touched()
        for row in cur.fetchall():
            touched.touch(_order(row), cause)
        _reevaluate(cur, touched, windows, now)
        return _changed_by(cur, [cause])


def relink_record(
    conn: psycopg.Connection,
    org_code: str,
    local_patient_id: str,
    to_person: str,
    *,
    windows: ReminderWindows = ReminderWindows(),
    cause: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[list[Reminder], list[Reminder]]:
    """An EMPI unmerge or review decision: one institution's patient now belongs to ``to_person``. Their
    orders move; reminders between them and the old person's other orders are withdrawn, new ones with
    ``to_person``'s orders raised."""
    cause = cause or f"relink:{org_code}:{local_patient_id}>{to_person}"
    now = now or dt.datetime.now(dt.UTC)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT person_id FROM routing.order_records WHERE org_code = %s AND local_patient_id = %s "
            "UNION SELECT person_id FROM routing.order_history WHERE org_code = %s AND local_patient_id = %s",
            (org_code, local_patient_id, org_code, local_patient_id),
        )
        _lock_persons(cur, {p for (p,) in cur.fetchall() if p} | {to_person})
        cur.execute(
            "UPDATE routing.order_records SET person_id = %s WHERE org_code = %s AND local_patient_id = %s",
            (to_person, org_code, local_patient_id),
        )
        cur.execute(
            "UPDATE routing.order_history h SET person_id = %s FROM ("
            "  SELECT org_code, record_key, kind, item, person_id FROM routing.order_history"
            "  WHERE org_code = %s AND local_patient_id = %s AND person_id <> %s) AS o "
            "WHERE (h.org_code, h.record_key, h.kind, h.item) = (o.org_code, o.record_key, o.kind, o.item) "
            f"RETURNING o.person_id, {', '.join('h.' + c.strip() for c in _ORDER_COLUMNS.split(',')[1:])}",
            (to_person, org_code, local_patient_id, to_person),
        )
        touched = _Touched()
        for row in cur.fetchall():
            before = _order(row)  # as it was, under the old person
            touched.touch(before, cause)
            touched.touch(replace(before, person_id=to_person), cause)
        _reevaluate(cur, touched, windows, now)
        return _changed_by(cur, [cause])


def prune_order_history(conn: psycopg.Connection, before: dt.datetime) -> int:
    """Forget orders (and record versions) older than ``before``; returns how many orders went.

    No reminder reaches back more than ``ReminderWindows.longest``; prune with a margin (e.g. before =
    now − 2 × longest) so a late correction near the horizon still finds the orders its neighbours named.
    Reminder rows are kept: they are what was said."""
    with conn.transaction():
        gone = conn.execute("DELETE FROM routing.order_history WHERE at < %s", (before,)).rowcount
        conn.execute("DELETE FROM routing.order_records WHERE at < %s", (before,))
    return gone

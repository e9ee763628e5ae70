"""Adapter state in the platform's PostgreSQL: watermarks, the quarantine of unmappable rows, the ledger of
what was published, each source's health and the last reconciliation.

Watermarks live here, not in a local file, so an adapter can move to another machine and so the quarantine,
the ledger and the watermark advance in one transaction. Health lives here so that `healthbus status`, another
process, can show it. Nothing here holds personal data: institution codes, table names, record keys, counts.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

DDL = """
CREATE TABLE IF NOT EXISTS adapter_watermark (
    source_id   text        NOT NULL,
    table_name  text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    pk          text        NOT NULL,
    advanced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, table_name)
);
COMMENT ON TABLE adapter_watermark IS '每个来源表已发布到的位置 (updated_at, 主键) / How far each exchange table was published';
CREATE TABLE IF NOT EXISTS adapter_quarantine (
    source_id      text        NOT NULL,
    table_name     text        NOT NULL,
    pk             text        NOT NULL,
    record_version integer     NOT NULL,
    reason_code    text        NOT NULL,
    column_name    text        NOT NULL,
    message        text        NOT NULL,
    row_data       jsonb       NOT NULL,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, table_name, pk, record_version)
);
COMMENT ON TABLE adapter_quarantine IS '无法映射为事件的源记录及原因 / Source rows that could not become events, with the reason';
CREATE TABLE IF NOT EXISTS adapter_published (
    source_id      text        NOT NULL,
    table_name     text        NOT NULL,
    pk             text        NOT NULL,
    record_version integer     NOT NULL,
    cancelled      boolean     NOT NULL,
    updated_at     timestamptz NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('published', 'quarantined')),
    handled_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, table_name, pk)
);
COMMENT ON TABLE adapter_published IS '每条源记录最近一次已发布(或隔离)的版本，供重叠重读与对账 / The last version of each source row published (or quarantined): the overlap re-read and reconciliation read it';
CREATE TABLE IF NOT EXISTS adapter_ledger_start (
    source_id  text        NOT NULL,
    table_name text        NOT NULL,
    since      timestamptz NOT NULL,
    PRIMARY KEY (source_id, table_name)
);
COMMENT ON TABLE adapter_ledger_start IS '发布台账自哪个 updated_at 起完整（此前发布的行未记入台账）/ From which updated_at on the ledger is complete';
CREATE TABLE IF NOT EXISTS adapter_source_health (
    source_id            text        PRIMARY KEY,
    org_code             text        NOT NULL,
    kind                 text        NOT NULL,
    state                text        NOT NULL CHECK (state IN ('up', 'down')),
    consecutive_failures integer     NOT NULL,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_error           text,
    next_attempt_at      timestamptz,
    reported_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE adapter_source_health IS '每个前置库来源的健康状态（适配器进程写入，healthbus status 读取）/ Health of each exchange-database source';
CREATE TABLE IF NOT EXISTS adapter_reconciliation (
    source_id        text        NOT NULL,
    table_name       text        NOT NULL,
    day              date        NOT NULL,
    exchange_rows    integer     NOT NULL,
    published_rows   integer     NOT NULL,
    quarantined_rows integer     NOT NULL,
    checked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, table_name, day)
);
COMMENT ON TABLE adapter_reconciliation IS '按机构、表、日核对前置库行数与已发布行数 / Exchange rows against rows published, per institution, table and day';
"""
# Columns added to tables that existed before them: altered only when missing (an ALTER TABLE takes an
# exclusive lock even with IF NOT EXISTS, and adapters poll these tables all the time).
ADDED_COLUMNS = (("adapter_quarantine", "dead_letter_id", "text"),)
# Indexes likewise created only when missing (CREATE INDEX locks the table before it looks for the index).
INDEXES = (("adapter_published_by_time", "adapter_published (source_id, table_name, updated_at)"),)
BEGINNING = (dt.datetime(1900, 1, 1, tzinfo=dt.UTC), "")
CHINA_TIME_ZONE = "Asia/Shanghai"  # the day of a row for reconciliation: its updated_at in China Standard Time


@dataclass(frozen=True)
class Quarantined:
    table_name: str
    pk: str
    record_version: int
    reason_code: str
    column_name: str
    message: str
    row_data: dict
    dead_letter_id: str = ""  # the dead letter on dlq.adapter that carried this row


@dataclass(frozen=True)
class Handled:
    """One source row version the adapter published (or quarantined): a line of the ledger."""

    pk: str
    record_version: int
    cancelled: bool
    updated_at: dt.datetime
    outcome: str  # published | quarantined


@dataclass(frozen=True)
class LedgerDay:
    """Rows of one table whose updated_at falls on one day (China time), by outcome."""

    day: dt.date
    published: int
    quarantined: int


@dataclass(frozen=True)
class SourceHealth:
    """What the supervisor last reported for one source. ``last_error`` is an exception class and where it
    came from, never a driver message (those can quote values) nor a DSN (those can hold passwords)."""

    source_id: str
    org_code: str
    kind: str
    state: str  # up | down
    consecutive_failures: int
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    reported_at: dt.datetime | None = None


def _relation_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the adapter tables (idempotent; serialised between processes by an advisory lock)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.adapter_state.ddl'))")
        conn.execute(DDL)
        for table, column, kind in ADDED_COLUMNS:
            present = conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = %s AND column_name = %s",
                (table, column),
            ).fetchone()
            if not present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
        for name, on in INDEXES:
            if not _relation_exists(conn, name):
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {on}")


class AdapterState:
    def __init__(self, postgres_url: str) -> None:
        self._url = postgres_url
        self._conn = self._connect()
        self._ledger_started: set[tuple[str, str]] = set()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        try:
            ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The connection, opened again if PostgreSQL dropped it (an outage, a restart)."""
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    @property
    def broken(self) -> bool:
        return bool(self._conn.closed or self._conn.broken)

    def watermark(self, source_id: str, table: str) -> tuple[dt.datetime, str]:
        row = self.conn.execute(
            "SELECT updated_at, pk FROM adapter_watermark WHERE source_id = %s AND table_name = %s", (source_id, table)
        ).fetchone()
        return (row[0], row[1]) if row else BEGINNING

    def watermarks(self, source_id: str) -> dict[str, tuple[dt.datetime, str]]:
        """Every table's watermark of the source (tables never advanced are absent)."""
        rows = self.conn.execute(
            "SELECT table_name, updated_at, pk FROM adapter_watermark WHERE source_id = %s", (source_id,)
        ).fetchall()
        return {table: (updated_at, pk) for table, updated_at, pk in rows}

    def advance(
        self,
        source_id: str,
        table: str,
        updated_at: dt.datetime,
        pk: str,
        quarantined: list[Quarantined],
        handled: Sequence[Handled] = (),
    ) -> None:
        """Record the quarantined rows and the ledger lines and move the watermark, atomically. Call only
        after every event up to (updated_at, pk) was acknowledged by the broker."""
        conn = self.conn
        with conn.transaction():
            if (source_id, table) not in self._ledger_started:
                # The ledger is complete after the watermark it started from (rows published before it
                # existed are not in it: reconciliation compares only what comes after).
                conn.execute(
                    "INSERT INTO adapter_ledger_start (source_id, table_name, since) SELECT %s, %s, "
                    "coalesce((SELECT updated_at FROM adapter_watermark WHERE source_id = %s AND table_name = %s),"
                    " %s) ON CONFLICT (source_id, table_name) DO NOTHING",
                    (source_id, table, source_id, table, BEGINNING[0]),
                )
            self._record(conn, source_id, table, quarantined, handled)
            conn.execute(
                "INSERT INTO adapter_watermark (source_id, table_name, updated_at, pk) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (source_id, table_name) DO UPDATE SET updated_at = EXCLUDED.updated_at, pk = EXCLUDED.pk,"
                " advanced_at = now()",
                (source_id, table, updated_at, pk),
            )
        self._ledger_started.add((source_id, table))

    def record(self, source_id: str, table: str, quarantined: list[Quarantined], handled: Sequence[Handled]) -> None:
        """Record rows found behind the watermark (the overlap re-read): quarantine and ledger, watermark
        untouched. Call only after their events were acknowledged."""
        conn = self.conn
        with conn.transaction():
            self._record(conn, source_id, table, quarantined, handled)

    @staticmethod
    def _record(
        conn: psycopg.Connection[Any],
        source_id: str,
        table: str,
        quarantined: list[Quarantined],
        handled: Sequence[Handled],
    ) -> None:
        for q in quarantined:
            conn.execute(
                "INSERT INTO adapter_quarantine (source_id, table_name, pk, record_version, reason_code, column_name,"
                " message, row_data, dead_letter_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source_id, table_name, pk, record_version) DO UPDATE SET last_seen = now(),"
                " reason_code = EXCLUDED.reason_code, column_name = EXCLUDED.column_name, message = EXCLUDED.message,"
                " row_data = EXCLUDED.row_data, dead_letter_id = EXCLUDED.dead_letter_id",
                (
                    source_id,
                    q.table_name,
                    q.pk,
                    q.record_version,
                    q.reason_code,
                    q.column_name,
                    q.message,
                    Jsonb(q.row_data),
                    q.dead_letter_id,
                ),
            )
        lines = list({h.pk: h for h in handled}.values())  # one line per row (the last version handled)
        if lines:
            conn.execute(
                "INSERT INTO adapter_published (source_id, table_name, pk, record_version, cancelled, updated_at,"
                " outcome) SELECT %s, %s, * FROM unnest(%s::text[], %s::integer[], %s::boolean[],"
                " %s::timestamptz[], %s::text[]) ON CONFLICT (source_id, table_name, pk) DO UPDATE SET"
                " record_version = EXCLUDED.record_version, cancelled = EXCLUDED.cancelled,"
                " updated_at = EXCLUDED.updated_at, outcome = EXCLUDED.outcome, handled_at = now()",
                (
                    source_id,
                    table,
                    [h.pk for h in lines],
                    [h.record_version for h in lines],
                    [h.cancelled for h in lines],
                    [h.updated_at for h in lines],
                    [h.outcome for h in lines],
                ),
            )

    def handled(self, source_id: str, table: str, pks: Iterable[str]) -> dict[str, tuple[int, bool]]:
        """pk → (record_version, cancelled) last published or quarantined, for those of ``pks`` in the ledger."""
        rows = self.conn.execute(
            "SELECT pk, record_version, cancelled FROM adapter_published "
            "WHERE source_id = %s AND table_name = %s AND pk = ANY(%s)",
            (source_id, table, list(pks)),
        ).fetchall()
        return {pk: (version, cancelled) for pk, version, cancelled in rows}

    def ledger_since(self, source_id: str, table: str) -> dt.datetime | None:
        """From which updated_at on (exclusive) the ledger holds every row handled; None: not started."""
        row = self.conn.execute(
            "SELECT since FROM adapter_ledger_start WHERE source_id = %s AND table_name = %s", (source_id, table)
        ).fetchone()
        return row[0] if row else None

    def ledger_days(
        self,
        source_id: str,
        table: str,
        after: dt.datetime,
        start: dt.datetime,
        cut: dt.datetime,
        moved_on: Sequence[str] = (),
    ) -> list[LedgerDay]:
        """Ledger lines by day (China time) of their updated_at, for ``after`` < updated_at, ``start`` <=
        updated_at <= ``cut``, leaving out the rows ``moved_on`` (updated at the source since: the line holds
        an earlier version)."""
        rows = self.conn.execute(
            "SELECT (updated_at AT TIME ZONE %s)::date AS day, count(*) FILTER (WHERE outcome = 'published'),"
            " count(*) FILTER (WHERE outcome = 'quarantined') FROM adapter_published"
            " WHERE source_id = %s AND table_name = %s AND updated_at > %s AND updated_at >= %s AND updated_at <= %s"
            " AND NOT (pk = ANY(%s)) GROUP BY 1 ORDER BY 1",
            (CHINA_TIME_ZONE, source_id, table, after, start, cut, list(moved_on)),
        ).fetchall()
        return [LedgerDay(day, published, quarantined) for day, published, quarantined in rows]

    def save_reconciliation(self, source_id: str, table: str, days: Sequence[tuple[dt.date, int, int, int]]) -> None:
        """Replace the table's last reconciliation: (day, exchange rows, published, quarantined) per day checked."""
        conn = self.conn
        with conn.transaction():
            conn.execute(
                "DELETE FROM adapter_reconciliation WHERE source_id = %s AND table_name = %s", (source_id, table)
            )
            if days:
                conn.cursor().executemany(
                    "INSERT INTO adapter_reconciliation (source_id, table_name, day, exchange_rows, published_rows,"
                    " quarantined_rows) VALUES (%s, %s, %s, %s, %s, %s)",
                    [(source_id, table, *d) for d in days],
                )

    def reset(self, source_ids: list[str]) -> None:
        """Forget watermarks, quarantine, ledger, health and reconciliation of these institutions: their next
        poll publishes everything again."""
        conn = self.conn
        with conn.transaction():
            for table in (
                "adapter_watermark",
                "adapter_quarantine",
                "adapter_published",
                "adapter_ledger_start",
                "adapter_source_health",
                "adapter_reconciliation",
            ):
                conn.execute(f"DELETE FROM {table} WHERE source_id = ANY(%s)", (source_ids,))
        self._ledger_started.difference_update({k for k in self._ledger_started if k[0] in source_ids})

    def quarantine(self, source_id: str) -> list[Quarantined]:
        rows = self.conn.execute(
            "SELECT table_name, pk, record_version, reason_code, column_name, message, row_data,"
            " coalesce(dead_letter_id, '') FROM adapter_quarantine"
            " WHERE source_id = %s ORDER BY table_name, pk, record_version",
            (source_id,),
        ).fetchall()
        return [Quarantined(*r) for r in rows]

    def close(self) -> None:
        self._conn.close()


class HealthStore:
    """Writes each source's health for `healthbus status`; one per adapter process, shared by its source
    threads. A write that fails (PostgreSQL itself away) is dropped, and for ``PAUSE_SECONDS`` none is tried
    (the source threads must not queue up behind connection timeouts): health must never stop an adapter."""

    PAUSE_SECONDS = 30.0

    def __init__(self, postgres_url: str) -> None:
        self._url = postgres_url
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._paused_until = 0.0  # monotonic

    def report(self, health: SourceHealth) -> bool:
        """Upsert the source's row; False when PostgreSQL could not be reached."""
        with self._lock:
            if time.monotonic() < self._paused_until:
                return False
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                    ensure_schema(self._conn)
                self._conn.execute(
                    "INSERT INTO adapter_source_health (source_id, org_code, kind, state, consecutive_failures,"
                    " last_success_at, last_failure_at, last_error, next_attempt_at, reported_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (source_id) DO UPDATE SET"
                    " org_code = EXCLUDED.org_code, kind = EXCLUDED.kind, state = EXCLUDED.state,"
                    " consecutive_failures = EXCLUDED.consecutive_failures,"
                    " last_success_at = coalesce(EXCLUDED.last_success_at, adapter_source_health.last_success_at),"
                    " last_failure_at = coalesce(EXCLUDED.last_failure_at, adapter_source_health.last_failure_at),"
                    " last_error = coalesce(EXCLUDED.last_error, adapter_source_health.last_error),"
                    " next_attempt_at = EXCLUDED.next_attempt_at, reported_at = now()",
                    (
                        health.source_id,
                        health.org_code,
                        health.kind,
                        health.state,
                        health.consecutive_failures,
                        health.last_success_at,
                        health.last_failure_at,
                        health.last_error,
                        health.next_attempt_at,
                    ),
                )
                return True
            except psycopg.Error:
                self._paused_until = time.monotonic() + self.PAUSE_SECONDS
                return False

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def read_health(conn: psycopg.Connection[Any]) -> list[SourceHealth]:
    """Every source's last reported health (for `healthbus status`; reads only, creates nothing)."""
    if not _relation_exists(conn, "adapter_source_health"):
        return []
    rows = conn.execute(
        "SELECT source_id, org_code, kind, state, consecutive_failures, last_success_at, last_failure_at,"
        " last_error, next_attempt_at, reported_at FROM adapter_source_health ORDER BY source_id"
    ).fetchall()
    return [SourceHealth(*r) for r in rows]


def read_reconciliation_differences(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """source id → rows by which its last reconciliation differed, summed over tables and days."""
    if not _relation_exists(conn, "adapter_reconciliation"):
        return {}
    rows = conn.execute(
        "SELECT source_id, sum(abs(exchange_rows - published_rows - quarantined_rows)) FROM adapter_reconciliation"
        " GROUP BY source_id"
    ).fetchall()
    return {source_id: int(total) for source_id, total in rows}

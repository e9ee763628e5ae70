"""Poll one exchange database by watermark and publish its rows, at least once.

For each table, repeatedly: read the next page of rows after the watermark ``(updated_at, pk)`` in that
order (rows with equal timestamps are ordered by key, so none is skipped or read twice), only rows older
than ``settle_seconds`` (a transaction that set updated_at earlier but commits later is not overtaken);
fetch their children and persons; map each row to its event; publish; wait until the broker acknowledged
every event of the page (pages of all tables are confirmed together, one broker round trip per round);
then quarantine the unmappable rows, write the ledger lines and advance the watermark in one PostgreSQL
transaction. A crash anywhere before that transaction re-reads the page: the same rows give the same event
ids, so downstream the repeat is harmless.

A transaction open longer than the settle delay, or a source clock behind, commits rows whose updated_at
the watermark has already passed. So every poll, once caught up, looks again ``overlap_seconds`` behind each
watermark (bounded by the source's own clock: rows updated in the last settle + overlap seconds; the whole
window after a (re)connect) and publishes the rows whose version the ledger (``adapter_published``) does not
hold yet: a re-read row that was published already is skipped, and one published twice would carry the same
event id anyway. What even the overlap misses, ``reconcile`` finds: per table and day, the exchange rows
against the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from avro_schemas.json_form import to_json
from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic
from foundation.dead_letters import DEAD_LETTER_NAMESPACE, dead_letter
from foundation.standards.china_time import CST
from producers.adapters import metrics
from producers.adapters.config import SourceConfig
from producers.adapters.mapping import Row, SourceIdentity, UnmappableRow, as_utc, envelope, patient_block
from producers.adapters.state_store import BEGINNING, CHINA_TIME_ZONE, AdapterState, Handled, Quarantined
from producers.adapters.tables import PERSON_PK, PERSON_TABLE, TABLES, TableSpec
from producers.publisher import DeliveryFailed, EventPublisher

log = logging.getLogger(__name__)
STAGE = "adapter"
CONNECT_TIMEOUT_SECONDS = 10  # unless the DSN says otherwise: an unreachable host must fail, not hang
RECONCILE_DAYS = 7


class ExchangeDatabaseError(RuntimeError):
    """The exchange database failed (unreachable, or a query refused). Carries the driver's exception class
    and SQLSTATE only: its message can quote row values, and the DSN can hold a password."""

    def __init__(self, cause: psycopg.Error) -> None:
        self.kind = type(cause).__name__
        self.sqlstate = cause.sqlstate
        super().__init__(f"exchange database: {self.kind}" + (f" {self.sqlstate}" if self.sqlstate else ""))


class BrokerUnavailable(RuntimeError):
    """Dead letters were not acknowledged by the broker."""


def failure_reason(exc: BaseException) -> str:
    """Where a poll failed and the exception's class: what health and logs may show (no driver message)."""
    if isinstance(exc, ExchangeDatabaseError):
        return str(exc)
    if isinstance(exc, DeliveryFailed | KafkaException | BrokerUnavailable):
        return f"broker: {type(exc).__name__}"
    if isinstance(exc, psycopg.Error):
        return f"platform PostgreSQL: {type(exc).__name__}" + (f" {exc.sqlstate}" if exc.sqlstate else "")
    return f"adapter: {type(exc).__name__}"


def adapter_dead_letter_id(where: str, pk: str, record_version: int, cancelled: bool, error_code: str) -> str:
    """Deterministic per source row version and reason: each quarantined row has its own dead letter, and
    quarantining the same row version again (after a restart) yields the same record."""
    name = f"{STAGE}\x1f{where}\x1f{pk}\x1f{record_version}\x1f{cancelled}\x1f{error_code}"
    return str(uuid.uuid5(DEAD_LETTER_NAMESPACE, name))


@dataclass
class TableProgress:
    rows_read: int = 0
    published: int = 0
    quarantined: int = 0
    late: int = 0  # of the rows read, those found behind the watermark by the overlap re-read


@dataclass
class PollSummary:
    tables: dict[str, TableProgress] = field(default_factory=lambda: defaultdict(TableProgress))

    @property
    def rows_read(self) -> int:
        return sum(t.rows_read for t in self.tables.values())

    @property
    def published(self) -> int:
        return sum(t.published for t in self.tables.values())

    @property
    def quarantined(self) -> int:
        return sum(t.quarantined for t in self.tables.values())

    @property
    def late(self) -> int:
        return sum(t.late for t in self.tables.values())

    def add(self, table: str, progress: TableProgress) -> None:
        total = self.tables[table]
        total.rows_read += progress.rows_read
        total.published += progress.published
        total.quarantined += progress.quarantined
        total.late += progress.late


@dataclass(frozen=True)
class DayCount:
    """One table's rows whose updated_at falls on one day (China time): in the exchange database, and
    published or quarantined by the adapter (its ledger)."""

    table: str
    day: dt.date
    exchange_rows: int
    published_rows: int
    quarantined_rows: int

    @property
    def difference(self) -> int:
        """Positive: rows never published (missed); negative: rows the source no longer holds (deleted)."""
        return self.exchange_rows - self.published_rows - self.quarantined_rows


@dataclass
class Reconciliation:
    days: list[DayCount] = field(default_factory=list)

    @property
    def mismatches(self) -> list[DayCount]:
        return [d for d in self.days if d.difference]


@dataclass
class _Page:
    """Rows handed to the producer: committed (watermark, quarantine, ledger) only once confirmed."""

    spec: TableSpec
    last_row: dict
    progress: TableProgress
    quarantined: list[Quarantined]
    handled: list[Handled] = field(default_factory=list)
    late: bool = False  # found behind the watermark: recorded without moving it


class ExchangeAdapter:
    def __init__(
        self,
        source: SourceConfig,
        publisher: EventPublisher,
        state: AdapterState,
        codec: EventCodec,
        dead_letters: Any,
        topic_prefix: str = "",
        page_size: int = 2000,
        settle_seconds: float = 2.0,
        overlap_seconds: float | None = None,
    ) -> None:
        """``dead_letters``: a confluent-kafka Producer for dlq.adapter records. ``overlap_seconds``: how far
        behind the watermark each poll looks again (default: the source's ``overlap_seconds``). The exchange
        database is connected on first use, and again after ``reset``."""
        self.source = source
        self.identity = SourceIdentity(
            source.org_code,
            source.name,
            source.region_code,
            "HOSPITAL" if source.kind == "hospital" else "COUNTY",
            "HIS" if source.kind == "hospital" else "PH",
        )
        self.publisher = publisher
        self.state = state
        self.codec = codec
        self.dead_letters = dead_letters
        self.dlq_topic = topic_prefix + dead_letter_topic(STAGE).name
        self.page_size = page_size
        self.settle = dt.timedelta(seconds=settle_seconds)
        self.overlap = dt.timedelta(seconds=source.overlap_seconds if overlap_seconds is None else overlap_seconds)
        self.tables = TABLES[source.kind]
        self.on_round: Callable[[], None] | None = None  # called after each round is committed (supervision)
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._whole_overlap = True  # the next re-read covers the whole window behind each watermark

    # -- the exchange database -----------------------------------------------------------------------------
    def _exchange(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        self.reset()
        dsn = self.source.dsn
        try:
            if "connect_timeout" not in conninfo_to_dict(dsn):
                dsn = make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise ExchangeDatabaseError(exc) from None  # the driver's message names the server (DSN)
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.source.schema_name)))
        except psycopg.Error as exc:
            conn.close()
            raise ExchangeDatabaseError(exc) from None
        self._conn = conn
        return conn

    def _query(self, query: sql.Composable | str, params: Any = None) -> list[dict[str, Any]]:
        conn = self._exchange()
        try:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise ExchangeDatabaseError(exc) from None

    def reset(self) -> None:
        """Drop the exchange connection (after a failure); the next poll connects afresh and first looks
        through the whole overlap window behind each watermark (rows may have been committed there while
        the adapter was away)."""
        self._whole_overlap = True
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def close(self) -> None:
        self.reset()
        self.state.close()

    # -- one pass ----------------------------------------------------------------------------------------
    def run_once(self) -> PollSummary:
        """Publish everything currently settled in every table, and what the overlap re-read finds behind
        the watermarks (before the forward pass after a (re)connect, after it always); returns what it did.

        Works in rounds: one page of every table that still has rows, one flush for the whole round, then
        each table's watermark. One broker round trip per round instead of per page (most tables of a
        poll are small)."""
        summary = PollSummary()
        if self._whole_overlap:  # first poll on this connection: behind the watermarks as they were left
            for behind in self._reread_overlap():
                summary.add(behind.spec.name, behind.progress)
        active = list(self.tables)
        while active:
            pages = [page for spec in active if (page := self._publish_page(spec)) is not None]
            self._confirm(pages)
            for page in pages:
                self._commit(page)
                summary.add(page.spec.name, page.progress)
            active = [page.spec for page in pages if page.progress.rows_read == self.page_size]
            if self.on_round is not None:
                self.on_round()
        for behind in self._reread_overlap():
            summary.add(behind.spec.name, behind.progress)
        return summary

    def _publish_page(self, spec: TableSpec) -> _Page | None:
        """Read the next page after the watermark and hand its events to the producer (not yet confirmed)."""
        after_ts, after_pk = self.state.watermark(self.source.source_id, spec.name)
        rows = self._query(
            sql.SQL(
                "SELECT * FROM {t} WHERE (updated_at, {pk}) > (%s, %s) AND updated_at <= now() - %s "
                "ORDER BY updated_at, {pk} LIMIT %s"
            ).format(t=sql.Identifier(spec.name), pk=sql.Identifier(spec.pk)),
            (after_ts, after_pk, self.settle, self.page_size),
        )
        return self._publish_rows(spec, rows) if rows else None

    def _reread_overlap(self) -> list[_Page]:
        """Rows behind the watermarks, within the overlap window, at a version the ledger does not hold:
        published (or quarantined), confirmed and recorded without moving any watermark."""
        if self.overlap <= dt.timedelta(0):
            return []
        # After a (re)connect, before the watermarks move: the whole window behind each; then only rows
        # updated within the last settle + overlap seconds by the source's clock (older ones cannot be in
        # flight any more), which keeps the re-read small however long a table stays idle.
        lower = (
            "updated_at >= %(wm)s::timestamptz - %(overlap)s::interval"
            if self._whole_overlap
            else "updated_at >= greatest(%(wm)s::timestamptz - %(overlap)s::interval,"
            " now() - %(settle)s::interval - %(overlap)s::interval)"
        )
        pages: list[_Page] = []
        watermarks = self.state.watermarks(self.source.source_id)
        for spec in self.tables:
            wm_ts, wm_pk = watermarks.get(spec.name, BEGINNING)
            if (wm_ts, wm_pk) == BEGINNING:
                continue
            params = {"wm": wm_ts, "wm_pk": wm_pk, "overlap": self.overlap, "settle": self.settle}
            keys = self._query(
                sql.SQL(
                    "SELECT {pk} AS pk, record_version, cancelled FROM {t} "
                    "WHERE " + lower + " AND (updated_at, {pk}) <= (%(wm)s, %(wm_pk)s)"
                ).format(t=sql.Identifier(spec.name), pk=sql.Identifier(spec.pk)),
                params,
            )
            if not keys:
                continue
            known = self.state.handled(self.source.source_id, spec.name, [str(k["pk"]) for k in keys])
            late = [
                k["pk"] for k in keys if known.get(str(k["pk"])) != (int(k["record_version"]), bool(k["cancelled"]))
            ]
            for start in range(0, len(late), self.page_size):
                rows = self._query(
                    sql.SQL(
                        "SELECT * FROM {t} WHERE {pk} = ANY(%(keys)s) AND (updated_at, {pk}) <= (%(wm)s, %(wm_pk)s) "
                        "ORDER BY updated_at, {pk}"
                    ).format(t=sql.Identifier(spec.name), pk=sql.Identifier(spec.pk)),
                    params | {"keys": late[start : start + self.page_size]},
                )
                if rows:
                    page = self._publish_rows(spec, rows)
                    page.late = True
                    page.progress.late = len(rows)
                    log.info("%s/%s: %d row(s) behind the watermark", self.source.source_id, spec.name, len(rows))
                    pages.append(page)
        self._confirm(pages)
        for page in pages:
            self._commit(page)
        self._whole_overlap = False
        return pages

    def _publish_rows(self, spec: TableSpec, rows: list[dict[str, Any]]) -> _Page:
        page = _Page(spec, rows[-1], TableProgress(rows_read=len(rows)), [])
        metrics.ROWS_READ.labels(self.source.org_code, spec.name).inc(len(rows))
        keys = [r[spec.pk] for r in rows]
        children = {c.name: self._children(c.name, spec.pk, c.order_by, keys) for c in spec.children}
        persons = self._persons(spec, rows)
        for row in rows:
            key = str(row[spec.pk])
            outcome = "published"
            try:
                value = self._event(spec, row, key, {c: children[c].get(row[spec.pk], []) for c in children}, persons)
                self.publisher.publish(spec.event_type, value)
                page.progress.published += 1
            except UnmappableRow as exc:
                page.quarantined.append(self._quarantine(spec, row, key, exc.code, exc.column, exc.message))
                outcome = "quarantined"
            except (ValueError, TypeError, KeyError, OverflowError) as exc:  # the encoder rejected a value
                page.quarantined.append(
                    self._quarantine(spec, row, key, "bad_value", "", f"{type(exc).__name__}: {exc}")
                )
                outcome = "quarantined"
            page.handled.append(
                Handled(key, int(row["record_version"]), bool(row["cancelled"]), row["updated_at"], outcome)
            )
        return page

    def _confirm(self, pages: list[_Page]) -> None:
        """Wait until the broker acknowledged every event and dead letter of these pages."""
        if not pages:
            return
        self.publisher.flush()  # raises if any event was not acknowledged: no watermark moves
        if any(p.quarantined for p in pages) and self.dead_letters.flush(30):
            raise BrokerUnavailable("dead letters not acknowledged; the watermarks stay put")

    def _commit(self, page: _Page) -> None:
        page.progress.quarantined = len(page.quarantined)
        if page.late:
            self.state.record(self.source.source_id, page.spec.name, page.quarantined, page.handled)
            metrics.LATE_ROWS.labels(self.source.org_code, page.spec.name).inc(page.progress.late)
        else:
            last = page.last_row
            self.state.advance(
                self.source.source_id,
                page.spec.name,
                last["updated_at"],
                str(last[page.spec.pk]),
                page.quarantined,
                page.handled,
            )
            metrics.SECONDS_BEHIND.labels(self.source.org_code, page.spec.name).set(
                max(0.0, (dt.datetime.now(dt.UTC) - last["updated_at"]).total_seconds())
            )
        metrics.EVENTS_PUBLISHED.labels(self.source.org_code, page.spec.name).inc(page.progress.published)

    # -- reconciliation ------------------------------------------------------------------------------------
    def reconcile(self, days: int = RECONCILE_DAYS) -> Reconciliation:
        """Per table and day (China time) of updated_at, over the last ``days`` days: the exchange database's
        rows against the rows the adapter published or quarantined (its ledger). Only rows the adapter must
        have handled by now count: updated before the watermark and older than the settle delay and the
        overlap (a row inside the overlap may still be committed late, and be found by the re-read); rows
        updated since, whose earlier version the ledger holds, are left out on both sides. The result is saved
        (``adapter_reconciliation``) and exported as ``healthbus_adapter_reconciliation_difference_rows``."""
        result = Reconciliation()
        now = self._query("SELECT now() AS now")[0]["now"]
        for spec in self.tables:
            wm_ts, wm_pk = self.state.watermark(self.source.source_id, spec.name)
            since = self.state.ledger_since(self.source.source_id, spec.name)
            if (wm_ts, wm_pk) == BEGINNING or since is None:
                continue
            cut = min(wm_ts, now - self.settle - self.overlap)
            first_day = cut.astimezone(CST).date() - dt.timedelta(days=days - 1)
            start = max(dt.datetime.combine(first_day, dt.time(), CST), since)
            counted = self._query(
                sql.SQL(
                    "SELECT (updated_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n FROM {t} "
                    "WHERE updated_at > %(since)s AND updated_at >= %(start)s AND updated_at <= %(cut)s GROUP BY 1"
                ).format(t=sql.Identifier(spec.name)),
                {"tz": CHINA_TIME_ZONE, "since": since, "start": start, "cut": cut},
            )
            moved_on = self._query(  # updated after the cut: the ledger's line for them is an earlier version
                sql.SQL("SELECT {pk} AS pk FROM {t} WHERE updated_at > %s").format(
                    t=sql.Identifier(spec.name), pk=sql.Identifier(spec.pk)
                ),
                (cut,),
            )
            ledger = {
                d.day: d
                for d in self.state.ledger_days(
                    self.source.source_id, spec.name, since, start, cut, [str(r["pk"]) for r in moved_on]
                )
            }
            exchange = {r["day"]: int(r["n"]) for r in counted}
            table_days = [
                DayCount(
                    spec.name,
                    day,
                    exchange.get(day, 0),
                    ledger[day].published if day in ledger else 0,
                    ledger[day].quarantined if day in ledger else 0,
                )
                for day in sorted(exchange.keys() | ledger.keys())
            ]
            self.state.save_reconciliation(
                self.source.source_id,
                spec.name,
                [(d.day, d.exchange_rows, d.published_rows, d.quarantined_rows) for d in table_days],
            )
            metrics.RECONCILIATION_DIFFERENCE.labels(self.source.org_code, spec.name).set(
                sum(abs(d.difference) for d in table_days)
            )
            for d in table_days:
                if d.difference:
                    log.warning(
                        "reconciliation %s/%s %s: %d exchange rows, %d published, %d quarantined",
                        self.source.source_id,
                        spec.name,
                        d.day,
                        d.exchange_rows,
                        d.published_rows,
                        d.quarantined_rows,
                    )
            result.days += table_days
        metrics.RECONCILIATION_LAST_RUN.labels(self.source.org_code, self.source.kind).set_to_current_time()
        return result

    def _event(
        self, spec: TableSpec, row: dict, key: str, children: dict[str, list[Row]], persons: dict[Any, dict]
    ) -> dict[str, Any]:
        if spec.person_column:
            person_id = row.get(spec.person_column)
            patient = patient_block(persons.get(person_id), str(person_id), spec.person_column)
        else:
            patient = patient_block(row, key, spec.pk)
        occurred = as_utc(row.get(spec.occurred_at))
        if occurred is None:
            raise UnmappableRow("missing_value", spec.occurred_at, "required by the event contract")
        body = spec.body(row, children)
        # Upload time = when the source made this version available; a re-sent row is byte-identical.
        uploaded = as_utc(row["updated_at"])
        assert uploaded is not None  # updated_at is NOT NULL in every exchange table (the watermark)
        return {
            "envelope": envelope(spec.event_type, self.identity, spec.name, key, row, occurred, patient, uploaded),
            **body,
        }

    def _children(self, table: str, fk: str, order_by: str, keys: list[Any]) -> dict[Any, list[Row]]:
        rows = self._query(
            sql.SQL("SELECT * FROM {t} WHERE {fk} = ANY(%s) ORDER BY {fk}, {o}").format(
                t=sql.Identifier(table), fk=sql.Identifier(fk), o=sql.Identifier(order_by)
            ),
            (keys,),
        )
        grouped: dict[Any, list[Row]] = defaultdict(list)
        for r in rows:
            grouped[r[fk]].append(r)
        return grouped

    def _persons(self, spec: TableSpec, rows: list[dict]) -> dict[Any, dict]:
        """Person rows by their key column's value (as the database returns it: text or a number)."""
        if not spec.person_column:
            return {}
        ids = sorted({r[spec.person_column] for r in rows if r.get(spec.person_column) is not None})
        pk = PERSON_PK[self.source.kind]
        found = self._query(
            sql.SQL("SELECT * FROM {t} WHERE {pk} = ANY(%s)").format(
                t=sql.Identifier(PERSON_TABLE[self.source.kind]), pk=sql.Identifier(pk)
            ),
            (ids,),
        )
        return {p[pk]: p for p in found}

    def _quarantine(self, spec: TableSpec, row: dict, key: str, code: str, column: str, message: str) -> Quarantined:
        metrics.FAILURES.labels(self.source.org_code, spec.name, code).inc()
        row_json = to_json(dict(row))
        row_data = json.loads(row_json)
        where = f"exchange:{self.source.source_id}/{spec.name}"
        version, cancelled = int(row["record_version"]), bool(row["cancelled"])
        letter = dead_letter(
            STAGE,
            code,
            f"{column}: {message}" if column else message,
            where,
            -1,
            -1,
            f"{self.source.org_code}:{spec.name}:{key}".encode(),
            row_json.encode(),
            details={
                "table": spec.name,
                "pk": key,
                "record_version": str(version),
                "column": column,
                "org_code": self.source.org_code,
            },
        )
        # dead_letter() derives the id from a Kafka position; these rows have none (-1/-1), so every letter
        # of a table would share one id: each row version gets its own instead.
        letter["dead_letter_id"] = adapter_dead_letter_id(where, key, version, cancelled, code)
        self.dead_letters.produce(
            self.dlq_topic, self.codec.encode("ops.dead_letter", letter, topic=self.dlq_topic), letter["key"]
        )
        log.info("quarantined %s/%s row %s: %s %s", self.source.org_code, spec.name, key, code, column)
        return Quarantined(spec.name, key, version, code, column, message, row_data, letter["dead_letter_id"])

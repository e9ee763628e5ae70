"""Poll one exchange database by watermark and publish its rows, at least once.

For each table, repeatedly: read the next page of rows after the watermark ``(updated_at, pk)`` in that
order (rows with equal timestamps are ordered by key, so none is skipped or read twice), only rows older
than ``settle_seconds`` (a transaction that set updated_at earlier but commits later is not overtaken);
fetch their children and persons; map each row to its event; publish; wait until the broker acknowledged
every event of the page (pages of all tables are confirmed together, one broker round trip per round);
then quarantine the unmappable rows and advance the watermark in one PostgreSQL transaction. A crash anywhere before that transaction re-reads the page: the same rows give the same event
ids, so downstream the repeat is harmless.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from avro_schemas.json_form import to_json
from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic
from foundation.dead_letters import dead_letter
from producers.adapters import metrics
from producers.adapters.config import SourceConfig
from producers.adapters.mapping import Row, SourceIdentity, UnmappableRow, as_utc, envelope, patient_block
from producers.adapters.state_store import AdapterState, Quarantined
from producers.adapters.tables import PERSON_PK, PERSON_TABLE, TABLES, TableSpec
from producers.publisher import EventPublisher

log = logging.getLogger(__name__)
STAGE = "adapter"


@dataclass
class TableProgress:
    rows_read: int = 0
    published: int = 0
    quarantined: int = 0


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


@dataclass
class _Page:
    """A page handed to the producer: committed (watermark, quarantine) only once confirmed."""

    spec: TableSpec
    last_row: dict
    progress: TableProgress
    quarantined: list[Quarantined]


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
    ) -> None:
        """``dead_letters``: a confluent-kafka Producer for dlq.adapter records."""
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
        self.tables = TABLES[source.kind]
        self._conn = psycopg.connect(source.dsn, autocommit=True, row_factory=dict_row)
        self._conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(source.schema_name)))

    def close(self) -> None:
        self._conn.close()

    # -- one pass ----------------------------------------------------------------------------------------
    def run_once(self) -> PollSummary:
        """Publish everything currently settled in every table; returns what it did.

        Works in rounds: one page of every table that still has rows, one flush for the whole round, then
        each table's watermark. One broker round trip per round instead of per page (most tables of a
        poll are small)."""
        summary = PollSummary()
        active = list(self.tables)
        while active:
            pages = [page for spec in active if (page := self._publish_page(spec)) is not None]
            self._confirm(pages)
            for page in pages:
                self._commit(page)
                total = summary.tables[page.spec.name]
                total.rows_read += page.progress.rows_read
                total.published += page.progress.published
                total.quarantined += page.progress.quarantined
            active = [page.spec for page in pages if page.progress.rows_read == self.page_size]
        return summary

    def run_forever(self, stop: threading.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            summary = self.run_once()
            if summary.rows_read == 0:
                stop.wait(interval)

    def _publish_page(self, spec: TableSpec) -> _Page | None:
        """Read the next page after the watermark and hand its events to the producer (not yet confirmed)."""
        after_ts, after_pk = self.state.watermark(self.source.source_id, spec.name)
        rows = self._conn.execute(
            sql.SQL(
                "SELECT * FROM {t} WHERE (updated_at, {pk}) > (%s, %s) AND updated_at <= now() - %s "
                "ORDER BY updated_at, {pk} LIMIT %s"
            ).format(t=sql.Identifier(spec.name), pk=sql.Identifier(spec.pk)),
            (after_ts, after_pk, self.settle, self.page_size),
        ).fetchall()
        if not rows:
            return None
        page = _Page(spec, rows[-1], TableProgress(rows_read=len(rows)), [])
        metrics.ROWS_READ.labels(self.source.org_code, spec.name).inc(len(rows))
        keys = [r[spec.pk] for r in rows]
        children = {c.name: self._children(c.name, spec.pk, c.order_by, keys) for c in spec.children}
        persons = self._persons(spec, rows)
        for row in rows:
            key = str(row[spec.pk])
            try:
                value = self._event(spec, row, key, {c: children[c].get(row[spec.pk], []) for c in children}, persons)
                self.publisher.publish(spec.event_type, value)
                page.progress.published += 1
            except UnmappableRow as exc:
                page.quarantined.append(self._quarantine(spec, row, key, exc.code, exc.column, exc.message))
            except (ValueError, TypeError, KeyError, OverflowError) as exc:  # the encoder rejected a value
                page.quarantined.append(
                    self._quarantine(spec, row, key, "bad_value", "", f"{type(exc).__name__}: {exc}")
                )
        return page

    def _confirm(self, pages: list[_Page]) -> None:
        """Wait until the broker acknowledged every event and dead letter of these pages."""
        self.publisher.flush()  # raises if any event was not acknowledged: no watermark moves
        if any(p.quarantined for p in pages) and self.dead_letters.flush(30):
            raise RuntimeError("dead letters not acknowledged; the watermarks stay put")

    def _commit(self, page: _Page) -> None:
        last = page.last_row
        self.state.advance(
            self.source.source_id, page.spec.name, last["updated_at"], str(last[page.spec.pk]), page.quarantined
        )
        page.progress.quarantined = len(page.quarantined)
        metrics.EVENTS_PUBLISHED.labels(self.source.org_code, page.spec.name).inc(page.progress.published)
        metrics.SECONDS_BEHIND.labels(self.source.org_code, page.spec.name).set(
            max(0.0, (dt.datetime.now(dt.UTC) - last["updated_at"]).total_seconds())
        )

    # -- pieces ------------------------------------------------------------------------------------------
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
        rows = self._conn.execute(
            sql.SQL("SELECT * FROM {t} WHERE {fk} = ANY(%s) ORDER BY {fk}, {o}").format(
                t=sql.Identifier(table), fk=sql.Identifier(fk), o=sql.Identifier(order_by)
            ),
            (keys,),
        ).fetchall()
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
        found = self._conn.execute(
            sql.SQL("SELECT * FROM {t} WHERE {pk} = ANY(%s)").format(
                t=sql.Identifier(PERSON_TABLE[self.source.kind]), pk=sql.Identifier(pk)
            ),
            (ids,),
        ).fetchall()
        return {p[pk]: p for p in found}

    def _quarantine(self, spec: TableSpec, row: dict, key: str, code: str, column: str, message: str) -> Quarantined:
        metrics.FAILURES.labels(self.source.org_code, spec.name, code).inc()
        row_json = to_json(dict(row))
        row_data = json.loads(row_json)
        where = f"exchange:{self.source.source_id}/{spec.name}"
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
                "record_version": str(row["record_version"]),
                "column": column,
                "org_code": self.source.org_code,
            },
        )
        self.dead_letters.produce(
            self.dlq_topic, self.codec.encode("ops.dead_letter", letter, topic=self.dlq_topic), letter["key"]
        )
        log.info("quarantined %s/%s row %s: %s %s", self.source.org_code, spec.name, key, code, column)
        return Quarantined(spec.name, key, int(row["record_version"]), code, column, message, row_data)

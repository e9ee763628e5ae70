"""The PostgreSQL event store: every pipeline event once, by event id, in the contracts' JSON form.

Writes are COPY into a temporary table, then ``INSERT … ON CONFLICT (event_id) DO NOTHING``: about twice
the rate of executemany upserts (measured on this project's machines), and a replayed batch adds nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from avro_schemas.json_form import to_json
from sinks.event_sink import SinkRecord

DDL = """
CREATE TABLE IF NOT EXISTS event_store (
    event_id       uuid PRIMARY KEY,
    event_type     text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    org_code       text        NOT NULL,
    record_key     text        NOT NULL,
    record_version integer     NOT NULL,
    cancelled      boolean     NOT NULL,
    payload        jsonb       NOT NULL,
    source_topic   text        NOT NULL,
    source_partition integer   NOT NULL,
    source_offset  bigint      NOT NULL,
    stored_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_store_org_occurred ON event_store (org_code, occurred_at);
CREATE INDEX IF NOT EXISTS event_store_record ON event_store (org_code, record_key, record_version);
COMMENT ON TABLE event_store IS '每个管道事件一行 (按 event_id 幂等) / Every pipeline event once, keyed by event id.';
"""
COLUMNS = (
    "event_id",
    "event_type",
    "occurred_at",
    "org_code",
    "record_key",
    "record_version",
    "cancelled",
    "payload",
    "source_topic",
    "source_partition",
    "source_offset",
)


def ensure_event_store(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.event_store.ddl'))")
        conn.execute(DDL)


class PostgresEventStore:
    name = "sink-postgres"

    def __init__(self, postgres_url: str) -> None:
        self._url = postgres_url
        self._conn = psycopg.connect(postgres_url, autocommit=True)
        ensure_event_store(self._conn)

    def write(self, records: list[SinkRecord]) -> int:
        if self._conn.broken or self._conn.closed:  # the server went away: the sink loop retries on a new one
            self._conn = psycopg.connect(self._url, autocommit=True)
        cols = ", ".join(COLUMNS)
        with self._conn.transaction():
            self._conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS event_store_batch (LIKE event_store INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            with self._conn.cursor() as cur:
                with cur.copy(f"COPY event_store_batch ({cols}) FROM STDIN") as copy:
                    for r in records:
                        env = r.value["envelope"]
                        copy.write_row(
                            (
                                env["event_id"],
                                r.event_type,
                                env["occurred_at"],
                                env["source"]["org_code"],
                                env["source"]["record_key"],
                                env["record_version"],
                                env["cancelled"],
                                to_json(r.value),
                                r.topic,
                                r.partition,
                                r.offset,
                            )
                        )
                cur.execute(
                    f"INSERT INTO event_store ({cols}) SELECT DISTINCT ON (event_id) {cols} FROM event_store_batch "
                    f"ON CONFLICT (event_id) DO NOTHING"
                )
                return cur.rowcount

    def count(self) -> int:
        return int(_one(self._conn.execute("SELECT count(*) FROM event_store").fetchone())[0])

    def count_event_ids(self, event_ids: list[str]) -> int:
        """How many of these events are stored."""
        row = self._conn.execute(
            "SELECT count(*) FROM event_store WHERE event_id = ANY(%s::uuid[])", (event_ids,)
        ).fetchone()
        return int(_one(row)[0])

    def person_counts(self, event_ids: list[str]) -> tuple[int, int]:
        """(distinct person ids, events without one) among these stored events."""
        row = self._conn.execute(
            "SELECT count(DISTINCT payload->'envelope'->>'person_id'), "
            "count(*) FILTER (WHERE payload->'envelope'->>'person_id' IS NULL) "
            "FROM event_store WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        ).fetchone()
        return int(_one(row)[0]), int(_one(row)[1])

    def close(self) -> None:
        self._conn.close()


def _one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """An aggregate query's single row (it always has one)."""
    assert row is not None
    return row

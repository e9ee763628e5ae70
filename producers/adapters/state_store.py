"""Adapter state in the platform's PostgreSQL: watermarks and the quarantine of unmappable rows.

Watermarks live here, not in a local file, so an adapter can move to another machine and so the quarantine
and the watermark advance in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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
"""
BEGINNING = (dt.datetime(1900, 1, 1, tzinfo=dt.UTC), "")


@dataclass(frozen=True)
class Quarantined:
    table_name: str
    pk: str
    record_version: int
    reason_code: str
    column_name: str
    message: str
    row_data: dict


class AdapterState:
    def __init__(self, postgres_url: str) -> None:
        self._conn = psycopg.connect(postgres_url, autocommit=True)
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.adapter_state.ddl'))")
            self._conn.execute(DDL)

    def watermark(self, source_id: str, table: str) -> tuple[dt.datetime, str]:
        row = self._conn.execute(
            "SELECT updated_at, pk FROM adapter_watermark WHERE source_id = %s AND table_name = %s", (source_id, table)
        ).fetchone()
        return (row[0], row[1]) if row else BEGINNING

    def advance(
        self, source_id: str, table: str, updated_at: dt.datetime, pk: str, quarantined: list[Quarantined]
    ) -> None:
        """Record the quarantined rows and move the watermark, atomically. Call only after every event up to
        (updated_at, pk) was acknowledged by the broker."""
        with self._conn.transaction():
            for q in quarantined:
                self._conn.execute(
                    "INSERT INTO adapter_quarantine (source_id, table_name, pk, record_version, reason_code, column_name,"
                    " message, row_data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (source_id, table_name, pk,"
                    " record_version) DO UPDATE SET last_seen = now(), reason_code = EXCLUDED.reason_code,"
                    " column_name = EXCLUDED.column_name, message = EXCLUDED.message, row_data = EXCLUDED.row_data",
                    (
                        source_id,
                        q.table_name,
                        q.pk,
                        q.record_version,
                        q.reason_code,
                        q.column_name,
                        q.message,
                        Jsonb(q.row_data),
                    ),
                )
            self._conn.execute(
                "INSERT INTO adapter_watermark (source_id, table_name, updated_at, pk) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (source_id, table_name) DO UPDATE SET updated_at = EXCLUDED.updated_at, pk = EXCLUDED.pk,"
                " advanced_at = now()",
                (source_id, table, updated_at, pk),
            )

    def reset(self, source_ids: list[str]) -> None:
        """Forget watermarks and quarantine of these institutions: their next poll publishes everything again."""
        with self._conn.transaction():
            self._conn.execute("DELETE FROM adapter_watermark WHERE source_id = ANY(%s)", (source_ids,))
            self._conn.execute("DELETE FROM adapter_quarantine WHERE source_id = ANY(%s)", (source_ids,))

    def quarantine(self, source_id: str) -> list[Quarantined]:
        rows = self._conn.execute(
            "SELECT table_name, pk, record_version, reason_code, column_name, message, row_data FROM adapter_quarantine"
            " WHERE source_id = %s ORDER BY table_name, pk, record_version",
            (source_id,),
        ).fetchall()
        return [Quarantined(*r) for r in rows]

    def close(self) -> None:
        self._conn.close()

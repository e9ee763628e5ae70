"""Create the master patient index tables (idempotent; safe for several processes at once)."""

from __future__ import annotations

from importlib.resources import files

import psycopg

from foundation.append_only import append_only

SCHEMA_SQL = files("streams.identity.master_index").joinpath("schema.sql").read_text(encoding="utf-8")


def ensure_master_index(conn: psycopg.Connection) -> None:
    with conn.transaction():
        # CREATE … IF NOT EXISTS races with itself on the catalogue; one creator at a time.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.empi.ddl'))")
        conn.execute(SCHEMA_SQL)
    append_only(conn, "empi.audit_log")  # from creation on: no UPDATE, DELETE or TRUNCATE of the audit

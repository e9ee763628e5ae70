"""The append-only guard: a trigger that refuses UPDATE, DELETE and TRUNCATE on an audit table.

Audit tables live with their capability (``empi.audit_log``, ``dlq_replays``, ``audit.operator_actions``); each
asks for this guard when it creates its table. It holds also under ``session_replication_role = replica``
(ENABLE ALWAYS). Dropping a table is DDL and not refused: that is a matter of privileges.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('healthbus.audit.ddl'))"
_GUARD = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING HINT = 'record a correction as a new entry';
END $$;
"""

_TRIGGERS = {
    "audit_append_only_rows": "BEFORE UPDATE OR DELETE ON {} FOR EACH ROW",
    "audit_append_only_truncate": "BEFORE TRUNCATE ON {} FOR EACH STATEMENT",
}


def append_only(conn: psycopg.Connection, table: str) -> None:
    """Make ``table`` ("schema.name" or "name") refuse UPDATE, DELETE and TRUNCATE; idempotent."""
    target = sql.Identifier(*table.split("."))
    with conn.transaction():
        conn.execute(DDL_LOCK)
        conn.execute(_GUARD)
        present = {
            r[0]
            for r in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass", (table,)).fetchall()
        }
        for name, when in _TRIGGERS.items():
            if name in present:  # CREATE TRIGGER locks out writers of the table: only when missing
                continue
            conn.execute(
                sql.SQL("CREATE TRIGGER {} " + when + " EXECUTE FUNCTION audit.refuse_change()").format(
                    sql.Identifier(name), target
                )
            )
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(target, sql.Identifier(name)))

"""``empi.audit_log``: one row per identity change or operator action, written in the caller's transaction.

The table is append-only (foundation/append_only.py); ``healthbus empi show`` and ``healthbus audit list``
read it. Codes and ids only: never a name or an id number.
"""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from streams.identity.record import RecordKey


def write_audit(
    conn: psycopg.Connection,
    actor: str,
    action: str,
    person: str | None,
    other: str | None = None,
    record: RecordKey | None = None,
    change: str | None = None,
    reason: str = "",
    detail: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO empi.audit_log (actor, action, person_id, other_person_id, org_code, local_id, change_id, "
        "reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            actor,
            action,
            person,
            other,
            record[0] if record else None,
            record[1] if record else None,
            change,
            reason,
            Jsonb(detail or {}),
        ),
    )

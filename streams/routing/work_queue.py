"""Routing work queues in PostgreSQL: what each collaboration route asks a county to act on.

Every route (issue #6: chronic disease, tumour registry, death registration, notifiable disease,
vaccination, resident update) publishes its items on its topic and keeps them in a table of the same shape,
``routing.<route>``, so a downstream system can consume either. An item is keyed by the route's business
key (person × disease, person × tumour site, …), unique per table; the routing ledger (ledger.py) decides
what to write, so a replay or restart writes nothing twice. Its status is pending → acknowledged | rejected by the county (who, when, why), or
withdrawn when the source cancels or corrects what produced it.

Counties see their own residents' items only: row-level security over ``county_code`` (the county of
residence), through one NOLOGIN role per county (``<role prefix><county code>``, e.g.
``healthbus_county_411502``). A county's downstream login is made a member of its county role and can read
its items and set their status, nothing else; the routing stages own the tables and bypass the policy.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from avro_schemas.topics import COLLAB_ROUTES
from foundation.append_only import append_only

ROUTES: tuple[str, ...] = COLLAB_ROUTES
STATUSES: tuple[str, ...] = ("pending", "acknowledged", "rejected", "withdrawn")
COUNTY_DECISIONS: tuple[str, ...] = ("acknowledged", "rejected")
DEFAULT_ROLE_PREFIX = "healthbus_county_"
ITEM_NAMESPACE = uuid.UUID("3e0f6b8e-1c55-4d8a-a0f1-5b8f9a3c7d21")

_TABLE = """
CREATE TABLE IF NOT EXISTS routing.{table} (
    item_id          uuid PRIMARY KEY,
    business_key     text        NOT NULL UNIQUE,
    person_id        text        NOT NULL,
    county_code      char(6)     NOT NULL,
    kind             text        NOT NULL,
    payload          jsonb       NOT NULL,
    source_event_ids text[]      NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ({statuses})),
    status_by        text,
    status_at        timestamptz,
    status_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {table}_county_status ON routing.{table} (county_code, status);
CREATE INDEX IF NOT EXISTS {table}_person ON routing.{table} (person_id);
ALTER TABLE routing.{table} ENABLE ROW LEVEL SECURITY;
"""


# Who changed a status is what the database says: the login (one per county system and per operator), set
# by a trigger whatever the caller writes into status_by; what the caller claims (--actor, a system's label)
# is kept beside it. Every change is a row of routing.status_changes, append-only.
_STATUS_HISTORY = """
CREATE TABLE IF NOT EXISTS routing.status_changes (
    change_id   bigserial   PRIMARY KEY,
    route       text        NOT NULL,
    item_id     uuid        NOT NULL,
    status      text        NOT NULL,
    old_status  text        NOT NULL,
    db_user     text        NOT NULL,
    claimed_by  text,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS status_changes_item ON routing.status_changes (item_id);
COMMENT ON TABLE routing.status_changes IS '工单状态变更 (只追加) / Every work-item status change: login, claim, when (append-only).';
CREATE OR REPLACE FUNCTION routing.stamp_status() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, routing AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.status_by := session_user;
        NEW.status_at := now();
        INSERT INTO routing.status_changes (route, item_id, status, old_status, db_user, claimed_by, reason)
        VALUES (TG_TABLE_NAME, NEW.item_id, NEW.status, OLD.status, session_user,
                NULLIF(current_setting('healthbus.actor', true), ''), NEW.status_reason);
    END IF;
    RETURN NEW;
END $$;
"""


def item_id(route: str, business_key: str) -> str:
    return str(uuid.uuid5(ITEM_NAMESPACE, f"{route}\x1f{business_key}"))


@dataclass
class ItemRow:
    """One work item as its table holds it; ``stored`` is False until the row exists in PostgreSQL."""

    route: str
    item_id: str
    business_key: str  # e.g. "<person id>:HYPERTENSION"
    person_id: str
    county_code: str  # the county of residence that must act on it (GB/T 2260)
    kind: str  # what an item of the route is: registration, report, death_registration, …
    payload: dict[str, Any] | None  # route-specific, the JSON form
    source_event_ids: list[str]
    status: str = "pending"
    status_by: str | None = None
    status_at: dt.datetime | None = None
    status_reason: str | None = None
    stored: bool = True


def _check_route(route: str) -> None:
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; routes: {', '.join(ROUTES)}")


def _county_policy(role_prefix: str) -> sql.Composed:
    # Rows of the counties whose role the current user holds. pg_roles is read instead of calling
    # pg_has_role on '<prefix>' || county_code, which fails for a county that has no role yet.
    return sql.SQL(
        "county_code IN (SELECT substr(r.rolname, {start}) FROM pg_roles r "
        "WHERE r.rolname LIKE {pattern} AND pg_has_role(current_user, r.oid, 'MEMBER'))"
    ).format(start=sql.Literal(len(role_prefix) + 1), pattern=sql.Literal(role_prefix.replace("_", r"\_") + "%"))


def ensure_work_queues(conn: psycopg.Connection, role_prefix: str = DEFAULT_ROLE_PREFIX) -> None:
    """Create the schema, one table per route and its county policy (idempotent, one creator at a time)."""
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.routing.ddl'))")
        conn.execute("CREATE SCHEMA IF NOT EXISTS routing")
        conn.execute(_STATUS_HISTORY)
        for route in ROUTES:
            conn.execute(_TABLE.format(table=route, statuses=statuses))
            table, county = sql.Identifier("routing", route), _county_policy(role_prefix)
            for policy in ("county_rows", "county_read", "county_decide"):
                conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(policy), table))
            # A county reads its rows and may acknowledge or reject them; withdrawing is the stages' business,
            # and a withdrawn item stays withdrawn for the county (only new evidence re-opens it, by a stage).
            conn.execute(sql.SQL("CREATE POLICY county_read ON {} FOR SELECT USING ({})").format(table, county))
            conn.execute(
                sql.SQL(
                    "CREATE POLICY county_decide ON {} FOR UPDATE USING ({} AND status <> 'withdrawn') "
                    "WITH CHECK ({} AND status IN ('acknowledged', 'rejected'))"
                ).format(table, county, county)
            )
            conn.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER status_change BEFORE UPDATE OF status ON {} "
                    "FOR EACH ROW EXECUTE FUNCTION routing.stamp_status()"
                ).format(table)
            )
    append_only(conn, "routing.status_changes")


def ensure_county_role(conn: psycopg.Connection, county_code: str, role_prefix: str = DEFAULT_ROLE_PREFIX) -> str:
    """The county's NOLOGIN role, allowed to read its items and decide on them in every route table."""
    if not (len(county_code) == 6 and county_code.isdigit()):
        raise ValueError(f"a county code is 6 digits (GB/T 2260), got {county_code!r}")
    role = f"{role_prefix}{county_code}"
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.routing.roles'))")
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA routing TO {}").format(sql.Identifier(role)))
        for route in ROUTES:
            table = sql.Identifier("routing", route)
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(table, sql.Identifier(role)))
            conn.execute(
                sql.SQL("GRANT UPDATE (status, status_by, status_at, status_reason) ON {} TO {}").format(
                    table, sql.Identifier(role)
                )
            )
    return role


def save_items(conn: psycopg.Connection, rows: list[ItemRow]) -> None:
    """Write items (insert or update by item id), one statement batch per route. Existing rows first: a
    merge may move an item off the business key that a new row then takes, and the key is unique."""
    with conn.cursor() as cur:
        for stored in (True, False):
            by_route: dict[str, list[ItemRow]] = {}
            for item in rows:
                if item.stored is stored:
                    _check_route(item.route)
                    by_route.setdefault(item.route, []).append(item)
            for route, items in by_route.items():
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO routing.{} (item_id, business_key, person_id, county_code, kind, payload, "
                        "source_event_ids, status, status_by, status_at, status_reason) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (item_id) DO UPDATE SET "
                        "business_key = EXCLUDED.business_key, person_id = EXCLUDED.person_id, "
                        "payload = EXCLUDED.payload, source_event_ids = EXCLUDED.source_event_ids, "
                        "status = EXCLUDED.status, status_by = EXCLUDED.status_by, "
                        "status_at = EXCLUDED.status_at, status_reason = EXCLUDED.status_reason"
                    ).format(sql.Identifier(route)),
                    [
                        (
                            i.item_id,
                            i.business_key,
                            i.person_id,
                            i.county_code,
                            i.kind,
                            json.dumps(i.payload or {}, ensure_ascii=False),
                            i.source_event_ids,
                            i.status,
                            i.status_by,
                            i.status_at,
                            i.status_reason,
                        )
                        for i in items
                    ],
                )
                for i in items:
                    i.stored = True


def decide(
    conn: psycopg.Connection,
    route: str,
    item: str,
    status: str,
    actor: str,
    reason: str = "",
    now: dt.datetime | None = None,
) -> bool:
    """Set an item's status with who, when and why; False when the item is not visible to this login
    (another county's) or does not exist. Counties acknowledge or reject; the stages withdraw."""
    _check_route(route)
    if status not in STATUSES or status == "pending":
        raise ValueError(f"status must be one of {STATUSES[1:]}, got {status!r}")
    with conn.transaction():
        conn.execute("SELECT set_config('healthbus.actor', %s, true)", (actor,))  # the claim, for the history
        cur = conn.execute(
            sql.SQL(
                "UPDATE routing.{} SET status = %s, status_by = %s, status_at = %s, status_reason = %s WHERE item_id = %s"
            ).format(sql.Identifier(route)),
            (status, actor, now or dt.datetime.now(dt.UTC), reason or None, item),
        )
    return cur.rowcount == 1


def list_items(
    conn: psycopg.Connection, route: str, county: str | None = None, status: str | None = None, limit: int = 50
) -> list[tuple[Any, ...]]:
    """Newest work items of a route: (item_id, business_key, person_id, county_code, status, status_by,
    evidence_count, detail, created_at); persons by platform id only."""
    where, params = [], []
    if county:
        where.append("county_code = %s")
        params.append(county)
    if status:
        where.append("status = %s")
        params.append(status)
    query = sql.SQL(
        "SELECT item_id::text, business_key, person_id, county_code, status, status_by, "
        "payload->>'evidence_count', payload->'detail', created_at FROM routing.{} {} "
        "ORDER BY created_at DESC LIMIT %s"
    ).format(sql.Identifier(route), sql.SQL("WHERE " + " AND ".join(where)) if where else sql.SQL(""))
    return conn.execute(query, (*params, limit)).fetchall()

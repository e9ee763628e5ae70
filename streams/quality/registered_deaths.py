"""Registered deaths the quality rules read ("nothing clinical after a registered death").

The quality stage registers a death when a death record (or a discharge by death) passes its rules, and
withdraws it when that record is cancelled; per person the latest registration wins. The rules also read
the routing stage's health-record seals (empi.deregistrations, docs/routing.md), so a death that reached
the platform by a merge or through another stage's order counts as well.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from streams.quality.checks import PersonOf, platform_person

DDL = """
CREATE TABLE IF NOT EXISTS registered_deaths (
    person_id       text PRIMARY KEY,
    died_at         timestamptz NOT NULL,
    org_code        text        NOT NULL,
    record_key      text        NOT NULL,
    source_event_id uuid        NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE registered_deaths IS '已登记死亡 (质控规则读取) / Registered deaths, read by the quality rules.';
"""


@dataclass(frozen=True, slots=True)
class DeathRegistration:
    person_id: str
    died_at: dt.datetime | None  # None: the source cancelled its death record
    org_code: str
    record_key: str
    event_id: str


def death_registration(
    event_type: str, event: dict[str, Any], person_of: PersonOf = platform_person
) -> DeathRegistration | None:
    """The death this event registers (or withdraws), if any. ``person_of`` names the person: the platform
    person id in the stream stage, the file's own linkage in `healthbus quality check` (the rule
    "nothing clinical after a registered death" reads the register with the same function)."""
    envelope = event["envelope"]
    person = person_of(envelope)
    if person is None:
        return None
    source = envelope["source"]
    if event_type == "death.record":
        died = None if envelope["cancelled"] else event["died_at"]
    elif event_type == "inpatient.discharge" and event.get("discharge_method") == "DEATH" and event.get("died_at"):
        died = None if envelope["cancelled"] else event["died_at"]
    else:
        return None
    return DeathRegistration(person, died, source["org_code"], source["record_key"], envelope["event_id"])


def ensure_registered_deaths(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.registered_deaths.ddl'))")
        conn.execute(DDL)


def deaths_of(conn: psycopg.Connection, person_ids: list[str]) -> dict[str, dt.datetime]:
    """The registered death of each person: this stage's own register, and the health-record seals the
    routing stage keeps in the EMPI (empi.deregistrations), which follow merges to the surviving person.
    Where both know a death, the earlier time counts."""
    if not person_ids:
        return {}
    rows = conn.execute(
        "SELECT person_id, min(died_at) FROM (SELECT person_id, died_at FROM registered_deaths "
        "WHERE person_id = ANY(%s) UNION ALL SELECT person_id::text, died_at FROM empi.deregistrations "
        "WHERE person_id::text = ANY(%s)) d GROUP BY person_id",
        (person_ids, person_ids),
    ).fetchall()
    return {p: d for p, d in rows}


def apply_registrations(conn: psycopg.Connection, registrations: list[DeathRegistration]) -> None:
    """In order: a registration upserts the person's death; a cancellation removes it when it was that
    record's (a cancelled duplicate from another source leaves a standing registration alone)."""
    for r in registrations:
        if r.died_at is None:
            conn.execute(
                "DELETE FROM registered_deaths WHERE person_id = %s AND org_code = %s AND record_key = %s",
                (r.person_id, r.org_code, r.record_key),
            )
        else:
            conn.execute(
                "INSERT INTO registered_deaths (person_id, died_at, org_code, record_key, source_event_id) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (person_id) DO UPDATE SET died_at = EXCLUDED.died_at, "
                "org_code = EXCLUDED.org_code, record_key = EXCLUDED.record_key, "
                "source_event_id = EXCLUDED.source_event_id, registered_at = now()",
                (r.person_id, r.died_at, r.org_code, r.record_key, r.event_id),
            )

"""The audit trail: who did what and when, in append-only PostgreSQL tables (issue #8 §4).

Four tables hold it:

* ``empi.audit_log``: identity operator actions (merge, unmerge, review decisions) and the stages' identity
  changes (links, automatic merges, deregistrations), written by ``store.write_audit``;
* ``dlq_replays``: dead-letter replays, one row per letter (``foundation/dead_letter_replay.py``);
* ``dlq_skips``: messages an operator moved a stopped stage past (``healthbus dlq skip``), kept as dead letters;
* ``audit.operator_actions``: the rest: report exports (parameters, the file written, its SHA-256, row
  counts) and county access grants. Never personal data: institutions, counties, periods, logins, counts.

The database keeps them append-only: a trigger refuses UPDATE and DELETE (per row) and TRUNCATE (per
statement) on each, also under ``session_replication_role = replica`` (ENABLE ALWAYS). A correction is a
new entry. Dropping a table is DDL and not refused; that is a privilege matter (the applications' login
should not own the tables in production).

``audit.trail`` is one chronological view over the four for ``healthbus audit list``: a replay of many
letters is one entry, and the identify stage's per-record links (``empi show`` has them) are left out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from foundation.append_only import DDL_LOCK, append_only
from foundation.dead_letter_replay import ensure_replay_table, ensure_skip_table
from streams.identity.master_index.schema import ensure_master_index

# kinds of audit.operator_actions entries (the view prefixes EMPI actions with empi., replays are dlq.replay)
EXPORT_QUALITY_REPORT = "export.quality_report"
EXPORT_SURVEILLANCE_REPORT = "export.surveillance_report"
GRANT_COUNTY_ACCESS = "grant.county_access"
ROTATE_PSEUDONYMS = "privacy.rotate_pseudonyms"
# reads of personal data (or of a key): audited before anything is shown
READ_TOPIC_EVENTS = "read.topic_events"  # healthbus topics tail --json: events whole
READ_DEAD_LETTER = "read.dead_letter"  # healthbus dlq show
READ_PERSON = "read.empi_person"  # healthbus empi show
READ_ADAPTER_KEY = "read.adapter_key"  # healthbus adapter key

_ACTIONS = """
CREATE TABLE IF NOT EXISTS audit.operator_actions (
    action_id      bigserial   PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text        NOT NULL,
    kind           text        NOT NULL,                -- export.quality_report, grant.county_access, …
    parameters     jsonb       NOT NULL DEFAULT '{}',   -- what was asked: period, institution, county, login
    output_path    text,                                -- exports: the file written (absolute)
    output_sha256  text,                                -- exports: SHA-256 of the bytes written
    row_counts     jsonb       NOT NULL DEFAULT '{}'    -- exports: how much the file holds
);
CREATE INDEX IF NOT EXISTS operator_actions_at ON audit.operator_actions (at);
-- the login that wrote the row, set by the database: --actor is what the operator says, this is who connected
ALTER TABLE audit.operator_actions ADD COLUMN IF NOT EXISTS db_user text NOT NULL DEFAULT session_user;
COMMENT ON TABLE audit.operator_actions IS
    '操作审计 (只追加) / Report exports and access grants: who, when, what (append-only).';
"""
_TRAIL = """
CREATE OR REPLACE VIEW audit.trail AS
SELECT a.at, a.actor, 'empi.' || a.action AS kind,
       concat_ws(' ', a.person_id::text, '<- ' || a.other_person_id::text, a.org_code || ':' || a.local_id)
           AS subject,
       a.reason, a.detail || jsonb_strip_nulls(jsonb_build_object('change_id', a.change_id)) AS detail,
       NULL::text AS db_user
FROM empi.audit_log a
WHERE a.action <> 'link'
UNION ALL
SELECT r.replayed_at, r.actor, 'dlq.replay', 'dlq.' || r.stage, r.reason,
       jsonb_build_object('dead_letters', count(*), 'source_topics', jsonb_agg(DISTINCT r.source_topic)),
       min(r.db_user)
FROM dlq_replays r
GROUP BY r.replayed_at, r.actor, r.stage, r.reason
UNION ALL
SELECT k.skipped_at, k.actor, 'dlq.skip', 'dlq.' || k.stage, k.reason,
       jsonb_build_object('source_topic', k.source_topic, 'partition', k.source_partition,
                          'offset', k.source_offset, 'dead_letter_id', k.dead_letter_id),
       k.db_user
FROM dlq_skips k
UNION ALL
SELECT o.at, o.actor, o.kind, COALESCE(o.output_path, o.parameters->>'role', ''), '',
       jsonb_build_object('parameters', o.parameters, 'row_counts', o.row_counts)
           || jsonb_strip_nulls(jsonb_build_object('sha256', o.output_sha256)),
       o.db_user
FROM audit.operator_actions o;
"""


def ensure_audit_trail(conn: psycopg.Connection) -> None:
    """The four audit tables, each append-only, and the view over them (idempotent)."""
    ensure_master_index(conn)
    append_only(conn, "empi.audit_log")
    ensure_replay_table(conn)
    ensure_skip_table(conn)
    with conn.transaction():
        conn.execute(DDL_LOCK)
        conn.execute("CREATE SCHEMA IF NOT EXISTS audit")
        conn.execute(_ACTIONS)
    append_only(conn, "audit.operator_actions")
    with conn.transaction():
        conn.execute(DDL_LOCK)
        conn.execute(_TRAIL)


def record_action(
    conn: psycopg.Connection,
    actor: str,
    kind: str,
    parameters: Mapping[str, object],
    row_counts: Mapping[str, int] | None = None,
    output: Path | None = None,
    sha256: str | None = None,
) -> None:
    """One audit.operator_actions entry, in the caller's transaction if there is one."""
    conn.execute(
        "INSERT INTO audit.operator_actions (actor, kind, parameters, output_path, output_sha256, "
        "row_counts) VALUES (%s, %s, %s, %s, %s, %s)",
        (actor, kind, Jsonb(dict(parameters)), str(output) if output else None, sha256, Jsonb(dict(row_counts or {}))),
    )


def export_file(
    conn: psycopg.Connection,
    actor: str,
    kind: str,
    parameters: Mapping[str, object],
    path: Path,
    content: bytes,
    row_counts: Mapping[str, int],
) -> str:
    """Write ``content`` to ``path`` and its audit entry together; returns the SHA-256 (hex).

    The entry is inserted, the file written, then the entry committed: a file that cannot be written leaves
    no entry, and a commit that fails removes the file, so no export goes unaudited."""
    digest = hashlib.sha256(content).hexdigest()
    path = path.resolve()
    written = False
    try:
        with conn.transaction():
            record_action(conn, actor, kind, parameters, row_counts, path, digest)
            path.write_bytes(content)
            written = True
    except BaseException:
        if written:
            path.unlink(missing_ok=True)
        raise
    return digest


@dataclass(frozen=True)
class TrailEntry:
    at: dt.datetime
    actor: str
    kind: str
    subject: str
    reason: str
    detail: dict[str, Any]
    db_user: str | None = None  # the database login that wrote it (None: EMPI entries, written by the stages too)

    def as_json(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(),
                "actor": self.actor,
                "kind": self.kind,
                "subject": self.subject,
                "reason": self.reason,
                "detail": self.detail,
                "db_user": self.db_user,
            },
            ensure_ascii=False,
            sort_keys=True,
        )


def trail(
    conn: psycopg.Connection,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actor: str | None = None,
    kind: str | None = None,
) -> list[TrailEntry]:
    """Entries in [since, until), oldest first; ``kind`` is a kind ("empi.merge") or its prefix ("empi")."""
    where: list[sql.Composable] = []
    params: list[object] = []
    if since is not None:
        where.append(sql.SQL("at >= %s"))
        params.append(since)
    if until is not None:
        where.append(sql.SQL("at < %s"))
        params.append(until)
    if actor:
        where.append(sql.SQL("actor = %s"))
        params.append(actor)
    if kind:
        where.append(sql.SQL("(kind = %s OR starts_with(kind, %s))"))
        params.extend([kind, kind.rstrip(".") + "."])
    query = sql.SQL(
        "SELECT at, actor, kind, subject, reason, detail, db_user FROM audit.trail {} ORDER BY at, kind"
    ).format(sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    return [TrailEntry(*row) for row in conn.execute(query, params).fetchall()]

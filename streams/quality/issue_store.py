"""Events that failed a rule, with the record itself: the hospital's work list and the report's examples.

PostgreSQL, like the event store: the payload holds personal data, so it never goes to ClickHouse;
reports show it masked. Keyed by (event id, rule-set version): a replayed batch adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg

from avro_schemas.json_form import to_json
from streams.quality.engine import Verdict

DDL = """
CREATE TABLE IF NOT EXISTS quality_issues (
    event_id         uuid        NOT NULL,
    rule_set_version text        NOT NULL,
    event_type       text        NOT NULL,
    org_code         text        NOT NULL,
    occurred_at      timestamptz NOT NULL,
    passed           boolean     NOT NULL,
    violations       jsonb       NOT NULL,
    payload          jsonb       NOT NULL,
    judged_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, rule_set_version)
);
CREATE INDEX IF NOT EXISTS quality_issues_org ON quality_issues (org_code, occurred_at);
COMMENT ON TABLE quality_issues IS '质控未通过规则的事件及原记录 (含个人信息, 仅在此库) / Events that failed a rule, with the record.';
"""


@dataclass(frozen=True, slots=True)
class QualityIssue:
    verdict: Verdict
    occurred_at: dt.datetime
    org_code: str
    event: dict[str, Any]


def ensure_issue_store(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.quality_issues.ddl'))")
        conn.execute(DDL)


def write_issues(conn: psycopg.Connection, issues: list[QualityIssue]) -> None:
    if not issues:
        return
    rows = [
        (
            i.verdict.event_id,
            i.verdict.rule_set_version,
            i.verdict.event_type,
            i.org_code,
            i.occurred_at,
            i.verdict.passed,
            json.dumps(i.verdict.output_json()["violations"]),
            to_json(i.event),
        )
        for i in issues
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality_issues (event_id, rule_set_version, event_type, org_code, occurred_at, passed, "
            "violations, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )

"""ClickHouse side of data quality: one row per judged event, and the daily figures read from it.

``quality_results`` holds the quality stage's verdicts (``quality.results``): no personal data, only the
event id, the institution and the rules that failed. It is a ReplacingMergeTree on the event id: a
re-judged event (a replay after a correction) replaces its earlier verdict, and a replayed batch collapses.
``quality_daily`` (per institution × day × event type: received = accepted + rejected, late = accepted
events uploaded past their limit (a rejected one counts as rejected only), weighted score)
and ``quality_uploads_daily`` (the same per upload day, for monitoring) are views (replaced at start-up, so a changed definition reaches existing databases) that read it ``FINAL``;
at the city's volume (~10⁶ events a day) that is cheap, and it keeps duplicates out of every figure, which
an aggregating materialized view fed by an at-least-once stream would not.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from foundation.standards.china_time import CST
from streams.quality.ranking import DailyFigures


def quality_ddl(database: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.quality_results (
            event_id UUID,
            event_type LowCardinality(String),
            org_code LowCardinality(String),
            org_name LowCardinality(String),
            org_region_code LowCardinality(String),
            occurred_at DateTime64(3, 'UTC'),
            emitted_at DateTime64(3, 'UTC'),
            judged_at DateTime64(3, 'UTC'),
            event_day Date,
            upload_day Date,
            record_version UInt32,
            cancelled Bool,
            rule_set_version LowCardinality(String),
            passed Bool,
            late Bool,
            score Float64,
            weight_applied Float64,
            weight_failed Float64,
            rule_ids Array(LowCardinality(String)),
            categories Array(LowCardinality(String)),
            severities Array(LowCardinality(String)),
            fields Array(String)
        ) ENGINE = ReplacingMergeTree(judged_at)
        PARTITION BY toYYYYMM(event_day)
        ORDER BY (org_code, event_day, event_type, event_id)
        COMMENT '质控结果, 每事件一行, 无个人信息 / Quality verdicts, one row per event, no personal data'""",
        f"""CREATE OR REPLACE VIEW {database}.quality_daily AS
        SELECT org_code, any(org_name) AS org_name, any(org_region_code) AS org_region_code, event_day AS day, event_type,
               count() AS received, countIf(passed) AS accepted, countIf(NOT passed) AS rejected,
               countIf(late AND passed) AS late, sum(weight_applied) AS weight_applied, sum(weight_failed) AS weight_failed,
               if(weight_applied > 0, 1 - weight_failed / weight_applied, 1) AS score  -- the sums' aliases
        FROM {database}.quality_results FINAL
        GROUP BY org_code, event_day, event_type""",
        f"""CREATE OR REPLACE VIEW {database}.quality_uploads_daily AS
        SELECT org_code, any(org_region_code) AS org_region_code, upload_day AS day, event_type, count() AS received,
               max(emitted_at) AS last_emitted_at
        FROM {database}.quality_results FINAL
        GROUP BY org_code, upload_day, event_type""",
    ]


QUALITY_COLUMNS = [
    "event_id",
    "event_type",
    "org_code",
    "org_name",
    "org_region_code",
    "occurred_at",
    "emitted_at",
    "judged_at",
    "event_day",
    "upload_day",
    "record_version",
    "cancelled",
    "rule_set_version",
    "passed",
    "late",
    "score",
    "weight_applied",
    "weight_failed",
    "rule_ids",
    "categories",
    "severities",
    "fields",
]


def quality_row(v: dict[str, Any]) -> list[Any]:
    """A ``quality.result`` value as a row of quality_results."""
    violations = v["violations"]
    return [
        v["event_id"],
        v["event_type"],
        v["org_code"],
        v.get("org_name") or "",
        v["org_region_code"],
        v["occurred_at"],
        v["emitted_at"],
        v["judged_at"],
        v["occurred_at"].astimezone(CST).date(),
        v["emitted_at"].astimezone(CST).date(),
        v["record_version"],
        v["cancelled"],
        v["rule_set_version"],
        v["passed"],
        v["late"],
        v["score"],
        v["weight_applied"],
        v["weight_failed"],
        [x["rule_id"] for x in violations],
        [x["category"].lower() for x in violations],
        [x["severity"].lower() for x in violations],
        [x["field"] for x in violations],
    ]


def daily_figures(
    client: Any, database: str, first: dt.date, last: dt.date, org_code: str | None = None
) -> list[DailyFigures]:
    """quality_daily rows for days first..last (inclusive), optionally one institution's."""
    where = "day BETWEEN {first:Date} AND {last:Date}" + (" AND org_code = {org:String}" if org_code else "")
    rows = client.query(
        f"SELECT org_code, org_name, org_region_code, day, event_type, received, accepted, rejected, late, "
        f"weight_applied, weight_failed FROM {database}.quality_daily WHERE {where} ORDER BY org_code, day, event_type",
        parameters={"first": first, "last": last, "org": org_code or ""},
    ).result_rows
    return [
        DailyFigures(
            r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), int(r[7]), int(r[8]), float(r[9]), float(r[10])
        )
        for r in rows
    ]


def uploads_by_day(
    client: Any, database: str, first: dt.date, last: dt.date
) -> list[tuple[str, str, str, dt.date, int]]:
    """(org_code, org_region_code, event_type, upload day, received) for upload days first..last."""
    rows = client.query(
        f"SELECT org_code, org_region_code, event_type, day, received FROM {database}.quality_uploads_daily "
        f"WHERE day BETWEEN {{first:Date}} AND {{last:Date}}",
        parameters={"first": first, "last": last},
    ).result_rows
    return [(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


def _failure_counts(
    client: Any,
    database: str,
    column: str,
    first: dt.date,
    last: dt.date,
    org_code: str,
    distinct: bool,
    limit: int | None = None,
) -> list[tuple[str, int]]:
    array = f"arrayDistinct({column})" if distinct else column
    rows = client.query(
        f"SELECT x, count() AS n FROM {database}.quality_results FINAL ARRAY JOIN {array} AS x "
        f"WHERE org_code = {{org:String}} AND event_day BETWEEN {{first:Date}} AND {{last:Date}} "
        f"GROUP BY x ORDER BY n DESC, x" + (f" LIMIT {int(limit)}" if limit else ""),
        parameters={"org": org_code, "first": first, "last": last},
    ).result_rows
    return [(r[0], int(r[1])) for r in rows]


def events_failing_by_rule(
    client: Any, database: str, first: dt.date, last: dt.date, org_code: str
) -> list[tuple[str, int]]:
    """(rule id, events that failed it) for one institution over the days, most failed first."""
    return _failure_counts(client, database, "rule_ids", first, last, org_code, distinct=True)


def events_failing_by_category(
    client: Any, database: str, first: dt.date, last: dt.date, org_code: str
) -> dict[str, int]:
    """category → events that failed at least one rule of it."""
    return dict(_failure_counts(client, database, "categories", first, last, org_code, distinct=True))


def worst_fields(
    client: Any, database: str, first: dt.date, last: dt.date, org_code: str, limit: int = 10
) -> list[tuple[str, int]]:
    """(field path, failures) — a field failing two rules counts twice."""
    return _failure_counts(client, database, "fields", first, last, org_code, distinct=False, limit=limit)


def rule_set_versions(client: Any, database: str, first: dt.date, last: dt.date, org_code: str) -> list[str]:
    """The rule-set versions that judged one institution's events over the days (a report names them)."""
    rows = client.query(
        f"SELECT DISTINCT rule_set_version FROM {database}.quality_results FINAL WHERE org_code = {{org:String}} "
        f"AND event_day BETWEEN {{first:Date}} AND {{last:Date}} ORDER BY rule_set_version",
        parameters={"org": org_code, "first": first, "last": last},
    ).result_rows
    return [r[0] for r in rows]

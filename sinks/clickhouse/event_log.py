"""ClickHouse analytics tables fed by the pipeline: no names, ID numbers, phones or addresses.

``event_log`` has one row per event of every type; ``outpatient_visits`` the analytic fields of visits;
``quality_results`` the quality stage's verdicts (sinks/clickhouse/quality_results.py).
A person appears only as a keyed pseudonym (streams.privacy). Both are ReplacingMergeTree ordered by a key
that ends in the event id, so a replayed batch collapses on merge; counts read with ``FINAL``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from foundation.standards.china_time import CST
from foundation.standards.population_groups import age_at
from sinks.clickhouse.inserts import insert_by_month
from sinks.clickhouse.quality_results import QUALITY_COLUMNS, quality_ddl, quality_row
from sinks.clickhouse.surveillance_tables import (
    NOTIFIABLE_COLUMNS,
    SURVEILLANCE_CASE_COLUMNS,
    notifiable_row,
    surveillance_case_row,
    surveillance_ddl,
)
from sinks.event_sink import SinkRecord
from streams.privacy import person_pseudonym


def table_ddl(database: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.event_log (
            event_id UUID,
            event_type LowCardinality(String),
            occurred_at DateTime64(3, 'UTC'),
            emitted_at DateTime64(3, 'UTC'),
            org_code LowCardinality(String),
            org_region_code LowCardinality(String),
            residence_region_code LowCardinality(String),
            record_version UInt32,
            cancelled Bool,
            person_pseudonym String,
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(ingested_at)
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (event_type, org_code, toDate(occurred_at), event_id)
        COMMENT '每个事件一行, 无个人身份信息 / One row per event, no personal identifiers'""",
        f"""CREATE TABLE IF NOT EXISTS {database}.outpatient_visits (
            event_id UUID,
            occurred_at DateTime64(3, 'UTC'),
            org_code LowCardinality(String),
            org_region_code LowCardinality(String),
            residence_region_code LowCardinality(String),
            person_pseudonym String,
            sex LowCardinality(String),
            age_years Nullable(UInt8),
            visit_type LowCardinality(String),
            department_code LowCardinality(String),
            temperature_c Nullable(Float32),
            diagnosis_codes Array(String),
            primary_diagnosis_code String,
            record_version UInt32,
            cancelled Bool,
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(ingested_at)
        PARTITION BY toYYYYMM(occurred_at)
        ORDER BY (org_region_code, toDate(occurred_at), event_id)
        COMMENT '门急诊就诊分析表, 无个人身份信息 / Outpatient visits for analytics, no personal identifiers'""",
    ]


EVENT_LOG_COLUMNS = [
    "event_id",
    "event_type",
    "occurred_at",
    "emitted_at",
    "org_code",
    "org_region_code",
    "residence_region_code",
    "record_version",
    "cancelled",
    "person_pseudonym",
    "ingested_at",
]
VISIT_COLUMNS = [
    "event_id",
    "occurred_at",
    "org_code",
    "org_region_code",
    "residence_region_code",
    "person_pseudonym",
    "sex",
    "age_years",
    "visit_type",
    "department_code",
    "temperature_c",
    "diagnosis_codes",
    "primary_diagnosis_code",
    "record_version",
    "cancelled",
    "ingested_at",
]


class ClickHouseEventLog:
    name = "sink-clickhouse"
    # The verdicts (quality scores), syndrome cases and notifiable-disease reports (surveillance analytics).

    def __init__(self, client: Any, database: str, pseudonym_key: bytes) -> None:
        self._client = client
        self._db = database
        self._key = pseudonym_key
        for ddl in table_ddl(database) + quality_ddl(database) + surveillance_ddl(database):
            client.command(ddl)

    def _person(self, env: dict[str, Any]) -> str:
        return person_pseudonym(
            self._key, env.get("person_id"), env["source"]["org_code"], env["patient"]["local_patient_id"]
        )

    def write(self, records: list[SinkRecord]) -> int:
        now = dt.datetime.now(dt.UTC)
        log_rows: list[list[Any]] = []
        visit_rows: list[list[Any]] = []
        quality_rows: list[list[Any]] = []
        case_rows: list[list[Any]] = []
        report_rows: list[list[Any]] = []
        for r in records:
            if r.event_type == "quality.result":  # the quality stage's verdicts (quality.results)
                quality_rows.append(quality_row(r.value))
                continue
            if r.event_type == "surveillance.case":
                case_rows.append(surveillance_case_row(r.value, self._key, now))
                continue
            if r.event_type == "collab.work_item_change":
                row = notifiable_row(r.value, self._key, now)
                if row is not None:
                    report_rows.append(row)
                continue
            env = r.value["envelope"]
            source, patient = env["source"], env["patient"]
            person = self._person(env)
            residence = patient.get("residence_region_code") or ""
            log_rows.append(
                [
                    env["event_id"],
                    r.event_type,
                    env["occurred_at"],
                    env["emitted_at"],
                    source["org_code"],
                    source["region_code"],
                    residence,
                    env["record_version"],
                    env["cancelled"],
                    person,
                    now,
                ]
            )
            if r.event_type == "outpatient.visit":
                v = r.value
                codes = [d["code"] for d in v["diagnoses"]]
                primary = next((d["code"] for d in v["diagnoses"] if d["is_primary"]), codes[0] if codes else "")
                visit_rows.append(
                    [
                        env["event_id"],
                        env["occurred_at"],
                        source["org_code"],
                        source["region_code"],
                        residence,
                        person,
                        patient.get("sex") or "",
                        age_at(patient.get("birth_date"), env["occurred_at"].astimezone(CST).date()),
                        v["visit_type"],
                        v.get("department_code") or "",
                        v.get("temperature_c"),
                        codes,
                        primary,
                        env["record_version"],
                        env["cancelled"],
                        now,
                    ]
                )
        db, client = self._db, self._client
        insert_by_month(client, f"{db}.event_log", log_rows, EVENT_LOG_COLUMNS, "occurred_at")
        insert_by_month(client, f"{db}.outpatient_visits", visit_rows, VISIT_COLUMNS, "occurred_at")
        insert_by_month(client, f"{db}.quality_results", quality_rows, QUALITY_COLUMNS, "event_day")
        insert_by_month(client, f"{db}.surveillance_cases", case_rows, SURVEILLANCE_CASE_COLUMNS, "day")
        insert_by_month(client, f"{db}.notifiable_reports", report_rows, NOTIFIABLE_COLUMNS, "diagnosed_day")
        return len(log_rows) + len(quality_rows) + len(case_rows) + len(report_rows)

    def count(self, table: str = "event_log") -> int:
        return int(self._client.command(f"SELECT count() FROM {self._db}.{table} FINAL"))

    @contextmanager
    def _wanted(self, event_ids: list[str], column: str = "event_id") -> Iterator[str]:
        """A session-temporary table of event ids to filter on (an IN list of 10⁵ literals is slow to parse)."""
        self._client.command("CREATE TEMPORARY TABLE IF NOT EXISTS wanted_event_ids (event_id UUID) ENGINE = Memory")
        try:
            self._client.insert("wanted_event_ids", [[e] for e in event_ids], column_names=["event_id"])
            yield f"{column} IN (SELECT event_id FROM wanted_event_ids)"
        finally:
            self._client.command("DROP TEMPORARY TABLE IF EXISTS wanted_event_ids")

    def count_event_ids(self, event_ids: list[str], table: str = "event_log") -> int:
        """How many of these events are in ``table`` (distinct event ids: a synthetic world regenerated with
        other parameters can reuse an id on another day, which the table's sort key keeps apart)."""
        with self._wanted(event_ids) as wanted:
            return int(self._client.command(f"SELECT uniqExact(event_id) FROM {self._db}.{table} FINAL WHERE {wanted}"))

    def failed_rules(self, event_ids: list[str]) -> dict[str, frozenset[str]]:
        """event id → the rule ids its (latest) quality verdict names, for these events."""
        with self._wanted(event_ids) as wanted:
            rows = self._client.query(
                f"SELECT toString(event_id), rule_ids FROM {self._db}.quality_results FINAL WHERE {wanted}"
            ).result_rows
        return {e: frozenset(r) for e, r in rows}

    def count_surveillance_cases(self, case_ids: list[str]) -> int:
        """How many of these visits are syndrome cases in surveillance_cases (FINAL: once each, latest version)."""
        with self._wanted(case_ids, column="case_id") as wanted:
            return int(
                self._client.command(
                    f"SELECT count() FROM {self._db}.surveillance_cases FINAL WHERE {wanted} "
                    "AND NOT withdrawn AND length(syndromes) > 0"
                )
            )

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close:
            close()

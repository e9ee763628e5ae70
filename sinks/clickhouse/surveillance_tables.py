"""ClickHouse side of surveillance: syndrome cases and notifiable-disease reports, and the daily views.

``surveillance_cases`` holds one row per outpatient visit that is or was a case (``surveillance.cases``),
a ReplacingMergeTree on a pseudonym of the source record whose version orders corrections and cancellations (a withdrawn
row replaces the case it withdraws). ``surveillance_daily`` counts cases per syndrome × county ×
population group × day, ``surveillance_daily_county`` per syndrome × county × day: the same series the
stream stage keeps in PostgreSQL for detection, here for analysts. ``notifiable_reports`` holds the
routing stage's notifiable-disease reports (``collab.infectious_disease``), one row per report, the
latest change winning; ``notifiable_trends`` counts live reports per day × county × disease × class ×
population group × occupation. No names, ID numbers, phones or addresses: a person is a keyed pseudonym.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from foundation.standards.china_time import CST
from streams.privacy import pseudonym

SURVEILLANCE_CASE_COLUMNS = [
    "org_code",
    "visit_pseudonym",
    "version",
    "case_id",
    "person_pseudonym",
    "county_code",
    "population_group",
    "day",
    "occurred_at",
    "syndromes",
    "max_temperature_c",
    "evidence_terms",
    "withdrawn",
    "classifier_version",
    "ingested_at",
]
NOTIFIABLE_COLUMNS = [
    "item_id",
    "changed_at",
    "kind",
    "person_pseudonym",
    "county_code",
    "disease",
    "disease_zh",
    "disease_class",
    "diagnosis_code",
    "diagnosed_day",
    "diagnosed_at",
    "deadline_met",
    "age_years",
    "population_group",
    "occupation",
    "withdrawn",
    "ingested_at",
]


def surveillance_ddl(database: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {database}.surveillance_cases (
            org_code LowCardinality(String),
            visit_pseudonym String,
            version UInt64,
            case_id UUID,
            person_pseudonym String,
            county_code LowCardinality(String),
            population_group LowCardinality(String),
            day Date,
            occurred_at DateTime64(3, 'UTC'),
            syndromes Array(LowCardinality(String)),
            max_temperature_c Nullable(Float32),
            evidence_terms Array(String),
            withdrawn Bool,
            classifier_version LowCardinality(String),
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(version)
        PARTITION BY toYYYYMM(day)
        ORDER BY (org_code, visit_pseudonym)
        COMMENT '症候群监测病例, 每就诊一行, 无个人身份信息 / Syndrome cases, one row per visit, no personal identifiers'""",
        f"""CREATE OR REPLACE VIEW {database}.surveillance_daily AS
        SELECT syndrome, county_code, population_group, day, count() AS cases
        FROM {database}.surveillance_cases FINAL ARRAY JOIN syndromes AS syndrome
        WHERE NOT withdrawn
        GROUP BY syndrome, county_code, population_group, day""",
        f"""CREATE OR REPLACE VIEW {database}.surveillance_daily_county AS
        SELECT syndrome, county_code, day, sum(cases) AS cases
        FROM {database}.surveillance_daily GROUP BY syndrome, county_code, day""",
        f"""CREATE TABLE IF NOT EXISTS {database}.notifiable_reports (
            item_id UUID,
            changed_at DateTime64(3, 'UTC'),
            kind LowCardinality(String),
            person_pseudonym String,
            county_code LowCardinality(String),
            disease LowCardinality(String),
            disease_zh LowCardinality(String),
            disease_class LowCardinality(String),
            diagnosis_code String,
            diagnosed_day Date,
            diagnosed_at DateTime64(3, 'UTC'),
            deadline_met Bool,
            age_years Nullable(UInt8),
            population_group LowCardinality(String),
            occupation LowCardinality(String),
            withdrawn Bool,
            ingested_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(changed_at)
        PARTITION BY toYYYYMM(diagnosed_day)
        ORDER BY item_id
        COMMENT '法定传染病报告 (协同路由), 无个人身份信息 / Notifiable-disease reports from routing, no personal identifiers'""",
        f"""CREATE OR REPLACE VIEW {database}.notifiable_trends AS
        SELECT diagnosed_day AS day, county_code, disease, any(disease_zh) AS disease_zh, disease_class,
               population_group, occupation, count() AS reports, countIf(NOT deadline_met) AS late_reports
        FROM {database}.notifiable_reports FINAL
        WHERE NOT withdrawn
        GROUP BY diagnosed_day, county_code, disease, disease_class, population_group, occupation""",
    ]


def surveillance_case_row(value: dict[str, Any], pseudonym_key: bytes, now: dt.datetime) -> list[Any]:
    """A ``surveillance.case`` as its row: the person is already a pseudonym; the visit's source key (an
    institution's own record number) becomes one too, which still keys its versions."""
    return [
        value["org_code"],
        pseudonym(pseudonym_key, "visit", value["org_code"], value["record_key"]),
        value["record_version"] * 2 + int(value["withdrawn"]),
        value["case_id"],
        value["person_pseudonym"],
        value["county_code"],
        value["population_group"],
        value["day"],
        value["occurred_at"],
        value["syndromes"],
        value["max_temperature_c"],
        [e["term"] for e in value["evidence"]],
        value["withdrawn"],
        value["classifier_version"],
        now,
    ]


def notifiable_row(value: dict[str, Any], pseudonym_key: bytes, now: dt.datetime) -> list[Any] | None:
    """A ``collab.work_item_change`` of the infectious_disease route as its row (None for other routes)."""
    detail = value.get("infectious_disease")
    if value["route"] != "infectious_disease" or detail is None:
        return None
    diagnosed: dt.datetime = detail["diagnosed_at"]
    return [
        value["item_id"],
        value["changed_at"],
        value["kind"],
        pseudonym(pseudonym_key, "person", value["person_id"]),
        value["county_code"],
        detail["disease"],
        detail["disease_zh"],
        detail["disease_class"],
        detail["diagnosis_code"],
        diagnosed.astimezone(CST).date(),
        diagnosed,
        detail["deadline_met"],
        detail.get("age_years"),
        detail.get("population_group") or "UNKNOWN",
        detail.get("occupation") or "",
        value["kind"] == "WITHDRAWN",
        now,
    ]

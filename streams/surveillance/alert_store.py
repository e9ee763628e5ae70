"""Early-warning alert state in PostgreSQL: one row per alert, at most one OPEN per series and method.

Written by the surveillance monitor (streams/surveillance/monitor.py) after the broker acknowledged the alert's
message, so the topic and this table agree after a crash (the monitor re-judges and re-publishes the same
alert id); read by the report and `healthbus status`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

DDL = """
CREATE SCHEMA IF NOT EXISTS surveillance;
CREATE TABLE IF NOT EXISTS surveillance.alerts (
    alert_id         text        PRIMARY KEY,
    series_id        text        NOT NULL,
    syndrome         text        NOT NULL,
    county_code      char(6)     NOT NULL,
    population_group text,
    method           text        NOT NULL,
    level            text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('OPEN', 'CLOSED')),
    opened_day       date        NOT NULL,
    last_day         date        NOT NULL,
    closed_day       date,
    observed         bigint      NOT NULL,
    expected         double precision NOT NULL,
    threshold        double precision NOT NULL,
    statistic        double precision NOT NULL,
    p_value          double precision,
    partial_day      boolean     NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON surveillance.alerts (series_id, method) WHERE state = 'OPEN';
COMMENT ON TABLE surveillance.alerts IS '症候群预警 (每序列每方法至多一条开启) / Early-warning alerts, at most one open per series and method';
"""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    alert_id: str
    series_id: str
    syndrome: str
    county_code: str
    population_group: str | None
    method: str
    level: str
    state: str
    opened_day: dt.date
    last_day: dt.date
    closed_day: dt.date | None
    observed: int
    expected: float
    threshold: float
    statistic: float
    p_value: float | None
    partial_day: bool


_COLUMNS = (
    "alert_id, series_id, syndrome, county_code, population_group, method, level, state, opened_day, "
    "last_day, closed_day, observed, expected, threshold, statistic, p_value, partial_day"
)


def ensure_alert_store(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.surveillance.alerts.ddl'))")
        conn.execute(DDL)


def _alert(row: tuple) -> StoredAlert:
    values = list(row)
    values[3] = values[3].strip()
    return StoredAlert(*values)


def open_alerts(conn: psycopg.Connection) -> list[StoredAlert]:
    return [
        _alert(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM surveillance.alerts WHERE state = 'OPEN' ORDER BY opened_day, series_id"
        ).fetchall()
    ]


def alerts_between(conn: psycopg.Connection, first: dt.date, last: dt.date) -> list[StoredAlert]:
    """Alerts open at any time in [first, last] (opened by ``last``, not closed before ``first``)."""
    return [
        _alert(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM surveillance.alerts WHERE opened_day <= %s AND (closed_day IS NULL OR closed_day >= %s) "
            "ORDER BY opened_day, series_id",
            (last, first),
        ).fetchall()
    ]


def save_alert(conn: psycopg.Connection, alert: StoredAlert) -> None:
    """Insert or update one alert (by id), in the caller's transaction."""
    conn.execute(
        f"INSERT INTO surveillance.alerts ({_COLUMNS}) VALUES ({', '.join(['%s'] * 17)}) "
        "ON CONFLICT (alert_id) DO UPDATE SET level = EXCLUDED.level, state = EXCLUDED.state, "
        "last_day = EXCLUDED.last_day, closed_day = EXCLUDED.closed_day, observed = EXCLUDED.observed, "
        "expected = EXCLUDED.expected, threshold = EXCLUDED.threshold, statistic = EXCLUDED.statistic, "
        "p_value = EXCLUDED.p_value, partial_day = EXCLUDED.partial_day, updated_at = now()",
        (
            alert.alert_id,
            alert.series_id,
            alert.syndrome,
            alert.county_code,
            alert.population_group,
            alert.method,
            alert.level,
            alert.state,
            alert.opened_day,
            alert.last_day,
            alert.closed_day,
            alert.observed,
            alert.expected,
            alert.threshold,
            alert.statistic,
            alert.p_value,
            alert.partial_day,
        ),
    )

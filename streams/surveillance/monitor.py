"""The early-warning monitor's edge: daily counts in PostgreSQL → alert changes on alerts.surveillance.

One run (`healthbus surveillance monitor`, from cron or with ``--every``) at a moment ``at``:

1. Which days: every closed day (Asia/Shanghai) not judged yet, oldest first — yesterday normally; after
   downtime, each missed day in order (``surveillance.judged_days`` says which were; a first run starts with
   yesterday) — then today as a **partial day**, once ``surveillance_partial_day_hours`` hours of it have
   passed (early in the day the count so far is always low).
2. For each day, in order: judge every series of the detection plan (streams/surveillance/alerting.py) against
   the alerts open in ``surveillance.alerts``; publish each change (OPEN / UPDATED / CLOSED) keyed by series
   id and wait for the broker's acknowledgement; only then, in one transaction, record the alert rows and
   the judged day. A crash between the two re-judges the day on the next run and publishes the same alert
   ids again (consumers dedupe by alert id); nothing is lost, and a day judged and recorded is never judged
   again as a closed day, so a re-run changes nothing.
3. Gauges: open alerts per syndrome, and the last closed day judged (its 00:00 Asia/Shanghai, Unix seconds:
   ``time() - value`` above two days means the monitor has stopped judging).

A run holds a PostgreSQL advisory lock: a second monitor started beside it waits for it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client import Gauge

from avro_schemas.serde import EventCodec
from avro_schemas.topics import SURVEILLANCE_ALERTS, SURVEILLANCE_CASES
from foundation.settings import Settings
from foundation.standards.china_time import CST
from streams.surveillance.alert_store import ensure_alert_store, open_alerts, save_alert
from streams.surveillance.alerting import (
    CLOSED,
    OPEN,
    UPDATED,
    AlertChange,
    DayResult,
    alert_value,
    history_window,
    judge_day,
)
from streams.surveillance.case_store import ALL_GROUPS, VISITS, daily_counts, ensure_case_store
from streams.surveillance.detection_plan import DetectionPlan, load_plan
from streams.surveillance.syndromes import Syndrome

EVENT_TYPE = "alerts.surveillance_alert"
DDL = """
CREATE SCHEMA IF NOT EXISTS surveillance;
CREATE TABLE IF NOT EXISTS surveillance.judged_days (
    day           date        PRIMARY KEY,
    partial       boolean     NOT NULL,
    judged_at     timestamptz NOT NULL,
    alert_changes integer     NOT NULL
);
COMMENT ON TABLE surveillance.judged_days IS
    '预警已判定日期 (partial: 日内部分日) / Days the early-warning monitor judged; partial: intra-day, so far';
"""
LOCK = "healthbus.surveillance.monitor"

OPEN_ALERTS = Gauge(
    "healthbus_surveillance_alerts_open", "Early-warning alerts open now (all series and methods)", ["syndrome"]
)
LAST_JUDGED = Gauge(
    "healthbus_surveillance_last_judged_day_timestamp_seconds",
    "Start (00:00 Asia/Shanghai) of the last closed day the early-warning monitor judged",
)


@dataclass
class MonitorRun:
    at: dt.datetime
    days: list[DayResult] = field(default_factory=list)
    open_now: int = 0

    def changes(self, state: str | None = None) -> list[AlertChange]:
        return [c for d in self.days for c in d.changes if state is None or c.state == state]

    @property
    def opened(self) -> list[AlertChange]:
        return self.changes(OPEN)

    @property
    def updated(self) -> list[AlertChange]:
        return self.changes(UPDATED)

    @property
    def closed(self) -> list[AlertChange]:
        return self.changes(CLOSED)


def ensure_monitor_tables(conn: psycopg.Connection) -> None:
    ensure_case_store(conn)
    ensure_alert_store(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.surveillance.judged_days.ddl'))")
        conn.execute(DDL)


def days_to_judge(
    conn: psycopg.Connection, at: dt.datetime, partial_day_hours: float, close_day_hours: float = 0.0
) -> list[tuple[dt.date, bool]]:
    """(day, partial) in judging order: the closed days not judged yet, then today when enough of it passed.
    Yesterday counts as closed only ``close_day_hours`` into today: institutions upload a day's visits
    until the next morning (the upload monitor's cutoff is 10:00), and a day judged at midnight would miss
    them; until then it stands as the partial day it was judged the evening before."""
    local = at.astimezone(CST)
    today = local.date()
    hours = (local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 3600
    yesterday = today - dt.timedelta(days=1 if hours >= close_day_hours else 2)
    last_closed, first_partial = conn.execute(  # type: ignore[misc]  # an aggregate: always one row
        "SELECT max(day) FILTER (WHERE NOT partial), min(day) FILTER (WHERE partial) FROM surveillance.judged_days"
    ).fetchone()
    if last_closed is not None:
        start = last_closed + dt.timedelta(days=1)
    else:  # a first run: yesterday (or the day a partial judgement already began with)
        start = min(first_partial, yesterday) if first_partial is not None else yesterday
    out = [(start + dt.timedelta(days=k), False) for k in range((yesterday - start).days + 1)]
    if hours >= partial_day_hours and (last_closed is None or today > last_closed):
        out.append((today, True))
    return out


def data_since(conn: psycopg.Connection) -> dict[str, dt.date]:
    """County → its first day with any visit (the VISITS denominator)."""
    return {
        county.strip(): day
        for county, day in conn.execute(
            "SELECT county_code, min(day) FROM surveillance.daily_counts WHERE syndrome = %s AND population_group = %s "
            "GROUP BY county_code",
            (VISITS, ALL_GROUPS),
        ).fetchall()
    }


def publish(producer: Any, codec: EventCodec, topic: str, values: list[dict[str, Any]]) -> None:
    """Send each alert event keyed by its series id; return only once the broker acknowledged all of them."""
    if not values:
        return
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for value in values:
        producer.produce(
            topic, codec.encode(EVENT_TYPE, value, topic=topic), value["series_id"].encode(), on_delivery=delivered
        )
    if producer.flush(30) or failures:
        raise RuntimeError(
            f"alerts not acknowledged by the broker ({failures[:1]}); nothing recorded, "
            "the next run judges the day again"
        )


def run_monitor(
    conn: psycopg.Connection,
    producer: Any,
    codec: EventCodec,
    topic_prefix: str,
    plan: DetectionPlan,
    at: dt.datetime,
    partial_day_hours: float,
    close_day_hours: float = 0.0,
) -> MonitorRun:
    """One run at ``at`` (an aware datetime); ``conn`` in autocommit mode."""
    if at.tzinfo is None:
        raise ValueError("the moment needs a UTC offset")
    ensure_monitor_tables(conn)
    topic = topic_prefix + SURVEILLANCE_ALERTS
    cases_topic = topic_prefix + SURVEILLANCE_CASES
    run = MonitorRun(at)
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (LOCK,))
    try:
        days = days_to_judge(conn, at, partial_day_hours, close_day_hours)
        if days:
            first, last = history_window(plan, days[0][0], days[-1][0])
            counts = daily_counts(conn, first, last, group=None)
            since = data_since(conn)
        for day, partial in days:
            result = judge_day(counts, day, plan, open_alerts(conn), partial, since)
            publish(producer, codec, topic, [alert_value(c, at, cases_topic) for c in result.changes])
            with conn.transaction():
                for change in result.changes:
                    save_alert(conn, change.alert)
                conn.execute(
                    "INSERT INTO surveillance.judged_days (day, partial, judged_at, alert_changes) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (day) DO UPDATE SET partial = EXCLUDED.partial, "
                    "judged_at = EXCLUDED.judged_at, alert_changes = surveillance.judged_days.alert_changes "
                    "+ EXCLUDED.alert_changes WHERE surveillance.judged_days.partial",
                    (day, partial, at, len(result.changes)),
                )
            run.days.append(result)
        still_open = open_alerts(conn)
        run.open_now = len(still_open)
        last_closed = conn.execute("SELECT max(day) FROM surveillance.judged_days WHERE NOT partial").fetchone()[0]  # type: ignore[index]
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK,))
    per_syndrome = Counter(a.syndrome for a in still_open)
    for syndrome in {*(s.value for s in Syndrome), *per_syndrome}:
        OPEN_ALERTS.labels(syndrome).set(per_syndrome.get(syndrome, 0))
    if last_closed is not None:
        LAST_JUDGED.set(dt.datetime.combine(last_closed, dt.time(0), CST).timestamp())
    return run


def run_once(
    settings: Settings,
    at: dt.datetime,
    producer: Any = None,
    codec: EventCodec | None = None,
    plan: DetectionPlan | None = None,
) -> MonitorRun:
    """A run with the settings' database, broker, topic prefix, plan and partial-day hours (the producer and
    codec are made here unless given, e.g. by a long-running ``--every`` loop)."""
    from confluent_kafka import Producer

    from avro_schemas.serde import codec_for
    from foundation.kafka_config import producer_config

    plan = plan or load_plan(settings.surveillance_detection_plan)
    codec = codec or codec_for(settings.schema_registry_config())
    producer = producer or Producer(producer_config(settings.confluent_config()))
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        return run_monitor(
            conn,
            producer,
            codec,
            settings.topic_prefix,
            plan,
            at,
            settings.surveillance_partial_day_hours,
            settings.surveillance_close_day_hours,
        )

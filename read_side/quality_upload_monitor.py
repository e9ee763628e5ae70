"""The upload monitor's edge: ClickHouse uploads in, open alerts in PostgreSQL, events on alerts.quality.

One run (`healthbus quality monitor`, every few minutes from cron or ``--every``): read uploads per feed per
day for the last 30 days, judge them (streams/quality/upload_monitor.py), then for every transition first
publish the alert event (and wait for the broker's acknowledgement), then record it. A crash between the
two re-publishes the same alert id on the next run, which consumers dedupe; no alert is lost. It also
refreshes today's per institution × event type gauges from the same ClickHouse figures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import Gauge

from avro_schemas.serde import EventCodec
from avro_schemas.topics import QUALITY_ALERTS
from sinks.clickhouse.quality_results import daily_figures, uploads_by_day
from streams.quality.upload_monitor import (
    CST,
    LOW_VOLUME,
    WINDOW_DAYS,
    FeedKey,
    FeedProblem,
    OpenAlert,
    alert_id,
    judge_feeds,
    transitions,
)

DDL = """
CREATE TABLE IF NOT EXISTS quality_feed_alerts (
    alert_id        text PRIMARY KEY,
    org_code        text        NOT NULL,
    org_region_code text        NOT NULL,
    event_type      text        NOT NULL,
    kind            text        NOT NULL,
    day             date        NOT NULL,
    observed        bigint      NOT NULL,
    baseline_median double precision NOT NULL,
    opened_at       timestamptz NOT NULL,
    closed_at       timestamptz
);
CREATE INDEX IF NOT EXISTS quality_feed_alerts_open ON quality_feed_alerts (org_code, event_type) WHERE closed_at IS NULL;
COMMENT ON TABLE quality_feed_alerts IS '上传监测告警状态 / Upload-monitoring alerts, open and closed.';
"""

GAUGE_LABELS = ["org_code", "event_type"]
RECEIVED = Gauge("healthbus_quality_received_today", "Events received today (Asia/Shanghai) per feed", GAUGE_LABELS)
ACCEPTED = Gauge("healthbus_quality_accepted_today", "Events that passed the quality rules today", GAUGE_LABELS)
REJECTED = Gauge("healthbus_quality_rejected_today", "Events rejected by an error-severity rule today", GAUGE_LABELS)
LATE = Gauge("healthbus_quality_late_today", "Events uploaded past their timeliness limit today", GAUGE_LABELS)
SCORE = Gauge("healthbus_quality_score_ratio", "Today's weighted quality score (0..1) per feed", GAUGE_LABELS)
OPEN_ALERTS = Gauge("healthbus_quality_feed_alerts_open", "Upload-monitoring alerts open now", ["kind"])


@dataclass(frozen=True)
class MonitorRun:
    opened: list[FeedProblem]
    closed: list[OpenAlert]
    open_now: int
    feeds: int


def ensure_alert_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.quality_feed_alerts.ddl'))")
        conn.execute(DDL)


def open_alerts(conn: psycopg.Connection) -> list[OpenAlert]:
    rows = conn.execute(
        "SELECT alert_id, org_code, event_type, kind, day FROM quality_feed_alerts WHERE closed_at IS NULL"
    ).fetchall()
    return [OpenAlert(r[0], FeedKey(r[1], r[2]), r[3], r[4]) for r in rows]


def alert_value(
    state: str,
    kind: str,
    key: FeedKey,
    region: str,
    day: dt.date,
    observed: int,
    median: float,
    min_share: float,
    cutoff: str,
    at: dt.datetime,
    the_id: str,
) -> dict[str, Any]:
    what_zh = f"截止 {cutoff} 仍未上传" if kind != LOW_VOLUME else f"上传量低于近4周中位数的 {min_share:.0%}"
    what_en = (
        f"nothing uploaded by {cutoff}" if kind != LOW_VOLUME else f"uploads below {min_share:.0%} of the 4-week median"
    )
    if state == "CLOSED":
        what_zh, what_en = "已恢复: " + what_zh, "recovered: " + what_en
    return {
        "alert_id": the_id,
        "state": state,
        "kind": kind,
        "org_code": key.org_code,
        "org_region_code": region,
        "event_type": key.event_type,
        "day": day,
        "observed": observed,
        "baseline_median": median,
        "min_share": min_share,
        "cutoff": cutoff,
        "changed_at": at,
        "message_zh": f"{key.org_code} {key.event_type} {day.isoformat()}: {what_zh} (当日 {observed}, 中位数 {median:g})",
        "message_en": f"{key.org_code} {key.event_type} {day.isoformat()}: {what_en} (that day {observed}, median {median:g})",
    }


def run_monitor(
    client: Any,
    database: str,
    conn: psycopg.Connection,
    producer: Any,
    codec: EventCodec,
    topic_prefix: str,
    now: dt.datetime,
    cutoff: dt.time,
    min_share: float,
) -> MonitorRun:
    ensure_alert_table(conn)
    today = now.astimezone(CST).date()
    rows = uploads_by_day(client, database, today - dt.timedelta(days=WINDOW_DAYS + 1), today)
    uploads: dict[FeedKey, dict[dt.date, int]] = {}
    regions: dict[str, str] = {}
    for org, region, event_type, day, received in rows:
        uploads.setdefault(FeedKey(org, event_type), {})[day] = received
        regions[org] = region
    problems = judge_feeds(uploads, now, cutoff, min_share)
    current = open_alerts(conn)
    to_open, to_close = transitions(current, problems, uploads, now)
    topic = topic_prefix + QUALITY_ALERTS
    cutoff_text = cutoff.strftime("%H:%M")
    records: list[tuple[str, dict[str, Any]]] = []
    for p in to_open:
        the_id = alert_id(p)
        records.append(
            (
                "open",
                alert_value(
                    "OPEN",
                    p.kind,
                    p.key,
                    regions.get(p.key.org_code, ""),
                    p.day,
                    p.observed,
                    p.baseline_median,
                    min_share,
                    cutoff_text,
                    now,
                    the_id,
                ),
            )
        )
    for a in to_close:
        counts = uploads.get(a.key, {})
        records.append(
            (
                "close",
                alert_value(
                    "CLOSED",
                    a.kind,
                    a.key,
                    regions.get(a.key.org_code, ""),
                    a.day,
                    counts.get(a.day, 0),
                    0.0,
                    min_share,
                    cutoff_text,
                    now,
                    a.alert_id,
                ),
            )
        )
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for _, value in records:
        producer.produce(
            topic,
            codec.encode("alerts.quality_feed", value, topic=topic),
            value["org_code"].encode(),
            on_delivery=delivered,
        )
    if records and (producer.flush(30) or failures):
        raise RuntimeError(
            f"alerts not acknowledged by the broker ({failures[:1]}); nothing recorded, the next run retries"
        )
    with conn.transaction():
        for action, v in records:
            if action == "open":
                conn.execute(
                    "INSERT INTO quality_feed_alerts (alert_id, org_code, org_region_code, event_type, kind, day, "
                    "observed, baseline_median, opened_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (alert_id) DO UPDATE SET closed_at = NULL",
                    (
                        v["alert_id"],
                        v["org_code"],
                        v["org_region_code"],
                        v["event_type"],
                        v["kind"],
                        v["day"],
                        v["observed"],
                        v["baseline_median"],
                        now,
                    ),
                )
            else:
                conn.execute("UPDATE quality_feed_alerts SET closed_at = %s WHERE alert_id = %s", (now, v["alert_id"]))
    _refresh_gauges(client, database, today)
    still_open = open_alerts(conn)
    for kind in ("NO_UPLOAD", "LOW_VOLUME"):
        OPEN_ALERTS.labels(kind).set(sum(1 for a in still_open if a.kind == kind))
    return MonitorRun(to_open, to_close, len(still_open), len(uploads))


def _refresh_gauges(client: Any, database: str, today: dt.date) -> None:
    # A long-running monitor crosses midnight: yesterday's feeds must not linger with yesterday's figures.
    for gauge in (RECEIVED, ACCEPTED, REJECTED, LATE, SCORE):
        gauge.clear()
    for f in daily_figures(client, database, today, today):
        labels = (f.org_code, f.event_type)
        RECEIVED.labels(*labels).set(f.received)
        ACCEPTED.labels(*labels).set(f.accepted)
        REJECTED.labels(*labels).set(f.rejected)
        LATE.labels(*labels).set(f.late)
        SCORE.labels(*labels).set(f.score)

"""`healthbus status`: one terminal screen — services up, workers and their lag, dead letters by reason,
adapter sources' health, newest event per institution, open alerts.

Codes and counts only (no personal data). Every section is gathered on its own: a service that is down
makes its sections say "unavailable (<reason>)" and the others still render. Lag comes from the broker's
end offsets and each group's commits (ops/consumer_lag.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avro_schemas.pipeline import PIPELINE, dead_letter_stages
from avro_schemas.topics import (
    dead_letter_topic,
    declared_inputs,
)
from foundation.settings import Settings

DLQ_CAP = 100_000  # most dead letters read per topic
STALEST_SHOWN = 15
ALERTS_SHOWN = 10
DLQ_ROWS_SHOWN = 12
ADAPTERS_SHOWN = 8
ADAPTER_STALE_SECONDS = 300  # an adapter reports each source at least every 30 s (60 s backoff at most) while it runs


@dataclass
class Section:
    name: str
    title: str
    error: str | None = None  # set: the section is unavailable, and why
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one-line summaries (counts)


@dataclass
class StatusReport:
    generated_at: dt.datetime
    sections: list[Section]

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)


# -- inputs of each stage's consumer group ----------------------------------------------------------------
def stage_inputs(settings: Settings) -> dict[str, list[str]]:
    """Stage → the topics its consumer group ``<group_prefix>.<stage>`` reads, as the pipeline declaration
    says (deployed stages with a group only)."""
    return {
        s.name: list(declared_inputs(s.name, settings.topic_prefix))
        for s in PIPELINE
        if s.consumer_group and s.deployed
    }


# -- sections ----------------------------------------------------------------------------------------------
def _services(settings: Settings) -> Section:
    from ops.stack import lifecycle

    section = Section("services", "Services")
    for r in lifecycle.status(settings):  # probes only; starts nothing
        section.rows.append({"service": r.name, "state": "up" if r.up else "DOWN", "where": r.where})
    return section


def _workers(settings: Settings, marks: dict[tuple[str, int], tuple[int, int]]) -> Section:
    from ops.consumer_lag import stage_lags

    section = Section("workers", "Workers (consumer lag)")
    lags = stage_lags(settings.confluent_config(), stage_inputs(settings), settings.group_id, marks)
    for stage, (group, rows, committed) in lags.items():
        if not committed:
            section.rows.append(
                {
                    "stage": stage,
                    "group": group,
                    "state": "no group",
                    "lag": None,
                    "worst_partition": None,
                    "worst_lag": None,
                    "backlog": sum(r.high for r in rows),
                }
            )
            continue
        worst = max(rows, key=lambda r: r.lag)
        section.rows.append(
            {
                "stage": stage,
                "group": group,
                "state": "ok" if worst.lag == 0 else "behind",
                "lag": sum(r.lag for r in rows),
                "worst_partition": f"{worst.topic.removeprefix(settings.topic_prefix)}[{worst.partition}]",
                "worst_lag": worst.lag,
                "backlog": None,
            }
        )
    return section


def _dead_letters(settings: Settings, marks: dict[tuple[str, int], tuple[int, int]]) -> Section:
    from avro_schemas.serde import DecodeError, codec_for

    section = Section("dead_letters", "Dead letters by stage and reason")
    codec = codec_for(settings.schema_registry_config())
    total = 0
    for stage in dead_letter_stages():
        name = settings.topic_name(dead_letter_topic(stage).name)
        parts = {k: v for k, v in marks.items() if k[0] == name and v[1] > v[0]}
        if not parts:
            continue
        reasons: Counter[str] = Counter()
        read, capped = _read_to_high(settings.confluent_config(), parts, DLQ_CAP)
        for value in read:
            try:
                reasons[codec.decode(value).value["error_code"]] += 1
            except (DecodeError, KeyError, TypeError):
                reasons["(undecodable)"] += 1
        for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            section.rows.append({"stage": stage, "reason": reason, "count": count, "capped": capped})
        total += sum(reasons.values())
    section.notes.append(f"{total} dead letters" if section.rows else "none")
    return section


def _read_to_high(
    kafka_config: dict[str, Any], parts: dict[tuple[str, int], tuple[int, int]], cap: int, timeout: float = 30.0
) -> tuple[list[bytes | None], bool]:
    """Message values of these partitions from their low to their high watermark (at most ``cap``)."""
    from confluent_kafka import Consumer, TopicPartition

    from sinks.batch_consumer import position

    consumer = Consumer({**kafka_config, "group.id": "healthbus-status", "enable.auto.commit": False, "log_level": 3})
    values: list[bytes | None] = []
    try:
        consumer.assign([TopicPartition(t, p, low) for (t, p), (low, _) in parts.items()])
        remaining = {k for k in parts}
        deadline = time.monotonic() + timeout
        while remaining and len(values) < cap and time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is not None:
                    continue
                topic, partition, offset = position(m)
                key = (topic, partition)
                if key in remaining and offset < parts[key][1]:
                    values.append(m.value())
                    if offset + 1 >= parts[key][1]:
                        remaining.discard(key)
    finally:
        consumer.close()
    return values[:cap], len(values) >= cap


def _connect(settings: Settings) -> Any:
    import psycopg

    return psycopg.connect(
        settings.postgres_url, autocommit=True, connect_timeout=3, options="-c statement_timeout=15000"
    )


def _table_exists(conn: Any, name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def _newest_events(settings: Settings, now: dt.datetime) -> Section:
    section = Section("institutions", f"Newest event per institution (PostgreSQL event store, {STALEST_SHOWN} stalest)")
    with _connect(settings) as conn:
        if not _table_exists(conn, "event_store"):
            section.notes.append("no event store yet")
            return section
        rows = conn.execute(
            "SELECT org_code, max(occurred_at), max(stored_at), count(*) FROM event_store GROUP BY org_code "
            "ORDER BY max(stored_at), org_code"
        ).fetchall()
    for org, occurred, stored, count in rows[:STALEST_SHOWN]:
        section.rows.append(
            {
                "org_code": org,
                "newest_occurred_at": occurred,
                "newest_stored_at": stored,
                "stored_ago_seconds": (now - stored).total_seconds(),
                "events": count,
            }
        )
    section.notes.append(f"{len(rows)} institution{'' if len(rows) == 1 else 's'}")
    return section


def _adapter_sources(settings: Settings, now: dt.datetime) -> Section:
    """Each exchange-database source as its adapter process last reported it (adapter_source_health): up or
    DOWN with its consecutive failures, last success and error class, rows its last reconciliation found
    differing; "stale" when no adapter has reported it for a while (the process is not running)."""
    from producers.adapters.state_store import read_health, read_reconciliation_differences

    section = Section("adapters", f"Adapter sources (exchange databases, {ADAPTERS_SHOWN} worst)")
    with _connect(settings) as conn:
        health = read_health(conn)
        differences = read_reconciliation_differences(conn)
    for h in health:
        seen = (now - h.reported_at).total_seconds() if h.reported_at else None
        stale = seen is None or seen > ADAPTER_STALE_SECONDS
        section.rows.append(
            {
                "source_id": h.source_id,
                "org_code": h.org_code,
                "kind": h.kind,
                "state": "stale" if stale else ("up" if h.state == "up" else "DOWN"),
                "reported_state": h.state,
                "consecutive_failures": h.consecutive_failures,
                "last_success_at": h.last_success_at,
                "last_error": h.last_error if h.state == "down" else None,
                "next_attempt_at": h.next_attempt_at if h.state == "down" else None,
                "reported_ago_seconds": seen,
                "reconciliation_difference": differences.get(h.source_id, 0),
            }
        )
    rank = {"DOWN": 0, "stale": 2, "up": 3}
    section.rows.sort(key=lambda r: (rank[r["state"]] - (1 if r["reconciliation_difference"] else 0), r["source_id"]))
    if not health:
        section.notes.append("no adapter has reported yet")
    else:
        counts = Counter(r["state"] for r in section.rows)
        section.notes.append(", ".join(f"{counts[k]} {k}" for k in ("up", "DOWN", "stale") if counts[k]))
        differing = sum(1 for r in section.rows if r["reconciliation_difference"])
        if differing:
            section.notes.append(f"{differing} with reconciliation differences")
    return section


def _alerts(settings: Settings) -> Section:
    from streams.surveillance.alert_store import open_alerts

    section = Section("alerts", f"Open alerts ({ALERTS_SHOWN} newest)")
    found: list[dict[str, Any]] = []
    with _connect(settings) as conn:
        quality = surveillance = 0
        if _table_exists(conn, "quality_feed_alerts"):
            for alert_id, org, event_type, kind, day, opened in conn.execute(
                "SELECT alert_id, org_code, event_type, kind, day, opened_at FROM quality_feed_alerts "
                "WHERE closed_at IS NULL ORDER BY opened_at DESC"
            ).fetchall():
                quality += 1
                found.append(
                    {
                        "kind": "quality",
                        "alert_id": alert_id,
                        "subject": f"{org} {event_type}",
                        "what": kind,
                        "since": day,
                        "sort": opened,
                    }
                )
        if _table_exists(conn, "surveillance.alerts"):
            for a in open_alerts(conn):
                surveillance += 1
                found.append(
                    {
                        "kind": "surveillance",
                        "alert_id": a.alert_id,
                        "subject": a.series_id,
                        "what": f"{a.method} {a.level} obs {a.observed} exp {a.expected:.1f}",
                        "since": a.opened_day,
                        "sort": dt.datetime.combine(a.last_day, dt.time(), dt.UTC),
                    }
                )
    found.sort(key=lambda r: r["sort"], reverse=True)
    section.rows = [{k: v for k, v in r.items() if k != "sort"} for r in found[:ALERTS_SHOWN]]
    section.notes.append(f"{quality} quality feed, {surveillance} surveillance")
    return section


def _guarded(name: str, title: str, build: Callable[[], Section]) -> Section:
    try:
        return build()
    except Exception as exc:  # a section degrades alone; the others still render
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Section(name, title, error=reason[:120])


def gather(settings: Settings, now: dt.datetime | None = None) -> StatusReport:
    """Everything `healthbus status` shows. Reads only: starts nothing, joins no group, commits nothing."""
    from ops.consumer_lag import watermarks
    from ops.stack.broker import broker_answers

    now = now or dt.datetime.now(dt.UTC)
    services = _guarded("services", "Services", lambda: _services(settings))
    broker_up = (
        any(r["service"] == "broker" and r["state"] == "up" for r in services.rows)
        if not services.error
        else broker_answers(settings.kafka_bootstrap, settings.confluent_config())
    )
    marks: dict[tuple[str, int], tuple[int, int]] | None = None
    broker_error = f"broker {settings.kafka_bootstrap} does not answer"
    if broker_up:
        try:
            topics = sorted(
                {t for ts in stage_inputs(settings).values() for t in ts}
                | {settings.topic_name(dead_letter_topic(s).name) for s in dead_letter_stages()}
            )
            marks = watermarks(settings.confluent_config(), topics)
        except Exception as exc:
            broker_error = f"watermarks: {exc}"

    def kafka(name: str, title: str, build: Callable[[dict], Section]) -> Section:
        if marks is None:
            return Section(name, title, error=broker_error)
        return _guarded(name, title, lambda: build(marks))

    return StatusReport(
        now,
        [
            services,
            kafka("workers", "Workers (consumer lag)", lambda m: _workers(settings, m)),
            kafka("dead_letters", "Dead letters by stage and reason", lambda m: _dead_letters(settings, m)),
            _guarded("adapters", "Adapter sources", lambda: _adapter_sources(settings, now)),
            _guarded("institutions", "Newest event per institution", lambda: _newest_events(settings, now)),
            _guarded("alerts", "Open alerts", lambda: _alerts(settings)),
        ],
    )


# -- output ------------------------------------------------------------------------------------------------
def _ago(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")
    return "-" if value is None else str(value)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), *(line(r) for r in rows)]


def _section_lines(s: Section) -> list[str]:
    head = s.title + (f" — {'; '.join(s.notes)}" if s.notes else "")
    if s.error:
        return [head, f"  unavailable ({s.error})"]
    if not s.rows:
        return [head] + ([] if s.notes else ["  none"])
    if s.name == "services":
        body = _table(["service", "state", "where"], [[r["service"], r["state"], r["where"]] for r in s.rows])
    elif s.name == "workers":
        body = _table(
            ["stage", "group", "state", "lag", "worst partition"],
            [
                [
                    r["stage"],
                    r["group"],
                    r["state"],
                    "-" if r["lag"] is None else str(r["lag"]),
                    f"{r['worst_partition']} ({r['worst_lag']})" if r["worst_partition"] else f"backlog {r['backlog']}",
                ]
                for r in s.rows
            ],
        )
    elif s.name == "dead_letters":
        shown = s.rows[:DLQ_ROWS_SHOWN]
        body = _table(
            ["stage", "reason", "count"],
            [[r["stage"], r["reason"], f"{r['count']}{'+' if r['capped'] else ''}"] for r in shown],
        )
        if len(s.rows) > len(shown):
            body.append(f"  … {len(s.rows) - len(shown)} more reasons (healthbus dlq list)")
    elif s.name == "adapters":
        shown = s.rows[:ADAPTERS_SHOWN]
        body = _table(
            ["source", "state", "failures", "last success", "error / next attempt", "reconciliation"],
            [
                [
                    r["source_id"],
                    r["state"] if r["state"] != "stale" else f"stale ({r['reported_state']})",
                    str(r["consecutive_failures"]),
                    _when(r["last_success_at"]),
                    f"{r['last_error']}, retry {_when(r['next_attempt_at'])}" if r["last_error"] else "-",
                    f"{r['reconciliation_difference']} rows differ" if r["reconciliation_difference"] else "ok",
                ]
                for r in shown
            ],
        )
        if len(s.rows) > len(shown):
            body.append(f"  … {len(s.rows) - len(shown)} more sources (--json)")
    elif s.name == "institutions":
        body = _table(
            ["org code", "newest occurred", "newest stored", "ago", "events"],
            [
                [
                    r["org_code"],
                    _when(r["newest_occurred_at"]),
                    _when(r["newest_stored_at"]),
                    _ago(r["stored_ago_seconds"]),
                    str(r["events"]),
                ]
                for r in s.rows
            ],
        )
    else:
        body = _table(
            ["kind", "alert", "subject", "state", "since"],
            [[r["kind"], r["alert_id"], r["subject"], r["what"], _when(r["since"])] for r in s.rows],
        )
    return [head, *body]


def render(report: StatusReport) -> str:
    """Plain text for a terminal (aligned columns, about 60 lines at most)."""
    lines = [f"healthbus status at {_when(report.generated_at)} UTC"]
    for s in report.sections:
        lines += ["", *_section_lines(s)]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def report_json(report: StatusReport) -> dict[str, Any]:
    """The same report as JSON-ready data (``--json``)."""
    return {
        "generated_at": report.generated_at.isoformat(),
        "sections": {
            s.name: {
                "title": s.title,
                "available": s.error is None,
                "error": s.error,
                "notes": s.notes,
                "rows": [{k: _jsonable(v) for k, v in r.items()} for r in s.rows],
            }
            for s in report.sections
        },
    }


def status_command(settings: Settings, as_json: bool = False) -> str:
    """The text `healthbus status [--json]` prints."""
    import json

    report = gather(settings)
    return json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n" if as_json else render(report)

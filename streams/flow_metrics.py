"""What flows through every stage and sink, as Prometheus metrics: events in, out and rejected per stage,
topic and event type; batch sizes and processing time; how long an event has been on the bus.

Labels are few and fixed: ``topic`` is the catalogue name (the deployment's prefix stripped) and
``event_type`` the type the catalogue gives that topic; a topic outside the catalogue counts as "other".
A sink is a stage whose output is a table (``stage="sink-postgres"``).

Latency comes from Kafka timestamps: the adapter's producer stamps each raw event when it publishes it,
and every stage produces its outputs with the timestamp of the input they came from (as Kafka Streams
does), so at any later stage ``now - timestamp`` is the time since the event entered the bus. At a sink
that is the bus's end-to-end latency. An input over a day old is re-stamped instead (retention deletes by
timestamp; streams/faust_runtime/batch_agent.py), so after such a backlog the later stages measure from
the re-stamp, while the stage that met the backlog shows its true age. ``healthbus_source_to_sink_seconds`` adds the adapter's polling:
it starts when the source committed the record to its exchange database (the envelope's ``emitted_at``).
When the record happened (``occurred_at``) is the source's own timeliness, judged by the quality rules.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from avro_schemas.topics import CATALOGUE

BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
SOURCE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)
FLOW = ["stage", "topic", "event_type"]

EVENTS_IN = Counter("healthbus_stage_events_in_total", "Events a stage or sink consumed and acknowledged", FLOW)
EVENTS_OUT = Counter("healthbus_stage_events_out_total", "Records a stage produced (broker-acknowledged)", FLOW)
EVENTS_REJECTED = Counter(
    "healthbus_stage_events_rejected_total",
    "Input events a stage or sink dead-lettered (reasons: healthbus_dead_letters_total)",
    FLOW,
)
BATCH_EVENTS = Histogram(
    "healthbus_stage_batch_events", "Events per batch a stage or sink processed", ["stage"], buckets=BATCH_BUCKETS
)
BATCH_SECONDS = Histogram(
    "healthbus_stage_batch_processing_seconds",
    "Time from taking a batch to its outputs acknowledged (sinks: written)",
    ["stage"],
)
BUS_LATENCY = Histogram(
    "healthbus_bus_latency_seconds",
    "Time since the adapter published the event, when this stage or sink finished with it",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
SOURCE_TO_SINK = Histogram(
    "healthbus_source_to_sink_seconds",
    "Time from the source committing the record to its exchange database to a sink landing it",
    ["stage"],
    buckets=SOURCE_BUCKETS,
)
OUTAGE_RETRIES = Counter(
    "healthbus_stage_outage_retries_total",
    "Batches kept and retried because PostgreSQL, Redis or the brokers could not be reached",
    ["stage"],
)
SINK_ROWS_WRITTEN = Counter(
    "healthbus_sink_rows_written_total", "Rows a sink added (repeats by event id skipped)", ["stage"]
)
SINK_WRITE_ERRORS = Counter(
    "healthbus_sink_write_errors_total", "Failed batch writes (the batch is retried)", ["stage", "error"]
)


class TopicLabels:
    """Full topic name → (catalogue name, event type), cached: label lookups stay a dict hit per message."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._cache: dict[str, tuple[str, str]] = {}

    def __call__(self, full_name: str) -> tuple[str, str]:
        labels = self._cache.get(full_name)
        if labels is None:
            spec = CATALOGUE.get(full_name.removeprefix(self.prefix)) if full_name.startswith(self.prefix) else None
            labels = (spec.name, spec.value_schema) if spec is not None else ("other", "other")
            self._cache[full_name] = labels
        return labels


def count_flow(counter: Counter, stage: str, labels: TopicLabels, topics: Iterable[str]) -> None:
    """Add one per topic occurrence, one ``inc`` per distinct topic (a batch touches few)."""
    for topic, n in Tally(topics).items():
        counter.labels(stage, *labels(topic)).inc(n)


def observe_bus_latency(stage: str, timestamps_ms: Iterable[int | None], now: float | None = None) -> None:
    """Each event's age from its Kafka timestamp (milliseconds; None or ≤ 0: unknown, skipped)."""
    now_ms = (time.time() if now is None else now) * 1000
    histogram = BUS_LATENCY.labels(stage)
    for ts in timestamps_ms:
        if ts and ts > 0:
            histogram.observe(max(now_ms - ts, 0.0) / 1000)


def observe_source_to_sink(stage: str, emitted: Iterable[dt.datetime | None], now: dt.datetime | None = None) -> None:
    current = now or dt.datetime.now(dt.UTC)
    histogram = SOURCE_TO_SINK.labels(stage)
    for at in emitted:
        if at is not None:
            histogram.observe(max((current - at).total_seconds(), 0.0))

"""Run a sink as a process (``healthbus sink postgres|clickhouse``): settings in, loop until SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Literal

from avro_schemas.pipeline import stage
from avro_schemas.serde import codec_for
from avro_schemas.topics import PIPELINE_EVENT_TYPES, expand, identified_topic, validated_topic
from foundation.clickhouse import open_clickhouse
from foundation.settings import Settings
from sinks.batch_consumer import BatchConsumer, SinkProgress, dlq_topic_for
from sinks.clickhouse.event_log import ClickHouseEventLog
from sinks.event_sink import EventSink

SinkKind = Literal["postgres", "clickhouse"]


def open_sink(settings: Settings, kind: SinkKind) -> EventSink:
    if kind == "postgres":
        from sinks.postgres.event_store import PostgresEventStore

        return PostgresEventStore(settings.postgres_url)
    return open_clickhouse_event_log(settings)


def open_clickhouse_event_log(settings: Settings) -> ClickHouseEventLog:
    client = open_clickhouse(settings.clickhouse_url, settings.resolved_chdb_path, settings.clickhouse_database)
    return ClickHouseEventLog(client, settings.clickhouse_database, settings.pseudonym_key.get_secret_value().encode())


def build_consumer(
    settings: Settings,
    sink: EventSink,
    event_types: list[str] | None = None,
    layer: Literal["validated", "identified"] = "validated",
) -> BatchConsumer:
    """Sinks land what passed the quality rules (``validated``), and the topics each sink also reads (ClickHouse:
    every verdict, for the scores). ``identified``: a deployment without the quality stage (the pass-through
    fallback), which has no verdicts either."""
    if layer == "validated":  # what the pipeline declaration says the sink reads, narrowed to event_types
        wanted = {validated_topic(t).name for t in event_types} if event_types else None
        names = [
            n for n in expand(stage(sink.name).reads) if wanted is None or not n.startswith("validated.") or n in wanted
        ]
    else:
        names = [identified_topic(t).name for t in (event_types or PIPELINE_EVENT_TYPES)]
    topics = [settings.topic_name(n) for n in names]
    return BatchConsumer(
        sink,
        topics,
        settings.group_id(sink.name),
        settings.confluent_config(),
        codec_for(settings.schema_registry_config()),
        dlq_topic_for(sink.name, settings.topic_prefix),
        settings.session_timeout_ms,
        settings.sink_batch_size,
        settings.sink_batch_seconds,
        settings.topic_prefix,
    )


def run_sink(
    settings: Settings,
    kind: SinkKind,
    event_types: list[str] | None = None,
    until: Callable[[SinkProgress], bool] | None = None,
) -> SinkProgress:
    sink = open_sink(settings, kind)
    consumer = build_consumer(settings, sink, event_types)
    previous = signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    try:
        return consumer.run(until)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sink.close()

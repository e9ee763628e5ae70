"""``healthbus bench adapter``: exchange DB → broker rows/s for one adapter process over synthetic hospital
and county databases (every table, children and persons joined), next to publishing the same events
already built in memory (encode + sign + produce, no database), and next to producing their pre-encoded
bytes (the broker and client ceiling), all in one run on the same broker.
"""

from __future__ import annotations

import time
import uuid

import psycopg
from confluent_kafka import Producer
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from avro_schemas.serde import EventCodec
from avro_schemas.topics import PIPELINE_EVENT_TYPES, dead_letter_topic, raw_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.bench.table import BenchRow
from ops.stack.postgres import ensure_database, server_conninfo
from ops.topic_admin import create_topics, delete_topics, existing_topics
from producers.adapters.config import load_config
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import AdapterState
from producers.publisher import EventPublisher
from synthetic.exchange_data import generate_exchange_data


def run(settings: Settings, days: int = 7, hospitals: int = 2, seed: int = 3) -> list[BenchRow]:
    run_id = uuid.uuid4().hex[:8]
    s = settings.model_copy(update={"topic_prefix": f"bench-{run_id}.", "group_prefix": f"bench-{run_id}"})
    conf = s.confluent_config()
    exchange = make_conninfo(s.postgres_url, dbname=f"healthbus_bench_{run_id}")
    ensure_database(exchange)
    create_topics(
        conf, s.topic_prefix, specs=[raw_topic(t) for t in PIPELINE_EVENT_TYPES] + [dead_letter_topic("adapter")]
    )
    try:
        generate_exchange_data(exchange, hospitals, 1, days, seed, s.state_dir / f"bench-{run_id}.yaml")
        sources = load_config(s.state_dir / f"bench-{run_id}.yaml").sources
        state = AdapterState(s.postgres_url)
        state.reset([src.source_id for src in sources])
        adapters = [build_adapter(s, src, page_size=5000, settle_seconds=0) for src in sources]
        start = time.perf_counter()
        published = sum(a.run_once().published for a in adapters)
        adapter_seconds = time.perf_counter() - start

        # The same events, built once more in memory (adapters rewound, publishing into a list), then published
        # without the database.
        state.reset([src.source_id for src in sources])
        built: list[tuple[str, dict]] = []
        for adapter in adapters:
            adapter.publisher = _Collector(built)  # type: ignore[assignment]  # publish() and flush() alike
            adapter.run_once()
            adapter.close()
        state.reset([src.source_id for src in sources])
        state.close()
        codec = EventCodec()
        publisher = EventPublisher(conf, codec, s.signing_key_for, s.topic_prefix)
        start = time.perf_counter()
        for event_type, value in built:
            publisher.publish(event_type, value)
        publisher.flush()
        publish_seconds = time.perf_counter() - start

        payloads = [(s.topic_name(raw_topic(t).name), codec.encode(t, v)) for t, v in built]
        producer = Producer(producer_config(conf))
        start = time.perf_counter()
        for topic, p in payloads:
            while True:
                try:
                    producer.produce(topic, p, b"k")
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(60)
        bytes_seconds = time.perf_counter() - start
    finally:
        with psycopg.connect(server_conninfo(s.postgres_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(str(conninfo_to_dict(exchange)["dbname"]))
                )
            )
        delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
    adapter_rate = published / adapter_seconds
    publish_rate = len(built) / publish_seconds
    return [
        BenchRow("adapter rows/s", adapter_rate, "exchange DB → mapped → encoded, signed → acknowledged"),
        BenchRow("publish prebuilt events/s", publish_rate, "baseline: same events from memory (encode+sign+produce)"),
        BenchRow("produce preencoded bytes/s", len(payloads) / bytes_seconds, "ceiling: same payloads, no encoding"),
        BenchRow("adapter / publish ratio", adapter_rate / publish_rate, "target ≥ 0.5"),
        BenchRow("events", published),
    ]


class _Collector:
    """Stands in for the publisher to capture the events the adapter builds (for the baseline)."""

    def __init__(self, into: list[tuple[str, dict]]) -> None:
        self.into = into

    def publish(self, event_type: str, value: dict) -> None:
        self.into.append((event_type, value))

    def flush(self, timeout: float = 30.0) -> None:
        pass

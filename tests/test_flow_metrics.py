"""Flow metrics from real processes and loops: events in/out/rejected per stage, topic and event type; Kafka
timestamps carried from input to output so latency spans the bus; sink batch and latency figures; consumer
lag per group and partition from end offsets and commits."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from avro_schemas.serde import EventCodec
from avro_schemas.topics import SURVEILLANCE_CASES, dead_letter_topic, raw_topic, source_patient_key, validated_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.lag_exporter import LAG, LagExporter
from ops.stack.processes import free_port
from ops.topic_admin import committed_total
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer
from streams.faust_runtime.batch_agent import carried_timestamp_ms
from tests.pipeline_harness import read_topic, start_stage_worker
from tests.quality_events import identified_visits

CODEC = EventCodec()
HOUR_MS = 3_600_000


def _publish_visits(s: Settings, count: int, seed: int, timestamp_ms: int, garbage: int = 0) -> tuple[str, int]:
    """``count`` visits and ``garbage`` undecodable messages on validated.outpatient.visit, all stamped
    ``timestamp_ms`` (as if the adapter had published them then); returns the topic and the visits' count."""
    target = s.topic_name(validated_topic("outpatient.visit").name)
    producer = Producer(producer_config(s.confluent_config()))
    for v in identified_visits(count, seed=seed):
        env = v["envelope"]
        producer.produce(
            target,
            CODEC.encode("outpatient.visit", v),
            source_patient_key(env["source"]["org_code"], env["patient"]["local_patient_id"]),
            timestamp=timestamp_ms,
        )
    for n in range(garbage):
        producer.produce(target, b"not avro", f"X:{n}".encode(), timestamp=timestamp_ms)
    assert producer.flush(30) == 0
    return target, count


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_stage_worker_counts_its_flow_and_keeps_the_input_timestamps(
    own_db_settings: Settings, tmp_path: Path
) -> None:
    s = own_db_settings
    published_at = int(time.time() * 1000) - HOUR_MS  # an hour on the bus already
    target, visits = _publish_visits(s, 300, seed=5, timestamp_ms=published_at, garbage=2)
    port = free_port()
    log = tmp_path / "worker.log"
    worker = start_stage_worker(s, log, "surveillance", "--metrics-port", str(port))
    try:
        deadline = time.monotonic() + 90
        while committed_total(s.confluent_config(), s.group_id("surveillance"), [target]) < visits + 2:
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        samples = _scrape(port)
    finally:
        worker.terminate()
        worker.wait(20)
    cases = read_topic(s, s.topic_name(SURVEILLANCE_CASES), idle=1.0, timeout=20)
    dead = read_topic(s, s.topic_name(dead_letter_topic("surveillance").name), expect=2, timeout=20)
    assert cases and len(dead) == 2
    flow = {"stage": "surveillance", "topic": "validated.outpatient.visit", "event_type": "outpatient.visit"}
    assert _sample(samples, "healthbus_stage_events_in_total", **flow) == visits + 2
    assert _sample(samples, "healthbus_stage_events_rejected_total", **flow) == 2
    assert _sample(
        samples,
        "healthbus_stage_events_out_total",
        stage="surveillance",
        topic=SURVEILLANCE_CASES,
        event_type="surveillance.case",
    ) == len(cases)
    assert (
        _sample(
            samples,
            "healthbus_stage_events_out_total",
            stage="surveillance",
            topic="dlq.surveillance",
            event_type="ops.dead_letter",
        )
        == 2
    )
    assert _sample(samples, "healthbus_stage_batch_events_sum", stage="surveillance") == visits + 2
    # Outputs carry their input's timestamp, so the age measured downstream is the time on the bus.
    assert {m.timestamp()[1] for m in cases + dead} == {published_at}
    assert _sample(samples, "healthbus_bus_latency_seconds_count", stage="surveillance") == visits + 2
    assert _sample(samples, "healthbus_bus_latency_seconds_bucket", stage="surveillance", le="900.0") == 0
    assert _sample(samples, "healthbus_bus_latency_seconds_sum", stage="surveillance") >= (visits + 2) * 3600


def test_a_sink_counts_batches_rows_rejections_and_end_to_end_latency(settings: Settings) -> None:
    s = settings
    published_at = int(time.time() * 1000) - 90_000
    _, visits = _publish_visits(s, 200, seed=6, timestamp_ms=published_at, garbage=1)

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    flow = {"stage": "sink-postgres", "topic": "validated.outpatient.visit", "event_type": "outpatient.visit"}
    before = {
        name: value(name, **labels)
        for name, labels in [
            ("healthbus_stage_events_in_total", flow),
            ("healthbus_stage_events_rejected_total", flow),
            ("healthbus_sink_rows_written_total", {"stage": "sink-postgres"}),
            ("healthbus_stage_batch_events_sum", {"stage": "sink-postgres"}),
            ("healthbus_bus_latency_seconds_count", {"stage": "sink-postgres"}),
            ("healthbus_bus_latency_seconds_sum", {"stage": "sink-postgres"}),
            ("healthbus_source_to_sink_seconds_count", {"stage": "sink-postgres"}),
        ]
    }
    sink = PostgresEventStore(s.postgres_url)
    consumer = build_consumer(s, sink, ["outpatient.visit"])
    try:
        progress = consumer.run(until=lambda p: p.consumed >= visits + 1)
    finally:
        sink.close()
    assert progress.written == visits

    def delta(name: str, **labels: str) -> float:
        return value(name, **labels) - before[name]

    assert delta("healthbus_stage_events_in_total", **flow) == visits
    assert delta("healthbus_stage_events_rejected_total", **flow) == 1
    assert delta("healthbus_sink_rows_written_total", stage="sink-postgres") == visits
    assert delta("healthbus_stage_batch_events_sum", stage="sink-postgres") == visits + 1
    assert delta("healthbus_bus_latency_seconds_count", stage="sink-postgres") == visits + 1
    assert delta("healthbus_bus_latency_seconds_sum", stage="sink-postgres") >= (visits + 1) * 90
    assert delta("healthbus_source_to_sink_seconds_count", stage="sink-postgres") == visits


def test_the_lag_exporter_measures_each_group_per_partition_and_drops_gone_series(settings: Settings) -> None:
    s = settings
    raw = s.topic_name(raw_topic("lab.report").name)
    producer = Producer(producer_config(s.confluent_config()))
    for _n in range(10):
        producer.produce(raw, b"x", b"k", partition=1)
    for _n in range(3):
        producer.produce(raw, b"x", b"k", partition=4)
    assert producer.flush(30) == 0
    committer = Consumer({**s.confluent_config(), "group.id": s.group_id("identify"), "log_level": 3})
    committer.commit(offsets=[TopicPartition(raw, 1, 4)], asynchronous=False)
    committer.close()

    exporter = LagExporter(s)
    rows = {(stage, row.topic, row.partition): row for stage, _, row in exporter.measure()}

    def gauge(stage: str, partition: int) -> float | None:
        return REGISTRY.get_sample_value(
            "healthbus_consumer_lag_messages",
            {"stage": stage, "group": s.group_id(stage), "topic": "raw.lab.report", "partition": str(partition)},
        )

    assert rows[("identify", raw, 1)].lag == 6 and gauge("identify", 1) == 6  # 10 written, 4 committed
    assert rows[("identify", raw, 4)].lag == 3 and gauge("identify", 4) == 3  # never committed: all of it
    assert gauge("identify", 0) == 0
    assert (
        REGISTRY.get_sample_value(
            "healthbus_consumer_group_committed", {"stage": "identify", "group": s.group_id("identify")}
        )
        == 1
    )
    assert (
        REGISTRY.get_sample_value(
            "healthbus_consumer_group_committed", {"stage": "quality", "group": s.group_id("quality")}
        )
        == 0
    )

    # The partitions went away (here: the exporter now looks under a prefix with no topics): so do their series.
    exporter.settings = s.model_copy(update={"topic_prefix": s.topic_prefix + "gone-"})
    assert exporter.measure() == [] and gauge("identify", 1) is None
    assert not [m for m in LAG.collect()[0].samples if m.labels["group"] == s.group_id("identify")]


def test_outputs_carry_a_recent_input_timestamp_but_a_stale_one_is_restamped() -> None:
    now = 1_800_000_000.0
    assert carried_timestamp_ms(now - 3600.5, now) == int((now - 3600.5) * 1000)  # an hour on the bus: kept
    assert carried_timestamp_ms(now - 2 * 86_400, now) == 0  # a reprocessed backlog: stamped on produce
    assert carried_timestamp_ms(None, now) == 0 and carried_timestamp_ms(0.0, now) == 0

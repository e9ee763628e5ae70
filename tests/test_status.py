"""`healthbus status` and consumer lag from the broker's offsets, on Apache Kafka and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from avro_schemas.serde import codec_for
from avro_schemas.topics import dead_letter_topic, validated_topic
from foundation.dead_letters import dead_letter
from foundation.settings import Settings
from ops.consumer_lag import high_watermarks, lag
from ops.status import gather, render, report_json
from sinks.event_sink import SinkRecord
from sinks.postgres.event_store import PostgresEventStore
from streams.surveillance.alert_store import StoredAlert, ensure_alert_store, save_alert
from synthetic.outpatient_visits import outpatient_visits

PER_PARTITION = {0: 95, 1: 41, 2: 0, 3: 7, 4: 1, 5: 60}


def _produce_batched(settings: Settings, topic: str) -> None:
    """Several multi-message batches per partition (linger + small flushes in between)."""
    producer = Producer({**settings.confluent_config(), "linger.ms": 20, "batch.num.messages": 10, "log_level": 3})
    for partition, count in PER_PARTITION.items():
        for i in range(count):
            producer.produce(topic, value=b"v" * 50, key=f"k{i}".encode(), partition=partition)
            if i % 23 == 22:
                producer.flush()
    producer.flush()


def test_high_watermarks_are_the_end_offsets_of_multi_message_batches(settings: Settings) -> None:
    topic = settings.topic_name(validated_topic("outpatient.visit").name)
    _produce_batched(settings, topic)
    marks = high_watermarks(settings.confluent_config(), [topic, settings.topic_name("no.such.topic")])
    assert marks == {(topic, p): n for p, n in PER_PARTITION.items()}


def test_lag_of_a_group_that_committed_part_of_a_topic_is_exact(settings: Settings) -> None:
    topic = settings.topic_name(validated_topic("outpatient.visit").name)
    _produce_batched(settings, topic)
    group = settings.group_id("sink-postgres")
    done = {0: 50, 1: 41, 3: 2}  # 2, 4, 5: never committed
    committer = Consumer(
        {**settings.confluent_config(), "group.id": group, "enable.auto.commit": False, "log_level": 3}
    )
    try:
        committer.commit(offsets=[TopicPartition(topic, p, o) for p, o in done.items()], asynchronous=False)
    finally:
        committer.close()
    rows = {r.partition: r for r in lag(settings.confluent_config(), group, [topic])}
    assert set(rows) == set(PER_PARTITION)
    for p, n in PER_PARTITION.items():
        assert rows[p].high == n
        assert rows[p].committed == done.get(p)
        assert rows[p].lag == n - done.get(p, 0)


def _visit() -> dict:
    return next(iter(outpatient_visits(1, seed=77)))


def _alert() -> StoredAlert:
    day = dt.date.today()
    return StoredAlert(
        "alert-test-0001",
        "ILI:411502",
        "ILI",
        "411502",
        None,
        "EWMA",
        "RED",
        "OPEN",
        day,
        day,
        None,
        42,
        12.5,
        20.0,
        3.3,
        0.001,
        False,
    )


def _seed(settings: Settings) -> dict:
    codec = codec_for(settings.schema_registry_config())
    dlq = settings.topic_name(dead_letter_topic("quality").name)
    visit = _visit()
    producer = Producer({**settings.confluent_config(), "linger.ms": 20, "log_level": 3})
    reasons = ["RULE_FAILED"] * 5 + ["DECODE_ERROR"] * 2
    for i, reason in enumerate(reasons):
        value = dead_letter("quality", reason, "test", "identified.outpatient.visit", 0, i, b"k", b"p")
        producer.produce(dlq, codec.encode("ops.dead_letter", value, topic=dlq), key=b"k")
    producer.flush()
    store = PostgresEventStore(settings.postgres_url)
    try:
        store.write([SinkRecord("outpatient.visit", visit, "validated.outpatient.visit", 0, 0)])
    finally:
        store.close()
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        ensure_alert_store(conn)
        save_alert(conn, _alert())
    return visit


def _no_personal_data(text: str, visit: dict) -> None:
    patient = visit["envelope"]["patient"]
    for secret in (patient["name"], patient["id_number"], patient["phone"], patient["local_patient_id"]):
        assert secret not in text


def test_status_shows_every_section(own_db_settings: Settings) -> None:
    visit = _seed(own_db_settings)
    report = gather(own_db_settings)
    text = render(report)
    print(text)
    assert len(text.splitlines()) <= 60
    for title in ("Services", "Workers", "Dead letters", "Newest event per institution", "Open alerts"):
        assert title in text
    assert "unavailable" not in text
    dlq = {(r["stage"], r["reason"]): r["count"] for r in report.section("dead_letters").rows}
    assert dlq == {("quality", "RULE_FAILED"): 5, ("quality", "DECODE_ERROR"): 2}
    assert "RULE_FAILED" in text and "DECODE_ERROR" in text
    assert visit["envelope"]["source"]["org_code"] in text
    assert "alert-test-0001" in text and "ILI:411502" in text
    workers = {r["stage"]: r for r in report.section("workers").rows}
    assert workers["identify"]["state"] == "no group"
    _no_personal_data(text, visit)
    as_json = json.dumps(report_json(report), ensure_ascii=False)
    _no_personal_data(as_json, visit)
    assert json.loads(as_json)["sections"]["dead_letters"]["available"] is True


def test_status_with_the_broker_unreachable_still_shows_postgres(own_db_settings: Settings) -> None:
    visit = _seed(own_db_settings)
    down = own_db_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    report = gather(down)
    text = render(report)
    print(text)
    assert report.section("workers").error and report.section("dead_letters").error
    assert "unavailable (broker 127.0.0.1:1 does not answer)" in text
    assert visit["envelope"]["source"]["org_code"] in text
    assert "alert-test-0001" in text
    _no_personal_data(text, visit)

"""Sinks write idempotently by event id: running them twice over the same events adds no rows."""

from __future__ import annotations

from avro_schemas.serde import EventCodec
from avro_schemas.topics import validated_topic
from foundation.clickhouse import open_clickhouse
from foundation.settings import Settings
from sinks.clickhouse.event_log import ClickHouseEventLog
from sinks.event_sink import SinkRecord
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer
from streams.privacy import mask_name
from synthetic.outpatient_visits import outpatient_visits


def _records(n: int, seed: int = 3) -> list[SinkRecord]:
    return [
        SinkRecord("outpatient.visit", v, "validated.outpatient.visit", 0, i)
        for i, v in enumerate(outpatient_visits(n, seed=seed))
    ]


def test_postgres_event_store_is_idempotent(settings: Settings) -> None:
    store = PostgresEventStore(settings.postgres_url)
    before = store.count()
    records = _records(500, seed=1234)
    assert store.write(records) == 500
    assert store.write(records) == 0
    assert store.write(records[:100] + _records(50, seed=99)) == 50  # only the new ones land
    assert store.count() - before == 550
    store.close()


def test_clickhouse_event_log_is_idempotent_and_holds_no_identifiers(settings: Settings) -> None:
    client = open_clickhouse(None, settings.resolved_chdb_path, "healthbus")
    sink = ClickHouseEventLog(client, "healthbus", b"test-key")
    records = _records(400)
    sink.write(records)
    sink.write(records[:250])
    assert sink.count() == 400
    assert sink.count("outpatient_visits") == 400
    dump = client.query("SELECT * FROM healthbus.outpatient_visits").result_rows
    text = repr(dump) + repr(client.query("SELECT * FROM healthbus.event_log").result_rows)
    for r in records[:50]:
        patient = r.value["envelope"]["patient"]
        for identifier in (patient["name"], patient["id_number"], patient["phone"], patient["local_patient_id"]):
            assert identifier not in text
    client.close()


def test_sink_loop_run_twice_over_the_same_topic_adds_nothing(settings: Settings) -> None:

    codec = EventCodec()
    conf = settings.confluent_config()
    topic = settings.topic_name(validated_topic("outpatient.visit").name)
    from confluent_kafka import Producer

    producer = Producer(conf)
    values = list(outpatient_visits(1000, seed=5))
    for v in values:
        producer.produce(topic, codec.encode("outpatient.visit", v), v["envelope"]["patient"]["local_patient_id"])
    producer.produce(topic, b"\x00garbage")  # undecodable: dead-lettered, not fatal
    assert producer.flush(10) == 0

    store = PostgresEventStore(settings.postgres_url)
    before = store.count()
    for run in ("first", "second"):  # a second consumer group re-reads everything
        s = settings.model_copy(update={"group_prefix": settings.group_prefix + run})
        consumer = build_consumer(s, store, ["outpatient.visit"])
        progress = consumer.run(until=lambda p: p.consumed >= 1001)
        assert progress.dead_lettered == 1
    assert store.count() - before == 1000
    assert store.count_event_ids([v["envelope"]["event_id"] for v in values]) == 1000
    store.close()


def test_mask_name() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("张三丰") == "张*丰"
    assert mask_name("欧阳娜娜") == "欧**娜"

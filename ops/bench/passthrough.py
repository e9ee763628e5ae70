"""``healthbus bench passthrough``: the Faust pass-through stage next to plain client loops, same broker.

All three paths copy the same N pre-produced, signed outpatient.visit payloads from an input topic to an output
topic and commit their input offsets only after the output is acknowledged (at-least-once). Each rate is
N divided by the span of the output messages' broker append times, so group-join and process start-up
time (the same for every path) are left out.

Append times, not producer timestamps: every bench topic is created with ``message.timestamp.type =
LogAppendTime`` (``BENCH_TOPIC_CONFIG``), and ``BrokerTimeSpan`` refuses any other kind. A healthbus stage
produces its outputs with its input's timestamp (so latency spans the bus), and the span of carried
timestamps is the span of the producer that filled the input, not of the stage: read that way, the Faust
stage once printed 746,268 events/s beside 42,517 for the aiokafka loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition

from avro_schemas.serde import EventCodec
from avro_schemas.topics import TopicSpec, identified_topic, raw_topic, source_patient_key
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from foundation.source_authentication import SIGNATURE_HEADER, sign
from ops.bench.table import BenchRow
from ops.stack.processes import stop_pid
from ops.topic_admin import create_topics, delete_topics, existing_topics
from ops.worker_process import start_worker
from sinks.batch_consumer import consumer_config, position
from synthetic.outpatient_visits import outpatient_visits

Prepared = tuple[bytes, bytes, list[tuple[str, bytes]]]  # payload, key, headers
BENCH_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}  # what a bench times is when the broker appended


def signed_visit(settings: Settings, codec: EventCodec, visit: dict) -> Prepared:
    """An outpatient.visit as its institution's adapter publishes it: keyed and signed."""
    org = visit["envelope"]["source"]["org_code"]
    key = source_patient_key(org, visit["envelope"]["patient"]["local_patient_id"])
    payload = codec.encode("outpatient.visit", visit)
    return payload, key, [(SIGNATURE_HEADER, sign(settings.signing_key_for(org), key, payload))]


def produce_all(settings: Settings, topic: str, prepared: Iterable[Prepared]) -> None:
    producer = Producer(producer_config(settings.confluent_config()))
    for payload, key, headers in prepared:
        while True:
            try:
                producer.produce(topic, payload, key, headers=list(headers))
                break
            except BufferError:  # local queue full: serve delivery reports, retry
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError(f"not every bench event reached {topic}")


def _fill(settings: Settings, topic: str, events: int) -> None:
    """N signed raw events as adapters publish them (5,000 distinct ones, repeated)."""
    codec = EventCodec()
    prepared = [signed_visit(settings, codec, v) for v in outpatient_visits(min(events, 5000), seed=11)]
    produce_all(settings, topic, (prepared[i % len(prepared)] for i in range(events)))


class BrokerTimeSpan:
    """The span of broker append times over the messages seen: how long a worker took to write its outputs.
    A message with a producer's timestamp is refused: a stage carries its input's, which times the input."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.seen = 0

    def add(self, msg: Any) -> None:
        kind, ms = msg.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME:
            raise RuntimeError(f"{msg.topic()} has producer timestamps: create bench topics with BENCH_TOPIC_CONFIG")
        ts = ms / 1000.0
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)
        self.seen += 1

    @property
    def seconds(self) -> float:
        if self.first is None or self.last is None:
            raise RuntimeError("no messages were seen")
        return max(self.last - self.first, 1e-3)


def output_span(conf: dict, topic: str, events: int, group: str, timeout: float) -> float:
    """Seconds between the first and last output message (broker append times); waits until all N are there."""
    consumer = Consumer({**consumer_config(conf, group, 6000), "enable.partition.eof": False})
    consumer.subscribe([topic])
    span = BrokerTimeSpan()
    deadline = time.monotonic() + timeout
    try:
        while span.seen < events and time.monotonic() < deadline:
            for msg in consumer.consume(10000, timeout=0.5):
                if msg.error() is None:
                    span.add(msg)
    finally:
        consumer.close()
    if span.seen < events:
        raise RuntimeError(f"only {span.seen} of {events} events reached {topic} within {timeout:.0f} s")
    return span.seconds


def confluent_loop(conf: dict, source: str, target: str, events: int, group: str) -> None:
    consumer = Consumer(consumer_config(conf, group, 6000))
    producer = Producer(producer_config(conf))
    consumer.subscribe([source])
    done = 0
    try:
        while done < events:
            batch = consumer.consume(5000, timeout=0.5)
            offsets: dict[tuple[str, int], int] = {}
            for msg in batch:
                if msg.error():
                    continue
                while True:
                    try:
                        producer.produce(target, msg.value(), msg.key())
                        break
                    except BufferError:
                        producer.poll(0.01)
                topic, partition, offset = position(msg)
                offsets[(topic, partition)] = offset + 1
                done += 1
            if offsets:
                producer.flush(30)
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


async def aiokafka_loop(aio_conf: dict, source: str, target: str, events: int, group: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        source,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        **aio_conf,
    )
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **aio_conf)
    await consumer.start()
    await producer.start()
    done = 0
    try:
        while done < events:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            futures = []
            for records in batches.values():
                for r in records:
                    futures.append(await producer.send(target, r.value, r.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
                done += len(futures)
    finally:
        await consumer.stop()
        await producer.stop()


def run(settings: Settings, events: int = 100000) -> list[BenchRow]:
    run_id = uuid.uuid4().hex[:8]
    bench = settings.model_copy(update={"topic_prefix": f"bench-{run_id}.", "group_prefix": f"bench-{run_id}"})
    conf = bench.confluent_config()
    source = bench.topic_name(raw_topic("outpatient.visit").name)
    faust_target = bench.topic_name(identified_topic("outpatient.visit").name)
    extra = [
        TopicSpec(
            f"copy-{kind}",
            "bench",
            raw_topic("outpatient.visit").key,
            "outpatient.visit",
            6,
            3_600_000,
            "delete",
            "benchmark output",
        )
        for kind in ("confluent", "aiokafka")
    ]
    create_topics(
        conf,
        bench.topic_prefix,
        specs=[raw_topic("outpatient.visit"), identified_topic("outpatient.visit"), *extra],
        extra_config=BENCH_TOPIC_CONFIG,
    )
    rows: list[BenchRow] = []
    try:
        _fill(bench, source, events)

        target = bench.topic_name("copy-confluent")
        confluent_loop(conf, source, target, events, f"{bench.group_prefix}.confluent")
        confluent_rate = events / output_span(conf, target, events, f"{bench.group_prefix}.count-c", 60)

        target = bench.topic_name("copy-aiokafka")
        asyncio.run(aiokafka_loop(bench.aiokafka_config(), source, target, events, f"{bench.group_prefix}.aiokafka"))
        aiokafka_rate = events / output_span(conf, target, events, f"{bench.group_prefix}.count-a", 60)

        worker = start_worker(bench, bench.state_dir / "logs" / f"bench-worker-{run_id}.log", stage="passthrough")
        try:
            faust_rate = events / output_span(conf, faust_target, events, f"{bench.group_prefix}.count-f", 300)
        finally:
            stop_pid(worker.pid)

        rows = [
            BenchRow("confluent-kafka loop events/s", confluent_rate, "baseline: consume → produce → commit"),
            BenchRow("aiokafka loop events/s", aiokafka_rate, "baseline: getmany → send → commit"),
            BenchRow("faust passthrough events/s", faust_rate, "healthbus worker passthrough"),
            BenchRow("faust / aiokafka ratio", faust_rate / aiokafka_rate, "target ≥ 0.5"),
            BenchRow("events", events),
        ]
    finally:
        delete_topics(conf, list(existing_topics(conf, bench.topic_prefix)))
    return rows

"""The loop every sink runs: consume a batch, decode, write, then commit offsets.

At-least-once: offsets are committed synchronously only after the sink wrote the batch (and any dead
letters were acknowledged), so a crash re-reads at most the uncommitted batch, and the sink's idempotent
write by event id absorbs the repeat. Undecodable messages never stop the loop: they go to ``dlq.<stage>``.
Nor does a record that decodes but cannot be stored (a NUL in a string for PostgreSQL, a value out of a
column's range): a write that fails for any reason but an outage is split in halves until the record that
fails alone is found; it is dead-lettered with its error class and the rest is written.
A database that cannot be reached is waited out: the same batch is written again with backoff (the sink
reconnects) for up to ``OUTAGE_LIMIT_SECONDS``, which stays under the consumer's max.poll.interval.ms so the
group keeps the partitions; past it the process stops and its restart re-reads the batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseUnreachable
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from avro_schemas.serde import DecodeError, EventCodec, RegistryUnavailable
from avro_schemas.topics import dead_letter_topic
from foundation.dead_letters import DEAD_LETTERS, dead_letter
from foundation.kafka_config import producer_config
from sinks.event_sink import EventSink, SinkRecord
from streams.flow_metrics import (
    BATCH_EVENTS,
    BATCH_SECONDS,
    EVENTS_IN,
    EVENTS_REJECTED,
    SINK_ROWS_WRITTEN,
    SINK_WRITE_ERRORS,
    TopicLabels,
    count_flow,
    observe_bus_latency,
    observe_source_to_sink,
)
from streams.inbound import WRONG_EVENT_TYPE

log = logging.getLogger(__name__)
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, ClickHouseUnreachable, RegistryUnavailable)
UNPROCESSABLE = "unprocessable"  # dead-letter code of a record the sink failed to write on its own
SYSTEMIC_BATCH = 16  # a batch this large whose every record fails alone: the sink is broken, not the data
OUTAGE_LIMIT_SECONDS = 240.0  # under max.poll.interval.ms (300 s): the group must not drop us mid-wait


@dataclass
class SinkProgress:
    consumed: int = 0
    written: int = 0
    dead_lettered: int = 0
    batches: int = 0
    last_message_at: float = field(default_factory=time.monotonic)


def consumer_config(kafka_config: dict[str, Any], group_id: str, session_timeout_ms: int) -> dict[str, Any]:
    return {
        **kafka_config,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 5),
        "log_level": 3,
    }


COMMIT_RETRY_SECONDS = 120.0  # under max.poll.interval.ms: the group keeps this member meanwhile
COORDINATOR_MOVING = {
    KafkaError._WAIT_COORD,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
}
REBALANCED = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError._ASSIGNMENT_LOST,
}


class BatchConsumer:
    def __init__(
        self,
        sink: EventSink,
        topics: list[str],
        group_id: str,
        kafka_config: dict[str, Any],
        codec: EventCodec,
        dlq_topic: str,
        session_timeout_ms: int = 6000,
        batch_size: int = 2000,
        batch_seconds: float = 0.5,
        topic_prefix: str = "",
        outage_limit_seconds: float = OUTAGE_LIMIT_SECONDS,
    ) -> None:
        self.sink = sink
        self.labels = TopicLabels(topic_prefix)
        self.outage_limit_seconds = outage_limit_seconds
        self.topics = topics
        self.codec = codec
        self.dlq_topic = dlq_topic
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.progress = SinkProgress()
        self._consumer = Consumer(consumer_config(kafka_config, group_id, session_timeout_ms))
        self._dlq_producer = Producer(producer_config(kafka_config))
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self, until: Callable[[SinkProgress], bool] | None = None) -> SinkProgress:
        """Run until ``stop()`` or until ``until(progress)`` is true after a committed batch."""
        self._consumer.subscribe(self.topics)
        try:
            while not self._stop.is_set():
                messages = self._poll_batch()
                if messages:
                    self._process(messages)
                if until is not None and until(self.progress):
                    break
        finally:
            self._consumer.close()
            self._dlq_producer.flush(10)
        return self.progress

    def _poll_batch(self) -> list[Message]:
        batch: list[Message] = []
        deadline = time.monotonic() + self.batch_seconds
        while len(batch) < self.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch.extend(self._consumer.consume(self.batch_size - len(batch), timeout=remaining))
        return batch

    def _process(self, messages: list[Message]) -> None:
        started = time.monotonic()
        records: list[SinkRecord] = []
        offsets: dict[tuple[str, int], int] = {}
        dead: list[str] = []
        timestamps: list[int] = []
        by_position: dict[tuple[str, int, int], Message] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error on %s: %s", msg.topic(), err)
                continue
            topic, partition, offset = position(msg)
            offsets[(topic, partition)] = offset + 1
            timestamps.append(msg.timestamp()[1])
            by_position[(topic, partition, offset)] = msg
            try:
                decoded = self.codec.decode(msg.value() or b"")
            except RegistryUnavailable:
                raise  # transient: nothing is committed, the batch is read again (a restart waits it out too)
            except DecodeError as exc:
                self._dead_letter(msg, exc.code.value, exc.message)
                dead.append(topic)
                continue
            catalogued, expected = self.labels(topic)
            if catalogued != "other" and decoded.event_type != expected:  # a valid record of another kind
                self._dead_letter(msg, WRONG_EVENT_TYPE, f"a {decoded.event_type} record on the {expected} topic")
                dead.append(topic)
                continue
            records.append(SinkRecord(decoded.event_type, decoded.value, topic, partition, offset))
        if records:
            written, unwritable = self._write_isolating(records)
            for r, kind in unwritable:
                # the error class only: a driver's message may quote the value
                self._dead_letter(
                    by_position[(r.topic, r.partition, r.offset)],
                    UNPROCESSABLE,
                    f"{kind} writing it to the {self.sink.name} store",
                    {"error_class": kind},
                )
                dead.append(r.topic)
            failed = {id(r) for r, _ in unwritable}
            records = [r for r in records if id(r) not in failed]
            self.progress.written += written
            SINK_ROWS_WRITTEN.labels(self.sink.name).inc(written)
        if dead:
            if self._dlq_producer.flush(30):
                raise RuntimeError("dead letters not acknowledged; not committing")
        if offsets:
            self._commit([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
        self.progress.consumed += len(messages)
        self.progress.dead_lettered += len(dead)
        self.progress.batches += 1
        self.progress.last_message_at = time.monotonic()
        self._count(records, dead, timestamps, time.monotonic() - started)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        """Commit the batch, riding out a coordinator that moved or is loading (a broker failed): retried for
        up to COMMIT_RETRY_SECONDS. A commit the group refuses because it rebalanced is dropped: the
        partitions' new owner re-reads from the last commit, and the writes are idempotent."""
        delay, deadline = 0.2, time.monotonic() + COMMIT_RETRY_SECONDS
        while True:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in REBALANCED:
                    log.warning(
                        "%s: commit refused after a rebalance (%s); the new owner re-reads",
                        self.sink.name,
                        error.name(),
                    )
                    return
                if not (error.retriable() or error.code() in COORDINATOR_MOVING) or time.monotonic() > deadline:
                    raise
                log.warning("%s: commit failed (%s); retrying in %.1f s", self.sink.name, error.name(), delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _write_isolating(self, records: list[SinkRecord]) -> tuple[int, list[tuple[SinkRecord, str]]]:
        """``_write``; when it fails for another reason than an outage, the halves are written on their own,
        recursively, until the records that fail alone are found. Returns (rows written, those records with
        their error class)."""
        try:
            return self._write(records), []
        except OUTAGE_ERRORS:
            raise
        except Exception as exc:
            if len(records) == 1:
                log.warning(
                    "%s: %s writing %s[%d]@%d alone",
                    self.sink.name,
                    type(exc).__name__,
                    records[0].topic,
                    records[0].partition,
                    records[0].offset,
                )
                return 0, [(records[0], type(exc).__name__)]
            middle = len(records) // 2
            first, bad_first = self._write_isolating(records[:middle])
            second, bad_second = self._write_isolating(records[middle:])
            unwritable = bad_first + bad_second
            if len(records) >= SYSTEMIC_BATCH and len(unwritable) == len(records):
                raise  # every record fails alone: the sink is broken, not the data
            return first + second, unwritable

    def _write(self, records: list[SinkRecord]) -> int:
        """``sink.write``, again with backoff while its database can't be reached (the sink reconnects)."""
        lost_at: float | None = None
        delay = 0.5
        while True:
            try:
                return self.sink.write(records)
            except OUTAGE_ERRORS as exc:
                SINK_WRITE_ERRORS.labels(self.sink.name, type(exc).__name__).inc()
                now = time.monotonic()
                lost_at = lost_at or now
                if now - lost_at > self.outage_limit_seconds or self._stop.is_set():
                    raise
                # The class name only: driver messages may quote row values.
                log.warning(
                    "%s: %s writing a batch of %d; retrying in %.1f s",
                    self.sink.name,
                    type(exc).__name__,
                    len(records),
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:
                SINK_WRITE_ERRORS.labels(self.sink.name, type(exc).__name__).inc()
                raise

    def _count(self, records: list[SinkRecord], dead: list[str], timestamps: list[int], seconds: float) -> None:
        name = self.sink.name
        count_flow(EVENTS_IN, name, self.labels, (r.topic for r in records))
        if dead:
            count_flow(EVENTS_REJECTED, name, self.labels, dead)
        BATCH_EVENTS.labels(name).observe(len(records) + len(dead))
        BATCH_SECONDS.labels(name).observe(seconds)
        observe_bus_latency(name, timestamps)
        observe_source_to_sink(name, (r.value["envelope"]["emitted_at"] for r in records if "envelope" in r.value))

    def _dead_letter(self, msg: Message, code: str, message: str, details: dict[str, str] | None = None) -> None:
        DEAD_LETTERS.labels(self.sink.name, code).inc()
        topic, partition, offset = position(msg)
        value = dead_letter(
            self.sink.name,
            code,
            message,
            topic,
            partition,
            offset,
            msg.key(),
            msg.value(),
            list(msg.headers() or []),  # type: ignore[arg-type]  # librdkafka hands headers as (str, bytes) pairs
            details,
        )
        payload = self.codec.encode("ops.dead_letter", value, topic=self.dlq_topic)
        self._dlq_producer.produce(self.dlq_topic, payload, msg.key())
        self._dlq_producer.poll(0)
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), code)


def position(msg: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a message that is not an error (librdkafka sets all three then)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None, "an error event has no position"
    return topic, partition, offset


def dlq_topic_for(stage: str, prefix: str) -> str:
    return prefix + dead_letter_topic(stage).name

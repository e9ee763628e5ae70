"""The loop every sink runs: consume a batch, decode, write, then commit offsets.

At-least-once: offsets are committed synchronously only after the sink wrote the batch (and any dead
letters were acknowledged), so a crash re-reads at most the uncommitted batch, and the sink's idempotent
write by event id absorbs the repeat. Undecodable messages never stop the loop: they go to ``dlq.<stage>``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from avro_schemas.serde import DecodeError, EventCodec
from avro_schemas.topics import dead_letter_topic
from producers.publisher import producer_config
from sinks.event_sink import EventSink, SinkRecord
from streams.dead_letters import DEAD_LETTERS, dead_letter

log = logging.getLogger(__name__)


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


class BatchConsumer:
    def __init__(self, sink: EventSink, topics: list[str], group_id: str, kafka_config: dict[str, Any],
                 codec: EventCodec, dlq_topic: str, session_timeout_ms: int = 6000,
                 batch_size: int = 2000, batch_seconds: float = 0.5) -> None:
        self.sink = sink
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
        records: list[SinkRecord] = []
        offsets: dict[tuple[str, int], int] = {}
        dead = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error on %s: %s", msg.topic(), err)
                continue
            offsets[(msg.topic(), msg.partition())] = msg.offset() + 1
            try:
                decoded = self.codec.decode(msg.value())
            except DecodeError as exc:
                self._dead_letter(msg, exc.code.value, exc.message)
                dead += 1
                continue
            records.append(SinkRecord(decoded.event_type, decoded.value, msg.topic(), msg.partition(), msg.offset()))
        if records:
            written = self.sink.write(records)
            self.progress.written += written
        if dead:
            if self._dlq_producer.flush(30):
                raise RuntimeError("dead letters not acknowledged; not committing")
        if offsets:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        self.progress.consumed += len(messages)
        self.progress.dead_lettered += dead
        self.progress.batches += 1
        self.progress.last_message_at = time.monotonic()

    def _dead_letter(self, msg: Message, code: str, message: str) -> None:
        DEAD_LETTERS.labels(self.sink.name, code).inc()
        value = dead_letter(self.sink.name, code, message, msg.topic(), msg.partition(), msg.offset(),
                            msg.key(), msg.value(), msg.headers())
        payload = self.codec.encode("ops.dead_letter", value, topic=self.dlq_topic)
        self._dlq_producer.produce(self.dlq_topic, payload, msg.key())
        self._dlq_producer.poll(0)
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), code)


def dlq_topic_for(stage: str, prefix: str) -> str:
    return prefix + dead_letter_topic(stage).name

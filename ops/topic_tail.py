"""Read a topic's events from the beginning or from its end (``healthbus topics tail TOPIC``).

A throwaway reader: partitions are assigned (no group join, no rebalance), the consumer group id is
unique per run and nothing is committed, so tailing never moves a stage's offsets and leaves no group
behind. Each message is decoded with the codec the stages use; an undecodable one is handed to
``on_undecodable`` and reading goes on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from avro_schemas.json_form import timestamp_text
from avro_schemas.serde import DecodeError, EventCodec, codec_for
from avro_schemas.topics import CATALOGUE
from foundation.settings import Settings

log = logging.getLogger(__name__)

FIRST_FETCH_SECONDS = 3.0  # before the first message, wait at least this long: connecting and the first fetch


class UnknownTopic(LookupError):
    """The name is not in the catalogue, or the topic is not on the broker."""


@dataclass(frozen=True, slots=True)
class MessageMeta:
    topic: str  # the full name on the broker (prefix applied)
    partition: int
    offset: int
    timestamp_ms: int | None  # the message's timestamp (create or log-append time), when it has one
    key: bytes | None


Tailed = tuple[MessageMeta, str, dict[str, Any]]
UndecodableHandler = Callable[[MessageMeta, DecodeError], None]


def _log_undecodable(meta: MessageMeta, error: DecodeError) -> None:
    log.warning("undecodable message at %s[%d]@%d: %s", meta.topic, meta.partition, meta.offset, error)


class TopicTail:
    """Assigned and positioned on construction (so what is produced afterwards is read, even from the end);
    iterate for ``(meta, event type, decoded value)``; ``close`` (or ``with``) when done.

    ``max_messages``: stop after that many messages (undecodable ones count). ``idle_seconds``: stop when
    nothing arrived for that long (None or 0: never; before the first message at least
    ``FIRST_FETCH_SECONDS``)."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        from_beginning: bool = True,
        max_messages: int | None = None,
        idle_seconds: float | None = None,
        codec: EventCodec | None = None,
        on_undecodable: UndecodableHandler | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        if topic not in CATALOGUE:
            raise UnknownTopic(f"{topic!r} is not in the topic catalogue (healthbus topics list)")
        self.catalogue_name = topic
        self.topic = settings.topic_name(topic)
        self.max_messages = max_messages
        self.idle_seconds = idle_seconds or None
        self.codec = codec if codec is not None else codec_for(settings.schema_registry_config())
        self.on_undecodable = on_undecodable or _log_undecodable
        self.poll_seconds = poll_seconds
        self.group_id = f"{settings.group_prefix}.tail.{uuid.uuid4().hex[:12]}"
        self._consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "fetch.wait.max.ms": 100,  # an idle topic answers fast: prompt output, prompt idle stop
                "log_level": 3,
            }
        )
        try:
            self.partitions = self._assign(from_beginning)
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self, from_beginning: bool) -> list[int]:
        metadata = self._consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise UnknownTopic(f"topic {self.topic!r} is not on the broker (healthbus topics create)")
        partitions = sorted(metadata.partitions)
        if from_beginning:
            self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        else:
            self._assign_at_end(partitions)
        return partitions

    def _assign_at_end(self, partitions: list[int]) -> None:
        """Position each partition at its end as it is now (ListOffsets, resolved before assigning), so
        everything produced afterwards is read; a lazily resolved OFFSET_END could skip what arrives first."""
        consumer = self._consumer
        consumer.assign(
            [
                TopicPartition(
                    self.topic, p, consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                )
                for p in partitions
            ]
        )

    def _batches(self) -> Iterator[list[Any]]:
        while True:
            yield self._consumer.consume(num_messages=500, timeout=self.poll_seconds)

    def __iter__(self) -> Iterator[Tailed]:
        decode = self.codec.decode
        remaining = self.max_messages
        started = last_arrival = time.monotonic()
        seen_any = False
        for batch in self._batches():
            now = time.monotonic()
            if not batch:
                if self.idle_seconds is not None:
                    quiet = now - last_arrival
                    if quiet >= self.idle_seconds and (seen_any or now - started >= FIRST_FETCH_SECONDS):
                        return
                continue
            last_arrival = now
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaException(error)
                    log.warning("consumer error on %s: %s", self.topic, error)
                    continue
                partition, offset = message.partition(), message.offset()
                seen_any = True
                timestamp_type, timestamp = message.timestamp()
                meta = MessageMeta(
                    message.topic(), partition, offset, timestamp if timestamp_type else None, message.key()
                )
                try:
                    event = decode(message.value())
                except DecodeError as exc:
                    self.on_undecodable(meta, exc)
                else:
                    yield meta, event.event_type, event.value
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tail_topic(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = True,
    max_messages: int | None = None,
    idle_seconds: float | None = None,
    codec: EventCodec | None = None,
    on_undecodable: UndecodableHandler | None = None,
) -> Iterator[Tailed]:
    """``(meta, event type, decoded value)`` of each message of the catalogue topic ``topic`` (the settings'
    prefix applied), from the beginning or from the end, until ``max_messages`` or ``idle_seconds``."""
    with TopicTail(
        settings,
        topic,
        from_beginning=from_beginning,
        max_messages=max_messages,
        idle_seconds=idle_seconds,
        codec=codec,
        on_undecodable=on_undecodable,
    ) as tail:
        yield from tail


def summary_line(meta: MessageMeta, event_type: str, value: dict[str, Any]) -> str:
    """partition, offset, event type, event id, occurred at: no personal data (no names, ids, phones)."""
    envelope = value.get("envelope")
    head: dict[str, Any] = envelope if isinstance(envelope, dict) else value
    event_id = head.get("event_id") or head.get("dead_letter_id") or "-"
    occurred = head.get("occurred_at") or head.get("failed_at")
    return (
        f"{meta.partition:>3} {meta.offset:>10}  {event_type:<22} {event_id:<36}  "
        f"{timestamp_text(occurred) if occurred is not None else '-'}"
    )

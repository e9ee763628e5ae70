"""Publish events to their raw topics with an idempotent, acks=all producer.

Every event an adapter publishes goes through ``EventPublisher``: it encodes with the configured wire
format, keys the message so one patient of one institution stays in order, and refuses events whose
source is not the institution the adapter runs as. ``flush`` tells the caller whether the broker
acknowledged everything, which is what lets an adapter advance its watermark safely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from avro_schemas.serde import EventCodec
from avro_schemas.topics import raw_topic, source_patient_key
from foundation.kafka_config import producer_config
from foundation.source_authentication import SIGNATURE_HEADER, sign


class ForeignSourceError(ValueError):
    """An adapter tried to publish an event claiming another institution as its source."""


class DeliveryFailed(RuntimeError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} event(s) not acknowledged by the broker; first: {errors[0]}")
        self.errors = errors


@dataclass
class DeliveryTally:
    acknowledged: int = 0
    failed: list[str] = field(default_factory=list)


class EventPublisher:
    def __init__(
        self,
        kafka_config: dict[str, Any],
        codec: EventCodec,
        signing_key: Callable[[str], bytes],
        topic_prefix: str = "",
        own_org_code: str | None = None,
    ) -> None:
        """``signing_key(org_code)`` gives the key to sign that institution's events with (an adapter has
        only its own). ``own_org_code``: refuse events from any other institution."""
        self._producer = Producer(producer_config(kafka_config))
        self._codec = codec
        self._signing_key = signing_key
        self._keys: dict[str, bytes] = {}
        self._prefix = topic_prefix
        self._own_org_code = own_org_code
        self.tally = DeliveryTally()

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.tally.acknowledged += 1
        else:
            self.tally.failed.append(str(err))

    def publish(
        self,
        event_type: str,
        value: dict[str, Any],
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        envelope = value["envelope"]
        source = envelope["source"]
        if self._own_org_code is not None and source["org_code"] != self._own_org_code:
            raise ForeignSourceError(
                f"this adapter publishes as {self._own_org_code}; refused an event from {source['org_code']}"
            )
        topic = self._prefix + raw_topic(event_type).name
        payload = self._codec.encode(event_type, value, topic=topic)
        org = source["org_code"]
        key = source_patient_key(org, envelope["patient"]["local_patient_id"])
        signing_key = self._keys.get(org) or self._keys.setdefault(org, self._signing_key(org))
        headers: list[tuple[str, str | bytes | None]] = [(SIGNATURE_HEADER, sign(signing_key, key, payload))]
        callback = self._on_delivery if on_delivery is None else _both(self._on_delivery, on_delivery)
        while True:
            try:
                self._producer.produce(topic, payload, key, headers=headers, on_delivery=callback)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every outstanding delivery; raise DeliveryFailed if any was not acknowledged."""
        remaining = self._producer.flush(timeout)
        if remaining:
            self.tally.failed.append(f"{remaining} still in flight after {timeout} s")
        if self.tally.failed:
            errors, self.tally.failed = self.tally.failed, []
            raise DeliveryFailed(errors)


def _both(first: Callable[..., None], second: Callable[..., None]) -> Callable[..., None]:
    def callback(err: KafkaError | None, msg: Message) -> None:
        first(err, msg)
        second(err, msg)

    return callback

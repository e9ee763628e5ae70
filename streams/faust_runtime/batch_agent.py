"""The one way healthbus stages run inside Faust: batches in, records out, acks after broker acks.

A stage is a plain function ``handler(messages) -> list[OutRecord]`` (pure, testable without Kafka). The
agent takes whatever the consumer has buffered (up to ``max_batch``) straight from the agent's channel
queue, calls the handler, produces every output with confluent-kafka (idempotent, acks=all), waits for the
broker to acknowledge all of them, and only then acks the inputs, in order.

Why this is at-least-once: in Faust an input offset becomes committable only through ``Event.ack``
(``Consumer.ack``), and the committer commits only the first unbroken run of acked offsets per partition.
Inputs are acked strictly after ``Producer.flush`` returned with every record delivered; a delivery
failure raises, and the agent's ``CrashingSupervisor`` stops the worker before anything later is acked.
A kill at any point re-delivers the unacked tail: outputs may repeat, never go missing, and every sink
is idempotent by event id.

Why not iterate the stream: ``async for event in stream`` costs an event-loop turn plus sensor calls per
event; reading the channel queue in bulk is what lets a Faust stage keep up with the plain clients
(docs/faust-throughput.md). Events from a previous consumer generation (a rebalance happened) are dropped
unacked, exactly as Faust's Stream does: they are fetched again from the committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] | None = None


BatchHandler = Callable[[list[Any]], list[OutRecord]]
"""Takes Faust ``Message`` objects (topic, partition, offset, key, value, headers); returns the outputs."""


class DeliveryErrors:
    """Collects failed deliveries (the producer reports only errors), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: list[str] = []

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(f"{msg.topic()}: {err}")

    def take(self) -> list[str]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


@dataclass
class AgentProgress:
    batches: int = 0
    events_in: int = 0
    records_out: int = 0


class BatchAgent:
    def __init__(self, app: Any, handler: BatchHandler, producer_config: dict[str, Any], max_batch: int = 2000,
                 flush_timeout: float = 30.0, blocking: bool = False) -> None:
        self.app = app
        self.handler = handler
        self.blocking = blocking  # the handler waits on I/O (a database): run it off the event loop
        self.max_batch = max_batch
        self.flush_timeout = flush_timeout
        self.errors = DeliveryErrors()
        self.producer = Producer({**producer_config, "delivery.report.only.error": True,
                                  "on_delivery": self.errors})
        self.progress = AgentProgress()

    async def __call__(self, stream: Any) -> None:
        app = self.app
        loop = asyncio.get_running_loop()
        channel = aiter(stream.channel)  # subscribes the agent's channel with the Conductor
        queue = channel.queue  # the Conductor puts decoded events here, in offset order per partition
        track = app.consumer.track_message
        while True:
            try:
                events = [await queue.get()]
            except StopAsyncIteration:  # Faust closes the channel at shutdown
                return
            while len(events) < self.max_batch and not queue.empty():
                events.append(queue.get_nowait())
            if not app.flow_control.is_active():
                continue  # rebalancing: drop unacked, they are fetched again
            generation = app.consumer_generation_id
            events = [e for e in events if e.message.generation_id == generation]
            if not events:
                continue
            for event in events:
                message = event.message
                if not message.tracked:  # so a rebalance or shutdown waits for our acks
                    message.tracked = True
                    track(message)
            messages = [e.message for e in events]
            if self.blocking:
                outputs = await loop.run_in_executor(None, self.handler, messages)
            else:
                outputs = self.handler(messages)
            for out in outputs:
                self._produce(out)
            remaining = await loop.run_in_executor(None, self.producer.flush, self.flush_timeout)
            errors = self.errors.take()
            if remaining or errors:
                raise KafkaException(f"{len(errors)} output(s) failed, {remaining} unconfirmed; first: "
                                     f"{errors[:1]}. Inputs not acknowledged; the worker stops.")
            for event in events:
                event.ack()
            self.progress.batches += 1
            self.progress.events_in += len(events)
            self.progress.records_out += len(outputs)

    def _produce(self, out: OutRecord) -> None:
        while True:
            try:
                self.producer.produce(out.topic, out.value, out.key, headers=out.headers)
                return
            except BufferError:  # local queue full: serve delivery reports, retry
                self.producer.poll(0.05)

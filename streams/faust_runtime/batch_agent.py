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
is idempotent by event id. A lost database connection is waited out on a rebuilt stage (``rebuild``).

One bad record never stops a stage: a batch whose handler fails for any other reason is split in halves,
each retried on a rebuilt stage, until the record that fails alone is found; it is dead-lettered with its
error class (``dead_letter``) and the rest of the batch goes on, in order. Only when every record of a large
batch fails on its own is the cause taken to be the stage, not the data, and the worker stops.

Outputs keep their input's Kafka timestamp (``OutRecord.timestamp``), so every later stage can tell how long
an event has been on the bus (streams/flow_metrics.py) — unless the input is older than a day: topics delete
by record timestamp, and a reprocessed week-old raw event stamped with its old time would be due for
deletion on a 3-day topic before the next stage had read it (``carried_timestamp_ms``).

Why not iterate the stream: ``async for event in stream`` costs an event-loop turn plus sensor calls per
event; reading the channel queue in bulk is what lets a Faust stage keep up with the plain clients
(docs/faust-throughput.md). Events from a previous consumer generation (a rebalance happened) are dropped
unacked, exactly as Faust's Stream does: they are fetched again from the committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import redis
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from avro_schemas.serde import RegistryUnavailable
from streams.flow_metrics import (
    BATCH_EVENTS,
    BATCH_SECONDS,
    EVENTS_IN,
    EVENTS_OUT,
    EVENTS_REJECTED,
    OUTAGE_RETRIES,
    TopicLabels,
    count_flow,
    observe_bus_latency,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] | None = None
    timestamp: float | None = None  # seconds: the input's Kafka timestamp, kept so latency spans the whole bus
    rejects: str | None = None  # a dead letter: the input topic whose event it replaces


@dataclass(slots=True)
class PlainMessage:
    """The fields of a Faust ``Message`` a stage reads, for driving a stage without Kafka (tests, benchmarks)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None = None
    timestamp: float | None = None


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

    def pending(self) -> bool:
        with self._lock:
            return bool(self._errors)

    def take(self) -> list[str]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


@dataclass
class AgentProgress:
    batches: int = 0
    events_in: int = 0
    records_out: int = 0


class BatchStage(Protocol):
    """A stage object: the topics it reads, its batch function, and what it holds open."""

    @property
    def inputs(self) -> list[str]: ...

    def handle_batch(self, messages: list[Any]) -> list[OutRecord]: ...

    def close(self) -> None: ...


# Lost connections to PostgreSQL, Redis or the schema registry: the batch is kept and retried on a rebuilt
# stage (see _handle). Anything else is taken to be the data's fault until shown otherwise (_isolate).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    RegistryUnavailable,
)
OUTAGE_LIMIT_SECONDS = 600.0  # longer than this and the worker stops: an operator should look
UNPROCESSABLE = "unprocessable"  # dead-letter code of a record the stage failed on alone
SYSTEMIC_BATCH = 16  # a batch at least this large whose every record fails alone: the stage is broken, not them

DeadLetterer = Callable[[Any, str, str, dict[str, str]], OutRecord]
"""(message, error code, reason, details) -> the dead letter that replaces the message."""


class BatchAgent:
    """``stage`` and ``rebuild`` (a factory of fresh stages) make the agent ride out a database outage: a
    batch whose handler lost its connection is kept, unacknowledged, while the agent waits with backoff; the
    old stage is closed and a new one built, exactly as a restarted worker would build it (no in-memory state
    of the failed attempt survives), and the same batch is handled again. Retrying is safe for the reason a
    restart is: every stage's writes are idempotent by event id. Without ``rebuild`` the error stops the
    worker."""

    def __init__(
        self,
        app: Any,
        handler: BatchHandler,
        producer_config: dict[str, Any],
        max_batch: int = 2000,
        flush_timeout: float = 30.0,
        blocking: bool = False,
        stage_name: str = "passthrough",
        topic_prefix: str = "",
        stage: BatchStage | None = None,
        rebuild: Callable[[], BatchStage] | None = None,
        outage_limit_seconds: float = OUTAGE_LIMIT_SECONDS,
        dead_letter: DeadLetterer | None = None,
    ) -> None:
        self.app = app
        self.handler = handler
        self.blocking = blocking  # the handler waits on I/O (a database): run it off the event loop
        self.max_batch = max_batch
        self.flush_timeout = flush_timeout
        self.errors = DeliveryErrors()
        self.producer = Producer(
            {
                **producer_config,
                "delivery.report.only.error": True,
                "on_delivery": self.errors,
                # librdkafka gives up on a message after 5 minutes by default: keep retrying as long as the
                # stage waits out a broker outage (``_flush``), so the outage limit is the one that counts.
                "message.timeout.ms": int(outage_limit_seconds * 1000),
            }
        )
        self.progress = AgentProgress()
        self.stage_name = stage_name
        self.labels = TopicLabels(topic_prefix)
        self.stage = stage
        self.rebuild = rebuild
        self.outage_limit_seconds = outage_limit_seconds
        self.dead_letter = dead_letter  # None: a failing batch stops the worker (nothing to isolate with)

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
            started = time.monotonic()
            messages = [e.message for e in events]
            outputs = await self._handle(loop, messages, generation)
            if outputs is None:
                continue  # a rebalance happened while the database was away: the batch is fetched again
            for out in outputs:
                self._produce(out)
            remaining = await loop.run_in_executor(None, self._flush)
            errors = self.errors.take()
            if remaining or errors:
                raise KafkaException(
                    f"{len(errors)} output(s) failed, {remaining} unconfirmed; first: "
                    f"{errors[:1]}. Inputs not acknowledged; the worker stops."
                )
            if app.consumer_generation_id != generation:
                continue  # the group rebalanced while the broker was away: the batch is fetched again
            for event in events:
                event.ack()
            self._count(messages, outputs, time.monotonic() - started)

    def _flush(self) -> int:
        """Wait until every output is acknowledged; returns how many are not. While the brokers cannot take
        them (a leader moving, the cluster below min.insync.replicas) the producer keeps retrying, and so
        does this, for up to ``outage_limit_seconds``: an outage is waited out, a delivery error is not."""
        waited_since = time.monotonic()
        while True:
            remaining = self.producer.flush(self.flush_timeout)
            if not remaining or self.errors.pending() or time.monotonic() - waited_since > self.outage_limit_seconds:
                return remaining
            OUTAGE_RETRIES.labels(self.stage_name).inc()
            log.warning(
                "%s: %d output(s) unacknowledged for %.0f s; waiting for the brokers",
                self.stage_name,
                remaining,
                time.monotonic() - waited_since,
            )

    async def _handle(
        self, loop: asyncio.AbstractEventLoop, messages: list[Any], generation: int
    ) -> list[OutRecord] | None:
        """The handler's outputs; across a database outage, those of a rebuilt stage. None: the consumer
        group rebalanced meanwhile, so the batch is no longer ours to finish."""
        lost_at: float | None = None
        delay = 0.5
        while True:
            try:
                if lost_at is not None:  # build the stage afresh, as a restarted worker would
                    await self._rebuild(loop)
                try:
                    return await self._run(loop, messages)
                except OUTAGE_ERRORS:
                    raise
                except Exception as exc:
                    if self.dead_letter is None:
                        raise
                    outputs, poisoned = await self._isolate(loop, messages, exc)
                    if len(messages) >= SYSTEMIC_BATCH and poisoned == len(messages):
                        raise exc  # every record fails alone: the stage is broken, not the data
                    return outputs
            except OUTAGE_ERRORS as exc:
                if self.rebuild is None:
                    raise
                now = time.monotonic()
                lost_at = lost_at or now
                if now - lost_at > self.outage_limit_seconds:
                    raise
                OUTAGE_RETRIES.labels(self.stage_name).inc()
                # The class name only: driver messages may quote statement parameters.
                log.warning(
                    "%s: %s while handling a batch of %d; keeping it and retrying in %.1f s",
                    self.stage_name,
                    type(exc).__name__,
                    len(messages),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                if self.app.consumer_generation_id != generation:
                    return None

    async def _run(self, loop: asyncio.AbstractEventLoop, messages: list[Any]) -> list[OutRecord]:
        if self.blocking:
            return await loop.run_in_executor(None, self.handler, messages)
        return self.handler(messages)

    async def _rebuild(self, loop: asyncio.AbstractEventLoop) -> None:
        """A fresh stage, as a restarted worker would build it: nothing of a failed attempt survives (an
        aborted transaction, a half-filled cache)."""
        if self.rebuild is None:
            return
        fresh = await loop.run_in_executor(None, self.rebuild)
        old, self.stage, self.handler = self.stage, fresh, fresh.handle_batch
        if old is not None:
            await loop.run_in_executor(None, _close_quietly, old)

    async def _isolate(
        self, loop: asyncio.AbstractEventLoop, messages: list[Any], failure: Exception
    ) -> tuple[list[OutRecord], int]:
        """The outputs of ``messages`` (whose handling just failed with ``failure``) with every record that
        fails alone replaced by its dead letter, and how many did: halves are retried on a rebuilt stage,
        recursively, in order. An outage meanwhile propagates to ``_handle``, which waits it out and starts
        over with the whole batch."""
        assert self.dead_letter is not None
        await self._rebuild(loop)
        if len(messages) == 1:
            m, kind = messages[0], type(failure).__name__
            # The class only: a driver's or library's message may quote the value that broke it.
            log.warning(
                "%s: %s on %s[%s]@%s alone; dead-lettered", self.stage_name, kind, m.topic, m.partition, m.offset
            )
            letter = self.dead_letter(m, UNPROCESSABLE, f"{kind} in the {self.stage_name} stage", {"error_class": kind})
            return [letter], 1
        middle = len(messages) // 2
        outputs: list[OutRecord] = []
        poisoned = 0
        for half in (messages[:middle], messages[middle:]):
            try:
                outputs += await self._run(loop, half)
            except OUTAGE_ERRORS:
                raise
            except Exception as exc:
                more, bad = await self._isolate(loop, half, exc)
                outputs += more
                poisoned += bad
        return outputs, poisoned

    def _count(self, messages: list[Any], outputs: list[OutRecord], seconds: float) -> None:
        self.progress.batches += 1
        self.progress.events_in += len(messages)
        self.progress.records_out += len(outputs)
        stage = self.stage_name
        count_flow(EVENTS_IN, stage, self.labels, (m.topic for m in messages))
        count_flow(EVENTS_OUT, stage, self.labels, (o.topic for o in outputs))
        rejected = [o.rejects for o in outputs if o.rejects is not None]
        if rejected:
            count_flow(EVENTS_REJECTED, stage, self.labels, rejected)
        BATCH_EVENTS.labels(stage).observe(len(messages))
        BATCH_SECONDS.labels(stage).observe(seconds)
        observe_bus_latency(stage, (int(m.timestamp * 1000) if m.timestamp else None for m in messages))

    def _produce(self, out: OutRecord) -> None:
        timestamp = carried_timestamp_ms(out.timestamp, time.time())
        while True:
            try:
                headers = list(out.headers) if out.headers is not None else None
                self.producer.produce(out.topic, out.value, out.key, headers=headers, timestamp=timestamp)  # type: ignore[arg-type]
                return
            except BufferError:  # local queue full: serve delivery reports, retry
                self.producer.poll(0.05)


CARRY_TIMESTAMP_MAX_AGE_SECONDS = 86_400.0  # well inside the shortest pipeline retention (3 days)


def carried_timestamp_ms(input_timestamp: float | None, now: float) -> int:
    """The Kafka timestamp for an output: its input's (milliseconds) while that is under a day old, else 0
    (the producer stamps it now), so retention never deletes a reprocessed backlog before it is read."""
    if not input_timestamp or now - input_timestamp > CARRY_TIMESTAMP_MAX_AGE_SECONDS:
        return 0
    return int(input_timestamp * 1000)


def _close_quietly(stage: BatchStage) -> None:
    try:
        stage.close()
    except Exception:  # a half-broken connection may fail to close; the new stage is what matters
        log.debug("closing the previous stage failed", exc_info=True)

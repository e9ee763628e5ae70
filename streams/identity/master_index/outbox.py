"""Publish the master index's transactional outbox (empi.outbox) to the empi.* topics.

The action that changes the index writes its event in the same transaction; this sends what is pending
after commit. At least once: rows are marked published only after the broker acknowledged every one of
them, so a crash or a delivery failure before the mark re-publishes them later (consumers dedupe on
``change_id``). Concurrent publishers skip each other's rows (FOR UPDATE SKIP LOCKED) instead of waiting.
"""

from __future__ import annotations

from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message, Producer

from avro_schemas.serde import EventCodec
from avro_schemas.topics import topic


class OutboxPublishError(RuntimeError):
    """The broker did not acknowledge every event: none of the batch was marked published."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"identity changes not acknowledged by the broker: {errors[0]}")
        self.errors = errors


def publish_pending(
    conn: psycopg.Connection,
    producer: Producer,
    codec: EventCodec,
    topic_prefix: str = "",
    limit: int = 1000,
    flush_timeout: float = 10.0,
) -> int:
    """Send up to ``limit`` unpublished outbox rows, oldest first; returns how many were published.

    Raises OutboxPublishError when any delivery failed or did not finish within ``flush_timeout`` seconds;
    the rows then stay pending. The message key is the row's person key (KeyScheme.PERSON)."""
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    with conn.transaction():
        rows = conn.execute(
            "SELECT change_id, event_type, person_key, payload FROM empi.outbox WHERE published_at IS NULL "
            "ORDER BY created_at, change_id LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        ).fetchall()
        if not rows:
            return 0
        for _change, event_type, person_key, payload in rows:
            name = topic(event_type).full_name(topic_prefix)  # the topic name is the event type
            value = codec.encode(event_type, _avro_payload(payload), topic=name)
            while True:
                try:
                    producer.produce(name, value, person_key.encode(), on_delivery=on_delivery)
                    break
                except BufferError:  # local queue full: let deliveries drain, then retry
                    producer.poll(0.05)
            producer.poll(0)
        remaining = producer.flush(flush_timeout)
        if remaining:
            # Drop what is still queued: the rows stay pending and the next call sends them again, so an
            # old copy delivered later would only be a needless duplicate. (The purge fails their deliveries.)
            producer.purge()
            producer.flush(0)
            failures.insert(0, f"{remaining} not acknowledged within {flush_timeout:g} s")
        if failures:
            raise OutboxPublishError(failures)  # rolls the transaction back: nothing marked
        conn.execute("UPDATE empi.outbox SET published_at = now() WHERE change_id = ANY(%s)", ([r[0] for r in rows],))
    return len(rows)


def _avro_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON as the Avro writer wants it: occurred_at is epoch milliseconds (timestamp-millis)."""
    value = dict(payload)
    value["occurred_at"] = int(value["occurred_at"])
    return value


def pending_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM empi.outbox WHERE published_at IS NULL").fetchone()
    return int(row[0]) if row else 0

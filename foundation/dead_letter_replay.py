"""Dead letters, read back and replayed (`healthbus dlq list|replay`), and a message a stopped stage cannot
get past turned into one (`healthbus dlq skip`).

A dead letter (ops.dead_letter) keeps the original key, payload and headers byte for byte. Replaying one
produces exactly those to the topic it came from (header ``healthbus-replay-of`` = the dead-letter id),
so the stage that rejected it judges it again: it passes if the cause was fixed (a rule, a registered
death withdrawn) and is dead-lettered again if not. Each replay is recorded in PostgreSQL with who and why
(``dlq_replays``, append-only: a trigger refuses changes, read_side/audit_trail.py); a dead letter already replayed
is skipped unless asked ``again``, and the sinks' writes by event id make even a repeated replay land once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition

from avro_schemas.serde import DecodeError, EventCodec
from avro_schemas.topics import dead_letter_topic, declared_inputs
from foundation.append_only import append_only
from foundation.dead_letters import dead_letter
from foundation.kafka_config import producer_config

REPLAY_HEADER = "healthbus-replay-of"
DDL = """
CREATE TABLE IF NOT EXISTS dlq_replays (
    dead_letter_id text        NOT NULL,
    replayed_at    timestamptz NOT NULL,
    stage          text        NOT NULL,
    source_topic   text        NOT NULL,
    actor          text        NOT NULL,
    reason         text        NOT NULL,
    PRIMARY KEY (dead_letter_id, replayed_at)
);
ALTER TABLE dlq_replays ADD COLUMN IF NOT EXISTS db_user text NOT NULL DEFAULT session_user;  -- who connected
COMMENT ON TABLE dlq_replays IS '死信重放审计 (只追加) / Dead-letter replays: who, when, why (append-only).';
"""


@dataclass(frozen=True)
class DeadLetterFilter:
    error_code: str | None = None
    rule_id: str | None = None
    org_code: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    source_topic: str | None = None  # the full topic name the message came from

    def matches(self, value: dict[str, Any]) -> bool:
        if self.error_code and value["error_code"] != self.error_code:
            return False
        if self.source_topic and value["source_topic"] != self.source_topic:
            return False
        if self.rule_id and self.rule_id not in (value["details"].get("rule_ids") or "").split(","):
            return False
        if self.org_code and not (value["key"] or b"").decode(errors="replace").startswith(self.org_code + ":"):
            return False
        if self.since and value["failed_at"] < self.since:
            return False
        return not (self.until and value["failed_at"] >= self.until)


def read_dead_letters(
    kafka_config: dict[str, Any], codec: EventCodec, topic: str, timeout: float = 30.0
) -> Iterator[dict[str, Any]]:
    """Every dead letter on ``topic`` from the beginning to the end as it is now (partition EOF)."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": "healthbus-dlq-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        consumer.assign(partitions)
        open_partitions = {p.partition for p in partitions}
        deadline = time.monotonic() + timeout
        while open_partitions and time.monotonic() < deadline:
            for m in consumer.consume(500, timeout=0.5):
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(m.partition())
                    continue
                try:
                    yield codec.decode(m.value()).value
                except DecodeError:
                    continue
    finally:
        consumer.close()


def ensure_replay_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.dlq_replays.ddl'))")
        conn.execute(DDL)
    append_only(conn, "dlq_replays")


@dataclass
class ReplayOutcome:
    selected: int = 0
    replayed: int = 0
    skipped_already_replayed: int = 0
    refused: list[str] = field(default_factory=list)  # dead-letter ids whose named topic is not the stage's input


def replay_target(letter: dict[str, Any], stage: str, topic_prefix: str) -> str | None:
    """Where a dead letter of ``stage`` (read from dlq.<stage>) may go back to: the topic it names, only when
    that is an input of that stage in the pipeline declaration. A letter is bytes anyone with write access
    to a dead-letter topic could have put there; it must not steer a replay to any other topic."""
    if letter.get("stage") != stage:
        return None
    target = letter.get("source_topic")
    return target if target in declared_inputs(stage, topic_prefix) else None


def replay(
    conn: psycopg.Connection,
    producer: Any,
    dead_letters: list[dict[str, Any]],
    actor: str,
    reason: str,
    *,
    stage: str,
    topic_prefix: str,
    again: bool = False,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayOutcome:
    """Produce each dead letter of ``stage`` back to the input topic it came from (``replay_target``; the
    others are refused), then record the replay. ``progress(done, total)`` hears of each message handed to
    the producer."""
    ensure_replay_table(conn)
    outcome = ReplayOutcome(selected=len(dead_letters))
    outcome.refused = [d["dead_letter_id"] for d in dead_letters if replay_target(d, stage, topic_prefix) is None]
    dead_letters = [d for d in dead_letters if d["dead_letter_id"] not in set(outcome.refused)]
    ids = [d["dead_letter_id"] for d in dead_letters]
    done = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT dead_letter_id FROM dlq_replays WHERE dead_letter_id = ANY(%s)", (ids,)
        ).fetchall()
    }
    chosen = [d for d in dead_letters if again or d["dead_letter_id"] not in done]
    outcome.skipped_already_replayed = len(dead_letters) - len(chosen)
    for n, d in enumerate(chosen, start=1):
        headers = [(k, v) for k, v in d["headers"].items() if k != REPLAY_HEADER]
        headers.append((REPLAY_HEADER, d["dead_letter_id"].encode()))
        producer.produce(d["source_topic"], d["payload"], d["key"], headers=headers)
        if progress is not None:
            progress(n, len(chosen))
    if chosen and producer.flush(30):
        raise RuntimeError("replayed messages not acknowledged by the broker; nothing recorded")
    at = now or dt.datetime.now(dt.UTC)
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dlq_replays (dead_letter_id, replayed_at, stage, source_topic, actor, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(d["dead_letter_id"], at, d["stage"], d["source_topic"], actor, reason) for d in chosen],
        )
    outcome.replayed = len(chosen)
    return outcome


def dlq_topic_name(prefix: str, stage: str) -> str:
    return prefix + dead_letter_topic(stage).name


# -- skipping a message a stage cannot get past ------------------------------------------------------------
SKIPPED_BY_OPERATOR = "skipped_by_operator"
SKIPS_DDL = """
CREATE TABLE IF NOT EXISTS dlq_skips (
    dead_letter_id text        NOT NULL PRIMARY KEY,
    skipped_at     timestamptz NOT NULL,
    stage          text        NOT NULL,
    source_topic   text        NOT NULL,
    source_partition integer   NOT NULL,
    source_offset  bigint      NOT NULL,
    actor          text        NOT NULL,
    reason         text        NOT NULL
);
ALTER TABLE dlq_skips ADD COLUMN IF NOT EXISTS db_user text NOT NULL DEFAULT session_user;  -- who connected
COMMENT ON TABLE dlq_skips IS '跳过的消息 (只追加) / Messages an operator moved past a stopped stage: who, when, why (append-only).';
"""


class SkipRefused(RuntimeError):
    """The skip would be unsafe or pointless; the message says why and what to do."""


def ensure_skip_table(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.dlq_skips.ddl'))")
        conn.execute(SKIPS_DDL)
    append_only(conn, "dlq_skips")


def skip_message(
    conn: psycopg.Connection,
    kafka_config: dict[str, Any],
    codec: EventCodec,
    *,
    stage: str,
    group: str,
    topic: str,
    partition: int,
    offset: int,
    topic_prefix: str,
    actor: str,
    reason: str,
    timeout: float = 30.0,
) -> str:
    """Move ``stage``'s group past the message at ``topic[partition]@offset``, its committed position, after
    turning the message into a dead letter (``skipped_by_operator``) that ``replay`` can send back later, and
    recording who and why. Only while the group has no member (its workers stopped: a running group would
    overwrite the offset) and only at the committed offset (nothing else is skipped with it). Returns the
    dead letter's id."""
    from confluent_kafka import ConsumerGroupTopicPartitions, Producer
    from confluent_kafka.admin import AdminClient

    if topic not in declared_inputs(stage, topic_prefix):
        raise SkipRefused(f"{topic} is not an input of {stage}")
    admin = AdminClient({**kafka_config, "log_level": 3})
    described = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout=timeout)
    if described.members:
        raise SkipRefused(f"{group} has {len(described.members)} member(s): stop the {stage} workers first")
    wanted = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition)])
    committed = admin.list_consumer_group_offsets([wanted], request_timeout=timeout)[group].result(timeout=timeout)
    at = next((tp.offset for tp in committed.topic_partitions if tp.partition == partition), -1)
    if at != offset:
        raise SkipRefused(f"{group} is at offset {at} of {topic}[{partition}], not {offset}: nothing to skip there")
    consumer = Consumer(
        {**kafka_config, "group.id": f"{group}.skip-reader", "enable.auto.commit": False, "log_level": 3}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        message = None
        deadline = time.monotonic() + timeout
        while message is None and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None and m.offset() == offset:
                message = m
    finally:
        consumer.close()
    if message is None:
        raise SkipRefused(f"no message at {topic}[{partition}]@{offset} (deleted by retention?)")
    letter = dead_letter(
        stage, SKIPPED_BY_OPERATOR, reason, topic, partition, offset, message.key(), message.value(),
        list(message.headers() or []), {"actor": actor},  # type: ignore[arg-type]
    )  # fmt: skip
    dlq = topic_prefix + dead_letter_topic(stage).name
    producer = Producer(producer_config(kafka_config))
    producer.produce(dlq, codec.encode("ops.dead_letter", letter, topic=dlq), message.key())
    if producer.flush(timeout):
        raise SkipRefused("the dead letter was not acknowledged by the broker; nothing skipped")
    moved = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition, offset + 1)])
    admin.alter_consumer_group_offsets([moved], request_timeout=timeout)[group].result(timeout=timeout)
    ensure_skip_table(conn)
    conn.execute(
        "INSERT INTO dlq_skips (dead_letter_id, skipped_at, stage, source_topic, source_partition, source_offset, "
        "actor, reason) VALUES (%s, now(), %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (letter["dead_letter_id"], stage, topic, partition, offset, actor, reason),
    )
    return str(letter["dead_letter_id"])

"""Consumer lag per group and partition, from the broker's own offsets (ListOffsets, OffsetFetch).

Measured from outside the workers with the admin API: no consumer, no group join, no fetch, so a dead
worker's lag keeps growing on the dashboard and a lag probe never disturbs a group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

LEADER_MOVING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TRANSPORT,
    # just after a topic is created or a leader changes, a broker may not know the new leader epoch yet;
    # librdkafka does not mark these retriable, but they pass within milliseconds
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH,
}


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    high: int
    lag: int  # high - committed; uncommitted: high - low (everything still on the partition)


def _admin(kafka_config: dict[str, Any]) -> AdminClient:
    return AdminClient({**kafka_config, "log_level": 3})


def _partitions(admin: AdminClient, topics: list[str], timeout: float) -> list[TopicPartition]:
    metadata = admin.list_topics(timeout=timeout).topics
    return [
        TopicPartition(t, p)
        for t in topics
        if t in metadata and metadata[t].error is None
        for p in sorted(metadata[t].partitions)
    ]


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[tuple[str, int], int]:
    """One offset per partition. A partition whose leader is moving or not yet known (a broker failed, a
    topic was just created) answers with a retriable error: asked again until ``timeout``."""
    found: dict[tuple[str, int], int] = {}
    pending, delay = list(partitions), 0.05
    deadline = time.monotonic() + timeout
    while pending:
        futures = admin.list_offsets({tp: spec for tp in pending}, request_timeout=timeout)
        retry: list[TopicPartition] = []
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = future.result(timeout=timeout).offset
            except KafkaException as exc:
                error = exc.args[0]
                if not (error.retriable() or error.code() in LEADER_MOVING) or time.monotonic() > deadline:
                    raise
                retry.append(tp)
        pending = retry
        if pending:
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    return found


def watermarks(
    kafka_config: dict[str, Any], topics: list[str], timeout: float = 15.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) → (low, high): the first offset still held and the next offset to be written.
    Topics that do not exist are left out."""
    admin = _admin(kafka_config)
    partitions = _partitions(admin, topics, timeout)
    if not partitions:
        return {}
    low = _offsets(admin, partitions, OffsetSpec.earliest(), timeout)
    high = _offsets(admin, partitions, OffsetSpec.latest(), timeout)
    return {key: (max(low[key], 0), high[key]) for key in high}


def high_watermarks(
    kafka_config: dict[str, Any], topics: list[str], timeout: float = 15.0
) -> dict[tuple[str, int], int]:
    """(topic, partition) → high watermark (the end offset: the next offset to be written). Topics that do not
    exist are left out."""
    admin = _admin(kafka_config)
    partitions = _partitions(admin, topics, timeout)
    return _offsets(admin, partitions, OffsetSpec.latest(), timeout) if partitions else {}


def committed_offsets(
    kafka_config: dict[str, Any], group: str, partitions: list[tuple[str, int]], timeout: float = 15.0
) -> dict[tuple[str, int], int]:
    """The offsets ``group`` committed on these partitions (partitions it never committed are left out)."""
    if not partitions:
        return {}
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    admin = _admin(kafka_config)  # held until the answer is in: a collected client drops its requests
    future = admin.list_consumer_group_offsets([request], request_timeout=timeout)[group]
    return {
        (tp.topic, tp.partition): tp.offset for tp in future.result(timeout=timeout).topic_partitions if tp.offset >= 0
    }


def lag_from(
    marks: dict[tuple[str, int], tuple[int, int]],
    committed: dict[tuple[str, int], int],
    topics: list[str] | None = None,
) -> list[PartitionLag]:
    """Lag rows from watermarks and a group's commits (``topics``: only these), sorted by topic, partition."""
    rows: list[PartitionLag] = []
    for (topic, partition), (low, high) in sorted(marks.items()):
        if topics is not None and topic not in topics:
            continue
        done = committed.get((topic, partition))
        rows.append(PartitionLag(topic, partition, done, high, max(high - (low if done is None else done), 0)))
    return rows


def lag(kafka_config: dict[str, Any], group: str, topics: list[str], timeout: float = 15.0) -> list[PartitionLag]:
    """The lag of ``group`` on every partition of ``topics`` (those that exist), sorted by topic, partition.
    Never commits, never joins the group."""
    marks = watermarks(kafka_config, topics, timeout)
    return lag_from(marks, committed_offsets(kafka_config, group, list(marks), timeout))


def stage_lags(
    kafka_config: dict[str, Any],
    inputs: dict[str, list[str]],
    group_of: Callable[[str], str],
    marks: dict[tuple[str, int], tuple[int, int]],
) -> dict[str, tuple[str, list[PartitionLag], bool]]:
    """Stage → (its group, lag rows on its input partitions that exist, whether the group ever committed),
    from watermarks measured once for every stage. A stage none of whose inputs exist is left out."""
    out: dict[str, tuple[str, list[PartitionLag], bool]] = {}
    for stage, topics in inputs.items():
        wanted = [k for k in marks if k[0] in topics]
        if not wanted:
            continue
        group = group_of(stage)
        committed = committed_offsets(kafka_config, group, wanted)
        out[stage] = (group, lag_from(marks, committed, topics), bool(committed))
    return out

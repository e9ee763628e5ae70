"""Consumer lag per group and partition, from the high watermarks of fetch responses.

The local broker answers ListOffsets(latest) wrongly (the first offset of the last batch + 1, STACK.md), so
``get_watermark_offsets(cached=False)`` under-counts. Every fetch response carries the partition's true high
watermark, and librdkafka caches it: a consumer assigned (not subscribed: group joins are slow) to each
partition at its committed offset (or its beginning) returns it from ``get_watermark_offsets(cached=True)`` as
soon as one fetch for that partition has come back, an empty partition included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, Consumer, TopicPartition

PROBE_GROUP = "healthbus-lag-probe"  # never commits; only names the probe consumer


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    high: int
    lag: int  # high - committed; uncommitted: high - low (everything still on the partition)


def _probe_consumer(kafka_config: dict[str, Any], group: str = PROBE_GROUP) -> Consumer:
    return Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False, "log_level": 3,
                     # one fetch is all we want: keep what it brings back small
                     "max.partition.fetch.bytes": 4096, "queued.max.messages.kbytes": 1024,
                     "fetch.wait.max.ms": 10})


def _partitions(consumer: Consumer, topics: list[str], timeout: float) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=timeout).topics
    return [TopicPartition(t, p) for t in topics if t in metadata and metadata[t].error is None
            for p in sorted(metadata[t].partitions)]


def _fetch_watermarks(consumer: Consumer, partitions: list[TopicPartition], starts: dict[tuple[str, int], int],
                      timeout: float) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) per partition as the first fetch response for it reported them."""
    consumer.assign([TopicPartition(tp.topic, tp.partition, starts.get((tp.topic, tp.partition), OFFSET_BEGINNING))
                     for tp in partitions])
    found: dict[tuple[str, int], tuple[int, int]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key not in found:
                low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
                if high != OFFSET_INVALID and high >= 0:
                    found[key] = (max(low, 0), high)
        if len(found) == len(partitions):
            return found
        if time.monotonic() > deadline:
            missing = sorted(set((tp.topic, tp.partition) for tp in partitions) - set(found))
            raise TimeoutError(f"no fetch response within {timeout:.0f} s for {len(missing)} partitions, "
                               f"e.g. {missing[:3]}")
        consumer.consume(1000, timeout=0.1)  # drives fetches; the messages themselves are not needed


def watermarks(kafka_config: dict[str, Any], topics: list[str], timeout: float = 15.0
               ) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) → (low, high) watermarks from fetch responses. Topics that do not exist are left out."""
    consumer = _probe_consumer(kafka_config)
    try:
        partitions = _partitions(consumer, topics, timeout)
        return _fetch_watermarks(consumer, partitions, {}, timeout) if partitions else {}
    finally:
        consumer.close()


def high_watermarks(kafka_config: dict[str, Any], topics: list[str], timeout: float = 15.0
                    ) -> dict[tuple[str, int], int]:
    """(topic, partition) → high watermark (the end offset: the next offset to be written), from fetch
    responses. Topics that do not exist are left out."""
    return {k: high for k, (_, high) in watermarks(kafka_config, topics, timeout).items()}


def committed_offsets(kafka_config: dict[str, Any], group: str, partitions: list[tuple[str, int]],
                      timeout: float = 15.0) -> dict[tuple[str, int], int]:
    """The offsets ``group`` committed on these partitions (partitions it never committed are left out)."""
    if not partitions:
        return {}
    consumer = _probe_consumer(kafka_config, group)  # group.id only names whose commits to read
    try:
        return {(tp.topic, tp.partition): tp.offset
                for tp in consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
                if tp.offset >= 0}
    finally:
        consumer.close()


def lag_from(marks: dict[tuple[str, int], tuple[int, int]], committed: dict[tuple[str, int], int],
             topics: list[str] | None = None) -> list[PartitionLag]:
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


def stage_lags(kafka_config: dict[str, Any], inputs: dict[str, list[str]], group_of: Callable[[str], str],
               marks: dict[tuple[str, int], tuple[int, int]]) -> dict[str, tuple[str, list[PartitionLag], bool]]:
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

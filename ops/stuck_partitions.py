"""`healthbus dlq stuck`: input partitions a stage is not getting past, and the message it is stuck on.

A stage isolates a record it fails on and dead-letters it (streams/faust_runtime/batch_agent.py), so a stage
stops only on what is not the data's fault: an outage beyond its limit, or a cause that fails every record.
Either way its group stops committing while its inputs grow. Two measurements ``seconds`` apart find those
partitions; for each the message at the committed offset is described by codes only (institution, event
type, event id), so the operator can judge it, and if it must go, move the group past it with
`healthbus dlq skip` (foundation/dead_letter_replay.py), which keeps it as a replayable dead letter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from avro_schemas.serde import DecodeError, EventCodec
from foundation.settings import Settings
from ops.consumer_lag import stage_lags, watermarks
from ops.status import stage_inputs


@dataclass(frozen=True)
class StuckPartition:
    stage: str
    topic: str  # without the deployment's prefix
    partition: int
    committed: int
    lag: int
    head: dict[str, str]  # the message at the committed offset: org_code, event_type, event_id (or why not)


def _measure(settings: Settings) -> dict[tuple[str, str, int], tuple[int | None, int]]:
    conf, inputs = settings.confluent_config(), stage_inputs(settings)
    marks = watermarks(conf, [t for ts in inputs.values() for t in ts])
    lags = stage_lags(conf, inputs, settings.group_id, marks)
    return {(stage, r.topic, r.partition): (r.committed, r.lag) for stage, (_, rows, _) in lags.items() for r in rows}


def _head(settings: Settings, codec: EventCodec, topic: str, partition: int, offset: int) -> dict[str, str]:
    consumer = Consumer(
        {
            **settings.confluent_config(),
            "group.id": "healthbus-stuck-reader",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None or m.error() is not None or m.offset() != offset:
                continue
            org = (m.key() or b"").partition(b":")[0].decode("ascii", "replace")
            try:
                event_type, envelope = codec.peek_envelope(m.value())
            except DecodeError as exc:
                return {"org_code": org, "problem": exc.code.value}
            return {"org_code": org, "event_type": event_type, "event_id": str(envelope.get("event_id", ""))}
        return {"problem": "not readable (deleted by retention?)"}
    finally:
        consumer.close()


def stuck_partitions(settings: Settings, codec: EventCodec, seconds: float = 10.0) -> list[StuckPartition]:
    """Partitions with lag whose group committed nothing in ``seconds``."""
    before = _measure(settings)
    time.sleep(seconds)
    after = _measure(settings)
    found = []
    for (stage, topic, partition), (committed, lag) in sorted(after.items()):
        if lag > 0 and committed is not None and before.get((stage, topic, partition), (None, 0))[0] == committed:
            found.append(
                StuckPartition(
                    stage,
                    topic.removeprefix(settings.topic_prefix),
                    partition,
                    committed,
                    lag,
                    _head(settings, codec, topic, partition, committed),
                )
            )
    return found

"""How every healthbus process configures its Kafka producer (adapters, stages, sinks, monitors, replay).

The connection part (bootstrap, security) comes from ``Settings.confluent_config()``; this adds what a
producer of the platform must always be: idempotent and acknowledged by every in-sync replica, so a retry
never duplicates and an acknowledged message survives a broker's loss.
"""

from __future__ import annotations

from typing import Any


def producer_config(base: dict[str, Any]) -> dict[str, Any]:
    """Idempotent, fully acknowledged, lightly batched."""
    return {
        **base,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",  # the Java client's partitioner: same key → same partition as Faust/aiokafka
        "log_level": 3,
    }

"""Run pipeline pieces as real processes for tests: stream workers, sink loops, topic readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from foundation.settings import Settings
from streams.faust_runtime.batch_agent import PlainMessage
from tests.conftest import settings_env

RawMessage = PlainMessage  # a stage's input without Kafka


def start_stage_worker(s: Settings, log: Path, stage: str = "passthrough", *options: str) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "worker", stage, *options],
            env=settings_env(s),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def stage_worker(s: Settings, log: Path, stage: str = "passthrough") -> Iterator[subprocess.Popen[bytes]]:
    proc = start_stage_worker(s, log, stage)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def read_topic(s: Settings, topic: str, expect: int | None = None, timeout: float = 60.0, idle: float = 1.0) -> list:
    """Messages on ``topic`` from the beginning: until ``expect`` have arrived, or (``expect`` None) until the
    topic has been quiet for ``idle`` seconds; never longer than ``timeout``. Partitions are assigned, not
    subscribed: no group join, no committed offsets."""
    consumer = Consumer({**s.confluent_config(), "group.id": "unused", "enable.auto.commit": False, "log_level": 3})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline and (expect is None or len(out) < expect):
            batch = [m for m in consumer.consume(5000, timeout=0.1) if not m.error()]
            if batch:
                out += batch
                quiet_since = time.monotonic()
            elif expect is None and time.monotonic() - quiet_since >= (idle if out else max(idle, 3.0)):
                break  # before the first message, allow for the first fetch
    finally:
        consumer.close()
    return out


def read_until_ids(s: Settings, topic: str, wanted: set[str], decode, timeout: float = 120.0) -> list:
    """Read ``topic`` from the beginning until every wanted event id was seen (duplicates are kept)."""
    consumer = Consumer({**s.confluent_config(), "group.id": "unused", "enable.auto.commit": False, "log_level": 3})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list = []
    missing = set(wanted)
    deadline = time.monotonic() + timeout
    try:
        while missing and time.monotonic() < deadline:
            for m in consumer.consume(5000, timeout=0.2):
                if not m.error():
                    out.append(m)
                    missing.discard(decode(m.value()))
    finally:
        consumer.close()
    return out

"""Watch consumer groups' committed offsets over time, per partition, from a background thread.

A stage acknowledges (and so commits) an input only after its outputs are acknowledged, and a sink commits
only after its write: a group's committed offsets over time are how far that stage has really come. The
history is kept per partition, so that a message at (topic, partition, offset) can be dated: it was done by
the group at the first sample whose committed offset there is beyond it (to within the poll interval).
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from ops.topic_admin import admin_client

TP = tuple[str, int]


@dataclass
class GroupHistory:
    """One group's samples: (monotonic time, total committed over its partitions), and per partition the
    times at which its committed offset changed and the new offsets."""

    totals: list[tuple[float, int]] = field(default_factory=list)
    changes: dict[TP, tuple[list[float], list[int]]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.totals[-1][1] if self.totals else 0

    def done_at(self, tp: TP, offset: int) -> float | None:
        """When the group first had the message at ``offset`` of ``tp`` committed (None: not yet)."""
        times, offsets = self.changes.get(tp, ([], []))
        i = bisect.bisect_right(offsets, offset)  # committed offsets only grow: the first one beyond ``offset``
        return times[i] if i < len(offsets) else None

    def reached_at(self, total: int) -> float | None:
        """When the group's committed total first reached ``total``."""
        return next((t for t, n in self.totals if n >= total), None)


class CommitWatch:
    """Polls each named group's committed offsets on its topics every ``interval`` seconds until stopped."""

    def __init__(self, kafka_config: dict, groups: dict[str, tuple[str, list[str]]], interval: float = 0.1) -> None:
        """``groups``: name → (consumer group id, topics whose committed offsets count)."""
        metadata = admin_client(kafka_config).list_topics(timeout=10).topics
        self._partitions = {
            name: [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
            for name, (_, topics) in groups.items()
        }
        # One idle consumer per group, only to ask for its committed offsets (it never joins or commits).
        self._consumers = {
            name: Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False, "log_level": 3})
            for name, (group, _) in groups.items()
        }
        self.history = {name: GroupHistory() for name in groups}
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="commit-watch", daemon=True)
        self._rounds: list[float] = []  # when each round over all groups ended

    def start(self) -> CommitWatch:
        self._thread.start()
        return self

    def total(self, name: str) -> int:
        with self._lock:
            return self.history[name].total

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, consumer in self._consumers.items():
                try:
                    committed = consumer.committed(self._partitions[name], timeout=10)
                except Exception:  # noqa: BLE001 (a slow broker answer: the next poll tries again)
                    continue
                now = time.monotonic()
                with self._lock:
                    h = self.history[name]
                    total = 0
                    for tp in committed:
                        if tp.offset < 0:
                            continue
                        total += tp.offset
                        times, offsets = h.changes.setdefault((tp.topic, tp.partition), ([], []))
                        if not offsets or tp.offset > offsets[-1]:
                            times.append(now)
                            offsets.append(tp.offset)
                    if not h.totals or total != h.totals[-1][1]:
                        h.totals.append((now, total))
            self._rounds.append(time.monotonic())
            self._stop.wait(self._interval)

    def mean_round_seconds(self, since: float) -> float:
        """How far apart the samples of one group were since ``since``: the resolution of ``done_at``."""
        rounds = [t for t in self._rounds if t >= since]
        return (rounds[-1] - rounds[0]) / (len(rounds) - 1) if len(rounds) > 1 else 0.0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        for consumer in self._consumers.values():
            consumer.close()

"""Consumer lag as Prometheus gauges: `healthbus lag --metrics-port 9308 --every 15`.

One process measures every stage's and sink's consumer group on each of its input partitions, from the
broker's end offsets and the group's commits (ops/consumer_lag.py). Measuring from
outside the workers is the point: a worker that is down or wedged reports nothing itself, and that is
exactly when its lag must keep growing on the dashboard. It reads only: joins no group, commits nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Counter, Gauge

from foundation.settings import Settings
from ops.consumer_lag import PartitionLag

log = logging.getLogger(__name__)

LAG = Gauge(
    "healthbus_consumer_lag_messages",
    "Messages on an input partition that the stage's consumer group has not committed yet",
    ["stage", "group", "topic", "partition"],
)
COMMITTED = Gauge(
    "healthbus_consumer_group_committed", "1 when the stage's group has committed offsets, else 0", ["stage", "group"]
)
LAST_MEASURED = Gauge(
    "healthbus_consumer_lag_last_measured_timestamp_seconds",
    "When consumer lag was last measured successfully (Unix time)",
)
MEASURE_ERRORS = Counter("healthbus_consumer_lag_measure_errors_total", "Failed lag measurements (broker unreachable…)")


class LagExporter:
    """Sets the gauges from one measurement; series of partitions that went away are removed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._series: set[tuple[str, str, str, str]] = set()

    def measure(self) -> list[tuple[str, str, PartitionLag]]:
        """Measure once: (stage, group, lag) per input partition. Raises when the broker can't be read."""
        from ops.consumer_lag import stage_lags, watermarks
        from ops.status import stage_inputs

        s = self.settings
        inputs = stage_inputs(s)
        marks = watermarks(s.confluent_config(), sorted({t for ts in inputs.values() for t in ts}))
        series: set[tuple[str, str, str, str]] = set()
        measured: list[tuple[str, str, PartitionLag]] = []
        for stage, (group, rows, committed) in stage_lags(s.confluent_config(), inputs, s.group_id, marks).items():
            COMMITTED.labels(stage, group).set(1 if committed else 0)
            for row in rows:
                labels = (stage, group, row.topic.removeprefix(s.topic_prefix), str(row.partition))
                LAG.labels(*labels).set(row.lag)
                series.add(labels)
                measured.append((stage, group, row))
        for gone in self._series - series:
            LAG.remove(*gone)
        self._series = series
        LAST_MEASURED.set(time.time())
        return measured

    def run(self, every: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.measure()
            except Exception as exc:  # the broker may be down for a while: keep trying, say so in a metric
                MEASURE_ERRORS.inc()
                log.warning(
                    "consumer lag not measured: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                )
            stop.wait(every)

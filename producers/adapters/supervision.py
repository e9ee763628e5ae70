"""Each exchange database supervised on its own: a source that fails (its database unreachable, a query
refused, the broker or the platform's PostgreSQL away) backs off and retries while the process's other
sources carry on; its health goes to Prometheus and to PostgreSQL, where `healthbus status` reads it.

Backoff: the n-th consecutive failure waits a random time between half and all of min(initial × 2ⁿ⁻¹, max)
("equal jitter": never less than half the step, and sources that failed together do not retry in step).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from producers.adapters import metrics
from producers.adapters.config import SourceConfig
from producers.adapters.poller import ExchangeAdapter, PollSummary, failure_reason
from producers.adapters.state_store import HealthStore, SourceHealth

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 30.0  # a source that stays up reports its health at most this often
RECONCILE_EVERY_SECONDS = 600.0


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 1.0
    max_seconds: float = 60.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        step = min(self.max_seconds, self.initial_seconds * 2.0 ** min(max(failures - 1, 0), 62))
        return step / 2 + (rng or random).uniform(0, step / 2)


class SourceSupervisor:
    """Polls one source until stopped; a failure is counted, reported and waited out, never raised."""

    def __init__(
        self,
        source: SourceConfig,
        build: Callable[[], ExchangeAdapter],
        health: HealthStore | None = None,
        backoff: Backoff = Backoff(),
        interval: float = 1.0,
        reconcile_every: float | None = RECONCILE_EVERY_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self._build = build
        self._health = health
        self.backoff = backoff
        self.interval = interval
        self.reconcile_every = reconcile_every
        self._rng = rng or random.Random()
        self.adapter: ExchangeAdapter | None = None
        self.failures = 0
        self.last_error: str | None = None
        self.next_delay = 0.0  # seconds to wait after the last failure
        self._up = False
        self._last_report = 0.0  # monotonic
        self._next_reconcile = 0.0  # monotonic: the first successful poll reconciles
        labels = (source.org_code, source.kind)
        self._up_gauge = metrics.SOURCE_UP.labels(*labels)
        self._failures_gauge = metrics.CONSECUTIVE_FAILURES.labels(*labels)
        self._last_success_gauge = metrics.LAST_SUCCESS.labels(*labels)
        self._up_gauge.set(0)
        self._failures_gauge.set(0)

    # -- one attempt ---------------------------------------------------------------------------------------
    def attempt(self) -> PollSummary | None:
        """One poll (and the reconciliation when due). None: it failed, was counted and reported."""
        try:
            if self.adapter is None:
                self.adapter = self._build()
                self.adapter.on_round = self._succeeded
            summary = self.adapter.run_once()
            if self.reconcile_every is not None and time.monotonic() >= self._next_reconcile:
                self.adapter.reconcile()
                self._next_reconcile = time.monotonic() + self.reconcile_every
        except Exception as exc:  # one source failing must not stop the others: count it, back off, retry
            self._failed(exc)
            return None
        self._succeeded()
        return summary

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set: right away while rows keep coming, every ``interval`` when idle, after
        the backoff delay when the source fails."""
        try:
            while not stop.is_set():
                summary = self.attempt()
                if summary is None:
                    stop.wait(self.next_delay)
                elif summary.rows_read == 0:
                    stop.wait(self.interval)
        finally:
            self.close()

    def close(self) -> None:
        if self.adapter is not None:
            self.adapter.close()
            self.adapter = None

    # -- outcomes ------------------------------------------------------------------------------------------
    def _succeeded(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self._last_success_gauge.set(now.timestamp())
        changed = not self._up or self.failures
        if changed:
            if self.failures:
                log.info("adapter %s: up again after %d failed attempt(s)", self.source.source_id, self.failures)
            self._up, self.failures = True, 0
            self._up_gauge.set(1)
            self._failures_gauge.set(0)
        if changed or time.monotonic() - self._last_report >= HEARTBEAT_SECONDS:
            self._report(
                SourceHealth(
                    self.source.source_id, self.source.org_code, self.source.kind, "up", 0, now, None, None, None
                )
            )

    def _failed(self, exc: Exception) -> None:
        now = dt.datetime.now(dt.UTC)
        self.failures += 1
        self._up = False
        self.last_error = failure_reason(exc)
        self.next_delay = self.backoff.delay(self.failures, self._rng)
        self._up_gauge.set(0)
        self._failures_gauge.set(self.failures)
        # The class and where only: driver messages can quote row values, DSNs hold passwords.
        log.warning(
            "adapter %s: poll failed (%s), %d in a row; next attempt in %.1f s",
            self.source.source_id,
            self.last_error,
            self.failures,
            self.next_delay,
        )
        log.debug("adapter %s: the failure in full", self.source.source_id, exc_info=exc)  # opt-in: may quote values
        if self.adapter is not None:
            self.adapter.reset()  # a new exchange connection next time; the state store reconnects by itself
        self._report(
            SourceHealth(
                self.source.source_id,
                self.source.org_code,
                self.source.kind,
                "down",
                self.failures,
                None,
                now,
                self.last_error,
                now + dt.timedelta(seconds=self.next_delay),
            )
        )

    def _report(self, health: SourceHealth) -> None:
        if self._health is not None and self._health.report(health):
            self._last_report = time.monotonic()

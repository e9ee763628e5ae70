"""Run adapters as a process: one supervised thread per exchange database, metrics on 127.0.0.1."""

from __future__ import annotations

import functools
import logging
import signal
import threading

from confluent_kafka import Producer

from avro_schemas.serde import codec_for
from foundation.kafka_config import producer_config
from foundation.metrics_server import serve_metrics
from foundation.settings import Settings
from foundation.standards.credit_code import make_credit_code
from producers.adapters.config import SourceConfig
from producers.adapters.poller import ExchangeAdapter, PollSummary
from producers.adapters.state_store import AdapterState, HealthStore
from producers.adapters.supervision import RECONCILE_EVERY_SECONDS, Backoff, SourceSupervisor
from producers.publisher import EventPublisher

log = logging.getLogger(__name__)


def county_platform_code(region_code: str) -> str:
    """Placeholder GB 32100 code for a county platform that has not been given its own (``--org``)."""
    return make_credit_code("11", region_code, f"HB{region_code}")


def build_adapter(
    settings: Settings,
    source: SourceConfig,
    page_size: int = 2000,
    settle_seconds: float = 2.0,
    overlap_seconds: float | None = None,
) -> ExchangeAdapter:
    """An adapter for one source. Connects to the platform's PostgreSQL (its state) first and to the
    exchange database only when it polls, so a source whose database is away can still be built."""
    state = AdapterState(settings.postgres_url)
    codec = codec_for(settings.schema_registry_config())
    publisher = EventPublisher(
        settings.confluent_config(),
        codec,
        settings.signing_key_for,
        settings.topic_prefix,
        own_org_code=source.org_code,
    )
    dead_letters = Producer(producer_config(settings.confluent_config()))
    return ExchangeAdapter(
        source,
        publisher,
        state,
        codec,
        dead_letters,
        settings.topic_prefix,
        page_size,
        settle_seconds,
        overlap_seconds,
    )


class AdapterSourcesFailed(RuntimeError):
    """``--once``: some sources could not be polled (the others were)."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("; ".join(f"{source_id}: {reason}" for source_id, reason in reasons.items()))
        self.reasons = reasons


def run_adapters(
    settings: Settings,
    sources: list[SourceConfig],
    once: bool = False,
    interval: float = 1.0,
    settle_seconds: float = 2.0,
    metrics_port: int | None = None,
    backoff: Backoff = Backoff(),
    reconcile_every: float | None = RECONCILE_EVERY_SECONDS,
    stop: threading.Event | None = None,
) -> dict[str, PollSummary]:
    """``once``: poll every source once and return (raising ``AdapterSourcesFailed`` afterwards if some
    failed); else poll until SIGTERM/SIGINT (or until ``stop`` is set, when given: no signal handlers then).
    Each source runs in its own thread under its own supervisor: a source that fails backs off and retries
    while the others carry on."""
    serve_metrics(metrics_port)
    health = HealthStore(settings.postgres_url)
    supervisors = [
        SourceSupervisor(
            source,
            functools.partial(build_adapter, settings, source, settle_seconds=settle_seconds),
            health,
            backoff,
            interval,
            reconcile_every,
        )
        for source in sources
    ]
    summaries: dict[str, PollSummary] = {}
    try:
        if once:
            failed: dict[str, str] = {}
            for supervisor in supervisors:
                summary = supervisor.attempt()
                supervisor.close()
                if summary is None:
                    failed[supervisor.source.source_id] = supervisor.last_error or "failed"
                else:
                    summaries[supervisor.source.source_id] = summary
            if failed:
                raise AdapterSourcesFailed(failed)
            return summaries
        if stop is None:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        errors: list[BaseException] = []

        def serve(supervisor: SourceSupervisor) -> None:
            assert stop is not None
            try:
                supervisor.run(stop)
            except BaseException as exc:  # not a source failing (those are supervised): stop the process
                log.exception("adapter %s: supervisor stopped", supervisor.source.source_id)
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=serve, args=(s,), name=s.source.source_id) for s in supervisors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return summaries
    finally:
        health.close()

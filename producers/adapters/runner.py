"""Run adapters as a process: one thread per exchange database, metrics on 127.0.0.1."""

from __future__ import annotations

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
from producers.adapters.state_store import AdapterState
from producers.publisher import EventPublisher

log = logging.getLogger(__name__)


def county_platform_code(region_code: str) -> str:
    """Placeholder GB 32100 code for a county platform that has not been given its own (``--org``)."""
    return make_credit_code("11", region_code, f"HB{region_code}")


def build_adapter(
    settings: Settings, source: SourceConfig, page_size: int = 2000, settle_seconds: float = 2.0
) -> ExchangeAdapter:
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
        AdapterState(settings.postgres_url),
        codec,
        dead_letters,
        settings.topic_prefix,
        page_size,
        settle_seconds,
    )


def run_adapters(
    settings: Settings,
    sources: list[SourceConfig],
    once: bool = False,
    interval: float = 1.0,
    settle_seconds: float = 2.0,
    metrics_port: int | None = None,
) -> dict[str, PollSummary]:
    """``once``: publish what is there now and return; else poll until SIGTERM/SIGINT."""
    serve_metrics(metrics_port)
    adapters = [build_adapter(settings, s, settle_seconds=settle_seconds) for s in sources]
    summaries: dict[str, PollSummary] = {}
    if once:
        try:
            for adapter in adapters:
                summaries[adapter.source.source_id] = adapter.run_once()
        finally:
            for adapter in adapters:
                adapter.close()
        return summaries
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    errors: list[BaseException] = []

    def serve(adapter: ExchangeAdapter) -> None:
        try:
            adapter.run_forever(stop, interval)
        except BaseException as exc:  # one institution failing stops the process: its supervisor restarts it
            log.exception("adapter %s failed", adapter.source.source_id)
            errors.append(exc)
            stop.set()
        finally:
            adapter.close()

    threads = [threading.Thread(target=serve, args=(a,), name=a.source.source_id) for a in adapters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return summaries

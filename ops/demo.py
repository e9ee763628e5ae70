"""``healthbus demo``: the whole pipeline on the local stack, with counts that must agree.

Synthetic exchange databases (``healthbus synth``) → adapters (one per institution) → raw.* → the Faust
identify stage (a real ``healthbus worker identify`` process: the master patient index attaches each
resident's person id) → identified.* → PostgreSQL and ClickHouse sinks. Topics and consumer groups are fresh per run and deleted afterwards; the demo institutions'
watermarks are reset, so every run publishes the synthetic world again. Rows are counted by this run's
event ids: re-running with the same seed shows the sinks' idempotence (the rows are there once).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from avro_schemas.topics import PIPELINE_EVENT_TYPES
from ops.settings import Settings
from ops.stack import lifecycle
from ops.stack.postgres import ensure_database
from ops.stack.processes import stop_pid
from ops.topic_admin import create_topics, delete_topics, existing_topics
from ops.worker_process import start_worker
from producers.adapters.config import load_config
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import AdapterState
from producers.synthetic.exchange_data import generate_exchange_data
from sinks.batch_consumer import SinkProgress
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer, open_clickhouse_event_log


@dataclass
class DemoResult:
    exchange_rows: int
    quarantined: int
    produced: int
    consumed: int
    postgres_rows: int
    clickhouse_rows: int
    dead_letters: int
    seconds: float
    persons: int = 0  # distinct person ids the identify stage gave this run's events
    events_without_person: int = 0

    @property
    def consistent(self) -> bool:
        return (self.produced == self.consumed == self.postgres_rows == self.clickhouse_rows > 0
                and self.events_without_person == 0)

    def figures(self) -> dict[str, float]:
        return {"produced": self.produced, "consumed": self.consumed, "postgres_rows": self.postgres_rows,
                "clickhouse_rows": self.clickhouse_rows, "seconds": round(self.seconds, 2),
                "quarantined": self.quarantined, "exchange_rows": self.exchange_rows, "persons": self.persons,
                "events_without_person": self.events_without_person}

    def table(self) -> str:
        rows = [("rows in the synthetic exchange databases (parents)", self.exchange_rows),
                ("rows quarantined by the adapters (unmappable)", self.quarantined),
                ("events published by the adapters (raw.*)", self.produced),
                ("events consumed by each sink (identified.*)", self.consumed),
                ("rows in PostgreSQL (event_store)", self.postgres_rows),
                ("rows in ClickHouse (event_log FINAL)", self.clickhouse_rows),
                ("dead letters at the sinks", self.dead_letters),
                ("residents (distinct person ids on the events)", self.persons),
                ("events without a person id", self.events_without_person)]
        lines = [f"{label:<52} {value:>8}" for label, value in rows]
        lines.append(f"{'seconds (adapters to sinks)':<52} {self.seconds:>8.1f}")
        lines.append("counts agree" if self.consistent else "COUNTS DISAGREE")
        return "\n".join(lines)


class RecordingPublisher:
    """Passes events to the adapter's publisher and remembers their ids (to count this run's rows)."""

    def __init__(self, inner: Any, event_ids: list[str]) -> None:
        self.inner = inner
        self.event_ids = event_ids

    def publish(self, event_type: str, value: dict[str, Any]) -> None:
        self.inner.publish(event_type, value)
        self.event_ids.append(value["envelope"]["event_id"])

    def flush(self, timeout: float = 30.0) -> None:
        self.inner.flush(timeout)


def run_demo(settings: Settings, exchange_dsn: str, hospitals: int, counties: int, days: int, seed: int,
             timeout: float = 600.0) -> DemoResult:
    before = lifecycle.StartedServices.load(settings)
    lifecycle.up(settings)
    run = uuid.uuid4().hex[:8]
    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}demo-{run}.",
                                    "group_prefix": f"{settings.group_prefix}.demo-{run}"})
    conf = s.confluent_config()
    worker = None
    try:
        ensure_database(exchange_dsn)
        config_path = s.state_dir / "demo-adapters.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        synth = generate_exchange_data(exchange_dsn, hospitals, counties, days, seed, config_path)
        sources = load_config(config_path).sources
        state = AdapterState(s.postgres_url)
        state.reset([src.source_id for src in sources])  # the demo's institutions publish their world afresh
        state.close()
        create_topics(conf, s.topic_prefix)
        worker_log = s.state_dir / "logs" / f"demo-worker-{run}.log"
        worker = start_worker(s, worker_log)

        start = time.monotonic()
        event_ids: list[str] = []
        quarantined = 0
        for source in sources:
            adapter = build_adapter(s, source, settle_seconds=0)
            adapter.publisher = RecordingPublisher(adapter.publisher, event_ids)
            quarantined += adapter.run_once().quarantined
            adapter.close()
        produced = len(event_ids)
        progress = _run_sinks(s, produced, worker, worker_log, time.monotonic() + timeout)
        seconds = time.monotonic() - start
        pg = PostgresEventStore(s.postgres_url)
        postgres_rows = pg.count_event_ids(event_ids)
        persons, without_person = pg.person_counts(event_ids)
        pg.close()
        ch = open_clickhouse_event_log(s)
        clickhouse_rows = ch.count_event_ids(event_ids)
        ch.close()
        parents = sum(n for (kind, table), n in synth.rows.items() if not _is_child(table))
        return DemoResult(parents, quarantined, produced, min(p.consumed for p in progress), postgres_rows,
                          clickhouse_rows, sum(p.dead_lettered for p in progress), seconds, persons, without_person)
    finally:
        if worker is not None:
            stop_pid(worker.pid)
        delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
        if before.broker_pid is None and before.redis_pid is None and before.postgres_data_dir is None:
            lifecycle.down(settings)


def _is_child(table: str) -> bool:
    from producers.synthetic.records import CHILD_TABLES

    return table in CHILD_TABLES


def _run_sinks(s: Settings, expected: int, worker: Any, worker_log: Any, deadline: float) -> list[SinkProgress]:
    """Both sinks in this process (chDB admits one process per data directory), until each consumed all."""
    pg_sink, ch_sink = PostgresEventStore(s.postgres_url), open_clickhouse_event_log(s)
    consumers = [build_consumer(s, pg_sink, list(PIPELINE_EVENT_TYPES)), build_consumer(s, ch_sink, list(PIPELINE_EVENT_TYPES))]
    progress = [SinkProgress(), SinkProgress()]

    def run(i: int) -> None:
        progress[i] = consumers[i].run(until=lambda p: p.consumed >= expected or time.monotonic() > deadline)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the identify worker exited with {worker.returncode}; see {worker_log}")
            for t in threads:
                t.join(0.2)
    finally:
        for c in consumers:
            c.stop()
        for t in threads:
            t.join(10)
        pg_sink.close()
        ch_sink.close()
    return progress

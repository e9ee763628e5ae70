"""``healthbus demo``: the whole first slice on the local stack, with counts that must agree.

Synthetic visits → publisher (the adapter's producer) → raw.outpatient.visit → Faust pass-through worker
(a real ``healthbus worker passthrough`` process) → identified.outpatient.visit → PostgreSQL and ClickHouse
sinks. Topics and groups are fresh per run (and deleted afterwards); rows are counted by this run's event
ids, so re-running with the same seed shows the sinks' idempotence: the rows are there once.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from avro_schemas.serde import codec_for
from ops.settings import Settings
from ops.stack import lifecycle
from ops.stack.processes import stop_pid
from ops.worker_process import start_worker
from ops.topic_admin import create_topics, delete_topics, existing_topics
from producers.publisher import EventPublisher
from producers.synthetic.outpatient_visits import outpatient_visits
from sinks.batch_consumer import SinkProgress
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer, open_clickhouse_event_log


@dataclass
class DemoResult:
    produced: int
    consumed: int
    postgres_rows: int
    clickhouse_rows: int
    dead_letters: int
    seconds: float

    @property
    def consistent(self) -> bool:
        return self.produced == self.consumed == self.postgres_rows == self.clickhouse_rows

    def figures(self) -> dict[str, float]:
        return {"produced": self.produced, "consumed": self.consumed, "postgres_rows": self.postgres_rows,
                "clickhouse_rows": self.clickhouse_rows, "seconds": round(self.seconds, 2)}

    def table(self) -> str:
        rows = [("produced (raw.outpatient.visit)", self.produced),
                ("consumed by sinks (identified.outpatient.visit)", self.consumed),
                ("rows in PostgreSQL (event_store)", self.postgres_rows),
                ("rows in ClickHouse (event_log FINAL)", self.clickhouse_rows),
                ("dead letters", self.dead_letters)]
        lines = [f"{label:<48} {value:>8}" for label, value in rows]
        lines.append(f"{'seconds':<48} {self.seconds:>8.1f}")
        lines.append("counts agree" if self.consistent else "COUNTS DISAGREE")
        return "\n".join(lines)


def run_demo(settings: Settings, events: int, seed: int, timeout: float = 300.0) -> DemoResult:
    before = lifecycle.StartedServices.load(settings)
    lifecycle.up(settings)
    run = uuid.uuid4().hex[:8]
    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}demo-{run}.",
                                    "group_prefix": f"{settings.group_prefix}.demo-{run}"})
    conf = s.confluent_config()
    create_topics(conf, s.topic_prefix)
    worker_log = s.state_dir / "logs" / f"demo-worker-{run}.log"
    worker = start_worker(s, worker_log)
    pg_sink = PostgresEventStore(s.postgres_url)
    ch_sink = open_clickhouse_event_log(s)
    consumers = [build_consumer(s, pg_sink, ["outpatient.visit"]), build_consumer(s, ch_sink, ["outpatient.visit"])]
    progress: list[SinkProgress] = [SinkProgress(), SinkProgress()]
    deadline = time.monotonic() + timeout

    def run_consumer(i: int) -> None:
        progress[i] = consumers[i].run(until=lambda p: p.consumed >= events or time.monotonic() > deadline)

    threads = [threading.Thread(target=run_consumer, args=(i,), daemon=True) for i in range(2)]
    try:
        start = time.monotonic()
        for t in threads:
            t.start()
        publisher = EventPublisher(conf, codec_for(s.schema_registry_config()), s.signing_key_for, s.topic_prefix)
        event_ids = []
        for value in outpatient_visits(events, seed=seed):
            publisher.publish("outpatient.visit", value)
            event_ids.append(value["envelope"]["event_id"])
        publisher.flush()
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"the pass-through worker exited with {worker.returncode}; see {worker_log}")
            for t in threads:
                t.join(0.2)
        seconds = time.monotonic() - start
        pg_rows = pg_sink.count_event_ids(event_ids)
        ch_rows = ch_sink.count_event_ids(event_ids)
        return DemoResult(publisher.tally.acknowledged, min(p.consumed for p in progress), pg_rows, ch_rows,
                          sum(p.dead_lettered for p in progress), seconds)
    finally:
        for c in consumers:
            c.stop()
        stop_pid(worker.pid)
        for t in threads:
            t.join(10)
        pg_sink.close()
        ch_sink.close()
        delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
        if before.broker_pid is None and before.redis_pid is None and before.postgres_data_dir is None:
            lifecycle.down(settings)


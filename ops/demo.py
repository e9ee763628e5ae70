"""``healthbus demo``: the whole pipeline on the local stack, with counts that must agree.

Synthetic exchange databases (``healthbus synth``) → adapters (one per institution) → raw.* → the Faust
identify stage (a real ``healthbus worker identify`` process: the master patient index attaches each
resident's person id) → identified.* → the quality stage (``healthbus worker quality``: the rule set judges
every event; errors go to dlq.quality) → validated.* → PostgreSQL and ClickHouse sinks (ClickHouse also keeps
every verdict from quality.results) and the routing stage (``healthbus worker routing``: work items per
collaboration route, health-record seals, clinical reminders) and the surveillance stage (``healthbus worker
surveillance``: every outpatient visit classified into syndromes, daily counts for early warning; the cases
and the notifiable-disease reports land in ClickHouse too). Topics and consumer groups are fresh per run and deleted afterwards;
the demo institutions' watermarks are reset, so every run publishes the synthetic world again. Rows are counted by this run's
event ids: re-running with the same seed shows the sinks' idempotence (the rows are there once).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from avro_schemas.pipeline import deployed
from avro_schemas.topics import PIPELINE_EVENT_TYPES, SURVEILLANCE_CASES, collab_topic_name, validated_topic
from foundation.settings import Settings
from ops.stack import lifecycle
from ops.stack.postgres import ensure_database
from ops.stack.processes import stop_pid
from ops.topic_admin import committed_total, count_messages, create_topics, delete_topics, topics_of_run
from ops.worker_process import start_worker
from producers.adapters.config import load_config
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import AdapterState
from sinks.batch_consumer import SinkProgress
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer, open_clickhouse_event_log
from streams.routing.summary import RoutingSummary, summarise
from synthetic.defect_detection import measure_detection
from synthetic.exchange_data import generate_exchange_data


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
    accepted: int = 0  # events that passed the quality rules (validated.*)
    rejected: int = 0  # events an error-severity rule sent to dlq.quality
    verdicts_in_clickhouse: int = 0
    rule_set_version: str = ""
    detection: list = field(default_factory=list)  # DetectionRow per injected defect kind
    false_rejections: int = 0  # events rejected although their source record has no injected defect
    routed: int = 0  # validated events the routing stage consumed and committed
    routing: RoutingSummary | None = None
    visits_classified: int = 0  # validated outpatient visits the surveillance stage committed
    syndrome_cases: dict[str, int] = field(default_factory=dict)  # syndrome → visits of this run
    cases_published: int = 0  # surveillance.cases records
    cases_in_clickhouse: int = 0  # this run's visits in surveillance_cases FINAL that are cases
    visits_accepted: int = 0
    distinct_cases: int = 0  # this run's visits that are cases (PostgreSQL visit_cases)

    @property
    def consistent(self) -> bool:
        return (
            self.accepted + self.rejected == self.produced == self.verdicts_in_clickhouse > 0
            and self.accepted == self.consumed == self.postgres_rows == self.clickhouse_rows == self.routed > 0
            and self.events_without_person == 0
            and (self.routing is None or self.routing.deaths_unrouted == 0)
            and self.visits_classified == self.visits_accepted
            and self.cases_in_clickhouse == self.distinct_cases
        )

    def figures(self) -> dict[str, float]:
        return {
            "produced": self.produced,
            "consumed": self.consumed,
            "postgres_rows": self.postgres_rows,
            "clickhouse_rows": self.clickhouse_rows,
            "seconds": round(self.seconds, 2),
            "quarantined": self.quarantined,
            "exchange_rows": self.exchange_rows,
            "persons": self.persons,
            "events_without_person": self.events_without_person,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "verdicts_in_clickhouse": self.verdicts_in_clickhouse,
            "defects_injected": sum(r.injected for r in self.detection),
            "defects_caught": sum(r.detected for r in self.detection),
            "false_rejections": self.false_rejections,
            "routed": self.routed,
            **(
                {f"items_{route}": sum(by.values()) for route, by in self.routing.items.items()} if self.routing else {}
            ),
            "health_records_sealed": self.routing.sealed if self.routing else 0,
            "clinical_reminders": self.routing.reminders if self.routing else 0,
            "visits_classified": self.visits_classified,
            "visits_accepted": self.visits_accepted,
            "syndrome_cases": self.distinct_cases,
            "syndrome_cases_in_clickhouse": self.cases_in_clickhouse,
            **{f"cases_{k.lower()}": v for k, v in self.syndrome_cases.items()},
        }

    def table(self) -> str:
        rows: list[tuple[str, int | None]] = [
            ("rows in the synthetic exchange databases (parents)", self.exchange_rows),
            ("rows quarantined by the adapters (unmappable)", self.quarantined),
            ("events published by the adapters (raw.*)", self.produced),
            (f"events judged by the quality rules ({self.rule_set_version})", self.accepted + self.rejected),
            ("  rejected to dlq.quality (an error-severity rule failed)", self.rejected),
            ("  passed on to validated.* (warnings flagged)", self.accepted),
            ("verdicts in ClickHouse (quality_results FINAL)", self.verdicts_in_clickhouse),
            ("events consumed by each sink (validated.*)", self.consumed),
            ("rows in PostgreSQL (event_store)", self.postgres_rows),
            ("rows in ClickHouse (event_log FINAL)", self.clickhouse_rows),
            ("dead letters at the sinks", self.dead_letters),
            ("events routed (validated.* committed by the routing stage)", self.routed),
            ("outpatient visits classified (surveillance stage)", self.visits_classified),
            ("  of which syndrome cases (surveillance.cases)", self.distinct_cases),
            ("  syndrome cases in ClickHouse (surveillance_cases FINAL)", self.cases_in_clickhouse),
            *((f"    {syndrome}", n) for syndrome, n in self.syndrome_cases.items()),
            ("residents (distinct person ids on the events)", self.persons),
            ("events without a person id", self.events_without_person),
        ]
        if self.routing is not None:
            rows += [("collaboration work items from these events, by route", None), *self.routing.rows()]
        lines = [f"{label:<52} {'' if value is None else value:>8}" for label, value in rows]
        lines.append(f"{'seconds (adapters to sinks)':<52} {self.seconds:>8.1f}")
        lines.append("counts agree" if self.consistent else "COUNTS DISAGREE")
        if self.detection:
            lines.append("")
            lines.append(f"{'injected defect (synthetic truth)':<44} {'events':>7} {'caught':>7} {'recall':>7}")
            for row in self.detection:
                lines.append(f"{row.kind:<44} {row.injected:>7} {row.detected:>7} {row.recall:>7.1%}")
            lines.append(f"{'events rejected without an injected defect':<44} {self.false_rejections:>7}")
        return "\n".join(lines)


class RecordingPublisher:
    """Passes events to the adapter's publisher and remembers their ids (to count this run's rows) and the
    source record each came from (to match the synthetic defects)."""

    def __init__(
        self,
        inner: Any,
        event_ids: list[str],
        records: dict[tuple[str, str], list[str]],
        latest_deaths: dict[tuple[str, str], tuple[str, bool]],
        event_types: dict[str, str],
    ) -> None:
        self.inner = inner
        self.event_ids = event_ids
        self.event_types = event_types
        self.records = records
        self.latest_deaths = latest_deaths  # death record → (its latest event id, cancelled)

    def publish(self, event_type: str, value: dict[str, Any]) -> None:
        self.inner.publish(event_type, value)
        envelope = value["envelope"]
        self.event_ids.append(envelope["event_id"])
        self.event_types[envelope["event_id"]] = event_type
        source = envelope["source"]
        self.records.setdefault((source["org_code"], source["record_key"]), []).append(envelope["event_id"])
        if event_type == "death.record":
            self.latest_deaths[(source["org_code"], source["record_key"])] = (
                envelope["event_id"],
                envelope["cancelled"],
            )

    def flush(self, timeout: float = 30.0) -> None:
        self.inner.flush(timeout)


def run_demo(
    settings: Settings, exchange_dsn: str, hospitals: int, counties: int, days: int, seed: int, timeout: float = 600.0
) -> DemoResult:
    before = lifecycle.StartedServices.load(settings)
    lifecycle.up(settings)
    run = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}demo-{run}.",
            "group_prefix": f"{settings.group_prefix}.demo-{run}",
        }
    )
    conf = s.confluent_config()
    workers: list[Any] = []
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
        workers = [start_worker(s, worker_log, stage) for stage in deployed("stream")]

        start = time.monotonic()
        event_ids: list[str] = []
        records: dict[tuple[str, str], list[str]] = {}
        latest_deaths: dict[tuple[str, str], tuple[str, bool]] = {}
        event_types: dict[str, str] = {}
        quarantined = 0
        for source in sources:
            adapter = build_adapter(s, source, settle_seconds=0)
            adapter.publisher = RecordingPublisher(  # type: ignore[assignment]  # wraps it, same methods
                adapter.publisher, event_ids, records, latest_deaths, event_types
            )
            quarantined += adapter.run_once().quarantined
            adapter.close()
        produced = len(event_ids)
        deadline = time.monotonic() + timeout
        verdicts = _read_verdicts(s, set(event_ids), workers, worker_log, deadline)
        accepted = sum(verdicts.values())
        accepted_ids = [e for e, passed in verdicts.items() if passed]
        visit_ids = [e for e in accepted_ids if event_types[e] == "outpatient.visit"]
        validated = [s.topic_name(validated_topic(t).name) for t in PIPELINE_EVENT_TYPES]
        routed = _wait_committed(s, "routing", validated, accepted, workers, worker_log, deadline)
        classified = _wait_committed(
            s,
            "surveillance",
            [s.topic_name(validated_topic("outpatient.visit").name)],
            len(visit_ids),
            workers,
            worker_log,
            deadline,
        )
        # ClickHouse also lands the verdicts, the syndrome cases and the notifiable-disease reports.
        cases_published, reports = (
            count_messages(conf, [s.topic_name(t)])
            for t in (SURVEILLANCE_CASES, collab_topic_name("infectious_disease"))
        )
        progress = _run_sinks(
            s, accepted, accepted + produced + cases_published + reports, workers, worker_log, deadline
        )
        seconds = time.monotonic() - start
        # Rows are counted by this run's accepted event ids: what passed must be in both sinks, once.
        pg = PostgresEventStore(s.postgres_url)
        postgres_rows = pg.count_event_ids(accepted_ids)
        persons, without_person = pg.person_counts(accepted_ids)
        pg.close()
        ch = open_clickhouse_event_log(s)
        clickhouse_rows = ch.count_event_ids(accepted_ids)
        verdict_rows = ch.count_event_ids(event_ids, table="quality_results")
        rules_of = ch.failed_rules(event_ids)
        cases_in_clickhouse = ch.count_surveillance_cases(visit_ids)
        ch.close()
        syndrome_cases, distinct_cases = _syndrome_cases(s.postgres_url, visit_ids)
        detection, false_rejections, _ = measure_detection(
            _injected_defects(exchange_dsn, sources),
            records,
            rules_of,
            {e for e, passed in verdicts.items() if not passed},
        )
        parents = sum(n for (kind, table), n in synth.rows.items() if not _is_child(table))
        deaths = [e for e, cancelled in latest_deaths.values() if not cancelled and verdicts.get(e)]
        routing = summarise(s.postgres_url, accepted_ids, deaths)
        from streams.quality.rule_set import default_rule_set

        return DemoResult(
            parents,
            quarantined,
            produced,
            progress[0].consumed,
            postgres_rows,
            clickhouse_rows,
            sum(p.dead_lettered for p in progress),
            seconds,
            persons,
            without_person,
            accepted,
            produced - accepted,
            verdict_rows,
            default_rule_set().version,
            detection,
            false_rejections,
            routed,
            routing,
            classified,
            syndrome_cases,
            cases_published,
            cases_in_clickhouse,
            len(visit_ids),
            distinct_cases,
        )
    finally:
        for worker in workers:
            stop_pid(worker.pid)
        delete_topics(conf, topics_of_run(conf, s.topic_prefix, s.group_prefix))
        if before.broker_pid is None and before.redis_pid is None and before.postgres_data_dir is None:
            lifecycle.down(settings)


def _injected_defects(exchange_dsn: str, sources: list) -> list[tuple[tuple[str, str], str]]:
    """The synthetic truth: ((org code, envelope record key), defect kind) of every spoiled row."""
    import psycopg

    from synthetic.exchange_data import TRUTH_SCHEMA

    org_of = {src.schema_name: src.org_code for src in sources}
    with psycopg.connect(exchange_dsn) as conn:
        rows = conn.execute(f"SELECT schema_name, table_name, record_key, kind FROM {TRUTH_SCHEMA}.defect").fetchall()
    return [((org_of[schema], f"{table}:{key}"), kind) for schema, table, key, kind in rows if schema in org_of]


def _is_child(table: str) -> bool:
    from synthetic.records import CHILD_TABLES

    return table in CHILD_TABLES


def _check_workers(workers: list[Any], worker_log: Any) -> None:
    for worker in workers:
        if worker.poll() is not None:
            raise RuntimeError(f"a stream worker exited with {worker.returncode}; see {worker_log}")


def _read_verdicts(
    s: Settings, event_ids: set[str], workers: list[Any], worker_log: Any, deadline: float
) -> dict[str, bool]:
    """event id → passed, from quality.results, until every event of this run has its verdict."""
    from confluent_kafka import Consumer

    from avro_schemas.serde import codec_for
    from avro_schemas.topics import QUALITY_RESULTS

    codec = codec_for(s.schema_registry_config())
    consumer = Consumer(
        {
            **s.confluent_config(),
            "group.id": f"{s.group_prefix}.demo-verdicts",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    consumer.subscribe([s.topic_name(QUALITY_RESULTS)])
    verdicts: dict[str, bool] = {}
    try:
        while len(verdicts) < len(event_ids) and time.monotonic() < deadline:
            _check_workers(workers, worker_log)
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is None:
                    value = codec.decode(m.value()).value
                    if value["event_id"] in event_ids:
                        verdicts[value["event_id"]] = value["passed"]
    finally:
        consumer.close()
    if len(verdicts) < len(event_ids):
        raise RuntimeError(f"only {len(verdicts)} of {len(event_ids)} events were judged in time; see {worker_log}")
    return verdicts


def _wait_committed(
    s: Settings, stage: str, topics: list[str], expected: int, workers: list[Any], worker_log: Any, deadline: float
) -> int:
    """Until ``stage`` has committed ``expected`` messages of ``topics`` (it publishes no output per input)."""
    done = 0
    while time.monotonic() < deadline:
        _check_workers(workers, worker_log)
        done = committed_total(s.confluent_config(), s.group_id(stage), topics)
        if done >= expected:
            return done
        time.sleep(0.5)
    raise RuntimeError(f"the {stage} stage committed only {done} of {expected} events in time; see {worker_log}")


def _syndrome_cases(postgres_url: str, visit_ids: list[str]) -> tuple[dict[str, int], int]:
    """(syndrome → this run's visits with it, visits that are a case) from the surveillance stage's state."""
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT syndromes FROM surveillance.visit_cases WHERE event_id = ANY(%s) "
            "AND NOT cancelled AND cardinality(syndromes) > 0",
            (visit_ids,),
        ).fetchall()
    by_syndrome: dict[str, int] = {}
    for (syndromes,) in rows:
        for syndrome in syndromes:
            by_syndrome[syndrome] = by_syndrome.get(syndrome, 0) + 1
    return dict(sorted(by_syndrome.items())), len(rows)


def _run_sinks(
    s: Settings, accepted: int, clickhouse_expected: int, workers: list[Any], worker_log: Any, deadline: float
) -> list[SinkProgress]:
    """Both sinks in this process (chDB admits one process per data directory), until each consumed all:
    PostgreSQL the accepted events, ClickHouse those and every verdict."""
    pg_sink, ch_sink = PostgresEventStore(s.postgres_url), open_clickhouse_event_log(s)
    consumers = [
        build_consumer(s, pg_sink, list(PIPELINE_EVENT_TYPES)),
        build_consumer(s, ch_sink, list(PIPELINE_EVENT_TYPES)),
    ]
    progress = [SinkProgress(), SinkProgress()]

    expected = (accepted, clickhouse_expected)

    def run(i: int) -> None:
        progress[i] = consumers[i].run(until=lambda p: p.consumed >= expected[i] or time.monotonic() > deadline)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            _check_workers(workers, worker_log)
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

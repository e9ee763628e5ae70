"""``healthbus bench empi-stream``: the identify stage on known residents, next to the pass-through stage.

Prints one table (``--json``: then one JSON object of the figures):

- identify events/s (known residents, warm cache): the identify worker (a real ``healthbus worker identify``
  process) on N signed outpatient.visit events whose patients are all already in the master index and in
  its Redis cache: the steady state of a known resident's next visit. The issue's target: ≥ 5,000 per worker.
- passthrough events/s (same input): ``healthbus worker passthrough`` on the same N payloads: the same Faust
  runtime and intake checks (signature, type, institution), no identity resolution. The baseline.
- identify / passthrough ratio: what identity resolution costs on the fast path.
- identify events/s (known residents, cold cache): one event per record key, with no Redis entries: every
  resident is answered by the batched PostgreSQL lookup instead.
- new residents resolved/s (index warm-up, batch of 1000): the slow path (blocking, matching, writes), in
  process through ``IdentityResolver``, measured while the bench fills the index before the stream runs.
- events, record keys: the run's size.

Setup: synthetic residents (``generate_identity_cases``), one version of each (institution, local id) record
(the index then holds exactly what the events carry), a private PostgreSQL database ``hb_bench_empi_<run>``
(dropped WITH (FORCE) afterwards), fresh topic and consumer-group prefixes per worker run (topics and Redis
keys deleted afterwards). Each stream rate is N divided by the span of the output messages' broker
timestamps (``ops.bench.passthrough.output_span``), so process start-up and group join are left out. A
sample of the identify outputs is decoded and checked: every one carries the resident's person id from the
index with rule ``record_key``, so a broken stage cannot pass for a fast one.

Sizes: the warm-up runs at a few hundred new records/s on a small machine, so the bench draws one person
per 20 events (N = 100,000: 5,000 persons, about 9,800 record keys, about 10 visits each) to keep the whole
run within a few minutes; the fast path's cost does not depend on how many distinct residents there are
(one Redis MGET per batch).
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from confluent_kafka import Consumer
from psycopg import sql

from avro_schemas.serde import EventCodec
from avro_schemas.topics import IDENTITY_CHANGE_TYPES, dead_letter_topic, identified_topic, raw_topic, topic
from foundation.settings import Settings
from ops.bench.passthrough import BENCH_TOPIC_CONFIG, Prepared, output_span, produce_all, signed_visit
from ops.bench.table import BenchRow
from ops.stack.postgres import ensure_database, server_conninfo
from ops.stack.processes import stop_pid
from ops.topic_admin import create_topics, delete_topics, existing_topics
from ops.worker_process import start_worker
from sinks.batch_consumer import consumer_config
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.resolver import IdentityResolver
from streams.identity.record import SourceRecord
from synthetic.identity_cases import generate_identity_cases
from synthetic.identity_events import visits_for_records

EVENT_TYPE = "outpatient.visit"
EVENTS_PER_PERSON = 20
WARMUP_BATCH = 1000
SAMPLE = 2000  # identify outputs decoded and checked
SEED = 7


def _residents(events: int) -> list[SourceRecord]:
    """One version per (institution, local id), in order of first appearance. A key whose versions differ
    would be re-resolved (slow path) whenever the other version comes: not the known-identifier case."""
    persons = max(50, math.ceil(events / EVENTS_PER_PERSON))
    latest: dict[tuple[str, str], SourceRecord] = {}
    for r in generate_identity_cases(persons, seed=SEED).records:
        latest[(r.org_code, r.local_id)] = r
    return list(latest.values())


def _warm_up(s: Settings, records: list[SourceRecord]) -> tuple[float, dict[tuple[str, str], str]]:
    """Resolve every record into the index (new residents/records: the slow path), then once more so the
    Redis cache holds every record key. Returns the warm-up rate and record key → person id."""
    resolver = IdentityResolver.connect(s.postgres_url, PersonCache.for_settings(s), MatchModel.load())
    try:
        started = time.perf_counter()
        for i in range(0, len(records), WARMUP_BATCH):
            resolver.resolve(records[i : i + WARMUP_BATCH])
        rate = len(records) / (time.perf_counter() - started)
        persons: dict[tuple[str, str], str] = {}
        for i in range(0, len(records), WARMUP_BATCH):
            batch = records[i : i + WARMUP_BATCH]
            for r, resolution in zip(batch, resolver.resolve(batch), strict=True):
                if resolution.rule != "record_key":
                    raise RuntimeError(f"{r.record_id} is not known after the warm-up: {resolution}")
                persons[(r.org_code, r.local_id)] = resolution.person_id
        # The warm-up's merges wait in the outbox; in the steady state measured here there is no backlog.
        resolver.conn.execute("UPDATE empi.outbox SET published_at = now() WHERE published_at IS NULL")
    finally:
        resolver.close()
    return rate, persons


def _prepare(s: Settings, visits: Iterator[dict]) -> list[Prepared]:
    codec = EventCodec()
    return [signed_visit(s, codec, v) for v in visits]


def _topics(s: Settings) -> None:
    create_topics(
        s.confluent_config(),
        s.topic_prefix,
        specs=[
            raw_topic(EVENT_TYPE),
            identified_topic(EVENT_TYPE),
            dead_letter_topic("identify"),
            *(topic(t) for t in IDENTITY_CHANGE_TYPES),
        ],
        extra_config=BENCH_TOPIC_CONFIG,
    )


def _stream_rate(s: Settings, stage: str, events: int, log_dir: Path) -> float:
    """Start ``healthbus worker <stage>`` on ``s``'s raw topic; N / span of its N outputs."""
    log_path = log_dir / f"bench-empi-stream-{stage}-{s.group_prefix}.log"
    worker = start_worker(s, log_path, stage=stage)
    try:
        target = s.topic_name(identified_topic(EVENT_TYPE).name)
        return events / output_span(
            s.confluent_config(), target, events, f"{s.group_prefix}.count", max(120.0, events / 500)
        )
    except RuntimeError as exc:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RuntimeError(f"{exc}; worker {stage} exited: {worker.poll()}; log tail:\n{tail}") from exc
    finally:
        stop_pid(worker.pid)


def _check_outputs(s: Settings, persons: dict[tuple[str, str], str], sample: int) -> None:
    """Decode the first ``sample`` identify outputs: each carries its resident's person id, rule record_key."""
    consumer = Consumer(
        {**consumer_config(s.confluent_config(), f"{s.group_prefix}.check", 6000), "enable.partition.eof": False}
    )
    consumer.subscribe([s.topic_name(identified_topic(EVENT_TYPE).name)])
    codec, checked = EventCodec(), 0
    deadline = time.monotonic() + 60
    try:
        while checked < sample and time.monotonic() < deadline:
            for msg in consumer.consume(min(sample - checked, 5000), timeout=0.5):
                if msg.error():
                    continue
                env = codec.decode(msg.value()).value["envelope"]
                key = (env["source"]["org_code"], env["patient"]["local_patient_id"])
                identity = env.get("identity") or {}
                if not env.get("person_id") or identity.get("rule") != "record_key" or env["person_id"] != persons[key]:
                    raise RuntimeError(
                        f"identify output {key} carries person {env.get('person_id')!r} "
                        f"({identity}); the index says {persons[key]!r}"
                    )
                checked += 1
    finally:
        consumer.close()
    if checked < sample:
        raise RuntimeError(f"only {checked} of {sample} identify outputs could be read back for the check")


@contextmanager
def _private_index(settings: Settings, run_id: str) -> Iterator[str]:
    url = psycopg.conninfo.make_conninfo(settings.postgres_url, dbname=f"hb_bench_empi_{run_id}")
    ensure_database(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_conninfo(url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"hb_bench_empi_{run_id}"))
            )


def run(settings: Settings, events: int = 100000) -> list[BenchRow]:
    run_id = uuid.uuid4().hex[:8]
    log_dir = settings.state_dir / "logs"
    with _private_index(settings, run_id) as url:
        runs = {
            name: settings.model_copy(
                update={
                    "postgres_url": url,
                    "topic_prefix": f"bench-{run_id}-{name}.",
                    "group_prefix": f"bench-{run_id}-{name}",
                }
            )
            for name in ("identify", "cold", "passthrough")
        }
        try:
            for s in runs.values():
                _topics(s)
            records = _residents(events)
            warmup_rate, persons = _warm_up(runs["identify"], records)
            rounds = math.ceil(events / len(records))
            # Signed with the same keys whatever the prefix: one set of payloads for every run.
            prepared = _prepare(
                settings, itertools.islice(visits_for_records(records, visits_per_record=rounds), events)
            )
            raw = raw_topic(EVENT_TYPE).name

            produce_all(runs["identify"], runs["identify"].topic_name(raw), prepared)
            identify_rate = _stream_rate(runs["identify"], "identify", events, log_dir)
            _check_outputs(runs["identify"], persons, min(SAMPLE, events))

            # Same database, a topic prefix whose Redis keys are empty: the first round has every key once.
            cold_events = min(len(records), events)
            produce_all(runs["cold"], runs["cold"].topic_name(raw), prepared[:cold_events])
            cold_rate = _stream_rate(runs["cold"], "identify", cold_events, log_dir)
            _check_outputs(runs["cold"], persons, min(SAMPLE, cold_events))

            produce_all(runs["passthrough"], runs["passthrough"].topic_name(raw), prepared)
            passthrough_rate = _stream_rate(runs["passthrough"], "passthrough", events, log_dir)
        finally:
            conf = settings.confluent_config()
            cache = PersonCache.for_settings(runs["identify"])
            for s in runs.values():
                delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
                keys = list(cache.client.scan_iter(match=f"hb:{s.topic_prefix}empi:*", count=1000))
                for i in range(0, len(keys), 10000):
                    cache.client.delete(*keys[i : i + 10000])
            cache.client.close()

    return [
        BenchRow("identify events/s (known residents, warm cache)", identify_rate, "one worker; target ≥ 5,000"),
        BenchRow(
            "passthrough events/s (same input)",
            passthrough_rate,
            "baseline: same runtime and intake checks, no identity",
        ),
        BenchRow("identify / passthrough ratio", identify_rate / passthrough_rate),
        BenchRow(
            "identify events/s (known residents, cold cache)",
            cold_rate,
            f"{cold_events} events, each record key once: PostgreSQL lookup",
        ),
        BenchRow(
            "new residents resolved/s (index warm-up, batch of 1000)",
            warmup_rate,
            "slow path, in process: match + write",
        ),
        BenchRow("events", events),
        BenchRow("record keys", len(records), f"known residents' records, up to {rounds} visits each"),
    ]

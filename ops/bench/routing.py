"""``healthbus bench routing``: collaboration routing per worker, next to decoding the same events (issue #6).

Subject: a mix of validated events as the routing stage reads them, built from ``outpatient_visits`` (each
event borrows one synthetic visit's envelope, so residents recur across institutions and days), person ids
set as the identify stage would (uuid5 of the citizen id), deterministic for a seed:

- 85 % outpatient.visit, primary diagnosis replaced so that 30 % of visits carry a managed chronic disease
  (I10.x00x002, E11.900, I63.900, J44.100), 2 % a tumour (C34.100), 3 % a notifiable disease (A15.000x001,
  also chronic-managed; J10.100; B08.400) and the rest a code no route reads (J06.900, K52.900, …);
- 7.5 % prescription (one item, ATC among antihypertensives, metformin, antibiotics: drug-class reminders
  when a person's orders repeat);
- 4 % vaccination.record (HepB / BCG / polio / DTaP, doses 1–3);
- 3 % patient.registered (ABO / Rh, sometimes a past-history item);
- 0.5 % death.record (at most one per person; cause I21.900, C34.100 or J44.100), so the death route seals
  health records: the bench inserts every person into ``empi.persons`` first.

Rows, each rate the best of three runs: decoding alone (the baseline: what any stage pays to read an
event); ``claims_of`` on decoded events, the pure routing decision (the target: ≥ 10,000 events/s per
worker); the stage's batch core ``RoutingStage.handle_batch`` on batches of 1000 (decode, ledger + order
history in PostgreSQL, encode the outputs) first on a fresh database (each of the three runs in its own
private database, created and dropped by the bench) and then as a replay of the same batches (everything
already routed: the ledger finds no change and republishes the stored changes).

With ``stream`` > 0 it also runs the real workers on the broker on N events: ``healthbus worker routing``
(validated.* in, a private PostgreSQL database) next to ``healthbus worker passthrough`` (the same events
signed on raw.*: the Faust runtime and the intake checks, the baseline). The routing worker does not emit
one output per input, so the bench waits until the worker's consumer group has committed all N input
offsets (polling ``Consumer.committed`` on the input partitions; inputs are acked only after their outputs
are acknowledged, so by then every output is on the broker), stops the worker, then reads all its outputs
back: the rate is N over the span of the outputs' broker timestamps (first to last output of any topic;
about 40 % of routing inputs emit something, so every batch does), as for the pass-through worker (one
output per input) and the other benches; start-up and group join are left out. The committed offsets give
a second, coarser figure (events committed between the first poll that sees a commit and the poll that sees
all N, over that time; Faust commits every 2.8 s or 10,000 acks, so use N ≥ 20,000).
"""

from __future__ import annotations

import copy
import random
import time
import uuid
from typing import Any

from avro_schemas.envelope import make_event_id
from avro_schemas.serde import EventCodec
from avro_schemas.topics import validated_topic
from foundation.settings import Settings
from ops.bench.table import BenchRow, best_rate
from ops.stack.postgres import private_database
from streams.faust_runtime.batch_agent import PlainMessage
from streams.routing.routes import claims_of
from synthetic.outpatient_visits import outpatient_visits

TARGET = 10_000
BATCH = 1000
PERSON_NAMESPACE = uuid.UUID("2f1f6c1e-5b7a-4d0e-9a53-8c1f0b6d7e21")

CHRONIC = (
    ("I10.x00x002", "高血压"),
    ("E11.900", "2型糖尿病"),
    ("I63.900", "脑梗死"),
    ("J44.100", "慢性阻塞性肺病急性加重"),
)
TUMOUR = (("C34.100", "上叶支气管或肺恶性肿瘤"),)
NOTIFIABLE = (("A15.000x001", "肺结核"), ("J10.100", "流行性感冒"), ("B08.400", "手足口病"))
UNROUTED = (
    ("J06.900", "急性上呼吸道感染"),
    ("K52.900", "急性胃肠炎"),
    ("M54.500", "腰痛"),
    ("K29.700", "胃炎"),
    ("H10.300", "急性结膜炎"),
    ("J18.900", "肺炎"),
)
ATC = ("C09CA03", "C08CA01", "A10BA02", "J01CA04", "J01DC02")
VACCINES = ("0201", "0101", "0301", "0401")
DEATH_CAUSES = ("I21.900", "C34.100", "J44.100")
# Event type shares of the mix (the rest are outpatient visits), and of visits' primary diagnoses.
MIX = (("prescription", 0.075), ("vaccination.record", 0.04), ("patient.registered", 0.03), ("death.record", 0.005))
DIAGNOSIS_MIX = ((CHRONIC, 0.30), (TUMOUR, 0.02), (NOTIFIABLE, 0.03))


def _pick(rng: random.Random, shares: tuple[tuple[Any, float], ...], rest: Any) -> Any:
    x = rng.random()
    for what, share in shares:
        if x < share:
            return what
        x -= share
    return rest


def _envelope(visit: dict[str, Any], event_type: str, record_key: str) -> dict[str, Any]:
    env = copy.deepcopy(visit["envelope"])
    env.update(event_type=event_type, event_id=make_event_id(env["source"]["org_code"], record_key, 1))
    env["source"]["record_key"] = record_key
    return env


def routing_mix(events: int, seed: int = 17) -> list[tuple[str, dict[str, Any]]]:
    """``events`` validated events (event type, value) in the mix of the module doc, deterministic for a seed."""
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    dead: set[str] = set()
    for n, visit in enumerate(outpatient_visits(events, seed=seed)):
        env = visit["envelope"]
        env["person_id"] = person = str(uuid.uuid5(PERSON_NAMESPACE, env["patient"]["id_number"]))
        at = env["occurred_at"]
        kind = _pick(rng, MIX, "outpatient.visit")
        if kind == "death.record" and person in dead:
            kind = "outpatient.visit"
        if kind == "outpatient.visit":
            codes = _pick(rng, DIAGNOSIS_MIX, UNROUTED)
            code, name = rng.choice(codes)
            visit["diagnoses"][0].update(code=code, name=name)
            out.append((kind, visit))
        elif kind == "prescription":
            out.append(
                (
                    kind,
                    {
                        "envelope": _envelope(visit, kind, f"prescription:CF{seed}-{n}"),
                        "prescription_no": f"CF{seed}-{n}",
                        "visit_no": visit["visit_no"],
                        "prescribed_at": at,
                        "department_name": visit["department_name"],
                        "items": [
                            {
                                "drug_code": f"H{rng.randrange(10000):04d}",
                                "drug_name": None,
                                "atc_code": rng.choice(ATC),
                                "dose": 1.0,
                                "dose_unit": "片",
                                "frequency": "qd",
                                "route": "口服",
                                "days": rng.choice((3, 7, 14, 30)),
                                "quantity": None,
                            }
                        ],
                    },
                )
            )
        elif kind == "vaccination.record":
            out.append(
                (
                    kind,
                    {
                        "envelope": _envelope(visit, kind, f"vaccination:YM{seed}-{n}"),
                        "vaccination_no": f"YM{seed}-{n}",
                        "vaccine_code": rng.choice(VACCINES),
                        "vaccine_name": None,
                        "dose_number": rng.randrange(1, 4),
                        "batch_no": f"B{rng.randrange(1000)}",
                        "manufacturer": None,
                        "administered_at": at,
                        "site": None,
                        "route": None,
                    },
                )
            )
        elif kind == "patient.registered":
            history = (
                [{"kind": "ALLERGY", "code": None, "description": "青霉素过敏", "recorded_at": at}]
                if rng.random() < 0.3
                else []
            )
            out.append(
                (
                    kind,
                    {
                        "envelope": _envelope(visit, kind, f"patient:{env['patient']['local_patient_id']}:{n}"),
                        "abo_blood_type": rng.choice("1234"),
                        "rh_blood_type": rng.choice("12"),
                        "ethnicity": "01",
                        "marital_status": "20",
                        "history": history,
                    },
                )
            )
        else:
            dead.add(person)
            certificate = f"4115{seed:04d}{n:010d}"
            cause = rng.choice(DEATH_CAUSES)
            out.append(
                (
                    kind,
                    {
                        "envelope": _envelope(visit, kind, f"death_record:{certificate}"),
                        "certificate_no": certificate,
                        "died_at": at,
                        "death_place": "1",
                        "cause_chain": [{"line": "a", "code": cause, "description": None, "interval": None}],
                        "underlying_cause_code": cause,
                        "underlying_cause_name": None,
                    },
                )
            )
    return out


def _routing_state(settings: Settings, url: str, persons: list[str]) -> Any:
    from streams.routing.stage import RoutingState, reminder_windows

    state = RoutingState(url, reminder_windows(settings), settings.county_role_prefix)
    with state.conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO empi.persons (person_id) VALUES (%s) ON CONFLICT DO NOTHING", [(p,) for p in persons]
        )
    return state


def _stage_rates(
    settings: Settings, codec: EventCodec, messages: list[PlainMessage], persons: list[str], run_id: str
) -> tuple[float, float, int, int]:
    """(first-time events/s, replay events/s, work-item changes, outputs) over three fresh databases."""
    from streams.routing.stage import RoutingStage

    batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
    first, replay, changes, outputs = 0.0, 0.0, 0, 0
    for run in range(3):
        with private_database(settings.postgres_url, f"hb_bench_routing_{run_id}_{run}") as url:
            state = _routing_state(settings, url, persons)
            try:
                stage = RoutingStage(codec, "bench-", state)
                start = time.perf_counter()
                out = [r for b in batches for r in stage.handle_batch(b)]
                first = max(first, len(messages) / (time.perf_counter() - start))
                changes = sum(r.topic.startswith("bench-collab.") for r in out)
                outputs = len(out)
                for _ in range(3 if run == 0 else 0):  # replays: the same database, everything already routed
                    start = time.perf_counter()
                    again = [r for b in batches for r in stage.handle_batch(b)]
                    replay = max(replay, len(messages) / (time.perf_counter() - start))
                    if len(again) != outputs:
                        raise RuntimeError(f"a replay published {len(again)} records, the first pass {outputs}")
            finally:
                state.close()
    return first, replay, changes, outputs


def run(settings: Settings, events: int = 30_000, seed: int = 17) -> list[BenchRow]:
    codec = EventCodec()
    mix = routing_mix(events, seed)
    payloads = [codec.encode(t, v) for t, v in mix]
    decoded = [(d.event_type, d.value) for d in (codec.decode(p) for p in payloads)]
    messages = [
        PlainMessage("bench-" + validated_topic(t).name, 0, n, b"k:1", p)
        for n, (p, (t, _)) in enumerate(zip(payloads, mix))
    ]
    persons = sorted({v["envelope"]["person_id"] for _, v in mix})
    claims_of(*decoded[0])  # load the code tables before timing

    def decide_all() -> int:
        return sum(1 for t, e in decoded if claims_of(t, e))

    routed = decide_all()
    decide_rate = best_rate(decide_all, events)
    first, replay, changes, outputs = _stage_rates(settings, codec, messages, persons, uuid.uuid4().hex[:8])
    return [
        BenchRow(
            "decode only events/s",
            best_rate(lambda: [codec.decode(p) for p in payloads], events),
            "baseline: fastavro single-object decode of the same events",
        ),
        BenchRow(
            "routing decisions events/s", decide_rate, f"claims_of over decoded events, 6 routes; target ≥ {TARGET:,}"
        ),
        BenchRow("routing decisions vs target", decide_rate / TARGET, "≥ 1 meets the issue's target"),
        BenchRow(
            "stage core events/s",
            first,
            f"RoutingStage.handle_batch, batches of {BATCH}, fresh PostgreSQL (ledger, order history, seal)",
        ),
        BenchRow("stage core replay events/s", replay, "the same batches again: no change, stored changes republished"),
        BenchRow("routed share", routed / events, "events with at least one claim"),
        BenchRow(
            "work-item changes per 1000 events",
            1000 * changes / events,
            f"collab.* records of the first pass; {outputs:,} outputs in all",
        ),
    ]


# -- the workers on the broker ------------------------------------------------------------------------------
def committed_span(
    conf: dict, group: str, topics: list[str], events: int, timeout: float, poll: float = 0.2
) -> tuple[float, int]:
    """(seconds, events) between the first poll that sees the group commit anything on ``topics`` and the
    poll that sees ``events`` committed; waits until then."""
    from ops.topic_admin import committed_total

    first: tuple[float, int] | None = None
    done = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = committed_total(conf, group, topics)
        now = time.monotonic()
        if done and first is None:
            first = (now, done)
        if done >= events:
            assert first is not None
            if done - first[1] <= 0:
                raise RuntimeError(f"all {events} events were committed at once: use more events")
            return max(now - first[0], 1e-3), done - first[1]
        time.sleep(poll)
    raise RuntimeError(f"only {done} of {events} input offsets committed by {group} within {timeout:.0f} s")


def written_span(conf: dict, topics: list[str], group: str) -> tuple[float, int]:
    """(seconds between the first and last message's broker append time, messages) over everything on
    ``topics`` now, read from the beginning to the high watermarks."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from ops.bench.passthrough import BrokerTimeSpan
    from sinks.batch_consumer import consumer_config, position

    consumer = Consumer(
        {**consumer_config(conf, group, 6000), "enable.auto.commit": False, "enable.partition.eof": False}
    )
    try:
        metadata = consumer.list_topics(timeout=10).topics
        ends: dict[tuple[str, int], int] = {}
        for t in topics:
            for p in metadata[t].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
                if high > low:
                    ends[(t, p)] = high
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        span = BrokerTimeSpan()
        deadline = time.monotonic() + 120
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(10000, timeout=0.5):
                if msg.error():
                    continue
                span.add(msg)
                topic, partition, offset = position(msg)
                if offset + 1 >= ends.get((topic, partition), 0):
                    ends.pop((topic, partition), None)
    finally:
        consumer.close()
    if ends or span.seen == 0:
        raise RuntimeError(f"could not read the outputs on {len(ends)} partitions back")
    return span.seconds, span.seen


def _worker_rates(s: Settings, stage: str, inputs: list[str], events: int) -> tuple[float, float, int]:
    """One run of ``healthbus worker <stage>`` over the N events waiting on ``inputs``: (events/s over the span
    of its outputs' broker timestamps, events/s by committed offsets, outputs)."""
    from ops.stack.processes import stop_pid
    from ops.topic_admin import existing_topics
    from ops.worker_process import start_worker

    conf = s.confluent_config()
    log_path = s.state_dir / "logs" / f"bench-routing-{stage}-{s.group_prefix}.log"
    worker = start_worker(s, log_path, stage=stage)
    try:
        seconds, counted = committed_span(
            conf, s.group_id("identify" if stage == "passthrough" else stage), inputs, events, max(180.0, events / 200)
        )
    except RuntimeError as exc:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RuntimeError(f"{exc}; worker {stage} exited: {worker.poll()}; log tail:\n{tail}") from exc
    finally:
        stop_pid(worker.pid)
    # Inputs are acked (and committed) only after their outputs are acknowledged: now every output is there.
    outputs = sorted(set(existing_topics(conf, s.topic_prefix)) - set(inputs))
    span, written = written_span(conf, outputs, f"{s.group_prefix}.count")
    return events / span, counted / seconds, written


def stream_rows(settings: Settings, events: int, seed: int = 19) -> list[BenchRow]:
    from avro_schemas.topics import raw_topic, source_patient_key
    from foundation.source_authentication import SIGNATURE_HEADER, sign
    from ops.bench.passthrough import BENCH_TOPIC_CONFIG, produce_all
    from ops.topic_admin import create_topics, delete_topics, existing_topics

    run_id = uuid.uuid4().hex[:8]
    codec = EventCodec()
    mix = routing_mix(events, seed)
    types = sorted({t for t, _ in mix})
    persons = sorted({v["envelope"]["person_id"] for _, v in mix})
    conf = settings.confluent_config()

    def key_of(v: dict[str, Any]) -> bytes:
        return source_patient_key(v["envelope"]["source"]["org_code"], v["envelope"]["patient"]["local_patient_id"])

    with private_database(settings.postgres_url, f"hb_bench_routing_{run_id}_stream") as url:
        runs = {
            name: settings.model_copy(
                update={
                    "postgres_url": url,
                    "topic_prefix": f"bench-{run_id}-{name}.",
                    "group_prefix": f"bench-{run_id}-{name}",
                }
            )
            for name in ("routing", "passthrough")
        }
        try:
            r = runs["routing"]
            _routing_state(r, url, persons).close()  # the schema and the EMPI persons, before the worker starts
            # the whole catalogue: the worker reads every validated.* and empi.*
            create_topics(conf, r.topic_prefix, extra_config=BENCH_TOPIC_CONFIG)
            for t in types:
                produce_all(
                    r,
                    r.topic_name(validated_topic(t).name),
                    ((codec.encode(t, v), key_of(v), []) for et, v in mix if et == t),
                )
            routing_rate, routing_committed, routing_out = _worker_rates(
                r, "routing", [r.topic_name(validated_topic(t).name) for t in types], events
            )

            p = runs["passthrough"]
            create_topics(conf, p.topic_prefix, extra_config=BENCH_TOPIC_CONFIG)
            for t in types:
                signed = []
                for et, v in mix:
                    if et == t:
                        payload, key = codec.encode(t, v), key_of(v)
                        org = v["envelope"]["source"]["org_code"]
                        signed.append((payload, key, [(SIGNATURE_HEADER, sign(p.signing_key_for(org), key, payload))]))
                produce_all(p, p.topic_name(raw_topic(t).name), signed)
            passthrough_rate, passthrough_committed, passthrough_out = _worker_rates(
                p, "passthrough", [p.topic_name(raw_topic(t).name) for t in types], events
            )
        finally:
            for s in runs.values():
                delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
    return [
        BenchRow(
            "routing worker events/s",
            routing_rate,
            f"healthbus worker routing on {events:,} validated events (Faust + PostgreSQL); span of its "
            f"{routing_out:,} outputs",
        ),
        BenchRow(
            "passthrough worker events/s",
            passthrough_rate,
            f"baseline: Faust runtime + intake checks, the same events signed on raw.*; span of its "
            f"{passthrough_out:,} outputs",
        ),
        BenchRow("routing / passthrough", routing_rate / passthrough_rate, "what routing costs on the stream"),
        BenchRow(
            "routing worker events/s (committed offsets)",
            routing_committed,
            "cross-check: input offsets committed between polls (Faust commits every 2.8 s: coarse)",
        ),
        BenchRow("passthrough worker events/s (committed offsets)", passthrough_committed, "the same for the baseline"),
    ]

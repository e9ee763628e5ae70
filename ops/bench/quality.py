"""``healthbus bench quality``: rule evaluation per worker, next to decoding the same events.

Subject: outpatient.visit, the event type with the most rules (20 of the shipped set), 5 % of them spoiled
the way hospitals get them wrong (bad ICD-10 codes, impossible temperatures, missing complaints, late
uploads). Rows: decoding alone (the baseline: what any stage pays to read an event), the rule engine on
decoded events (the target: ≥ 10,000 events/s per worker), the stage's batch core without its database
(decode + judge + encode the verdict, route the bytes), and the batch CLI's line path (JSON form in,
verdict line out). Each rate is the best of three runs.

With ``stream`` > 0 it also runs the real workers on the broker: ``healthbus worker quality`` (Faust, the
registered-deaths lookup and the issue writes in a private PostgreSQL database) on N identified events,
next to ``healthbus worker passthrough`` on the same N events (the Faust runtime and intake checks with no
rules: the baseline). Each rate is N over the span of the outputs' broker timestamps (one quality.result
per event; one identified event per event), so start-up and group join are left out.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

from avro_schemas.json_form import event_from_json_line, to_json
from avro_schemas.serde import EventCodec
from foundation.settings import Settings
from ops.bench.table import BenchRow, best_rate
from ops.stack.postgres import private_database
from streams.faust_runtime.batch_agent import PlainMessage
from streams.quality.engine import RuleEngine
from streams.quality.rule_set import default_rule_set
from streams.quality.stage import QualityStage
from synthetic.outpatient_visits import outpatient_visits

TARGET = 10_000


def spoiled_visits(events: int, seed: int, share: float = 0.05) -> list[dict]:
    rng = random.Random(seed)
    values = list(outpatient_visits(events, seed=seed))
    for v in values:
        v["envelope"]["person_id"] = f"bench-person-{rng.randrange(events)}"
        if rng.random() < share:
            kind = rng.randrange(4)
            if kind == 0:
                v["diagnoses"][0]["code"] = rng.choice(("U99.900", "I10.900", "E11.9OO"))
            elif kind == 1:
                v["temperature_c"] = rng.choice((45.5, 25.0))
            elif kind == 2:
                v["chief_complaint"] = None
            else:
                v["envelope"]["emitted_at"] = v["envelope"]["occurred_at"] + dt.timedelta(days=3)
    return values


def run(events: int = 50_000, seed: int = 11) -> list[BenchRow]:
    codec = EventCodec()
    rules = default_rule_set()
    engine = RuleEngine(rules)
    values = spoiled_visits(events, seed)
    payloads = [codec.encode("outpatient.visit", v) for v in values]
    decoded = [codec.decode(p).value for p in payloads]
    lines = [to_json(v) for v in decoded]
    stage = QualityStage(codec, "bench-", engine, None, ["outpatient.visit"])
    topic = stage.inputs[0]
    messages = [PlainMessage(topic, 0, n, b"k:1", p) for n, p in enumerate(payloads)]
    engine.judge("outpatient.visit", decoded[0])  # load the code tables before timing

    def judge_all() -> int:
        return sum(engine.judge("outpatient.visit", e).passed for e in decoded)

    def stage_all() -> None:
        for start in range(0, len(messages), 1000):
            stage.handle_batch(messages[start : start + 1000])

    def cli_all() -> None:
        for line in lines:
            event_type, event = event_from_json_line(line)
            json.dumps(engine.judge(event_type, event).output_json())

    passed = judge_all()
    rule_rate = best_rate(judge_all, events)
    rows = [
        BenchRow(
            "decode only events/s",
            best_rate(lambda: [codec.decode(p) for p in payloads], events),
            "baseline: fastavro single-object decode of the same events",
        ),
        BenchRow(
            "rule evaluation events/s",
            rule_rate,
            f"RuleEngine.judge, {len(rules.for_event_type('outpatient.visit'))} rules; target ≥ {TARGET:,}",
        ),
        BenchRow(
            "stage core events/s",
            best_rate(stage_all, events),
            "decode + judge + encode verdict + route, batches of 1000, no database",
        ),
        BenchRow("batch cli line path events/s", best_rate(cli_all, events), "JSON line → from_json → judge → JSON"),
        BenchRow("rule evaluation vs target", rule_rate / TARGET, "≥ 1 meets the issue's target"),
        BenchRow(
            "events rejected share", 1 - passed / events, f"rule set {rules.version}; ~5 % spoiled, only errors reject"
        ),
    ]
    return rows


EVENT_TYPE = "outpatient.visit"


def _worker_rate(s: Settings, stage: str, output_topic: str, events: int) -> float:
    from ops.bench.passthrough import output_span
    from ops.stack.processes import stop_pid
    from ops.worker_process import start_worker

    log_path = s.state_dir / "logs" / f"bench-quality-{stage}-{s.group_prefix}.log"
    worker = start_worker(s, log_path, stage=stage)
    try:
        return events / output_span(
            s.confluent_config(),
            s.topic_name(output_topic),
            events,
            f"{s.group_prefix}.count",
            max(120.0, events / 500),
        )
    except RuntimeError as exc:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RuntimeError(f"{exc}; worker {stage} exited: {worker.poll()}; log tail:\n{tail}") from exc
    finally:
        stop_pid(worker.pid)


def stream_rows(settings: Settings, events: int, seed: int = 13) -> list[BenchRow]:
    from avro_schemas.topics import (
        QUALITY_RESULTS,
        dead_letter_topic,
        identified_topic,
        raw_topic,
        source_patient_key,
        topic,
        validated_topic,
    )
    from ops.bench.passthrough import BENCH_TOPIC_CONFIG, produce_all, signed_visit
    from ops.topic_admin import create_topics, delete_topics, existing_topics

    run_id = uuid.uuid4().hex[:8]
    codec = EventCodec()
    values = spoiled_visits(events, seed)
    conf = settings.confluent_config()
    with private_database(settings.postgres_url, f"hb_bench_quality_{run_id}") as url:
        runs = {
            name: settings.model_copy(
                update={
                    "postgres_url": url,
                    "topic_prefix": f"bench-{run_id}-{name}.",
                    "group_prefix": f"bench-{run_id}-{name}",
                }
            )
            for name in ("quality", "passthrough")
        }
        try:
            q = runs["quality"]
            create_topics(
                conf,
                q.topic_prefix,
                specs=[
                    identified_topic(EVENT_TYPE),
                    validated_topic(EVENT_TYPE),
                    topic(QUALITY_RESULTS),
                    dead_letter_topic("quality"),
                ],
                extra_config=BENCH_TOPIC_CONFIG,
            )
            produce_all(
                q,
                q.topic_name(identified_topic(EVENT_TYPE).name),
                (
                    (
                        codec.encode(EVENT_TYPE, v),
                        source_patient_key(
                            v["envelope"]["source"]["org_code"], v["envelope"]["patient"]["local_patient_id"]
                        ),
                        [],
                    )
                    for v in values
                ),
            )
            quality_rate = _worker_rate(q, "quality", QUALITY_RESULTS, events)

            p = runs["passthrough"]
            create_topics(
                conf,
                p.topic_prefix,
                specs=[raw_topic(EVENT_TYPE), identified_topic(EVENT_TYPE), dead_letter_topic("identify")],
                extra_config=BENCH_TOPIC_CONFIG,
            )
            produce_all(p, p.topic_name(raw_topic(EVENT_TYPE).name), (signed_visit(p, codec, v) for v in values))
            passthrough_rate = _worker_rate(p, "passthrough", identified_topic(EVENT_TYPE).name, events)
        finally:
            for s in runs.values():
                delete_topics(conf, list(existing_topics(conf, s.topic_prefix)))
    return [
        BenchRow(
            "quality worker events/s",
            quality_rate,
            f"healthbus worker quality on {events:,} identified events (Faust + PostgreSQL)",
        ),
        BenchRow(
            "passthrough worker events/s", passthrough_rate, "baseline: the Faust runtime and intake checks, no rules"
        ),
        BenchRow("quality / passthrough", quality_rate / passthrough_rate, "what judging costs on the stream"),
    ]

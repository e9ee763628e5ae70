"""``healthbus bench quality``: rule evaluation per worker, next to decoding the same events.

Subject: outpatient.visit, the event type with the most rules (20 of the shipped set), 5 % of them spoiled
the way hospitals get them wrong (bad ICD-10 codes, impossible temperatures, missing complaints, late
uploads). Rows: decoding alone (the baseline: what any stage pays to read an event), the rule engine on
decoded events (the target: ≥ 10,000 events/s per worker), the stage's batch core without its database
(decode + judge + encode the verdict, route the bytes), and the batch CLI's line path (JSON form in,
verdict line out). Each rate is the best of three runs.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable

from avro_schemas.json_form import event_from_json_line, to_json
from avro_schemas.serde import EventCodec
from ops.bench_table import BenchRow
from producers.synthetic.outpatient_visits import outpatient_visits
from streams.quality.engine import RuleEngine
from streams.quality.rule_set import default_rule_set
from streams.quality.stage import QualityStage

TARGET = 10_000


def _best_rate(fn: Callable[[], object], n: int, runs: int = 3) -> float:
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


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


class _Message:
    __slots__ = ("topic", "partition", "offset", "key", "value", "headers")

    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.key, self.value, self.headers = topic, 0, offset, b"k:1", value, None


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
    messages = [_Message(topic, n, p) for n, p in enumerate(payloads)]
    engine.judge("outpatient.visit", decoded[0])  # load the code tables before timing

    def judge_all() -> int:
        return sum(engine.judge("outpatient.visit", e).passed for e in decoded)

    def stage_all() -> None:
        for start in range(0, len(messages), 1000):
            stage.handle_batch(messages[start:start + 1000])

    def cli_all() -> None:
        for line in lines:
            event_type, event = event_from_json_line(line)
            json.dumps(engine.judge(event_type, event).output_json())

    passed = judge_all()
    rule_rate = _best_rate(judge_all, events)
    rows = [
        BenchRow("decode only events/s", _best_rate(lambda: [codec.decode(p) for p in payloads], events),
                 "baseline: fastavro single-object decode of the same events"),
        BenchRow("rule evaluation events/s", rule_rate,
                 f"RuleEngine.judge, {len(rules.for_event_type('outpatient.visit'))} rules; target ≥ {TARGET:,}"),
        BenchRow("stage core events/s", _best_rate(stage_all, events),
                 "decode + judge + encode verdict + route, batches of 1000, no database"),
        BenchRow("batch cli line path events/s", _best_rate(cli_all, events), "JSON line → from_json → judge → JSON"),
        BenchRow("rule evaluation vs target", rule_rate / TARGET, "≥ 1 meets the issue's target"),
        BenchRow("events rejected share", 1 - passed / events, "spoiled on purpose: ~5 % touched, errors only reject"),
        BenchRow("rule set", float(rules.version.replace(".", "")), f"version {rules.version}"),
    ]
    return rows

"""Poison: records that decode but that a stage or a store cannot take (issue #17 §1), fed through the real
pipeline (identify and quality workers, both sinks, each its own process) ahead of a hospital's day. Each
lands in its stage's dead-letter topic with its reason, the day lands once, a 150-month backfill lands whole,
and no process restarts."""

from __future__ import annotations

import copy
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from avro_schemas.envelope import make_event_id
from avro_schemas.topics import validated_topic
from foundation.kafka_config import producer_config
from foundation.source_authentication import SIGNATURE_HEADER, sign
from synthetic.outpatient_visits import outpatient_visits
from tests.chaos_harness import (
    CODEC,
    ChaosRun,
    Flow,
    chaos_run,
    check_report,
    clickhouse_rows,
    dead_letter_reasons,
    expected_ids,
    postgres_rows,
    publish_in_process,
    raw_topic_name,
    write_report,
)

pytestmark = pytest.mark.chaos
BACKFILL_MONTHS = 150


@pytest.fixture(scope="module")
def chaos(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosRun]:
    with chaos_run(bootstrap, tmp_path_factory.mktemp("chaos-poison"), hospitals=1) as run:
        yield run


def _visit(seed: int, **envelope: Any) -> dict[str, Any]:
    """A visit with ``envelope`` changed and its id derived again, as the identify stage checks it (an id
    given in ``envelope`` is kept); validated-topic injections bypass that check, so ids just stay unique."""
    value = copy.deepcopy(next(outpatient_visits(1, seed=seed)))
    env = value["envelope"]
    env["source"]["record_key"] = f"visits:poison-{seed}-{uuid.uuid4().hex[:8]}"
    env.update(envelope)
    if "event_id" not in envelope:
        env["event_id"] = make_event_id(
            env["source"]["org_code"], env["source"]["record_key"], env["record_version"], env["cancelled"]
        )
    return value


def test_poison_records_go_to_their_dead_letter_topics_and_nothing_stops(chaos: ChaosRun, capsys) -> None:
    s, source = chaos.s, chaos.source(0)
    raw, validated = raw_topic_name(s, "outpatient.visit"), s.topic_name(validated_topic("outpatient.visit").name)
    old = dt.datetime(1969, 12, 31, tzinfo=dt.UTC)
    nul_name = _visit(105)
    nul_name["envelope"]["patient"]["name"] = "张\x00伟"  # PostgreSQL text refuses NUL: the index write fails
    nul_complaint = _visit(106)
    nul_complaint["chief_complaint"] = "咳嗽\x00三天"  # passes identify and quality; jsonb refuses it
    huge = _visit(104)
    huge["chief_complaint"] = "咳" * 320_000  # 960 kB: over the bus's limit once identified
    poison = {  # (topic, value) → (stage whose dead letter it becomes, reason)
        "before 1970": (raw, _visit(101, occurred_at=old), "identify", "out_of_range"),
        "record version -1": (raw, _visit(102, record_version=-1), "identify", "out_of_range"),
        "event id not a UUID": (raw, _visit(103, event_id="visit-103"), "identify", "invalid_event_id"),
        "another's event id": (
            raw,
            _visit(108, event_id=make_event_id("12411503MB0000002X", "visits:1", 1)),
            "identify",
            "event_id_mismatch",
        ),
        "over 1 MB once stamped": (raw, huge, "identify", "too_large"),
        "NUL in a name": (raw, nul_name, "identify", "unprocessable"),
        "NUL in a complaint": (raw, nul_complaint, "sink-postgres", "unprocessable"),
        # straight onto the sinks' input: a version ClickHouse's UInt32 cannot hold, PostgreSQL's int can
        "version -1 at the sinks": (validated, _visit(107, record_version=-1), "sink-clickhouse", "unprocessable"),
    }
    start = dt.datetime(2010, 1, 10, tzinfo=dt.UTC)
    backfill = [  # a county's history: one visit a month over 150 months, in one batch of the sinks
        _visit(200 + i, occurred_at=start + dt.timedelta(days=30.44 * i), emitted_at=start + dt.timedelta(days=30.44 * i))
        for i in range(BACKFILL_MONTHS)
    ]  # fmt: skip
    producer = Producer({**producer_config(s.confluent_config()), "message.max.bytes": 2_000_000})
    offsets: dict[str, tuple[str, int, int]] = {}

    def send(name: str, topic: str, value: dict[str, Any]) -> None:
        env = value["envelope"]
        key = f"{env['source']['org_code']}:{env['patient']['local_patient_id']}".encode()
        payload = CODEC.encode("outpatient.visit", value)
        headers = [(SIGNATURE_HEADER, sign(s.signing_key_for(env["source"]["org_code"]), key, payload))]
        producer.produce(
            topic,
            payload,
            key,
            headers=headers,
            on_delivery=lambda err, m: offsets.__setitem__(name, (m.topic(), m.partition(), m.offset())),
        )

    for name, (topic, value, _, _) in poison.items():
        send(name, topic, value)
    for i, value in enumerate(backfill):
        send(f"backfill {i}", validated, value)
    assert producer.flush(30) == 0 and len(offsets) == len(poison) + len(backfill)

    injected_at = time.monotonic()
    publish_in_process(s, source)  # a hospital's day behind the poison: it must flow past it
    flow = Flow(chaos.pipeline, chaos.verdicts, expected_ids(s, source))
    caught_up = flow.wait_caught_up()
    chaos.pipeline.check_alive()
    restarts = sum(chaos.pipeline.starts.values()) - len(chaos.pipeline.starts)
    report = flow.report("poison (8 kinds) + 150-month backfill", injected_at, caught_up, f"{restarts} restarts")
    chaos.reports.append(report)
    check_report(report)

    found = {
        stage: dead_letter_reasons(s, stage, by_event=True)
        for stage in ("identify", "quality", "sink-postgres", "sink-clickhouse")
    }
    for name, (_, value, stage, code) in poison.items():
        assert found[stage].get(value["envelope"]["event_id"]) == code, (name, stage, found[stage])
    assert len(found["identify"]) == 6 and len(found["sink-postgres"]) == 1 and len(found["sink-clickhouse"]) == 1
    backfill_ids = [v["envelope"]["event_id"] for v in backfill]
    assert postgres_rows(s, backfill_ids) == (BACKFILL_MONTHS, BACKFILL_MONTHS)
    assert not set(backfill_ids) & {e for letters in found.values() for e in letters}
    chaos.pipeline.stop("sink-clickhouse")  # the count reads the sink's chDB directory
    try:
        assert clickhouse_rows(s, backfill_ids)["final"] == BACKFILL_MONTHS
    finally:
        chaos.pipeline.start("sink-clickhouse")
    assert restarts == 0, chaos.pipeline.starts  # counted before the deliberate stops of the ClickHouse sink
    write_report(chaos, "chaos-poison-report.txt", capsys)

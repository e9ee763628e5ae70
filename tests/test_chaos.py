"""Reliability under faults (issue #8 §3), ``pytest -m chaos``: one pipeline for the module (identify and
quality stages, both sinks, each a real process; a private PostgreSQL cluster so that stopping it touches no
one else), one synthetic hospital's day (600–1000 events, published by its adapter) per fault. For each fault: nothing lost, nothing
duplicated in PostgreSQL or ClickHouse, the pipeline catches up by itself, within RECOVERY_BOUND seconds of
the fault's end; the last test prints the table (also without ``-s``) and writes it to the module's state directory.
About 2 minutes, 30 s of which is the outage.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from avro_schemas.envelope import make_event_id
from avro_schemas.topics import validated_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from foundation.source_authentication import SIGNATURE_HEADER, sign
from ops.worker_process import worker_env
from producers.adapters.config import (
    AdapterConfig,
    dump_config,
)
from producers.adapters.state_store import AdapterState
from synthetic.outpatient_visits import outpatient_visits
from tests.chaos_harness import (
    CODEC,
    HEALTHBUS,
    ChaosRun,
    Flow,
    TcpProxy,
    chaos_run,
    check_report,
    clickhouse_rows,
    dead_letter_reasons,
    expected_ids,
    judged,
    postgres_rows,
    publish_in_process,
    raw_topic_name,
    write_report,
)
from tests.pipeline_harness import read_topic

pytestmark = pytest.mark.chaos

OUTAGE_SECONDS = 30.0  # the PostgreSQL outage
EXCHANGE_OUTAGE_SECONDS = 20.0  # one institution's exchange database dead (issue #17 §2)


@pytest.fixture(scope="module")
def chaos(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosRun]:
    with chaos_run(bootstrap, tmp_path_factory.mktemp("chaos"), hospitals=8) as run:
        yield run


def _kill_9_mid_stream(
    chaos: ChaosRun,
    index: int,
    processes: tuple[str, ...],
    progress: Callable[[Flow], int],
    fault: str,
    measured: str,
    pause: float = 0.0,
) -> None:
    """Load one institution, kill -9 ``processes`` as soon as ``progress`` shows work under way, restart them,
    and check the sinks end up holding everything once."""
    source, p = chaos.source(index), chaos.pipeline
    publish_in_process(chaos.s, source)
    flow = Flow(p, chaos.verdicts, expected_ids(chaos.s, source))
    flow.wait_until(lambda: progress(flow) > 0, 60, f"the first {measured}")
    for name in processes:
        p.kill9(name)  # no shutdown, no commit, open transactions
    at_kill = progress(flow)
    assert at_kill < len(flow.sent), "the kill must land mid-stream"
    time.sleep(pause)
    restarted = time.monotonic()
    for name in processes:
        p.start(name)
    report = flow.report(fault, restarted, flow.wait_caught_up(), f"{at_kill} {measured} at the kill")
    chaos.reports.append(report)
    check_report(report)


def test_kill_9_the_stream_workers_mid_stream(chaos: ChaosRun) -> None:
    _kill_9_mid_stream(
        chaos, 0, ("identify", "quality"), judged, "kill -9 identify + quality workers", "judged", pause=1.0
    )


def test_kill_9_both_sinks_mid_batch(chaos: ChaosRun) -> None:
    # written but not committed: the restart re-reads the batch
    _kill_9_mid_stream(
        chaos, 1, ("sink-postgres", "sink-clickhouse"), Flow.progress, "kill -9 both sinks mid-batch", "in PostgreSQL"
    )


def test_undecodable_and_wrong_schema_messages_go_to_their_dead_letter_topics(chaos: ChaosRun) -> None:
    source, s = chaos.source(2), chaos.s
    raw_visit, raw_lab = raw_topic_name(s, "outpatient.visit"), raw_topic_name(s, "lab.report")
    validated_visit = s.topic_name(validated_topic("outpatient.visit").name)
    before_load = {  # (topic, payload) → (where its dead letter must be, its reason)
        (raw_visit, b"garbage\xff\xfe not avro"): ("identify", "unknown_magic"),
        (raw_visit, b"\xc3\x01" + bytes(8) + b"an unknown schema"): ("identify", "unknown_fingerprint"),
        (raw_visit, CODEC.encode("ops.dead_letter", _a_dead_letter(), topic="any")): ("identify", "malformed_body"),
        (validated_visit, b"garbage after the quality stage"): ("sinks", "unknown_magic"),
        # valid Avro of another kind on a validated topic: the sinks must refuse it, not crash on it
        (validated_visit, CODEC.encode("ops.dead_letter", _a_dead_letter(), topic="any")): (
            "sinks",
            "wrong_event_type",
        ),
    }
    producer = Producer(producer_config(s.confluent_config()))
    offsets: dict[tuple[str, bytes], tuple[int, int]] = {}

    def inject(messages: dict[tuple[str, bytes], tuple[str, str]]) -> None:
        for i, (topic, payload) in enumerate(messages):
            # Keys of this institution spread the poison over partitions the load then flows through.
            producer.produce(
                topic,
                payload,
                f"{source.org_code}:chaos-{i}".encode(),
                on_delivery=lambda err, m, k=(topic, payload): offsets.__setitem__(k, (m.partition(), m.offset())),
            )
        assert producer.flush(10) == 0

    inject(before_load)  # the load comes after the poison: the stages and sinks must carry on past it
    publish_in_process(s, source)
    flow = Flow(chaos.pipeline, chaos.verdicts, expected_ids(s, source))
    visit = next(
        m
        for m in read_topic(s, raw_visit, idle=0.5)
        if (m.key() or b"").startswith(source.org_code.encode()) and m.headers()
    )  # a real, signed visit
    wrong_type = {(raw_lab, visit.value()): ("identify", "wrong_event_type")}  # a visit on the lab reports' topic
    inject(wrong_type)
    injected_at = time.monotonic()
    report = flow.report(
        "undecodable + wrong-schema messages",
        injected_at,
        flow.wait_caught_up(),
        f"{len(before_load) + len(wrong_type)} injected",
    )
    chaos.reports.append(report)
    check_report(report)

    found = {stage: dead_letter_reasons(s, stage) for stage in ("identify", "sink-postgres", "sink-clickhouse")}
    for (topic, payload), (stage, code) in {**before_load, **wrong_type}.items():
        where = (topic, *offsets[(topic, payload)])
        for letter_stage in [stage] if stage != "sinks" else ["sink-postgres", "sink-clickhouse"]:
            assert found[letter_stage].get(where) == code, (letter_stage, where, found[letter_stage])


def _a_dead_letter() -> dict:
    """A valid ops.dead_letter value: real Avro of a real schema, but not an event with an envelope."""
    from foundation.dead_letters import dead_letter

    return dead_letter("chaos", "test", "a record of the wrong schema", "t", 0, 0, None, b"", None)


def test_kill_9_an_adapter_between_publishing_and_its_watermark_commit(chaos: ChaosRun, tmp_path: Path) -> None:
    source, s = chaos.source(3), chaos.s
    config = tmp_path / "adapter.yaml"
    dump_config(AdapterConfig(sources=[source]), config)
    argv = [str(HEALTHBUS), "adapter", "run", "--config", str(config), "--settle", "0"]
    AdapterState(s.postgres_url).close()  # the state tables exist before we lock a row of them
    blocker = psycopg.connect(s.postgres_url)
    blocker.execute(
        "INSERT INTO adapter_watermark (source_id, table_name, updated_at, pk) "
        "VALUES (%s, 'patient', '1900-01-01', '')",
        (source.source_id,),
    )
    blocker.commit()
    # Hold the watermark row: the adapter publishes its first round (a page of every table), has it
    # acknowledged, then blocks committing the watermark: the kill loses the commit, not the events.
    blocker.execute(
        "SELECT 1 FROM adapter_watermark WHERE source_id = %s AND table_name = 'patient' FOR UPDATE",
        (source.source_id,),
    )
    log = tmp_path / "adapter.log"
    with open(log, "wb") as out:
        adapter = subprocess.Popen(
            argv, env=worker_env(s), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while not _waits_on_a_lock(s.postgres_url):
            assert adapter.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        os.killpg(adapter.pid, signal.SIGKILL)  # the fault itself, and the cleanup when the wait failed
        adapter.wait(10)
        blocker.rollback()
        blocker.close()
    restarted = time.monotonic()
    again = subprocess.run([*argv, "--once"], env=worker_env(s), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    flow = Flow(chaos.pipeline, chaos.verdicts, expected_ids(s, source))
    republished = _raw_messages_of(s, source.org_code, "patient.registered")
    assert len(republished) > len(set(republished)), "the restart must re-publish the first page"
    report = flow.report(
        "kill -9 adapter, restart",
        restarted,
        flow.wait_caught_up(),
        f"{len(republished) - len(set(republished))} re-published",
    )
    chaos.reports.append(report)
    check_report(report)


def _waits_on_a_lock(postgres_url: str) -> bool:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0


def _raw_messages_of(s: Settings, org_code: str, event_type: str) -> list[str]:
    """Event ids of the institution's messages on a raw topic, repeats kept."""
    return [
        CODEC.decode(m.value()).value["envelope"]["event_id"]
        for m in read_topic(s, raw_topic_name(s, event_type), idle=1.0)
        if (m.key() or b"").startswith(org_code.encode())
    ]


def test_postgres_down_for_30_seconds(chaos: ChaosRun) -> None:
    source, p = chaos.source(4), chaos.pipeline
    publish_in_process(chaos.s, source)  # before the outage: the adapter keeps its watermarks in PostgreSQL
    flow = Flow(p, chaos.verdicts, expected_ids(chaos.s, source))
    # Down as soon as the identify stage works on this institution: the stages meet the outage mid-batch.
    flow.wait_until(lambda: _empi_records(chaos.s, source.org_code) > 0, 60, "the identify stage at work")
    chaos.postgres.stop()
    try:
        at_stop = judged(flow)
        assert at_stop < len(flow.sent), "the outage must land mid-stream"
        down_until = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < down_until:  # every process must ride the outage out
            p.check_alive()
            flow.verdicts.poll(0.5)
    finally:
        chaos.postgres.start()
    back = time.monotonic()
    report = flow.report(
        f"PostgreSQL down {OUTAGE_SECONDS:.0f} s", back, flow.wait_caught_up(), f"{at_stop} judged at the stop"
    )
    chaos.reports.append(report)
    check_report(report)


def _empi_records(s: Settings, org_code: str) -> int:
    with psycopg.connect(s.postgres_url) as conn:
        try:
            return conn.execute("SELECT count(*) FROM empi.records WHERE org_code = %s", (org_code,)).fetchone()[0]
        except psycopg.errors.UndefinedTable:  # the identify stage has not set its schema up yet
            return 0


def test_a_dead_exchange_database(chaos: ChaosRun, tmp_path: Path) -> None:
    """One adapter process serves two institutions; one's exchange database is dead (behind a proxy that
    cuts and refuses connections) for 20 s. The other's events land meanwhile; the dead one backs off, shows
    down, and catches up by itself once its database is back."""
    dead, alive, s = chaos.source(5), chaos.source(6), chaos.s
    target = psycopg.conninfo.conninfo_to_dict(dead.dsn)
    proxy = TcpProxy(str(target.get("host") or "127.0.0.1"), int(target.get("port") or 5432))
    proxy.down()
    config = tmp_path / "adapters.yaml"
    proxied = dead.model_copy(
        update={"dsn": psycopg.conninfo.make_conninfo(dead.dsn, host="127.0.0.1", port=proxy.port)}
    )
    dump_config(AdapterConfig(sources=[proxied, alive]), config)
    argv = [str(HEALTHBUS), "adapter", "run", "--config", str(config), "--settle", "0"]
    log = tmp_path / "adapter.log"
    with open(log, "wb") as out:
        adapter = subprocess.Popen(
            argv, env=worker_env(s), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    died = time.monotonic()
    try:
        # The other institution goes on: all of its events land while the dead database is still away.
        Flow(chaos.pipeline, chaos.verdicts, expected_ids(s, alive)).wait_caught_up()
        assert adapter.poll() is None, log.read_text()[-3000:]
        assert _raw_messages_of(s, dead.org_code, "patient.registered") == []
        health = _source_health(s, dead.source_id)
        assert health is not None and health[0] == "down" and health[1] >= 2, health
        time.sleep(max(0.0, died + EXCHANGE_OUTAGE_SECONDS - time.monotonic()))
        failures = _source_health(s, dead.source_id)
        proxy.up()
        back = time.monotonic()
        flow = Flow(chaos.pipeline, chaos.verdicts, expected_ids(s, dead) | expected_ids(s, alive))
        report = flow.report(
            f"dead exchange database {EXCHANGE_OUTAGE_SECONDS:.0f} s",
            back,
            flow.wait_caught_up(),
            f"{failures[1] if failures else '?'} failed polls, the other institution on time",
        )
        assert _source_health(s, dead.source_id) == ("up", 0)
        assert adapter.poll() is None, log.read_text()[-3000:]
    finally:
        os.killpg(adapter.pid, signal.SIGTERM)
        stopped = adapter.wait(30)
        proxy.close()
    assert stopped == 0, log.read_text()[-3000:]
    chaos.reports.append(report)
    check_report(report)


def _source_health(s: Settings, source_id: str) -> tuple[str, int] | None:
    """(state, consecutive failures) as the adapter process reported it to PostgreSQL (what status shows)."""
    with psycopg.connect(s.postgres_url) as conn:
        row = conn.execute(
            "SELECT state, consecutive_failures FROM adapter_source_health WHERE source_id = %s", (source_id,)
        ).fetchone()
    return (row[0], row[1]) if row else None


# -- poison: records that decode but a stage or a store cannot take (issue #17 §1), fed through the pipeline
# ahead of a hospital's day. Each lands in its stage's dead-letter topic with its reason, the day lands once, a
# 150-month backfill lands whole, and no process restarts.
POISON_BACKFILL_MONTHS = 150


def _poison_visit(seed: int, **envelope: Any) -> dict[str, Any]:
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


def test_poison_records_go_to_their_dead_letter_topics_and_nothing_stops(chaos: ChaosRun) -> None:
    s, source = chaos.s, chaos.source(7)
    starts_before = dict(chaos.pipeline.starts)  # earlier faults restarted processes on purpose
    raw, validated = raw_topic_name(s, "outpatient.visit"), s.topic_name(validated_topic("outpatient.visit").name)
    old = dt.datetime(1969, 12, 31, tzinfo=dt.UTC)
    nul_name = _poison_visit(105)
    nul_name["envelope"]["patient"]["name"] = "张\x00伟"  # PostgreSQL text refuses NUL: the index write fails
    nul_complaint = _poison_visit(106)
    nul_complaint["chief_complaint"] = "咳嗽\x00三天"  # passes identify and quality; jsonb refuses it
    huge = _poison_visit(104)
    huge["chief_complaint"] = "咳" * 320_000  # 960 kB: over the bus's limit once identified
    poison = {  # (topic, value) → (stage whose dead letter it becomes, reason)
        "before 1970": (raw, _poison_visit(101, occurred_at=old), "identify", "out_of_range"),
        "record version -1": (raw, _poison_visit(102, record_version=-1), "identify", "out_of_range"),
        "event id not a UUID": (raw, _poison_visit(103, event_id="visit-103"), "identify", "invalid_event_id"),
        "another's event id": (
            raw,
            _poison_visit(108, event_id=make_event_id("12411503MB0000002X", "visits:1", 1)),
            "identify",
            "event_id_mismatch",
        ),
        "over 1 MB once stamped": (raw, huge, "identify", "too_large"),
        "NUL in a name": (raw, nul_name, "identify", "unprocessable"),
        "NUL in a complaint": (raw, nul_complaint, "sink-postgres", "unprocessable"),
        # straight onto the sinks' input: a version ClickHouse's UInt32 cannot hold, PostgreSQL's int can
        "version -1 at the sinks": (
            validated,
            _poison_visit(107, record_version=-1),
            "sink-clickhouse",
            "unprocessable",
        ),
    }
    start = dt.datetime(2010, 1, 10, tzinfo=dt.UTC)
    backfill = [  # a county's history: one visit a month over 150 months, in one batch of the sinks
        _poison_visit(200 + i, occurred_at=start + dt.timedelta(days=30.44 * i), emitted_at=start + dt.timedelta(days=30.44 * i))
        for i in range(POISON_BACKFILL_MONTHS)
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
    restarts = sum(n - starts_before.get(name, 0) for name, n in chaos.pipeline.starts.items())
    report = flow.report("poison (8 kinds) + 150-month backfill", injected_at, caught_up, f"{restarts} restarts")
    chaos.reports.append(report)
    check_report(report)

    found = {
        stage: dead_letter_reasons(s, stage, by_event=True)
        for stage in ("identify", "quality", "sink-postgres", "sink-clickhouse")
    }
    for name, (_, value, stage, code) in poison.items():
        assert found[stage].get(value["envelope"]["event_id"]) == code, (name, stage, found[stage])
    ours = {v["envelope"]["event_id"] for _, v, _, _ in poison.values()}
    assert [len(ours & letters.keys()) for letters in found.values()] == [6, 0, 1, 1]  # no poison caught twice
    backfill_ids = [v["envelope"]["event_id"] for v in backfill]
    assert postgres_rows(s, backfill_ids) == (POISON_BACKFILL_MONTHS, POISON_BACKFILL_MONTHS)
    assert not set(backfill_ids) & {e for letters in found.values() for e in letters}
    chaos.pipeline.stop("sink-clickhouse")  # the count reads the sink's chDB directory
    try:
        assert clickhouse_rows(s, backfill_ids)["final"] == POISON_BACKFILL_MONTHS
    finally:
        chaos.pipeline.start("sink-clickhouse")
    assert restarts == 0, chaos.pipeline.starts  # counted before the deliberate stops of the ClickHouse sink


def test_report(chaos: ChaosRun, capsys: pytest.CaptureFixture[str]) -> None:
    write_report(chaos, "chaos-report.txt", capsys)

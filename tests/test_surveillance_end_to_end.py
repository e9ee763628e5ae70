"""The surveillance worker as a real process on the broker: kill -9 mid-stream, restart, and the daily
counts hold every visit exactly once while every case reaches surveillance.cases."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import psycopg
from confluent_kafka import Producer

from avro_schemas.serde import EventCodec
from avro_schemas.topics import SURVEILLANCE_CASES, source_patient_key, validated_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.topic_admin import committed_total
from streams.surveillance.stage import classify_visit
from tests.pipeline_harness import read_topic, stage_worker, start_stage_worker
from tests.quality_events import identified_visits

CODEC = EventCodec()


def _counted(s: Settings) -> int:
    with psycopg.connect(s.postgres_url) as conn:
        try:
            return conn.execute(
                "SELECT coalesce(sum(cases), 0) FROM surveillance.daily_counts "
                "WHERE syndrome = 'VISITS' AND population_group = 'ALL'"
            ).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def test_kill_9_mid_stream_then_restart_counts_every_visit_once(own_db_settings: Settings, tmp_path: Path) -> None:
    s = own_db_settings
    visits = identified_visits(3000, seed=83)
    target = s.topic_name(validated_topic("outpatient.visit").name)
    producer = Producer(producer_config(s.confluent_config()))
    for v in visits:
        env = v["envelope"]
        producer.produce(
            target,
            CODEC.encode("outpatient.visit", v),
            source_patient_key(env["source"]["org_code"], env["patient"]["local_patient_id"]),
        )
    assert producer.flush(30) == 0
    expected = Counter(s.value for v in visits for s in classify_visit(v).syndromes)
    worker = start_stage_worker(s, tmp_path / "w1.log", stage="surveillance")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _counted(s) < len(visits) // 4:
            assert worker.poll() is None, (tmp_path / "w1.log").read_text()[-3000:]
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert 0 < _counted(s) < len(visits), "the kill must land mid-stream"
    with stage_worker(s, tmp_path / "w2.log", "surveillance") as again:
        deadline = time.monotonic() + 120
        while committed_total(s.confluent_config(), s.group_id("surveillance"), [target]) < len(visits):
            assert again.poll() is None and time.monotonic() < deadline, (tmp_path / "w2.log").read_text()[-3000:]
            time.sleep(0.5)
    assert _counted(s) == len(visits)  # every visit once: none lost, none counted twice
    with psycopg.connect(s.postgres_url) as conn:
        counts = dict(
            conn.execute(
                "SELECT syndrome, sum(cases) FROM surveillance.daily_counts WHERE "
                "population_group = 'ALL' AND syndrome <> 'VISITS' GROUP BY 1"
            ).fetchall()
        )
    assert counts == dict(expected)
    published = {
        CODEC.decode(m.value()).value["case_id"]
        for m in read_topic(s, s.topic_name(SURVEILLANCE_CASES), idle=1.0, timeout=20)
    }
    assert published == {v["envelope"]["event_id"] for v in visits if classify_visit(v).syndromes}

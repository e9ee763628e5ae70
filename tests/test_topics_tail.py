"""``healthbus topics tail`` on a real broker: --json prints exactly the produced events in the JSON form
(read back with ``from_json``), undecodable messages go to stderr and reading goes on, --max and
--from-end do what they say, summary lines carry no personal data, and nothing is committed."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from avro_schemas.json_form import event_from_json_line
from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic, raw_topic, source_patient_key
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.topic_admin import create_topics, delete_topics, existing_topics
from ops.topic_tail import TopicTail, UnknownTopic
from synthetic.outpatient_visits import outpatient_visits
from tests.conftest import HEALTHBUS, REPO, healthbus, settings_env

CODEC = EventCodec()
VISITS = "raw.outpatient.visit"


@pytest.fixture
def tail_settings(bootstrap: str) -> Iterator[Settings]:
    """A fresh topic prefix with only the topics these tests use (no database needed)."""
    run = uuid.uuid4().hex[:8]
    s = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"t{run}-", group_prefix=f"g{run}", schema_registry_url=None)
    create_topics(
        s.confluent_config(), s.topic_prefix, specs=[raw_topic("outpatient.visit"), dead_letter_topic("identify")]
    )
    try:
        yield s
    finally:
        delete_topics(s.confluent_config(), list(existing_topics(s.confluent_config(), s.topic_prefix)))


def produce(s: Settings, values: list[dict[str, Any]], garbage: list[bytes] = ()) -> list[dict[str, Any]]:
    """Publish visits (and raw garbage payloads) to raw.outpatient.visit; returns the visits as decoded."""
    producer = Producer(producer_config(s.confluent_config()))
    topic = s.topic_name(VISITS)
    expected = []
    for value in values:
        payload = CODEC.encode("outpatient.visit", value)
        expected.append(CODEC.decode(payload).value)
        envelope = value["envelope"]
        producer.produce(
            topic, payload, source_patient_key(envelope["source"]["org_code"], envelope["patient"]["local_patient_id"])
        )
    for payload in garbage:
        producer.produce(topic, payload, b"garbage")
    assert producer.flush(30) == 0
    return expected


def by_id(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v["envelope"]["event_id"]: v for v in values}


def test_json_prints_exactly_the_produced_events(tail_settings: Settings) -> None:
    expected = produce(tail_settings, list(outpatient_visits(40, seed=12)), garbage=[b"not avro at all"])
    run = healthbus("topics", "tail", VISITS, "--json", "--idle-seconds", "2", env=settings_env(tail_settings))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 40  # one line per event, nothing else on stdout
    read = [event_from_json_line(line) for line in lines]
    assert {t for t, _ in read} == {"outpatient.visit"}
    assert by_id([v for _, v in read]) == by_id(expected)
    problems = [json.loads(line) for line in run.stderr.splitlines()]
    assert len(problems) == 1  # and, with --json, stderr holds only JSON lines
    assert problems[0]["_undecodable"] is True and problems[0]["code"] == "unknown_magic"
    assert {"partition", "offset", "error"} <= set(problems[0])


def test_summary_lines_carry_no_personal_data(tail_settings: Settings) -> None:
    values = list(outpatient_visits(10, seed=13))
    expected = by_id(produce(tail_settings, values))
    run = healthbus("topics", "tail", VISITS, "--idle-seconds", "2", env=settings_env(tail_settings))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 10
    seen = set()
    for line in lines:
        partition, offset, event_type, event_id, occurred_at = line.split()
        assert int(partition) in range(6) and int(offset) >= 0 and event_type == "outpatient.visit"
        envelope = expected[event_id]["envelope"]
        assert occurred_at == envelope["occurred_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
        seen.add(event_id)
    assert seen == set(expected)
    personal = {
        str(v["envelope"]["patient"][k])
        for v in values
        for k in ("name", "id_number", "phone", "local_patient_id")
        if v["envelope"]["patient"][k]
    }
    assert personal and not [p for p in personal if p in run.stdout]
    assert "10 event(s), 0 undecodable" in run.stderr


def test_max_stops_after_n_messages(tail_settings: Settings) -> None:
    produce(tail_settings, list(outpatient_visits(30, seed=14)))
    run = healthbus("topics", "tail", VISITS, "--json", "--max", "7", env=settings_env(tail_settings), timeout=60)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 7


def test_from_end_reads_only_what_arrives(tail_settings: Settings) -> None:
    produce(tail_settings, list(outpatient_visits(5, seed=15)))
    proc = subprocess.Popen(
        [str(HEALTHBUS), "topics", "tail", VISITS, "--from-end", "--idle-seconds", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=settings_env(tail_settings),
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("tailing ")  # assigned at the end: what comes now is read
        later = by_id(produce(tail_settings, list(outpatient_visits(4, seed=16))))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert {line.split()[3] for line in out.splitlines()} == set(later)


def test_tail_function_from_both_ends_and_commits_nothing(tail_settings: Settings) -> None:
    first = produce(tail_settings, list(outpatient_visits(6, seed=17)))
    with TopicTail(tail_settings, VISITS, from_beginning=False, idle_seconds=1.0) as tail:
        later = produce(tail_settings, list(outpatient_visits(3, seed=18)))
        got = list(tail)
        group = tail.group_id
    assert by_id([v for _, _, v in got]) == by_id(later)
    assert {m.topic for m, _, _ in got} == {tail_settings.topic_name(VISITS)}
    with TopicTail(tail_settings, VISITS, idle_seconds=1.0) as tail:
        assert by_id([v for _, _, v in tail]) == by_id(first + later)
    admin = AdminClient(tail_settings.confluent_config())
    groups = admin.list_consumer_groups(request_timeout=10).result()
    assert group not in {g.group_id for g in groups.valid}  # assigned, never joined or committed


def test_unknown_topics_fail_clearly(tail_settings: Settings) -> None:
    with pytest.raises(UnknownTopic):
        TopicTail(tail_settings, "raw.no_such_event")
    with pytest.raises(UnknownTopic):  # in the catalogue, but not created under this prefix
        TopicTail(tail_settings, "raw.lab.report")
    run = healthbus("topics", "tail", "raw.no_such_event", "--json", env=settings_env(tail_settings))
    assert run.returncode == 1 and run.stdout == ""
    assert "not in the topic catalogue" in run.stderr

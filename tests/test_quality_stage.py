"""The quality stage on real PostgreSQL and broker: outputs, registered deaths, replays (kill -9: tests/test_chaos.py)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Producer

from avro_schemas.topics import QUALITY_RESULTS, dead_letter_topic, validated_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer
from streams.quality.engine import RuleEngine
from streams.quality.rule_set import default_rule_set, load_rule_set
from streams.quality.stage import QUALITY_HEADER, QualityStage, QualityState
from tests.conftest import healthbus, settings_env
from tests.pipeline_harness import RawMessage, read_topic, read_until_ids, stage_worker
from tests.quality_events import CODEC, as_messages, death_record, identified_visits, revised

RULES = default_rule_set()


def _stage(s: Settings, rules=RULES, types=None) -> QualityStage:
    return QualityStage(
        CODEC,
        s.topic_prefix,
        RuleEngine(rules),
        QualityState(s.postgres_url),
        types or ["outpatient.visit", "death.record"],
    )


def _by_topic(outputs: list, suffix: str) -> list:
    return [o for o in outputs if o.topic.endswith(suffix)]


def test_a_batch_splits_into_validated_dead_letters_and_one_verdict_per_event(settings: Settings) -> None:
    visits = identified_visits(6, seed=41)
    visits[1]["diagnoses"][0]["code"] = "K99.000"  # no such ICD-10 category: an error
    visits[2]["temperature_c"] = 45.5  # impossible temperature: a warning
    messages = as_messages(settings.topic_prefix, visits)
    garbage = RawMessage(messages[0].topic, 0, 999, b"x:1", b"not avro")
    stage = _stage(settings)
    outputs = stage.handle_batch(messages + [garbage])

    validated = _by_topic(outputs, validated_topic("outpatient.visit").name)
    dead = [CODEC.decode(o.value).value for o in _by_topic(outputs, dead_letter_topic("quality").name)]
    verdicts = [CODEC.decode(o.value).value for o in _by_topic(outputs, QUALITY_RESULTS)]
    assert len(validated) == 5 and len(dead) == 2 and len(verdicts) == 6
    rejected = next(d for d in dead if d["error_code"] == "quality_rule_failed")
    assert rejected["details"]["rule_ids"] == "COR-ICD10"
    assert rejected["details"]["fields"] == "diagnoses[0].code"
    assert rejected["details"]["rule_set_version"] == RULES.version
    assert json.loads(rejected["details"]["violations"])[0]["severity"] == "error"
    assert rejected["payload"] == messages[1].value  # the original bytes, replayable
    assert rejected["source_topic"] == messages[1].topic
    assert "K99" not in rejected["error_message"] and visits[1]["envelope"]["patient"]["name"] not in repr(rejected)
    assert {d["error_code"] for d in dead} == {"quality_rule_failed", "unknown_magic"}

    flagged = next(o for o in validated if o.value == messages[2].value)
    version, score, warnings = dict(flagged.headers)[QUALITY_HEADER].decode().split(";")
    assert version == RULES.version and warnings == "COR-TEMPERATURE" and 0 < float(score) < 1
    clean = next(o for o in validated if o.value == messages[0].value)
    assert dict(clean.headers)[QUALITY_HEADER].decode().endswith(";1.0000;")
    by_id = {v["event_id"]: v for v in verdicts}
    assert by_id[visits[1]["envelope"]["event_id"]]["passed"] is False
    assert by_id[visits[2]["envelope"]["event_id"]]["violations"][0]["field"] == "temperature_c"
    assert all(visits[0]["envelope"]["patient"]["name"] not in repr(v) for v in verdicts)  # no personal data

    again = stage.handle_batch(messages)  # a re-delivered batch writes the same rows, no more
    assert len(again) == len(outputs) - 1
    with psycopg.connect(settings.postgres_url) as conn:
        ids = [visits[1]["envelope"]["event_id"], visits[2]["envelope"]["event_id"]]
        rows = conn.execute(
            "SELECT event_id::text, passed FROM quality_issues WHERE event_id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    assert sorted(rows) == sorted([(ids[0], False), (ids[1], True)])
    stage.state.close()


def test_a_registered_death_flags_later_clinical_events_until_it_is_cancelled(settings: Settings) -> None:
    visits = identified_visits(3, seed=43)
    patient = visits[0]
    died_at = patient["envelope"]["occurred_at"] - dt.timedelta(days=1)
    death = death_record(patient, died_at, certificate="411502202611009901")
    later = revised(patient, 2)  # the same visit, re-sent after the death was registered
    stage = _stage(settings)
    out = stage.handle_batch(as_messages(settings.topic_prefix, [death, later]))
    verdicts = {v["event_id"]: v for v in (CODEC.decode(o.value).value for o in _by_topic(out, QUALITY_RESULTS))}
    assert verdicts[death["envelope"]["event_id"]]["passed"]
    flagged = verdicts[later["envelope"]["event_id"]]
    assert flagged["passed"] and [v["rule_id"] for v in flagged["violations"]] == ["LOG-AFTER-DEATH"]

    fresh = _stage(settings)  # the registration is in PostgreSQL, not only in the stage's memory
    third = revised(patient, 3)
    v3 = CODEC.decode(
        _by_topic(fresh.handle_batch(as_messages(settings.topic_prefix, [third])), QUALITY_RESULTS)[0].value
    ).value
    assert [v["rule_id"] for v in v3["violations"]] == ["LOG-AFTER-DEATH"]

    cancelled = revised(death, 2, cancelled=True)
    fourth = revised(patient, 4)
    out = fresh.handle_batch(as_messages(settings.topic_prefix, [cancelled, fourth]))
    v4 = next(
        CODEC.decode(o.value).value
        for o in _by_topic(out, QUALITY_RESULTS)
        if CODEC.decode(o.value).value["event_id"] == fourth["envelope"]["event_id"]
    )
    assert v4["violations"] == []
    with psycopg.connect(settings.postgres_url) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM registered_deaths WHERE person_id = %s", (patient["envelope"]["person_id"],)
            ).fetchone()[0]
            == 0
        )
    stage.state.close()
    fresh.state.close()


def test_a_health_record_sealed_by_the_routing_stage_counts_as_a_registered_death(settings: Settings) -> None:
    from streams.identity.master_index.record_lifecycle import deregister

    patient = identified_visits(1, seed=47)[0]
    person = str(uuid.uuid4())  # a person whose death the quality stage never saw (e.g. moved here by a merge)
    patient["envelope"]["person_id"] = person
    stage = _stage(settings)
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO empi.persons (person_id) VALUES (%s)", (person,))
        with conn.transaction():
            deregister(
                conn,
                person,
                patient["envelope"]["occurred_at"] - dt.timedelta(days=2),
                "ORG",
                "death:1",
                None,
                str(uuid.uuid4()),
                "I21.900",
                "test",
                "sealed by the routing stage",
            )
    out = stage.handle_batch(as_messages(settings.topic_prefix, [patient]))
    verdict = CODEC.decode(_by_topic(out, QUALITY_RESULTS)[0].value).value
    assert [v["rule_id"] for v in verdict["violations"]] == ["LOG-AFTER-DEATH"]
    stage.state.close()


def _publish(s: Settings, events: list[dict]) -> None:
    producer = Producer(producer_config(s.confluent_config()))
    for m in as_messages(s.topic_prefix, events):
        producer.produce(m.topic, m.value, m.key)
    assert producer.flush(30) == 0


def _sink_all(s: Settings, store: PostgresEventStore, timeout: float = 60) -> None:
    """Land every message now on validated.outpatient.visit, duplicates included, with a fresh group."""
    on_topic = len(read_topic(s, s.topic_name(validated_topic("outpatient.visit").name), idle=1.0))
    fresh = s.model_copy(update={"group_prefix": f"{s.group_prefix}-{uuid.uuid4().hex[:6]}"})
    consumer = build_consumer(fresh, store, ["outpatient.visit"])
    deadline = time.monotonic() + timeout
    progress = consumer.run(until=lambda p: p.consumed >= on_topic or time.monotonic() > deadline)
    assert progress.consumed >= on_topic


def test_rejected_events_replayed_after_the_rule_is_corrected_reach_the_sink_once(
    settings: Settings, tmp_path: Path
) -> None:
    # A rule set with a mistake: any temperature above 37.5 ℃ is an "impossible" value and an error.
    strict = tmp_path / "strict_rules.yaml"
    strict.write_text(
        default_rule_set_text()
        .replace(
            "params: {fields: [temperature_c], min: 34.0, max: 43.0}",
            "params: {fields: [temperature_c], min: 34.0, max: 37.5}",
        )
        .replace(
            "id: COR-TEMPERATURE\n    category: correctness\n    event_types: [outpatient.visit]\n    severity: warning",
            "id: COR-TEMPERATURE\n    category: correctness\n    event_types: [outpatient.visit]\n    severity: error",
        ),
        encoding="utf-8",
    )
    assert load_rule_set(strict).by_id()["COR-TEMPERATURE"].severity.value == "error"
    visits = identified_visits(60, seed=47)
    feverish = {v["envelope"]["event_id"] for v in visits if v["temperature_c"] > 37.5}
    assert 5 <= len(feverish) < 60
    _publish(settings, visits)
    strict_settings = settings.model_copy(update={"quality_rule_file": strict})
    dlq = settings.topic_name(dead_letter_topic("quality").name)
    out_topic = settings.topic_name(validated_topic("outpatient.visit").name)
    with stage_worker(strict_settings, tmp_path / "strict.log", stage="quality"):
        read_topic(settings, dlq, len(feverish), timeout=60)
        read_topic(settings, out_topic, 60 - len(feverish), timeout=60)
    store = PostgresEventStore(settings.postgres_url)
    _sink_all(settings, store)
    wanted = [v["envelope"]["event_id"] for v in visits]
    assert store.count_event_ids(wanted) == 60 - len(feverish)

    env = settings_env(settings)
    listed = healthbus("dlq", "list", "--stage", "quality", "--rule", "COR-TEMPERATURE", env=env)
    assert listed.returncode == 0 and f"{len(feverish)} dead letter(s)" in listed.stdout, listed.stderr
    letter_id = listed.stdout.splitlines()[1].split()[0]
    by_topic = healthbus("dlq", "list", "--stage", "quality", "--topic", "identified.outpatient.visit", env=env)
    elsewhere = healthbus("dlq", "list", "--stage", "quality", "--topic", "identified.lab.report", env=env)
    assert f"{len(feverish)} dead letter(s)" in by_topic.stdout and "0 dead letter(s)" in elsewhere.stdout
    shown = healthbus("dlq", "show", letter_id, "--stage", "quality", env=env)
    assert shown.returncode == 0 and "COR-TEMPERATURE" in shown.stdout and "outpatient.visit" in shown.stdout, (
        shown.stderr
    )
    patients = [v["envelope"]["patient"] for v in visits]
    assert not any(p["name"] in shown.stdout or (p["id_number"] and p["id_number"] in shown.stdout) for p in patients)
    payload = json.loads(shown.stdout.split("personal fields masked:\n", 1)[1])
    assert "*" in payload["envelope"]["patient"]["name"]  # masked, shown
    with stage_worker(settings, tmp_path / "fixed.log", stage="quality"):  # the corrected (shipped) rules
        first = healthbus(
            "dlq",
            "replay",
            "--stage",
            "quality",
            "--rule",
            "COR-TEMPERATURE",
            "--why",
            "temperature rule fixed",
            "--actor",
            "ops-test",
            env=env,
        )
        assert f"replayed {len(feverish)}" in first.stdout, first.stdout + first.stderr
        second = healthbus(
            "dlq", "replay", "--stage", "quality", "--rule", "COR-TEMPERATURE", "--why", "again", env=env
        )
        assert "replayed 0" in second.stdout and f"skipped {len(feverish)}" in second.stdout
        forced = healthbus(
            "dlq", "replay", "--stage", "quality", "--rule", "COR-TEMPERATURE", "--why", "forced", "--again", env=env
        )
        assert f"replayed {len(feverish)}" in forced.stdout
        landed = read_until_ids(
            settings, out_topic, feverish, lambda p: CODEC.decode(p).value["envelope"]["event_id"], 60
        )
        deadline = time.monotonic() + 30
        while len(landed) < 60 + len(feverish) and time.monotonic() < deadline:  # the forced replay's copies too
            landed = read_topic(settings, out_topic, idle=1.0)
        assert len(landed) >= 60 + len(feverish)
    _sink_all(settings, store)
    assert store.count_event_ids(wanted) == 60  # every event once, whatever the replays
    with psycopg.connect(settings.postgres_url) as conn:
        audit = conn.execute(
            "SELECT actor, reason, count(*) FROM dlq_replays WHERE stage = 'quality' "
            "GROUP BY actor, reason ORDER BY reason"
        ).fetchall()
    assert ("ops-test", "temperature rule fixed", len(feverish)) in audit and any(
        r[1] == "forced" and r[2] == len(feverish) for r in audit
    )
    store.close()


def test_a_corrected_resend_passes_and_the_rejected_version_never_reaches_the_sink(
    settings: Settings, tmp_path: Path
) -> None:
    visits = identified_visits(10, seed=53)
    wrong = revised(visits[0], 1)
    wrong["diagnoses"][0]["code"] = "E11.9OO"  # letter O for zero: not ICD-10
    corrected = revised(visits[0], 2)  # the hospital fixes the code and re-sends (a new version)
    _publish(settings, [wrong, *visits[1:]])
    out_topic = settings.topic_name(validated_topic("outpatient.visit").name)
    with stage_worker(settings, tmp_path / "w.log", stage="quality"):
        read_topic(settings, settings.topic_name(dead_letter_topic("quality").name), 1, timeout=60)
        _publish(settings, [corrected])
        read_until_ids(
            settings,
            out_topic,
            {corrected["envelope"]["event_id"]},
            lambda p: CODEC.decode(p).value["envelope"]["event_id"],
            60,
        )
    store = PostgresEventStore(settings.postgres_url)
    _sink_all(settings, store)
    assert store.count_event_ids([wrong["envelope"]["event_id"]]) == 0
    assert store.count_event_ids([corrected["envelope"]["event_id"]]) == 1
    store.close()


def default_rule_set_text() -> str:
    from streams.quality.rule_set import DEFAULT_RULE_FILE

    return DEFAULT_RULE_FILE.read_text(encoding="utf-8")

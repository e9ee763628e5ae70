"""The identify stage on real PostgreSQL, Redis and broker: the same answers as `empi link`, races, kill -9."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from avro_schemas.serde import EventCodec
from avro_schemas.topics import identified_topic, raw_topic, source_patient_key
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from foundation.source_authentication import SIGNATURE_HEADER, adapter_key, sign
from foundation.standards.citizen_id import make_citizen_id
from ops.bench.linkage_scores import pairwise_scores
from producers.publisher import EventPublisher
from streams.identity.features import extract_features
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.outbox import publish_pending
from streams.identity.master_index.resolver import IdentityResolver
from streams.identity.memory_index import link_records
from streams.identity.record import SourceRecord
from streams.identity.stage import IdentifyStage
from synthetic.identity_cases import generate_identity_cases
from synthetic.identity_events import visits_for_records
from tests.pipeline_harness import RawMessage, read_topic, read_until_ids, stage_worker, start_stage_worker

CODEC = EventCodec()
MASTER = b"identify-test-master"
MODEL = MatchModel.load()


def _raw_messages(prefix: str, visits: list[dict]) -> list[RawMessage]:
    topic = prefix + raw_topic("outpatient.visit").name
    out = []
    for offset, visit in enumerate(visits):
        env = visit["envelope"]
        key = source_patient_key(env["source"]["org_code"], env["patient"]["local_patient_id"])
        value = CODEC.encode("outpatient.visit", visit)
        headers = [(SIGNATURE_HEADER, sign(adapter_key(MASTER, env["source"]["org_code"]), key, value))]
        out.append(RawMessage(topic, 0, offset, key, value, headers))
    return out


def _stage(s: Settings) -> IdentifyStage:
    resolver = IdentityResolver.connect(s.postgres_url, PersonCache.for_settings(s), MODEL)
    return IdentifyStage(CODEC, s.topic_prefix, MASTER, resolver, ["outpatient.visit"])


def _person_by_record(outputs: list) -> dict[str, str]:
    found: dict[str, str] = {}
    for o in outputs:
        env = CODEC.decode(o.value).value["envelope"]
        found[f"{env['source']['org_code']}:{env['patient']['local_patient_id']}"] = env["person_id"]
    return found


def test_stage_gives_the_batch_linkers_answers_and_a_flushed_cache_changes_none(empi_settings: Settings) -> None:
    cases = generate_identity_cases(400, seed=19)
    visits = list(visits_for_records(cases.records))
    messages = _raw_messages(empi_settings.topic_prefix, visits)
    garbage = RawMessage(messages[0].topic, 0, 10**6, b"x:1", b"not avro")
    stage = _stage(empi_settings)
    outputs = []
    for start in range(0, len(messages), 250):
        outputs += stage.handle_batch(messages[start : start + 250] + ([garbage] if start == 0 else []))
    identified = [o for o in outputs if o.topic.endswith("identified.outpatient.visit")]
    dead = [o for o in outputs if o.topic.endswith("dlq.identify")]
    assert len(identified) == len(visits) and len(dead) == 1
    assert CODEC.decode(dead[0].value).value["error_code"] == "unknown_magic"
    first = CODEC.decode(identified[0].value).value["envelope"]
    assert first["identity"]["rule"] == "new_person" and first["person_id"]
    rules = {
        rule: REGISTRY.get_sample_value(
            "healthbus_identify_events_total", {"event_type": "outpatient.visit", "rule": rule}
        )
        or 0
        for rule in ("new_person", "citizen_id", "record_key", "probabilistic")
    }
    assert rules["new_person"] > 0 and rules["citizen_id"] > 0 and rules["probabilistic"] > 0
    assert (
        REGISTRY.get_sample_value("healthbus_dead_letters_total", {"stage": "identify", "error_code": "unknown_magic"})
        or 0
    ) >= 1

    # One core: the stream stage and the batch linker, fed the same records in the same order, agree person
    # by person (a person's id derives from the record that founded it, in both).
    by_record = _person_by_record(identified)
    batch = link_records(cases.records, MODEL)
    assert {r.record_id: by_record[f"{r.org_code}:{r.local_id}"] for r in cases.records} == batch.person_of
    scores = pairwise_scores(batch.person_of, cases.truth)
    assert scores.precision >= 0.999 and scores.recall >= 0.98, scores

    # Known residents come back from the cache; with the cache flushed, from PostgreSQL: the same answers.
    again = _person_by_record(stage.handle_batch(messages[:500]))
    keys = list(
        PersonCache.for_settings(empi_settings).client.scan_iter(match=f"hb:{empi_settings.topic_prefix}empi:*")
    )
    assert len(keys) > 100
    PersonCache.for_settings(empi_settings).client.delete(*keys)
    flushed = _person_by_record(stage.handle_batch(messages[:500]))
    assert again == flushed == {k: by_record[k] for k in flushed}
    stage.resolver.close()


def test_two_workers_racing_on_the_same_new_residents_make_one_person_each(empi_settings: Settings) -> None:
    cases = generate_identity_cases(300, seed=23)
    with_id: dict[str, list[SourceRecord]] = defaultdict(list)
    for record in cases.records:
        citizen_id = extract_features(record).citizen_id
        if citizen_id:
            with_id[citizen_id].append(record)
    residents = [records for records in with_id.values() if len({(r.org_code, r.local_id) for r in records}) >= 2][:120]
    lanes = ([records[0] for records in residents], [records[1] for records in residents])
    resolvers = [IdentityResolver.connect(empi_settings.postgres_url, None, MODEL) for _ in lanes]
    barrier = threading.Barrier(len(lanes))
    errors: list[BaseException] = []

    def work(lane: int) -> None:
        try:
            barrier.wait()
            for record in lanes[lane]:  # one record per batch: the tightest interleaving
                resolvers[lane].resolve([record])
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(lanes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with psycopg.connect(empi_settings.postgres_url) as conn:
        for a, b in zip(*lanes, strict=True):
            persons = conn.execute(
                "SELECT DISTINCT person_id FROM empi.records WHERE (org_code, local_id) IN ((%s, %s), (%s, %s))",
                (a.org_code, a.local_id, b.org_code, b.local_id),
            ).fetchall()
            assert len(persons) == 1, (a.record_id, b.record_id)
        active = conn.execute("SELECT count(*) FROM empi.persons WHERE status = 'active'").fetchone()[0]
    assert active == len(residents)
    for r in resolvers:
        r.close()


@pytest.mark.chaos
def test_kill_9_mid_batch_then_restart_duplicates_no_person_and_loses_no_link(
    empi_settings: Settings, tmp_path: Path
) -> None:
    s = empi_settings
    cases = generate_identity_cases(2500, seed=29)
    visits = list(visits_for_records(cases.records, visits_per_record=2))
    publisher = EventPublisher(s.confluent_config(), CODEC, s.signing_key_for, s.topic_prefix)
    for v in visits:
        publisher.publish("outpatient.visit", v)
    publisher.flush()
    out_topic = s.topic_name(identified_topic("outpatient.visit").name)

    worker = start_stage_worker(s, tmp_path / "worker-1.log", stage="identify")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not read_topic(s, out_topic, 1, timeout=0.05):
            assert worker.poll() is None, (tmp_path / "worker-1.log").read_text()[-3000:]
        os.killpg(worker.pid, signal.SIGKILL)  # mid-batch: no shutdown, no commit, an open transaction
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    before = len(read_topic(s, out_topic, idle=1.0))
    assert 0 < before < len(visits), "the kill must land mid-stream"

    wanted = {v["envelope"]["event_id"] for v in visits}
    with stage_worker(s, tmp_path / "worker-2.log", stage="identify"):
        passed = read_until_ids(s, out_topic, wanted, lambda p: CODEC.decode(p).value["envelope"]["event_id"])
    envelopes = [CODEC.decode(m.value()).value["envelope"] for m in passed]
    assert {e["event_id"] for e in envelopes} == wanted and all(e["person_id"] for e in envelopes)

    with psycopg.connect(s.postgres_url) as conn:
        linked = dict(
            ((org, local), person)
            for org, local, person in conn.execute(
                "SELECT org_code, local_id, person_id::text FROM empi.records"
            ).fetchall()
        )
        by_citizen_id = conn.execute(
            "SELECT count(*) FROM (SELECT value FROM empi.identifiers WHERE kind = 'citizen_id') i"
        ).fetchone()[0]
        inactive_links = conn.execute(
            "SELECT count(*) FROM empi.records r JOIN empi.persons p USING (person_id) WHERE p.status <> 'active'"
        ).fetchone()[0]
    records = {(r.org_code, r.local_id): r for r in cases.records}
    assert set(linked) == set(records)  # no lost link
    assert inactive_links == 0
    # No duplicate person: records carrying one valid ID number sit in one person, which holds the ID once.
    persons_of_id: dict[str, set[str]] = defaultdict(set)
    for record in cases.records:  # one (institution, local id) may appear with several versions of its fields
        citizen_id = extract_features(record).citizen_id
        if citizen_id:
            persons_of_id[citizen_id].add(linked[(record.org_code, record.local_id)])
    assert all(len(p) == 1 for p in persons_of_id.values()) and by_citizen_id == len(persons_of_id)
    scores = pairwise_scores({r.record_id: linked[(r.org_code, r.local_id)] for r in cases.records}, cases.truth)
    assert scores.precision >= 0.999 and scores.recall >= 0.98, scores


def test_a_record_proving_two_persons_one_merges_them_and_the_stage_publishes_it(empi_settings: Settings) -> None:
    citizen_id = make_citizen_id("411502", dt.date(1980, 5, 17), 231)
    hospital_a, hospital_b, county = "12411502MB0000001X", "12411503MB0000002X", "11411525MB1500007X"
    first = SourceRecord(
        "a", hospital_a, "P1", name="李建军", sex="1", birth_date="1980-05-17", id_type="01", id_number=citizen_id
    )
    second = SourceRecord("b", hospital_b, "H9", insurance_card="411500198005170007")  # a card, nothing else
    proof = SourceRecord(
        "c",
        county,
        "C3",
        name="李建军",
        sex="1",
        id_type="01",
        id_number=citizen_id,
        insurance_card="411500198005170007",
    )
    resolver = IdentityResolver.connect(empi_settings.postgres_url, PersonCache.for_settings(empi_settings), MODEL)
    producer = Producer(producer_config(empi_settings.confluent_config()))
    stage = IdentifyStage(
        CODEC,
        empi_settings.topic_prefix,
        MASTER,
        resolver,
        ["outpatient.visit"],
        lambda: publish_pending(resolver.conn, producer, CODEC, empi_settings.topic_prefix),
    )
    persons = [
        _person_by_record(stage.handle_batch(_raw_messages(empi_settings.topic_prefix, list(visits_for_records([r])))))
        for r in (first, second, proof)
    ]
    p_first, p_second, p_proof = (next(iter(p.values())) for p in persons)
    assert p_first != p_second  # a bare card could not be linked to anyone
    assert p_proof == p_first  # the valid ID decides; the card's person is proven to be the same resident

    merged = read_topic(empi_settings, empi_settings.topic_name("empi.person_merged"), 1, timeout=30)
    change = CODEC.decode(merged[0].value()).value
    assert (change["survivor_person_id"], change["absorbed_person_id"]) == (p_first, p_second)
    assert change["records_moved"] == 1 and change["actor"] == "identify-stage"
    # The moved record now answers with the survivor, from the cache as from the index.
    again = _person_by_record(
        stage.handle_batch(_raw_messages(empi_settings.topic_prefix, list(visits_for_records([second], seed=9))))
    )
    assert set(again.values()) == {p_first}
    resolver.close()

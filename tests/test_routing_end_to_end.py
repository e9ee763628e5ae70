"""Collaboration routing end to end: exchange-database rows → adapters → identify → quality → routing
workers (real processes on the broker) → collab.* topics and routing.* tables, for every route; then a
cancelled death record, a duplicate diagnosis, an operator merge, and a county that must not see another
county's items."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from avro_schemas.serde import EventCodec
from avro_schemas.topics import CLINICAL_ALERTS, RECORD_DEREGISTERED, collab_topic_name
from foundation.settings import Settings
from producers.adapters.runner import build_adapter
from streams.routing.work_queue import ensure_county_role
from tests.conftest import healthbus, settings_env
from tests.exchange_fixtures import execute_in, make_exchange
from tests.pipeline_harness import read_topic, stage_worker

CODEC = EventCodec()
HOSPITAL_COUNTY, COUNTY_COUNTY = "411502", "411525"  # the fixtures' residents: 浉河区 (P1), 固始县 (R1, R2)

# Beyond the fixture rows: P1 gets a lung tumour, a second coronary diagnosis (a duplicate: evidence, not a
# second registration) and a second calcium-channel blocker three days into a 30-day supply elsewhere in time.
MORE_HOSPITAL_ROWS = """
INSERT INTO outpatient_visit (visit_id, patient_id, visit_no, visit_type, visit_at, department_name, chief_complaint,
                              updated_at)
VALUES ('V5', 'P1', 'MZ005', '1', now() - interval '2 hours', '胸外科', '咳嗽痰中带血', now() - interval '1 hour'),
       ('V6', 'P1', 'MZ006', '1', now() - interval '2 hours', '心内科', '胸闷', now() - interval '1 hour');
INSERT INTO outpatient_diagnosis VALUES ('V5', 1, 'C34.100', '右肺上叶恶性肿瘤', true),
                                        ('V6', 1, 'I20.000', '不稳定型心绞痛', true);
INSERT INTO prescription (prescription_id, patient_id, prescription_no, prescribed_at, updated_at)
VALUES ('R2', 'P1', 'CF002', now() - interval '2 hours', now() - interval '1 hour');
INSERT INTO prescription_item (prescription_id, seq, drug_code, drug_name, atc_code, dose, dose_unit, days)
VALUES ('R2', 1, 'XC08CAB002', '硝苯地平控释片', 'C08CA05', 30, 'mg', 30);
"""


@pytest.fixture
def county_roles(own_db_settings: Settings) -> Iterator[Settings]:
    """Settings whose county roles are this test's own (roles are cluster-wide: dropped afterwards)."""
    prefix = f"hbt{uuid.uuid4().hex[:6]}_county_"
    s = own_db_settings.model_copy(update={"county_role_prefix": prefix})
    try:
        yield s
    finally:
        with psycopg.connect(s.postgres_url, autocommit=True) as conn:
            roles = [
                r
                for (r,) in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix.replace("_", r"\_") + "%",)
                ).fetchall()
            ]
            for role in sorted(roles, reverse=True):  # logins (…_ds_…) before the county roles they are in
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _wait(what: str, check: Callable[[], bool], workers: list[Any], logs: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for w in workers:
            assert w.poll() is None, f"a worker died: {sorted(p.name for p in logs.iterdir())}\n" + "\n".join(
                p.read_text(errors="replace")[-2000:] for p in logs.iterdir()
            )
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _items(conn: psycopg.Connection, route: str) -> list[tuple[str, str, str, str, int]]:
    """(person, subject, county, status, evidence) of every item of a route."""
    rows = conn.execute(
        sql.SQL(
            "SELECT person_id, business_key, county_code, status, "
            "(payload->>'evidence_count')::int FROM routing.{} ORDER BY business_key"
        ).format(sql.Identifier(route))
    ).fetchall()
    return [(p, k.split(":", 1)[1], c, st, n or 0) for p, k, c, st, n in rows]


def _person_of(conn: psycopg.Connection, org: str, local: str) -> str:
    return conn.execute(
        "SELECT person_id::text FROM empi.records WHERE org_code = %s AND local_id = %s", (org, local)
    ).fetchone()[0]


def _values(s: Settings, name: str) -> list[dict[str, Any]]:
    return [CODEC.decode(m.value()).value for m in read_topic(s, s.topic_name(name), idle=1.0, timeout=10)]


def test_exchange_rows_reach_every_route_and_corrections_merges_and_county_isolation_hold(
    county_roles: Settings, tmp_path: Path
) -> None:
    s = county_roles
    hospital, county = make_exchange(s.postgres_url, "hospital"), make_exchange(s.postgres_url, "county")
    execute_in(hospital, MORE_HOSPITAL_ROWS)
    # The fixtures' deaths happened a day ago, before visits and doses of the same persons; move them an hour
    # back so the quality rule "nothing clinical after a registered death" passes what came before.
    for source in (hospital, county):
        execute_in(source, "UPDATE death_record SET died_at = now() - interval '1 hour'")
    logs = tmp_path / "logs"
    with ExitStack() as stack, psycopg.connect(s.postgres_url, autocommit=True) as conn:
        workers = [
            stack.enter_context(stage_worker(s, logs / f"{stage}.log", stage))
            for stage in ("identify", "quality", "routing")
        ]
        adapters = [build_adapter(s, source, settle_seconds=0) for source in (hospital, county)]
        for a in adapters:
            a.run_once()

        def routed() -> bool:
            try:
                return (
                    len(_items(conn, "vaccination")) == 4
                    and len(_items(conn, "death_registration")) == 2
                    and len(_items(conn, "chronic_disease")) == 2
                    and len(_items(conn, "resident_update")) >= 3
                )
            except psycopg.errors.UndefinedTable:
                return False

        _wait("every route's items", routed, workers, logs)
        p1, p2 = (_person_of(conn, hospital.org_code, p) for p in ("P1", "P2"))
        r1, r2 = (_person_of(conn, county.org_code, r) for r in ("R1", "R2"))
        # Chronic disease: P1's coronary heart disease once, with its three records (admission, discharge and
        # the duplicate diagnosis) as evidence; R1's hypertension opened by the county's own follow-up.
        assert _items(conn, "chronic_disease") == sorted(
            [
                (p1, "CORONARY_HEART_DISEASE", HOSPITAL_COUNTY, "pending", 3),
                (r1, "HYPERTENSION", COUNTY_COUNTY, "acknowledged", 1),
            ],
            key=lambda r: r[0] + ":" + r[1],
        )
        assert sorted(_items(conn, "tumor_registry")) == sorted(
            [(p1, "C34", HOSPITAL_COUNTY, "pending", 1), (r1, "C34", COUNTY_COUNTY, "pending", 1)]
        )
        assert [(i[0], i[1].split(":")[0]) for i in _items(conn, "infectious_disease")] == [
            (p2, "OTHER_INFECTIOUS_DIARRHOEA")
        ]
        assert sorted(i[1] for i in _items(conn, "vaccination")) == ["0101:1", "0201:1", "0201:2", "0601:1"]
        assert {i[1] for i in _items(conn, "resident_update") if i[0] == p1} >= {
            "abo_blood_type",
            "rh_blood_type",
            "allergy:青霉素过敏",
        }
        deaths = {i[0]: i for i in _items(conn, "death_registration")}
        assert set(deaths) == {p2, r1}
        statuses = dict(
            conn.execute(
                "SELECT person_id::text, status FROM empi.persons WHERE person_id = ANY(%s::uuid[])",
                ([p1, p2, r1, r2],),
            ).fetchall()
        )
        assert statuses == {p1: "active", p2: "deceased", r1: "deceased", r2: "active"}

        # The county cancels R1's death record: the death item and the death-certificate-only tumour are
        # withdrawn, the health record re-opens, and the reversal is published.
        execute_in(county, "UPDATE death_record SET cancelled = true, updated_at = now() WHERE death_id = 'D1'")
        adapters[1].run_once()
        _wait(
            "the cancelled death to reopen R1's record",
            lambda: (
                conn.execute("SELECT status FROM empi.persons WHERE person_id = %s", (r1,)).fetchone()[0] == "active"
            ),
            workers,
            logs,
        )
        assert [i[3] for i in _items(conn, "death_registration") if i[0] == r1] == ["withdrawn"]
        assert [i[3] for i in _items(conn, "tumor_registry") if i[0] == r1] == ["withdrawn"]

        # An operator merges R2 into P1 (same resident, say): R2's doses move to P1, same items.
        before = {i[1]: i for i in _items(conn, "vaccination") if i[0] == r2}
        merged = healthbus(
            "empi", "merge", p1, r2, "--actor", "ops-test", "--reason", "same resident", "--force", env=settings_env(s)
        )
        assert merged.returncode == 0, merged.stderr
        _wait(
            "R2's doses to move to P1",
            lambda: not [i for i in _items(conn, "vaccination") if i[0] == r2],
            workers,
            logs,
        )
        after = {i[1]: i for i in _items(conn, "vaccination") if i[0] == p1}
        assert set(before) <= set(after) and all(after[k][3] == "pending" for k in before)

        # A county's downstream login sees its own residents' items only.
        role = ensure_county_role(conn, COUNTY_COUNTY, s.county_role_prefix)
        login = f"{s.county_role_prefix}ds_{COUNTY_COUNTY}"
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(role)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(login)))
        try:
            seen = {
                r[0]
                for route in ("chronic_disease", "tumor_registry", "death_registration", "vaccination")
                for r in conn.execute(sql.SQL("SELECT county_code FROM routing.{}").format(sql.Identifier(route)))
            }
        finally:
            conn.execute("RESET ROLE")
        assert seen == {COUNTY_COUNTY}

        # The topics carry what the tables hold: registrations, the seal and its reversal, the reminder.
        chronic = _values(s, collab_topic_name("chronic_disease"))
        kinds = [v["kind"] for v in chronic if v["person_id"] == p1]  # the admission may arrive after the discharge
        assert (
            len(kinds) == 3 and kinds[0] == "REGISTERED" and "REGISTERED" not in kinds[1:] and "WITHDRAWN" not in kinds
        )
        seals = _values(s, RECORD_DEREGISTERED)
        assert sorted((v["person_id"] == r1, v["action"]) for v in seals) == [
            (False, "DEREGISTERED"),
            (True, "DEREGISTERED"),
            (True, "REINSTATED"),
        ]
        reminders = _values(s, CLINICAL_ALERTS)
        assert [(r["item"], r["org_code"], r["status"]) for r in reminders] == [("C08C", hospital.org_code, "ACTIVE")]
        vaccination = _values(s, collab_topic_name("vaccination"))
        assert sorted(v["kind"] for v in vaccination if v["previous_person_id"] == r2) == ["REASSIGNED"] * 3
        for a in adapters:
            a.close()


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(own_db_settings: Settings, tmp_path: Path) -> None:
    import os
    import random
    import signal

    from confluent_kafka import Producer

    from avro_schemas.topics import source_patient_key, validated_topic
    from foundation.kafka_config import producer_config
    from ops.topic_admin import committed_total
    from streams.routing.routes import claims_of
    from tests.pipeline_harness import start_stage_worker
    from tests.quality_events import identified_visits

    s = own_db_settings
    rng = random.Random(5)
    visits = identified_visits(3000, seed=71)
    persons = [v["envelope"]["person_id"] for v in visits[:600]]  # about five visits per person
    for v in visits:
        v["envelope"]["person_id"] = rng.choice(persons)
        v["diagnoses"][0]["code"] = rng.choice(("I10.x00x002", "E11.900", "C34.100", "J44.100", "I63.900"))
    expected = {(c.route, f"{c.person_id}:{c.subject}") for v in visits for c in claims_of("outpatient.visit", v)}
    producer = Producer(producer_config(s.confluent_config()))
    target = s.topic_name(validated_topic("outpatient.visit").name)
    for v in visits:
        env = v["envelope"]
        producer.produce(
            target,
            CODEC.encode("outpatient.visit", v),
            source_patient_key(env["source"]["org_code"], env["patient"]["local_patient_id"]),
        )
    producer.flush(30)

    def stored() -> set[tuple[str, str]]:
        with psycopg.connect(s.postgres_url) as conn:
            try:
                return {
                    (route, key)
                    for route in ("chronic_disease", "tumor_registry")
                    for (key,) in conn.execute(
                        sql.SQL("SELECT business_key FROM routing.{}").format(sql.Identifier(route))
                    )
                }
            except psycopg.errors.UndefinedTable:
                return set()

    worker = start_stage_worker(s, tmp_path / "w1.log", stage="routing")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(stored()) < len(expected) // 4:
            assert worker.poll() is None, (tmp_path / "w1.log").read_text()[-3000:]
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert 0 < len(stored()) < len(expected), "the kill must land mid-stream"
    with stage_worker(s, tmp_path / "w2.log", "routing") as again:
        # Every input acknowledged (a stage acks only after its outputs are delivered), then the tables.
        _wait(
            "every visit committed",
            lambda: committed_total(s.confluent_config(), s.group_id("routing"), [target]) >= len(visits),
            [again],
            tmp_path,
        )
        assert stored() == expected
    with psycopg.connect(s.postgres_url) as conn:
        changes = {c for (c,) in conn.execute("SELECT change_id::text FROM routing.changes")}
        evidence = conn.execute(
            "SELECT sum((payload->>'evidence_count')::int) FROM routing.chronic_disease"
        ).fetchone()[0]
    published = [
        v["change_id"] for route in ("chronic_disease", "tumor_registry") for v in _values(s, collab_topic_name(route))
    ]
    assert set(published) == changes  # every stored change reached its topic (some twice: consumers dedupe)
    claims = [c for v in visits for c in claims_of("outpatient.visit", v) if c.route == "chronic_disease"]
    assert evidence == len(claims)  # each visit's claim counted once, none lost, none twice

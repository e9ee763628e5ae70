"""The routing ledger on real PostgreSQL: items opened once per business key, evidence, corrections and
cancellations undoing what they produced, replays changing nothing, merges and unmerges moving items."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from avro_schemas.json_form import from_json
from avro_schemas.serde import EventCodec
from streams.routing.ledger import ChangeMessage, RoutingLedger, ensure_ledger
from tests.routing_events import AT, Patient, cancelled, corrected

TEST_ROLE_PREFIX = "hbtest_ledger_"


@pytest.fixture
def ledger(postgres_url: str) -> Iterator[RoutingLedger]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        ensure_ledger(conn, TEST_ROLE_PREFIX)
        yield RoutingLedger(conn)


def route(ledger: RoutingLedger, *events: dict[str, Any]) -> list[ChangeMessage]:
    with ledger.conn.transaction():
        return ledger.apply_events([(e["envelope"]["event_type"], e) for e in events])


def kinds(messages: list[ChangeMessage], route_name: str | None = None) -> list[str]:
    return [m.value["kind"] for m in messages if route_name is None or m.value["route"] == route_name]


def items(ledger: RoutingLedger, table: str, person: str) -> list[tuple[Any, ...]]:
    return ledger.conn.execute(
        f"SELECT item_id::text, business_key, status, payload->>'evidence_count', county_code, payload "
        f"FROM routing.{table} WHERE person_id = %s ORDER BY business_key",
        (person,),
    ).fetchall()


def test_first_diagnosis_registers_later_ones_are_evidence_and_a_replay_changes_nothing(ledger: RoutingLedger) -> None:
    p = Patient(county="411521")
    first, second = p.visit("I10.x00x002"), p.visit("I10.x00x003", "E11.900", at=AT + dt.timedelta(days=20))
    assert kinds(route(ledger, first), "chronic_disease") == ["REGISTERED"]
    out = route(ledger, second)
    assert sorted((m.value["route"], m.value["kind"]) for m in out) == [
        ("chronic_disease", "EVIDENCE"),
        ("chronic_disease", "REGISTERED"),
    ]
    rows = items(ledger, "chronic_disease", p.person_id)
    assert [(r[1].split(":")[1], r[2], r[3], r[4]) for r in rows] == [
        ("DIABETES", "pending", "1", "411521"),
        ("HYPERTENSION", "pending", "2", "411521"),
    ]
    assert rows[1][5]["detail"]["diagnosis_code"] == "I10.x00x002"  # the first diagnosis registered it
    assert route(ledger, first, second) == []  # a replay
    assert (
        ledger.changes_for([first["envelope"]["event_id"]], ["collab.chronic_disease"])[0].value["kind"] == "REGISTERED"
    )


def test_cancelling_evidence_amends_and_cancelling_the_last_record_withdraws(ledger: RoutingLedger) -> None:
    p = Patient()
    first, second = p.visit("I10"), p.visit("I11.900", at=AT + dt.timedelta(days=3))
    route(ledger, first, second)
    assert kinds(route(ledger, cancelled(first)), "chronic_disease") == ["AMENDED"]  # primary is now the second
    row = items(ledger, "chronic_disease", p.person_id)[0]
    assert row[2] == "pending" and row[3] == "1" and row[5]["detail"]["diagnosis_code"] == "I11.900"
    out = route(ledger, cancelled(second))
    assert kinds(out) == ["WITHDRAWN"] and out[0].value["evidence_count"] == 0
    assert items(ledger, "chronic_disease", p.person_id)[0][2] == "withdrawn"
    # A late, older re-send of a cancelled record changes nothing.
    assert route(ledger, first) == []


def test_a_correction_that_changes_the_diagnosis_withdraws_and_registers(ledger: RoutingLedger) -> None:
    p = Patient()
    visit = p.visit("I10")
    route(ledger, visit)
    fixed = corrected(visit, diagnoses=[{"code": "E11.900", "name": None, "is_primary": True, "diagnosed_at": None}])
    assert sorted(kinds(route(ledger, fixed))) == ["REGISTERED", "WITHDRAWN"]
    assert [(r[1].split(":")[1], r[2]) for r in items(ledger, "chronic_disease", p.person_id)] == [
        ("DIABETES", "pending"),
        ("HYPERTENSION", "withdrawn"),
    ]
    # The original diagnosis comes back in version 3: the withdrawn item re-opens, not a second one.
    back = corrected(visit, 3)
    assert sorted(kinds(route(ledger, back))) == ["REGISTERED", "WITHDRAWN"]
    assert [(r[1].split(":")[1], r[2]) for r in items(ledger, "chronic_disease", p.person_id)] == [
        ("DIABETES", "withdrawn"),
        ("HYPERTENSION", "pending"),
    ]


def test_a_county_follow_up_without_a_hospital_diagnosis_opens_an_acknowledged_item(ledger: RoutingLedger) -> None:
    p = Patient()
    out = route(ledger, p.followup("E11.900"))
    assert kinds(out) == ["REGISTERED"] and out[0].value["status"] == "acknowledged"
    assert kinds(route(ledger, p.visit("E11.900", at=AT + dt.timedelta(days=1)))) == ["EVIDENCE"]


def test_one_notifiable_report_per_person_and_disease_within_30_days_with_the_deadline(ledger: RoutingLedger) -> None:
    p = Patient()
    flu = p.visit("J10.100", uploaded_after=dt.timedelta(hours=3))
    again = p.visit("J11.100", at=AT + dt.timedelta(days=12))
    later = p.visit("J10.100", at=AT + dt.timedelta(days=45))
    cholera = p.visit("A00.900", uploaded_after=dt.timedelta(hours=3))
    out = route(ledger, flu, again, later, cholera)
    assert kinds(out, "infectious_disease") == ["REGISTERED", "EVIDENCE", "REGISTERED", "REGISTERED"]
    details = {m.value["business_key"]: m.value["infectious_disease"] for m in out if m.value["kind"] == "REGISTERED"}
    assert len(details) == 3
    by_disease = {(d["disease"], d["diagnosed_at"][:10]): d for d in details.values()}
    assert by_disease[("INFLUENZA", "2026-11-02")]["deadline_met"] is True  # 3 h within 24 h
    assert by_disease[("CHOLERA", "2026-11-02")]["deadline_met"] is False  # 3 h past class A's 2 h
    assert by_disease[("CHOLERA", "2026-11-02")]["disease_class"] == "A"


def test_death_certificate_outranks_a_discharge_and_cancelling_it_falls_back(ledger: RoutingLedger) -> None:
    p = Patient()
    discharge = p.discharge_by_death(AT, cause="I21.900")
    certificate = p.death(AT, cause="C34.900")
    out = route(ledger, discharge, certificate)
    assert kinds(out, "death_registration") == ["REGISTERED", "AMENDED"]
    assert kinds(out, "tumor_registry") == ["REGISTERED"]  # a death-certificate-only tumour case
    row = items(ledger, "death_registration", p.person_id)[0]
    assert row[5]["detail"]["basis"] == "death_certificate" and row[3] == "2"
    out = route(ledger, cancelled(certificate))
    assert kinds(out, "death_registration") == ["AMENDED"] and kinds(out, "tumor_registry") == ["WITHDRAWN"]
    assert items(ledger, "death_registration", p.person_id)[0][5]["detail"]["basis"] == "discharge"


def test_vaccination_and_resident_record_newest_value_wins(ledger: RoutingLedger) -> None:
    p = Patient()
    hospital = p.vaccination("0201", 2)
    county = Patient(p.person_id, org_code="12411521MB0000001Y").vaccination("0201", 2, at=AT + dt.timedelta(minutes=1))
    assert kinds(route(ledger, hospital, county)) == ["REGISTERED", "EVIDENCE"]
    old = p.registered(abo="1", at=AT)
    new = p.registered(
        abo="3",
        rh=None,
        at=AT + dt.timedelta(days=1),
        history=[{"kind": "ALLERGY", "code": None, "description": "青霉素", "recorded_at": None}],
    )
    route(ledger, old)
    out = route(ledger, new)
    assert sorted((m.value["subject"], m.value["kind"]) for m in out) == [
        ("abo_blood_type", "AMENDED"),
        ("allergy:青霉素", "REGISTERED"),
    ]
    out = route(ledger, cancelled(new))
    assert sorted((m.value["subject"], m.value["kind"]) for m in out) == [
        ("abo_blood_type", "AMENDED"),
        ("allergy:青霉素", "WITHDRAWN"),
    ]
    abo = [r for r in items(ledger, "resident_update", p.person_id) if r[1].endswith("abo_blood_type")][0]
    assert abo[5]["detail"]["value"] == "1"


def test_a_merge_moves_items_to_the_survivor_and_an_unmerge_moves_them_back(ledger: RoutingLedger) -> None:
    survivor, absorbed = Patient(), Patient()
    route(ledger, survivor.visit("I10"), absorbed.visit("I10.x00x002", "E11.900", at=AT + dt.timedelta(days=1)))
    diabetes_id = items(ledger, "chronic_disease", absorbed.person_id)[0][0]
    merge = {"change_id": "merge-1", "survivor_person_id": survivor.person_id, "absorbed_person_id": absorbed.person_id}
    with ledger.conn.transaction():
        out = ledger.apply_merge(merge)
    assert sorted((m.value["subject"], m.value["kind"], m.value["person_id"]) for m in out) == sorted(
        [
            ("DIABETES", "REASSIGNED", survivor.person_id),
            ("HYPERTENSION", "WITHDRAWN", absorbed.person_id),  # a duplicate of the survivor's registration
            ("HYPERTENSION", "EVIDENCE", survivor.person_id),
        ]
    )
    rows = items(ledger, "chronic_disease", survivor.person_id)
    assert [(r[1].split(":")[1], r[2], r[3]) for r in rows] == [
        ("DIABETES", "pending", "1"),
        ("HYPERTENSION", "pending", "2"),
    ]
    assert rows[0][0] == diabetes_id  # the same item, moved
    with ledger.conn.transaction():
        assert ledger.apply_merge(merge) == []  # replayed: nothing left to move
    relink = {
        "change_id": "unmerge-1",
        "from_person_id": survivor.person_id,
        "to_person_id": absorbed.person_id,
        "org_code": absorbed.org_code,
        "local_patient_id": absorbed.local_id,
        "action": "unmerge",
    }
    with ledger.conn.transaction():
        out = ledger.apply_relink(relink)
    assert sorted((m.value["subject"], m.value["kind"]) for m in out) == [
        ("DIABETES", "REASSIGNED"),
        ("HYPERTENSION", "AMENDED"),
        ("HYPERTENSION", "REGISTERED"),
    ]
    assert [(r[1].split(":")[1], r[2]) for r in items(ledger, "chronic_disease", absorbed.person_id)] == [
        ("DIABETES", "pending"),
        ("HYPERTENSION", "pending"),
    ]


def test_every_change_encodes_with_the_topic_schema(ledger: RoutingLedger) -> None:
    p = Patient()
    events = [p.visit("I10", "C34.100", "A15.000x001"), p.death(), p.vaccination(), p.registered(), p.followup("I10")]
    out = route(ledger, *events)
    assert {m.value["route"] for m in out} == {
        "chronic_disease",
        "tumor_registry",
        "infectious_disease",
        "death_registration",
        "vaccination",
        "resident_update",
    }
    codec = EventCodec()
    for m in out:
        value = from_json(m.event_type, m.value)
        assert codec.decode(codec.encode(m.event_type, value)).value["change_id"] == m.change_id


def test_a_death_seals_the_health_record_and_cancelling_every_death_record_reopens_it(postgres_url: str) -> None:
    from streams.identity.master_index.record_lifecycle import record_status
    from streams.identity.master_index.schema import ensure_master_index
    from streams.routing.record_seal import death_hooks

    p = Patient()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        ensure_master_index(conn)
        ensure_ledger(conn, TEST_ROLE_PREFIX)
        conn.execute("INSERT INTO empi.persons (person_id) VALUES (%s)", (p.person_id,))
        ledger = RoutingLedger(conn, hooks=death_hooks())

        def lifecycle(out: list[ChangeMessage]) -> list[tuple[str, str | None]]:
            return [(m.value["action"], m.value["record_key"]) for m in out if m.topic == "record.deregistered"]

        discharge, certificate = p.discharge_by_death(AT), p.death(AT + dt.timedelta(minutes=5))
        d_key, c_key = discharge["envelope"]["source"]["record_key"], certificate["envelope"]["source"]["record_key"]
        assert lifecycle(route(ledger, discharge)) == [("DEREGISTERED", d_key)]
        assert record_status(conn, p.person_id).status == "deceased"
        assert lifecycle(route(ledger, certificate)) == [("DEREGISTERED", c_key)]
        assert route(ledger, certificate) == []  # replay
        assert lifecycle(route(ledger, cancelled(certificate))) == [("DEREGISTERED", d_key)]  # falls back
        status = record_status(conn, p.person_id)
        assert (status.status, status.record_key) == ("deceased", d_key)
        assert lifecycle(route(ledger, cancelled(discharge))) == [("REINSTATED", d_key)]
        assert record_status(conn, p.person_id).status == "active"
        audit = conn.execute(
            "SELECT action FROM empi.audit_log WHERE person_id = %s ORDER BY audit_id", (p.person_id,)
        ).fetchall()
        assert [a for (a,) in audit] == ["deregister", "deregister", "deregister", "reinstate"]

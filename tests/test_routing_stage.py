"""The routing stage's batch function on real PostgreSQL: what it publishes, and that a replay after a
crash between commit and publish publishes the very same changes (nothing lost, consumers dedupe)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from avro_schemas.serde import EventCodec
from avro_schemas.topics import source_patient_key, topic, validated_topic
from foundation.settings import Settings
from streams.routing.stage import RoutingStage, RoutingState, reminder_windows
from tests.pipeline_harness import RawMessage
from tests.routing_events import AT, Patient, cancelled

CODEC = EventCodec()
PREFIX = "rt-"
ROLE_PREFIX = "hbtest_stage_"


@pytest.fixture
def stage(postgres_url: str) -> Iterator[RoutingStage]:
    state = RoutingState(postgres_url, reminder_windows(Settings()), ROLE_PREFIX)
    try:
        yield RoutingStage(CODEC, PREFIX, state)
    finally:
        state.close()


def messages(events: list[dict[str, Any]]) -> list[RawMessage]:
    out = []
    for n, e in enumerate(events):
        env = e["envelope"]
        out.append(
            RawMessage(
                PREFIX + validated_topic(env["event_type"]).name,
                0,
                n,
                source_patient_key(env["source"]["org_code"], env["patient"]["local_patient_id"]),
                CODEC.encode(env["event_type"], e),
            )
        )
    return out


def decoded(records: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(r.topic.removeprefix(PREFIX), CODEC.decode(r.value).value) for r in records]


def with_person(postgres_url: str, p: Patient) -> Patient:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO empi.persons (person_id) VALUES (%s)", (p.person_id,))
    return p


def test_a_batch_publishes_work_items_the_record_seal_and_reminders(stage: RoutingStage, postgres_url: str) -> None:
    p = with_person(postgres_url, Patient(county="411525"))
    other_hospital = Patient(p.person_id, org_code="12411503MB7654321Y", local_id="H2")
    events = [
        p.visit("I10"),
        p.prescription("C09CA03", days=30),
        p.death(AT + dt.timedelta(days=1), cause="C34.900"),
        p.vaccination(),
        other_hospital.prescription("C09CA01", at=AT + dt.timedelta(days=3)),
    ]
    out = decoded(stage.handle_batch(messages(events)))
    assert Counter(t for t, _ in out) == Counter(
        {
            "collab.chronic_disease": 1,
            "collab.death_registration": 1,
            "collab.tumor_registry": 1,
            "collab.vaccination": 1,
            "record.deregistered": 1,
            "alerts.clinical": 1,
        }
    )
    assert all(v["county_code"] == "411525" for t, v in out if t.startswith("collab."))
    reminder = next(v for t, v in out if t == "alerts.clinical")
    assert (reminder["org_code"], reminder["earlier_org_code"], reminder["item"]) == (
        other_hospital.org_code,
        p.org_code,
        "C09C",
    )  # an ARB again within the 30 days supplied elsewhere
    assert decoded(stage.handle_batch(messages([p.visit("J18.900")]))) == []  # nothing routable in a pneumonia visit


def test_a_replay_publishes_the_same_changes_again(stage: RoutingStage, postgres_url: str) -> None:
    p = with_person(postgres_url, Patient())
    batch = messages([p.visit("I10", "A15.000x001"), p.death()])  # 2 chronic, 1 notifiable, tumour, death, seal
    first = decoded(stage.handle_batch(batch))
    again = decoded(stage.handle_batch(batch))  # the offsets were not committed: the same batch comes back
    ids = [v.get("change_id") for _, v in first]
    assert len(ids) == 6 and ids == [v.get("change_id") for _, v in again]
    out = decoded(stage.handle_batch(messages([cancelled(p.death())])))
    assert out == []  # cancelling a death record the platform never saw withdraws nothing


def test_cancelling_the_death_record_withdraws_and_reopens(stage: RoutingStage, postgres_url: str) -> None:
    p = with_person(postgres_url, Patient())
    death = p.death()
    stage.handle_batch(messages([death]))
    out = decoded(stage.handle_batch(messages([cancelled(death)])))
    assert sorted((t, v.get("kind") or v.get("action")) for t, v in out) == [
        ("collab.death_registration", "WITHDRAWN"),
        ("collab.tumor_registry", "WITHDRAWN"),
        ("record.deregistered", "REINSTATED"),
    ]
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT status FROM empi.persons WHERE person_id = %s", (p.person_id,)).fetchone() == (
            "active",
        )


def test_undecodable_and_misfiled_messages_are_dead_lettered(stage: RoutingStage) -> None:
    p = Patient()
    good = messages([p.vaccination()])[0]
    broken = RawMessage(good.topic, 0, 7, good.key, b"\x00garbage")
    misfiled = RawMessage(PREFIX + validated_topic("outpatient.visit").name, 0, 8, good.key, good.value)
    out = stage.handle_batch([broken, misfiled])
    assert [r.topic for r in out] == [PREFIX + topic("dlq.routing").name] * 2
    reasons = [CODEC.decode(r.value).value["error_code"] for r in out]
    assert reasons[1] == "wrong_event_type" and reasons[0] != "wrong_event_type"


def test_workers_running_different_routes_share_the_ledger_without_stepping_on_each_other(postgres_url: str) -> None:
    """The CDC runs infectious_disease in a worker group of its own; the chronic-disease worker sees the same
    records and cancellations, each keeps its own record versions, and each publishes its own changes only."""
    windows = reminder_windows(Settings())
    chronic = RoutingStage(CODEC, PREFIX, RoutingState(postgres_url, windows, ROLE_PREFIX, ("chronic_disease",)))
    infectious = RoutingStage(
        CODEC, PREFIX, RoutingState(postgres_url, windows, ROLE_PREFIX, ("infectious_disease", "clinical_reminders"))
    )
    try:
        assert PREFIX + validated_topic("prescription").name not in chronic.inputs
        assert PREFIX + validated_topic("prescription").name in infectious.inputs
        p = Patient()
        visit = p.visit("I10", "J10.100")  # hypertension and influenza on one visit
        batch = messages([visit])
        assert [t for t, _ in decoded(chronic.handle_batch(batch))] == ["collab.chronic_disease"]
        assert [t for t, _ in decoded(infectious.handle_batch(batch))] == ["collab.infectious_disease"]
        assert decoded(chronic.handle_batch(batch)) == decoded(chronic.handle_batch(batch))  # replays: its own only
        gone = messages([cancelled(visit)])
        assert [(t, v["kind"]) for t, v in decoded(infectious.handle_batch(gone))] == [
            ("collab.infectious_disease", "WITHDRAWN")
        ]
        assert [(t, v["kind"]) for t, v in decoded(chronic.handle_batch(gone))] == [
            ("collab.chronic_disease", "WITHDRAWN")
        ]
    finally:
        chronic.state.close()
        infectious.state.close()
    with pytest.raises(ValueError):
        RoutingState(postgres_url, windows, ROLE_PREFIX, ("no_such_route",))

"""The health record lifecycle in the master patient index (docs/domain.md §8), on real PostgreSQL.

Persons are built the way the identify stage builds them (`store.resolve_records` with the shipped model);
deaths are applied with `record_lifecycle`. After every step the lifecycle invariants are checked: a person
is 'deceased' exactly when it has a deregistration, and a merged person never holds one. Each test gets an
empty `empi` schema in this module's own database (dropped at the end).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from foundation.standards.citizen_id import make_citizen_id
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.operator_actions import merge, show_person, unmerge
from streams.identity.master_index.record_lifecycle import (
    DEREGISTERED,
    REINSTATED,
    UnknownPerson,
    deregister,
    record_status,
    reinstate,
)
from streams.identity.master_index.schema import ensure_master_index
from streams.identity.master_index.store import merge_persons, resolve_records
from streams.identity.record import SourceRecord

pytestmark = pytest.mark.integration  # its fixtures open their own PostgreSQL (and Redis) connections

MODEL = MatchModel.load(Path(__file__).resolve().parent.parent / "streams" / "identity" / "default_model.json")
ACTOR = "death-registry"
OPERATOR = "ops.wang"
ORG_A, ORG_B, ORG_C = "12411500MB0000001A", "12411502MB0000002B", "12411503MB0000003C"
ID_ZHANG = make_citizen_id("411502", dt.date(1985, 3, 2), 123)
HEALTH_CARD = "H4115020099887766"
DIED = dt.datetime(2024, 3, 9, 6, 30, tzinfo=dt.UTC)
CORRECTED = dt.datetime(2024, 3, 8, 23, 10, tzinfo=dt.UTC)
CERT = "death_certificate:DC-2024-0001"
DUPLICATE = "death_certificate:DC-2024-0777"


def rec(
    org: str,
    local: str,
    name: str,
    sex: str = "",
    birth: str = "",
    id_number: str = "",
    health_card: str = "",
    phone: str = "",
) -> SourceRecord:
    return SourceRecord(
        f"{org}:{local}", org, local, name, sex, birth, "01" if id_number else "", id_number, health_card, "", phone, ""
    )


@pytest.fixture(scope="module")
def db_url(module_db_url: str) -> str:
    return module_db_url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("DROP SCHEMA IF EXISTS empi CASCADE")
        ensure_master_index(c)
        ensure_master_index(c)  # idempotent
        yield c
        check_invariants(c)


def two_persons(conn: psycopg.Connection) -> tuple[str, str]:
    """A (two records sharing a citizen ID) and B (two records sharing an e-health card), not linked."""
    out = resolve_records(
        conn,
        [
            rec(ORG_A, "A-1", "张伟", "1", "1985-03-02", ID_ZHANG, phone="13812341111"),
            rec(ORG_B, "B-7", "张伟", "1", "1985-03-02", ID_ZHANG),
            rec(ORG_C, "C-1", "张伟", "1", "", health_card=HEALTH_CARD, phone="13900002222"),
            rec(ORG_B, "B-9", "张伟", "", "", health_card=HEALTH_CARD),
        ],
        MODEL,
    )
    assert out[0].person_id == out[1].person_id != out[2].person_id == out[3].person_id
    return out[0].person_id, out[2].person_id


def check_invariants(conn: psycopg.Connection) -> None:
    """deceased ⇔ a deregistration; merged ⇔ merged_into (the CHECK); no merged person holds a seal."""
    rows = conn.execute(
        "SELECT p.status, p.merged_into IS NOT NULL, d.person_id IS NOT NULL FROM empi.persons p "
        "LEFT JOIN empi.deregistrations d USING (person_id)"
    ).fetchall()
    for status, has_survivor, sealed in rows:
        assert (status == "merged") == has_survivor
        assert (status == "deceased") == sealed


def status_of(conn: psycopg.Connection, person: str) -> str:
    return conn.execute("SELECT status FROM empi.persons WHERE person_id = %s", (person,)).fetchone()[0]


def audit(conn: psycopg.Connection, action: str) -> list[tuple]:
    return conn.execute(
        "SELECT actor, person_id::text, other_person_id::text, change_id, reason, detail "
        "FROM empi.audit_log WHERE action = %s ORDER BY audit_id",
        (action,),
    ).fetchall()


def seal(
    conn: psycopg.Connection,
    person: str,
    event: str = "ev-1",
    died: dt.datetime = DIED,
    record_key: str = CERT,
    org: str = ORG_C,
    local: str | None = "C-1",
    cause: str | None = "I21.9",
):
    with conn.transaction():
        return deregister(
            conn, person, died, org, record_key, local, event, cause, ACTOR, f"death certificate {record_key}"
        )


def cancel(conn: psycopg.Connection, person: str, event: str, record_key: str = CERT, org: str = ORG_C):
    with conn.transaction():
        return reinstate(conn, person, org, record_key, event, ACTOR, "certificate cancelled by the hospital")


# -- death registered, replayed, corrected, cancelled ---------------------------------------------------


def test_a_death_seals_the_record_once(conn: psycopg.Connection) -> None:
    a, b = two_persons(conn)
    change = seal(conn, b)
    assert change is not None and change.action == DEREGISTERED and change.person_id == b
    assert (change.died_at, change.org_code, change.record_key, change.cause_code) == (DIED, ORG_C, CERT, "I21.9")
    assert status_of(conn, b) == "deceased" and status_of(conn, a) == "active"
    status = record_status(conn, b)
    assert (status.status, status.person_id, status.died_at, status.record_key, status.cause_code) == (
        "deceased",
        b,
        DIED,
        CERT,
        "I21.9",
    )
    assert status.sealed and not record_status(conn, a).sealed
    ((actor, person, other, change_id, reason, detail),) = audit(conn, "deregister")
    assert (actor, person, other, change_id) == (ACTOR, b, None, change.change_id) and reason
    # Dates, codes and source keys only: nothing personal.
    assert set(detail) == {"died_at", "org_code", "record_key", "cause_code", "source_event_id", "replaced"}
    assert "张伟" not in str(detail) and HEALTH_CARD not in str(detail)

    assert seal(conn, b) is None  # a replay of the event
    assert seal(conn, b, event="ev-1-resent") is None  # the same record re-sent unchanged
    assert len(audit(conn, "deregister")) == 1
    row = conn.execute("SELECT source_event_id, change_id FROM empi.deregistrations").fetchall()
    assert row == [("ev-1", change.change_id)]


def test_a_corrected_death_is_a_new_change(conn: psycopg.Connection) -> None:
    _, b = two_persons(conn)
    first = seal(conn, b)
    corrected = seal(conn, b, event="ev-2", died=CORRECTED)
    assert corrected is not None and corrected.change_id != first.change_id and corrected.died_at == CORRECTED
    assert record_status(conn, b).died_at == CORRECTED
    entries = audit(conn, "deregister")
    assert len(entries) == 2 and entries[1][5]["replaced"]["died_at"] == DIED.isoformat()
    assert seal(conn, b, event="ev-2", died=CORRECTED) is None  # its replay


def test_cancelling_the_sealing_record_reopens_it(conn: psycopg.Connection) -> None:
    _, b = two_persons(conn)
    seal(conn, b)
    reopened = cancel(conn, b, "ev-cancel")
    assert reopened is not None and reopened.action == REINSTATED and reopened.person_id == b
    assert reopened.died_at == DIED and reopened.record_key == CERT  # the withdrawn death
    assert status_of(conn, b) == "active" and not record_status(conn, b).sealed
    ((actor, person, _, change_id, _, detail),) = audit(conn, "reinstate")
    assert (actor, person, change_id, detail["cancelling_event_id"]) == (ACTOR, b, reopened.change_id, "ev-cancel")
    assert cancel(conn, b, "ev-cancel") is None and len(audit(conn, "reinstate")) == 1
    # A replay of the original death after its cancellation does not seal again.
    assert seal(conn, b) is None and status_of(conn, b) == "active"


def test_cancelling_another_record_leaves_the_seal(conn: psycopg.Connection) -> None:
    _, b = two_persons(conn)
    seal(conn, b)
    assert cancel(conn, b, "ev-x", record_key=DUPLICATE) is None
    assert cancel(conn, b, "ev-y", org=ORG_A) is None  # same key, another institution
    assert status_of(conn, b) == "deceased" and audit(conn, "reinstate") == []
    # The latest death record wins: then only its cancellation reopens.
    seal(conn, b, event="ev-3", record_key=DUPLICATE, org=ORG_B, local="B-9", cause=None)
    assert cancel(conn, b, "ev-4") is None
    assert cancel(conn, b, "ev-5", record_key=DUPLICATE, org=ORG_B) is not None
    assert status_of(conn, b) == "active"


def test_unknown_person_and_naive_time(conn: psycopg.Connection) -> None:
    with pytest.raises(UnknownPerson):
        seal(conn, str(uuid.uuid4()))
    with pytest.raises(UnknownPerson):
        record_status(conn, str(uuid.uuid4()))
    _, b = two_persons(conn)
    with pytest.raises(ValueError):
        seal(conn, b, died=DIED.replace(tzinfo=None))
    assert status_of(conn, b) == "active"


# -- merges and unmerges -------------------------------------------------------------------------------


def test_a_death_of_a_merged_person_seals_the_survivor(conn: psycopg.Connection) -> None:
    a, b = two_persons(conn)
    merge(conn, a, b, OPERATOR, "same resident")
    change = seal(conn, b)  # the death record still carries the absorbed id
    assert change is not None and change.person_id == a
    assert status_of(conn, a) == "deceased" and status_of(conn, b) == "merged"
    via = record_status(conn, b)
    assert (via.status, via.merged_into, via.person_id, via.died_at) == ("merged", a, a, DIED)
    assert audit(conn, "deregister")[0][1:3] == (a, b)
    assert seal(conn, b) is None  # replayed against the absorbed id: the same change
    assert cancel(conn, b, "ev-cancel") is not None and status_of(conn, a) == "active"


def test_a_merge_moves_the_seal_to_the_survivor(conn: psycopg.Connection) -> None:
    a, b = two_persons(conn)
    seal(conn, b)
    # The identify stage merges them: one record carries both persons' identifiers.
    (out,) = resolve_records(
        conn, [rec(ORG_A, "A-99", "张伟", "1", "1985-03-02", ID_ZHANG, health_card=HEALTH_CARD)], MODEL
    )
    assert out.person_id == a  # the record goes with its citizen ID: B merges into A
    assert status_of(conn, a) == "deceased" and status_of(conn, b) == "merged"
    assert record_status(conn, b).died_at == DIED and record_status(conn, a).record_key == CERT
    entry = audit(conn, "deregister")[-1]  # the move, audited on the survivor, naming the merge
    assert entry[0] == "identify-stage" and entry[1:3] == (a, b) and "merge" in entry[4]


def test_a_merge_of_two_sealed_persons_keeps_the_survivors(conn: psycopg.Connection) -> None:
    a, b = two_persons(conn)
    seal(conn, a, event="ev-a", record_key="death_certificate:A", org=ORG_A, local="A-1")
    seal(conn, b, event="ev-b", died=CORRECTED)
    with conn.transaction():
        merge_persons(conn, a, b, rule="operator", actor=OPERATOR, reason="same resident", change="m-1")
    assert status_of(conn, a) == "deceased" and status_of(conn, b) == "merged"
    assert record_status(conn, a).record_key == "death_certificate:A"
    assert conn.execute("SELECT count(*) FROM empi.deregistrations").fetchone()[0] == 1
    ((_, person, other, _, reason, detail),) = audit(conn, "deregistration_dropped")
    assert (person, other, detail["record_key"]) == (b, a, CERT) and "m-1" in reason


def test_unmerging_the_death_records_patient_takes_the_seal_back(conn: psycopg.Connection) -> None:
    a, b = two_persons(conn)
    seal(conn, b)  # its death record is C-1's (ORG_C)
    with conn.transaction():  # an automatic merge (an operator may not merge a deceased person)
        merge_persons(conn, a, b, rule="citizen_id", actor="identify-stage", reason="record links both", change="m-1")
    assert status_of(conn, a) == "deceased"
    assert show_person(conn, a).died_at == DIED and show_person(conn, b).status == "deceased"

    other = unmerge(conn, ORG_B, "B-9", OPERATOR, "not the same resident")  # not the death's record
    assert other.to_person_id == b and other.person_reactivated and not other.deregistration_moved
    assert status_of(conn, b) == "active" and status_of(conn, a) == "deceased"

    moved = unmerge(conn, ORG_C, "C-1", OPERATOR, "not the same resident")
    assert moved.to_person_id == b and moved.deregistration_moved
    assert status_of(conn, b) == "deceased" and status_of(conn, a) == "active"
    assert record_status(conn, b).died_at == DIED
    view = show_person(conn, a)
    assert view.status == "active" and view.died_at is None and view.death_source is None
    assert show_person(conn, b).death_source == f"{ORG_C}:{CERT}"
    assert audit(conn, "reinstate")[-1][1:3] == (a, b)
    assert audit(conn, "deregister")[-1][1:3] == (b, a)
    repeat = unmerge(conn, ORG_C, "C-1", OPERATOR, "not the same resident")
    assert repeat.already_done and len(audit(conn, "reinstate")) == 1


def test_a_reactivated_person_holding_a_seal_comes_back_deceased(conn: psycopg.Connection) -> None:
    a, b = two_persons(conn)
    merge(conn, a, b, OPERATOR, "same resident")
    # A seal left on a merged person (data from before seals moved with merges): unmerge must not
    # make its record 'active' again.
    conn.execute(
        "INSERT INTO empi.deregistrations (person_id, died_at, org_code, record_key, source_event_id, "
        "change_id) VALUES (%s, %s, %s, %s, 'legacy', 'legacy')",
        (b, DIED, ORG_A, "legacy:1"),
    )
    result = unmerge(conn, ORG_B, "B-9", OPERATOR, "not the same resident")
    assert result.person_reactivated and status_of(conn, b) == "deceased"

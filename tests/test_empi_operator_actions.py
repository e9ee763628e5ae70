"""Operator actions on the master patient index, on real PostgreSQL, Redis and a Kafka-compatible broker.

The index state is built the way the identify stage builds it (`store.resolve_records` with the shipped
model): records with one valid citizen ID link, records with other IDs found other persons, and records
scoring between the review and link weights raise review items. Each test gets an empty `empi` schema in
this module's own database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from avro_schemas.serde import EventCodec
from avro_schemas.topics import IDENTITY_CHANGE_TYPES, topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from foundation.standards.citizen_id import make_citizen_id
from ops.topic_admin import create_topics, delete_topics, existing_topics
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.operator_actions import (
    OperatorError,
    accept_review,
    list_reviews,
    merge,
    reject_review,
    show_person,
    unmerge,
)
from streams.identity.master_index.outbox import OutboxPublishError, pending_count, publish_pending
from streams.identity.master_index.store import resolve_records
from streams.identity.record import SourceRecord
from streams.identity.resolution import MatchRule
from tests.conftest import healthbus, settings_env
from tests.pipeline_harness import read_topic

pytestmark = pytest.mark.integration  # its fixtures open their own PostgreSQL (and Redis) connections

MODEL = MatchModel.load(Path(__file__).resolve().parent.parent / "streams" / "identity" / "default_model.json")
ACTOR = "ops.wang"
ORG_A, ORG_B, ORG_C = "12411500MB0000001A", "12411502MB0000002B", "12411503MB0000003C"
ID_ZHANG = make_citizen_id("411502", dt.date(1985, 3, 2), 123)  # odd sequence: male
ID_OTHER = make_citizen_id("411502", dt.date(1985, 3, 2), 125)
ID_LI = make_citizen_id("411503", dt.date(1990, 5, 6), 242)  # even: female
HEALTH_CARD = "H4115020099887766"
PHONE = "13812341111"


def rec(
    org: str,
    local: str,
    name: str,
    sex: str = "",
    birth: str = "",
    id_number: str = "",
    health_card: str = "",
    phone: str = "",
    address: str = "",
) -> SourceRecord:
    return SourceRecord(
        f"{org}:{local}",
        org,
        local,
        name,
        sex,
        birth,
        "01" if id_number else "",
        id_number,
        health_card,
        "",
        phone,
        address,
    )


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db_url(module_db_url: str) -> str:
    return module_db_url


@pytest.fixture
def conn(empi_conn: psycopg.Connection) -> psycopg.Connection:
    return empi_conn


@pytest.fixture
def cache(person_cache: PersonCache) -> PersonCache:
    return person_cache


@pytest.fixture
def ops_settings(bootstrap: str, db_url: str, tmp_path) -> Iterator[Settings]:
    """Settings on this module's database with a fresh topic prefix; the empi.* topics exist for the test."""
    s = Settings(
        kafka_bootstrap=bootstrap,
        postgres_url=db_url,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}-",
        state_dir=tmp_path / "state",
        schema_registry_url=None,
        redis_url=os.environ.get("HEALTHBUS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    create_topics(s.confluent_config(), s.topic_prefix, specs=[topic(t) for t in IDENTITY_CHANGE_TYPES])
    try:
        yield s
    finally:
        delete_topics(s.confluent_config(), list(existing_topics(s.confluent_config(), s.topic_prefix)))


# -- index state ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TwoPersons:
    a: str  # 张伟 with a valid citizen ID, two records
    b: str  # the same resident seen without the ID: two records sharing an e-health card
    a_records: list[tuple[str, str]]
    b_records: list[tuple[str, str]]


def two_persons_records() -> list[SourceRecord]:
    """What `two_persons` files: A-1 and B-7 (person a), then C-1 and B-9 (person b)."""
    return [
        rec(ORG_A, "A-1", "张伟", "1", "1985-03-02", ID_ZHANG, phone=PHONE, address="信阳市浉河区民权路12号"),
        rec(ORG_B, "B-7", "张伟", "1", "1985-03-02", ID_ZHANG),
        rec(ORG_C, "C-1", "张伟", "1", "", health_card=HEALTH_CARD, phone="13900002222"),
        rec(ORG_B, "B-9", "张伟", "", "", health_card=HEALTH_CARD),
    ]


def two_persons(conn: psycopg.Connection) -> TwoPersons:
    """Two persons the stage could not link (no shared identifier, too little shared evidence)."""
    out = resolve_records(conn, two_persons_records(), MODEL)
    assert [o.rule for o in out] == [
        MatchRule.NEW_PERSON,
        MatchRule.CITIZEN_ID,
        MatchRule.NEW_PERSON,
        MatchRule.HEALTH_CARD,
    ]
    assert out[0].person_id == out[1].person_id != out[2].person_id == out[3].person_id
    return TwoPersons(
        out[0].person_id, out[2].person_id, [(ORG_A, "A-1"), (ORG_B, "B-7")], [(ORG_C, "C-1"), (ORG_B, "B-9")]
    )


def snapshot(conn: psycopg.Connection) -> dict[str, object]:
    return {
        "records": dict(conn.execute("SELECT org_code || ':' || local_id, person_id::text FROM empi.records")),
        "identifiers": dict(conn.execute("SELECT kind || ':' || value, person_id::text FROM empi.identifiers")),
        "persons": {
            p: (s, m, sex)
            for p, s, m, sex in conn.execute("SELECT person_id::text, status, merged_into::text, sex FROM empi.persons")
        },
    }


def outbox_rows(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT event_type, change_id FROM empi.outbox ORDER BY created_at, change_id").fetchall()


def audit(conn: psycopg.Connection, action: str) -> list[tuple]:
    return conn.execute(
        "SELECT actor, reason, person_id::text, other_person_id::text, org_code, local_id, change_id "
        "FROM empi.audit_log WHERE action = %s ORDER BY audit_id",
        (action,),
    ).fetchall()


# -- merge and unmerge ---------------------------------------------------------------------------------


def test_merge_then_unmerge_restores_the_original_links(conn: psycopg.Connection, cache: PersonCache) -> None:
    p = two_persons(conn)
    before = snapshot(conn)

    merged = merge(conn, p.a, p.b, ACTOR, "same resident: ticket 881", cache=cache)
    assert not merged.already_done and sorted(merged.records_moved) == sorted(p.b_records)
    after_merge = snapshot(conn)
    assert set(after_merge["records"].values()) == {p.a}
    assert after_merge["identifiers"][f"health_card:{HEALTH_CARD}"] == p.a
    assert after_merge["persons"][p.b][:2] == ("merged", p.a)

    first = unmerge(conn, *p.b_records[0], ACTOR, "ticket 881 was wrong", cache=cache)
    assert (first.from_person_id, first.to_person_id, first.person_reactivated) == (p.a, p.b, True)
    assert first.identifiers_moved == ()  # the other record of B, still with A, carries the card too
    second = unmerge(conn, *p.b_records[1], ACTOR, "ticket 881 was wrong", cache=cache)
    assert (second.to_person_id, second.person_reactivated, second.identifiers_moved) == (p.b, False, ("health_card",))

    assert snapshot(conn) == before  # records, identifiers, statuses, merged_into and sexes as they were
    moves = conn.execute(
        "SELECT from_person_id::text, to_person_id::text FROM empi.record_moves "
        "WHERE org_code = %s AND local_id = %s ORDER BY move_id",
        p.b_records[0],
    ).fetchall()
    assert moves == [(None, p.b), (p.b, p.a), (p.a, p.b)]
    assert conn.execute("SELECT count(*) FROM empi.separations").fetchone()[0] == 1
    assert [e for e, _ in outbox_rows(conn)] == ["empi.person_merged", "empi.record_relinked", "empi.record_relinked"]
    payload = conn.execute("SELECT payload FROM empi.outbox WHERE change_id = %s", (first.change_id,)).fetchone()[0]
    assert payload | {"occurred_at": 0} == {
        "change_id": first.change_id,
        "occurred_at": 0,
        "org_code": ORG_C,
        "local_patient_id": "C-1",
        "from_person_id": p.a,
        "to_person_id": p.b,
        "person_reactivated": True,
        "action": "unmerge",
        "actor": ACTOR,
        "reason": "ticket 881 was wrong",
    }


def test_the_stage_does_not_merge_an_unmerged_record_back(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    merge(conn, p.a, p.b, ACTOR, "same resident")
    for record in p.b_records:
        unmerge(conn, *record, ACTOR, "not the same resident")
    # A record carrying both persons' identifiers would merge them; the separation holds them apart.
    both = rec(ORG_A, "A-99", "张伟", "1", "1985-03-02", ID_ZHANG, health_card=HEALTH_CARD)
    resolve_records(conn, [both], MODEL)
    assert snapshot(conn)["persons"][p.b][0] == "active"
    assert conn.execute("SELECT count(*) FROM empi.records WHERE person_id = %s", (p.b,)).fetchone()[0] == 2


def test_merge_and_unmerge_are_idempotent(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    first = merge(conn, p.a, p.b, ACTOR, "same resident")
    rows = outbox_rows(conn)
    again = merge(conn, p.a, p.b, ACTOR, "same resident")
    assert again.already_done and again.change_id == first.change_id and again.records_moved == ()
    reverse = merge(conn, p.b, p.a, ACTOR, "same resident")  # B redirects to A: one person already
    assert reverse.already_done and reverse.survivor_person_id == p.a
    assert outbox_rows(conn) == rows

    done = unmerge(conn, *p.b_records[0], ACTOR, "not the same")
    rows = outbox_rows(conn)
    repeat = unmerge(conn, *p.b_records[0], ACTOR, "not the same")
    assert repeat.already_done and repeat.change_id == done.change_id and repeat.to_person_id == p.b
    assert outbox_rows(conn) == rows
    assert len(audit(conn, "unmerge")) == 1

    # Merged again after the unmerge: a new change (a fixed id would be swallowed by the outbox).
    remerged = merge(conn, p.a, p.b, ACTOR, "same after all")
    assert not remerged.already_done and remerged.change_id != first.change_id
    assert remerged.records_moved == (p.b_records[0],)
    assert conn.execute("SELECT count(*) FROM empi.separations").fetchone()[0] == 0  # the operator overrode it
    assert [a[0:2] for a in audit(conn, "separation_removed")] == [(ACTOR, "same after all")]
    unmerged_again = unmerge(conn, *p.b_records[0], ACTOR, "no")
    assert not unmerged_again.already_done and unmerged_again.change_id != done.change_id


def test_unmerging_a_founding_record_makes_a_new_person(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    result = unmerge(conn, ORG_B, "B-7", ACTOR, "different resident sharing the ID by a clerk's error")
    assert result.new_person and result.to_person_id not in (p.a, p.b)
    assert result.identifiers_moved == ()  # A-1 still carries the citizen ID
    row = conn.execute("SELECT person_id::text, link_rule FROM empi.records WHERE local_id = 'B-7'").fetchone()
    assert row == (result.to_person_id, "operator")
    assert snapshot(conn)["persons"][result.to_person_id] == ("active", None, "1")


def test_refusals(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    (other,) = resolve_records(conn, [rec(ORG_A, "A-2", "张伟", "1", "1985-03-02", ID_OTHER)], MODEL)
    (woman,) = resolve_records(conn, [rec(ORG_B, "B-20", "张薇", "2", "1985-03-02", phone="13700001111")], MODEL)
    before = snapshot(conn)

    def code(call, *args, **kwargs) -> str:
        with pytest.raises(OperatorError) as caught:
            call(*args, **kwargs)
        return caught.value.code

    assert code(merge, conn, p.a, other.person_id, ACTOR, "typo") == "different_citizen_ids"
    assert code(merge, conn, p.a, woman.person_id, ACTOR, "typo") == "different_sexes"
    assert code(merge, conn, p.a, p.a, ACTOR, "typo") == "self_merge"
    assert code(merge, conn, p.a, str(uuid.uuid4()), ACTOR, "typo") == "unknown_person"
    assert code(merge, conn, p.a, "not-a-uuid", ACTOR, "typo") == "invalid_person_id"
    assert code(merge, conn, p.a, p.b, ACTOR, "  ") == "reason_required"
    assert code(unmerge, conn, ORG_A, "nobody", ACTOR, "typo") == "unknown_record"
    assert code(unmerge, conn, ORG_A, "A-2", ACTOR, "alone") == "record_alone"
    assert code(show_person, conn, str(uuid.uuid4())) == "unknown_person"
    assert snapshot(conn) == before and outbox_rows(conn) == []

    forced = merge(conn, p.a, other.person_id, ACTOR, "registry confirmed one resident", force=True)
    assert forced.forced_over == ("different_citizen_ids",)
    detail = conn.execute(
        "SELECT detail FROM empi.audit_log WHERE change_id = %s AND action = 'merge'", (forced.change_id,)
    ).fetchone()[0]
    assert detail["forced"] is True and detail["overridden"] == ["different_citizen_ids"]


def test_a_merged_id_acts_on_its_survivor(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    (third,) = resolve_records(conn, [rec(ORG_C, "C-5", "张伟", "", "", phone="13600003333")], MODEL)
    merge(conn, p.a, p.b, ACTOR, "same")
    result = merge(conn, p.b, third.person_id, ACTOR, "same")  # B is merged: its survivor A takes C-5
    assert result.survivor_person_id == p.a
    assert show_person(conn, p.b).person_id == p.a
    assert show_person(conn, p.b).merge_chain == (p.b, p.a)


def test_audit_rows_carry_actor_and_reason(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    m = merge(conn, p.a, p.b, "ops.li", "dup found by clinic 3")
    u = unmerge(conn, *p.b_records[0], "ops.zhao", "clinic 3 recalled it")
    assert audit(conn, "merge") == [("ops.li", "dup found by clinic 3", p.a, p.b, None, None, m.change_id)]
    assert audit(conn, "unmerge") == [("ops.zhao", "clinic 3 recalled it", p.a, p.b, *p.b_records[0], u.change_id)]
    assert conn.execute("SELECT count(*) FROM empi.audit_log WHERE at IS NULL").fetchone()[0] == 0


def test_cache_entries_of_moved_records_are_invalidated(conn: psycopg.Connection, cache: PersonCache) -> None:
    p = two_persons(conn)
    stale = [(r, p.b, "fp", 1) for r in p.b_records] + [(p.a_records[1], p.a, "fp", 1)]
    cache.put_many(stale)
    merged = merge(conn, p.a, p.b, ACTOR, "same", cache=cache)
    assert merged.moved_versions == (2, 2)
    assert cache.get_many(p.b_records) == {}
    assert {e.version for e in cache.entries(p.b_records).values()} == {2}  # tombstones at the new version
    assert p.a_records[1] in cache.get_many([p.a_records[1]])  # a record that did not move stays cached
    cache.put_many([(p.b_records[0], p.a, "fp", 2)])
    unmerged = unmerge(conn, *p.b_records[0], ACTOR, "not the same", cache=cache)
    assert unmerged.mapping_version == 3
    assert cache.get_many([p.b_records[0]]) == {}


def test_a_cache_outage_does_not_undo_a_committed_action(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    down = PersonCache.from_url("redis://127.0.0.1:1/0")
    result = merge(conn, p.a, p.b, ACTOR, "same", cache=down)
    assert "2 cache entries not invalidated" in result.cache_error
    assert snapshot(conn)["persons"][p.b][0] == "merged"


# -- review --------------------------------------------------------------------------------------------


def review_items(conn: psycopg.Connection) -> tuple[int, int]:
    """Two possible matches raised by the stage itself: records scoring between review and link weight."""
    resolve_records(
        conn,
        [
            rec(ORG_A, "A-1", "张伟", "1", "1985-03-02", ID_ZHANG, phone=PHONE),
            rec(ORG_A, "A-3", "李娜", "2", "1990-05-06", ID_LI),
        ],
        MODEL,
    )
    out = resolve_records(
        conn, [rec(ORG_B, "B-1", "张伟", "1", "1985-03-12"), rec(ORG_C, "C-1", "李娜", "2", "1990-05-16")], MODEL
    )
    assert all(o.review and o.rule == MatchRule.NEW_PERSON for o in out), out
    items = list_reviews(conn)
    assert [(i.local_id, i.reason) for i in items] == [("B-1", "possible_match"), ("C-1", "possible_match")]
    assert all(MODEL.review_weight <= (i.weight or 0) < MODEL.link_weight for i in items)
    return items[0].review_id, items[1].review_id


def test_review_accept_merges_and_reject_separates(conn: psycopg.Connection, cache: PersonCache) -> None:
    accept_id, reject_id = review_items(conn)
    item = list_reviews(conn)[0]
    cache.put_many([((ORG_B, "B-1"), item.record_person_id, "fp", 1)])

    accepted = accept_review(conn, accept_id, ACTOR, "same birth month, date typo", cache=cache)
    assert accepted.merge is not None and accepted.merge.survivor_person_id == item.candidate_person_id
    assert (
        conn.execute("SELECT person_id::text FROM empi.records WHERE local_id = 'B-1'").fetchone()[0]
        == item.candidate_person_id
    )
    assert cache.get_many([(ORG_B, "B-1")]) == {}
    rejected = reject_review(conn, reject_id, ACTOR, "another resident of the same name")

    decided = {i.review_id: i for i in list_reviews(conn, "accepted") + list_reviews(conn, "rejected")}
    assert (decided[accept_id].status, decided[accept_id].decided_by) == ("accepted", ACTOR)
    assert decided[reject_id].decision_reason == "another resident of the same name"
    assert list_reviews(conn) == []
    assert audit(conn, "review_accept")[0][:2] == (ACTOR, "same birth month, date typo")
    assert audit(conn, "review_reject")[0][:2] == (ACTOR, "another resident of the same name")
    merged_rule = conn.execute("SELECT payload->>'rule' FROM empi.outbox").fetchall()
    assert merged_rule == [("review_accept",)]  # a rejection changes no link: no event
    rejected_item = decided[reject_id]
    pair = sorted((rejected_item.record_person_id, rejected_item.candidate_person_id))
    assert conn.execute(
        "SELECT change_id FROM empi.separations WHERE person_a = %s AND person_b = %s", pair
    ).fetchone() == (rejected.change_id,)

    # Repeats are no-ops; the opposite decision is refused.
    rows = outbox_rows(conn)
    assert accept_review(conn, accept_id, ACTOR, "again").already_decided
    assert reject_review(conn, reject_id, ACTOR, "again").already_decided
    assert outbox_rows(conn) == rows
    for call, review_id in ((reject_review, accept_id), (accept_review, reject_id)):
        with pytest.raises(OperatorError) as caught:
            call(conn, review_id, ACTOR, "changed my mind")
        assert caught.value.code == "review_decided"
    with pytest.raises(OperatorError) as caught:
        accept_review(conn, 999_999, ACTOR, "x")
    assert caught.value.code == "unknown_review"


# -- show ------------------------------------------------------------------------------------------------

PERSONAL = ("张伟", ID_ZHANG, PHONE, HEALTH_CARD, "1985-03-02", "民权路12号", "13900002222")


def test_show_masks_personal_fields(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    merge(conn, p.a, p.b, ACTOR, "same")
    view = show_person(conn, p.b)
    text = json.dumps(dataclasses.asdict(view), ensure_ascii=False, default=str)
    for value in PERSONAL:
        assert value not in text
    assert view.person_id == p.a and view.status == "active" and len(view.records) == 4
    first = next(r for r in view.records if r.local_id == "A-1")
    assert (first.name, first.id_number, first.phone, first.birth_date, first.address) == (
        "张*",
        f"{ID_ZHANG[:6]}********{ID_ZHANG[-4:]}",
        "138****1111",
        "1985-**-**",
        "信阳市浉河区***",
    )
    assert dict(view.identifiers) == {
        "citizen_id": f"{ID_ZHANG[:6]}********{ID_ZHANG[-4:]}",
        "health_card": "*" * (len(HEALTH_CARD) - 4) + HEALTH_CARD[-4:],
    }
    assert {r.link_rule for r in view.records} == {"new_person", "citizen_id", "health_card"}
    assert view.audit[0].action == "merge" and view.audit[0].actor == ACTOR


# -- outbox ----------------------------------------------------------------------------------------------


def test_outbox_publishes_to_the_broker_once(conn: psycopg.Connection, ops_settings: Settings) -> None:
    p = two_persons(conn)
    merged = merge(conn, p.a, p.b, ACTOR, "same")
    relinked = unmerge(conn, *p.b_records[0], ACTOR, "not the same")
    codec = EventCodec()
    producer = Producer(producer_config(ops_settings.confluent_config()))
    assert publish_pending(conn, producer, codec, ops_settings.topic_prefix) == 2
    assert pending_count(conn) == 0
    assert publish_pending(conn, producer, codec, ops_settings.topic_prefix) == 0

    merges = read_topic(ops_settings, ops_settings.topic_name("empi.person_merged"), expect=1, timeout=30)
    relinks = read_topic(ops_settings, ops_settings.topic_name("empi.record_relinked"), expect=1, timeout=30)
    assert [m.key() for m in merges] == [p.a.encode()] and [m.key() for m in relinks] == [p.b.encode()]
    event = codec.decode(merges[0].value())
    assert event.event_type == "empi.person_merged"
    assert (
        event.value["change_id"],
        event.value["survivor_person_id"],
        event.value["absorbed_person_id"],
        event.value["records_moved"],
        event.value["rule"],
        event.value["actor"],
    ) == (merged.change_id, p.a, p.b, 2, "operator", ACTOR)
    assert isinstance(event.value["occurred_at"], dt.datetime)
    relink = codec.decode(relinks[0].value()).value
    assert (relink["change_id"], relink["to_person_id"], relink["person_reactivated"]) == (
        relinked.change_id,
        p.b,
        True,
    )


def test_outbox_keeps_events_when_the_broker_is_down(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    merge(conn, p.a, p.b, ACTOR, "same")
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "log_level": 0, "message.timeout.ms": 60_000})
    with pytest.raises(OutboxPublishError):
        publish_pending(conn, producer, EventCodec(), "x-", flush_timeout=1.0)
    assert pending_count(conn) == 1


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_merge_and_show(conn: psycopg.Connection, ops_settings: Settings) -> None:
    p = two_persons(conn)
    env = settings_env(ops_settings)
    done = healthbus("empi", "merge", p.a, p.b, "--reason", "ticket 12", "--actor", "ops.cli", env=env)
    assert done.returncode == 0, done.stderr
    assert f"merged {p.b} into {p.a}: 2 record(s) moved" in done.stdout
    assert "published 1 identity change(s)" in done.stdout and pending_count(conn) == 0
    assert audit(conn, "merge")[0][:2] == ("ops.cli", "ticket 12")

    again = healthbus("empi", "merge", p.a, p.b, "--reason", "ticket 12", "--actor", "ops.cli", env=env)
    assert again.returncode == 0 and "already one person" in again.stdout

    refused = healthbus("empi", "merge", p.a, p.a, "--reason", "x", env=env)
    assert refused.returncode == 1 and "self_merge" in refused.stderr

    shown = healthbus("empi", "show", p.b, env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"person {p.a} (via {p.b} → {p.a}): active" in shown.stdout and "张*" in shown.stdout
    as_json = healthbus("empi", "show", p.a, "--json", env=env)
    assert json.loads(as_json.stdout)["person_id"] == p.a
    for value in PERSONAL:
        assert value not in shown.stdout + shown.stderr + as_json.stdout

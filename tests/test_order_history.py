"""Clinical reminders' PostgreSQL state: batches, replays, corrections, cancellations and identity changes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ops.stack.postgres import ensure_database, server_conninfo
from streams.routing.clinical_reminders import OrderKind, Reminder, ReminderStatus, reminder_id
from streams.routing.order_history import (
    ensure_order_history,
    move_person,
    prune_order_history,
    record_batch,
    record_orders,
    relink_record,
)
from tests.test_clinical_reminders import (
    AMLODIPINE,
    CBC,
    CLINIC_C,
    DAY,
    HOSPITAL_A,
    HOSPITAL_B,
    IRBESARTAN,
    LIANHUA,
    T0,
    VALSARTAN,
    exam_report,
    lab_report,
    prescription,
)

NOW = T0 + 60 * DAY
Event = tuple[str, dict[str, Any]]


@pytest.fixture(scope="module")
def orders_url(postgres_url: str) -> Iterator[str]:
    """A database of this module's own (dropped afterwards): pruning reads whole tables."""
    url = psycopg.conninfo.make_conninfo(postgres_url, dbname=f"hb_test_orders_{uuid.uuid4().hex[:10]}")
    ensure_database(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_conninfo(postgres_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
                )
            )


@pytest.fixture
def conn(orders_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(orders_url, autocommit=True) as connection:
        ensure_order_history(connection)
        ensure_order_history(connection)  # idempotent
        try:
            yield connection
        finally:
            connection.execute("TRUNCATE routing.order_records, routing.order_history, routing.clinical_reminders")


@pytest.fixture
def person() -> str:
    return f"p-{uuid.uuid4()}"


def rx(org: str, number: str, at: dt.datetime, drugs: list[Any], **env: Any) -> Event:
    return "prescription", prescription(org, number, at, drugs, **env)


def lab(org: str, number: str, at: dt.datetime, **env: Any) -> Event:
    return "lab.report", lab_report(org, number, at, [("HBA1C", "糖化血红蛋白")], **env)


def labs(org: str, number: str, at: dt.datetime, codes: list[tuple[str, str]] = CBC, **env: Any) -> Event:
    return "lab.report", lab_report(org, number, at, codes, **env)


def rows(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM routing.clinical_reminders ORDER BY reminder_id").fetchall()


def apply(conn: psycopg.Connection, *events: Event) -> tuple[list[Reminder], list[Reminder]]:
    with conn.transaction():  # as the stage does: one transaction per batch
        return record_batch(conn, list(events), now=NOW)


def summary(reminders: list[Reminder]) -> set[tuple[str, str, str, str]]:
    """(ordering record, item, earlier record, status) of each reminder."""
    return {(r.record_key, r.item, r.earlier_record_key, r.status.value) for r in reminders}


def count(conn: psycopg.Connection, table: str, where: str = "TRUE", *params: Any) -> int:
    return conn.execute(
        sql.SQL("SELECT count(*) FROM routing.{} WHERE " + where).format(sql.Identifier(table)), params
    ).fetchone()[0]


def test_a_batch_raises_across_institutions_and_later_events_see_earlier_ones(
    conn: psycopg.Connection, person: str
) -> None:
    raised, withdrawn = apply(
        conn,
        rx(HOSPITAL_A, "CF1", T0, [(*VALSARTAN, 28), LIANHUA], person=person),
        lab(HOSPITAL_A, "L1", T0, person=person),
        rx(HOSPITAL_B, "CF2", T0 + 10 * DAY, [IRBESARTAN, AMLODIPINE], person=person),
        lab(HOSPITAL_B, "L2", T0 + 3 * DAY, person=person),
        ("outpatient.visit", {"envelope": {}}),  # not an order: ignored
    )
    assert withdrawn == []
    assert summary(raised) == {
        ("prescription:CF2", "C09C", "prescription:CF1", "ACTIVE"),
        ("lab_report:L2", "HBA1C", "lab_report:L1", "ACTIVE"),
    }
    drug = next(r for r in raised if r.kind is OrderKind.DRUG_CLASS)
    assert (drug.person_id, drug.org_code, drug.earlier_org_code, drug.window, drug.at, drug.earlier_at) == (
        person,
        HOSPITAL_B,
        HOSPITAL_A,
        28 * DAY,
        T0 + 10 * DAY,
        T0,
    )
    assert count(conn, "order_history", "person_id = %s", person) == 5  # C09C, HBA1C; C09C, C08C, HBA1C
    assert count(conn, "order_records") == 4


def test_a_replay_returns_the_same_reminders_and_writes_no_duplicates(conn: psycopg.Connection, person: str) -> None:
    events = [
        rx(HOSPITAL_A, "CF1", T0, [VALSARTAN], person=person),
        rx(HOSPITAL_B, "CF2", T0 + DAY, [IRBESARTAN], person=person),
        ("exam.report", exam_report(HOSPITAL_A, "E1", T0, "CT0201", person=person)),
        ("exam.report", exam_report(CLINIC_C, "E2", T0 + 5 * DAY, "ct0201", person=person)),
    ]
    first = apply(conn, *events)
    assert len(first[0]) == 2
    rows = conn.execute("SELECT reminder_id, changed_at FROM routing.clinical_reminders ORDER BY 1").fetchall()
    assert apply(conn, *events) == first  # a replay publishes the same again (the stage may have lost it)
    assert apply(conn, events[1]) == ([r for r in first[0] if r.record_key == "prescription:CF2"], [])
    assert conn.execute("SELECT reminder_id, changed_at FROM routing.clinical_reminders ORDER BY 1").fetchall() == rows
    assert count(conn, "order_history") == 4


def test_an_earlier_order_arriving_late_reminds_the_later_order(conn: psycopg.Connection, person: str) -> None:
    assert apply(conn, rx(HOSPITAL_B, "CF2", T0 + 2 * DAY, [IRBESARTAN], person=person)) == ([], [])
    raised, _ = apply(conn, rx(HOSPITAL_A, "CF1", T0, [VALSARTAN], person=person))
    assert summary(raised) == {("prescription:CF2", "C09C", "prescription:CF1", "ACTIVE")}
    assert raised[0].org_code == HOSPITAL_B  # the ordering institution, not the late uploader


def test_two_orders_at_the_same_instant_raise_one_reminder(conn: psycopg.Connection, person: str) -> None:
    raised, _ = apply(conn, lab(HOSPITAL_A, "L1", T0, person=person), lab(HOSPITAL_B, "L2", T0, person=person))
    assert len(raised) == 1


def test_a_record_changed_twice_in_one_batch_ends_as_if_each_event_came_alone(
    conn: psycopg.Connection, person: str
) -> None:
    # A batch keeps its records' orders in memory and writes them once: a correction, a cancellation and a
    # late older version of records the same batch wrote must leave what one batch per event leaves.
    events = [
        rx(HOSPITAL_A, "CF1", T0, [VALSARTAN], person=person),
        rx(HOSPITAL_B, "CF2", T0 + DAY, [IRBESARTAN, AMLODIPINE], person=person),
        rx(CLINIC_C, "CF3", T0 + 2 * DAY, [AMLODIPINE], person=person),
        rx(HOSPITAL_A, "CF1", T0, [AMLODIPINE], person=person, version=2),
        rx(HOSPITAL_B, "CF2", T0 + DAY, [IRBESARTAN], person=person, cancelled=True),
        rx(HOSPITAL_A, "CF1", T0, [VALSARTAN], person=person),
    ]  # version 1 again, late: ignored

    def state() -> tuple[list[tuple[Any, ...]], ...]:
        return tuple(
            conn.execute(q).fetchall()
            for q in (
                "SELECT * FROM routing.order_history ORDER BY org_code, record_key, kind, item",
                "SELECT * FROM routing.order_records ORDER BY org_code, record_key",
                "SELECT reminder_id, record_key, item, earlier_record_key, earlier_event_id "
                "FROM routing.clinical_reminders WHERE status = 'ACTIVE' ORDER BY reminder_id",
            )
        )

    raised, _ = apply(conn, *events)
    assert summary(raised) == {("prescription:CF3", "C08C", "prescription:CF1", "ACTIVE")}
    stored = "SELECT record_key, item, record_version FROM routing.order_history ORDER BY 1"
    assert conn.execute(stored).fetchall() == [("prescription:CF1", "C08C", 2), ("prescription:CF3", "C08C", 1)]
    together = state()
    conn.execute("TRUNCATE routing.order_records, routing.order_history, routing.clinical_reminders")
    for event in events:
        apply(conn, event)
    assert state() == together


def test_a_correction_replaces_the_records_orders_and_an_older_version_is_ignored(
    conn: psycopg.Connection, person: str
) -> None:
    original = rx(HOSPITAL_A, "CF1", T0, [VALSARTAN], person=person)
    raised, _ = apply(conn, original, rx(HOSPITAL_B, "CF2", T0 + 3 * DAY, [IRBESARTAN], person=person))
    assert len(raised) == 1
    raised, withdrawn = apply(conn, rx(HOSPITAL_A, "CF1", T0, [AMLODIPINE], person=person, version=2))
    assert (raised, summary(withdrawn)) == ([], {("prescription:CF2", "C09C", "prescription:CF1", "WITHDRAWN")})
    stored = "SELECT item, record_version FROM routing.order_history WHERE record_key = 'prescription:CF1'"
    assert conn.execute(stored).fetchall() == [("C08C", 2)]
    assert apply(conn, original) == ([], [])  # version 1 again, late: ignored
    assert conn.execute(stored).fetchall() == [("C08C", 2)]
    raised, _ = apply(conn, rx(HOSPITAL_A, "CF1", T0, [VALSARTAN, AMLODIPINE], person=person, version=3))
    assert summary(raised) == {("prescription:CF2", "C09C", "prescription:CF1", "ACTIVE")}  # the same id again
    assert count(conn, "clinical_reminders") == 1


def test_a_correction_of_the_ordering_record_keeps_its_reminder_id(conn: psycopg.Connection, person: str) -> None:
    apply(conn, rx(HOSPITAL_A, "CF1", T0, [VALSARTAN], person=person))
    first, _ = apply(conn, rx(HOSPITAL_B, "CF2", T0 + DAY, [IRBESARTAN], person=person))
    corrected, _ = apply(conn, rx(HOSPITAL_B, "CF2", T0 + 2 * DAY, [IRBESARTAN], person=person, version=2))
    assert [r.reminder_id for r in corrected] == [r.reminder_id for r in first]
    assert corrected[0].at == T0 + 2 * DAY and corrected[0].event_id != first[0].event_id
    assert count(conn, "clinical_reminders") == 1


def test_a_cancellation_withdraws_what_the_record_raised_and_what_named_it(
    conn: psycopg.Connection, person: str
) -> None:
    a = rx(HOSPITAL_A, "CF1", T0, [(*VALSARTAN, 7)], person=person)
    b = rx(HOSPITAL_B, "CF2", T0 + 5 * DAY, [(*IRBESARTAN, 14)], person=person)
    c = rx(CLINIC_C, "CF3", T0 + 15 * DAY, [VALSARTAN], person=person)  # within B's 14 days, not A's 7
    raised, _ = apply(conn, a, b, c)
    assert summary(raised) == {
        ("prescription:CF2", "C09C", "prescription:CF1", "ACTIVE"),
        ("prescription:CF3", "C09C", "prescription:CF2", "ACTIVE"),
    }
    cancel_b = rx(HOSPITAL_B, "CF2", T0 + 5 * DAY, [IRBESARTAN], person=person, cancelled=True)
    result = apply(conn, cancel_b)
    assert result[0] == []
    assert summary(result[1]) == {
        ("prescription:CF2", "C09C", "prescription:CF1", "WITHDRAWN"),
        ("prescription:CF3", "C09C", "prescription:CF2", "WITHDRAWN"),
    }
    assert all(r.status is ReminderStatus.WITHDRAWN for r in result[1])
    assert apply(conn, cancel_b) == result  # a replay withdraws (publishes) the same again
    assert apply(conn, b) == ([], [])  # the record re-sent at the cancelled version: ignored
    assert count(conn, "order_history", "record_key = 'prescription:CF2'") == 0
    assert count(conn, "clinical_reminders", "status = 'WITHDRAWN' AND withdrawn_at IS NOT NULL") == 2


def test_a_cancelled_earlier_order_makes_the_reminder_name_the_next_one(conn: psycopg.Connection, person: str) -> None:
    raised, _ = apply(
        conn,
        rx(HOSPITAL_A, "CF1", T0, [(*VALSARTAN, 30)], person=person),
        rx(HOSPITAL_B, "CF2", T0 + 2 * DAY, [(*IRBESARTAN, 30)], person=person),
        rx(CLINIC_C, "CF3", T0 + 4 * DAY, [VALSARTAN], person=person),
    )
    target = reminder_id(CLINIC_C, "prescription:CF3", OrderKind.DRUG_CLASS, "C09C")
    assert next(r for r in raised if r.reminder_id == target).earlier_record_key == "prescription:CF2"
    raised, withdrawn = apply(conn, rx(HOSPITAL_B, "CF2", T0 + 2 * DAY, [IRBESARTAN], person=person, cancelled=True))
    assert summary(raised) == {("prescription:CF3", "C09C", "prescription:CF1", "ACTIVE")}
    assert summary(withdrawn) == {("prescription:CF2", "C09C", "prescription:CF1", "WITHDRAWN")}


# -- lab reports: one reminder per report ------------------------------------------------------------------------


def test_a_blood_count_repeated_at_another_institution_is_one_reminder_listing_6_items(
    conn: psycopg.Connection, person: str
) -> None:
    earlier = labs(HOSPITAL_A, "L1", T0, person=person)
    raised, withdrawn = apply(conn, earlier, labs(HOSPITAL_B, "L2", T0 + DAY, person=person))
    assert withdrawn == [] and len(raised) == 1
    reminder = raised[0]
    assert reminder.reminder_id == reminder_id(HOSPITAL_B, "lab_report:L2", OrderKind.LAB_ITEM)
    assert summary(raised) == {("lab_report:L2", "HGB,LYMPH%,NEUT%,PLT,RBC,WBC", "lab_report:L1", "ACTIVE")}
    assert [(r.item, r.earlier_record_key, r.earlier_event_id, r.earlier_at) for r in reminder.repeats] == [
        (code, "lab_report:L1", earlier[1]["envelope"]["event_id"], T0) for code, _ in sorted(CBC)
    ]
    assert dict((r.item, r.item_name) for r in reminder.repeats) == dict(CBC)
    assert count(conn, "clinical_reminders") == 1 and count(conn, "order_history") == 12


def test_a_report_sharing_only_2_items_lists_those_2(conn: psycopg.Connection, person: str) -> None:
    apply(conn, labs(HOSPITAL_A, "L1", T0, person=person))
    raised, _ = apply(
        conn,
        labs(
            HOSPITAL_B,
            "L2",
            T0 + DAY,
            [("CRP", "C反应蛋白"), ("WBC", "白细胞计数"), ("NEUT%", "中性粒细胞百分比")],
            person=person,
        ),
    )
    assert summary(raised) == {("lab_report:L2", "NEUT%,WBC", "lab_report:L1", "ACTIVE")}
    assert [r.item for r in raised[0].repeats] == ["NEUT%", "WBC"]


def test_cancelling_the_earlier_report_withdraws_the_grouped_reminder(conn: psycopg.Connection, person: str) -> None:
    raised, _ = apply(conn, labs(HOSPITAL_A, "L1", T0, person=person), labs(HOSPITAL_B, "L2", T0 + DAY, person=person))
    cancel = labs(HOSPITAL_A, "L1", T0, person=person, cancelled=True)
    result = apply(conn, cancel)
    assert result[0] == [] and [r.reminder_id for r in result[1]] == [raised[0].reminder_id]
    assert summary(result[1]) == {("lab_report:L2", "HGB,LYMPH%,NEUT%,PLT,RBC,WBC", "lab_report:L1", "WITHDRAWN")}
    assert apply(conn, cancel) == result  # a replay publishes the same withdrawal again
    assert count(conn, "clinical_reminders", "status = 'WITHDRAWN'") == 1 and count(conn, "clinical_reminders") == 1


def test_a_grouped_reminder_follows_each_items_history(conn: psycopg.Connection, person: str) -> None:
    """Cancelling or adding an earlier report that shares some items re-evaluates the whole report."""
    raised, _ = apply(
        conn,
        labs(HOSPITAL_A, "L1", T0, [("WBC", "白细胞计数"), ("HGB", "血红蛋白")], person=person),
        labs(HOSPITAL_B, "L3", T0 + 3 * DAY, person=person),
    )
    assert summary(raised) == {("lab_report:L3", "HGB,WBC", "lab_report:L1", "ACTIVE")}
    rid = raised[0].reminder_id
    # A late upload of a report at a third institution sharing one item (PLT) and naming HGB more recently.
    raised, _ = apply(conn, labs(CLINIC_C, "L2", T0 + DAY, [("HGB", "血红蛋白"), ("PLT", "血小板计数")], person=person))
    assert summary(raised) == {
        ("lab_report:L3", "HGB,PLT,WBC", "lab_report:L2", "ACTIVE"),
        ("lab_report:L2", "HGB", "lab_report:L1", "ACTIVE"),
    }  # L2 itself repeats L1's HGB
    l3 = next(r for r in raised if r.reminder_id == rid)
    assert [(r.item, r.earlier_record_key) for r in l3.repeats] == [
        ("HGB", "lab_report:L2"),
        ("PLT", "lab_report:L2"),
        ("WBC", "lab_report:L1"),
    ]
    # Cancelling the first report drops WBC, which only it repeated; HGB and PLT stay, naming L2.
    raised, withdrawn = apply(conn, labs(HOSPITAL_A, "L1", T0, person=person, cancelled=True))
    assert summary(raised) == {("lab_report:L3", "HGB,PLT", "lab_report:L2", "ACTIVE")}
    assert summary(withdrawn) == {("lab_report:L2", "HGB", "lab_report:L1", "WITHDRAWN")}
    # A correction of the ordering report that keeps only a item L2 lacks: nothing repeats, the one id withdraws.
    raised, withdrawn = apply(
        conn, labs(HOSPITAL_B, "L3", T0 + 3 * DAY, [("WBC", "白细胞计数")], person=person, version=2)
    )
    assert raised == [] and [r.reminder_id for r in withdrawn] == [rid]
    assert count(conn, "clinical_reminders") == 2


def test_a_replay_of_lab_reports_changes_nothing(conn: psycopg.Connection, person: str) -> None:
    events = [
        labs(HOSPITAL_A, "L1", T0, person=person),
        labs(CLINIC_C, "L2", T0 + DAY, CBC[:2], person=person),
        labs(HOSPITAL_B, "L3", T0 + 2 * DAY, person=person),
        lab(HOSPITAL_B, "L4", T0 + 2 * DAY, person=person),
    ]
    first = apply(conn, *events)
    assert summary(first[0]) == {
        ("lab_report:L2", "RBC,WBC", "lab_report:L1", "ACTIVE"),
        ("lab_report:L3", "HGB,LYMPH%,NEUT%,PLT,RBC,WBC", "lab_report:L2", "ACTIVE"),
    }
    before = rows(conn)
    with conn.transaction():  # later, so a rewrite would show in changed_at
        again = record_batch(conn, events, now=NOW + DAY)
    assert again == first and rows(conn) == before
    with conn.transaction():  # one event on its own, too
        alone = record_batch(conn, events[1:2], now=NOW + DAY)
    assert all(r in first[0] for r in alone[0]) and alone[1] == [] and rows(conn) == before


def test_an_unidentified_event_is_ignored_but_a_cancellation_without_person_still_cancels(
    conn: psycopg.Connection, person: str
) -> None:
    assert apply(conn, lab(HOSPITAL_A, "L1", T0, person=None)) == ([], [])
    assert count(conn, "order_records") == 0
    apply(conn, lab(HOSPITAL_A, "L2", T0, person=person))
    raised, _ = apply(conn, lab(HOSPITAL_B, "L3", T0 + DAY, person=person))
    assert len(raised) == 1
    _, withdrawn = apply(conn, lab(HOSPITAL_A, "L2", T0, person=None, cancelled=True))
    assert summary(withdrawn) == {("lab_report:L3", "HBA1C", "lab_report:L2", "WITHDRAWN")}


def test_a_merge_moves_history_so_the_survivors_later_order_sees_it(conn: psycopg.Connection, person: str) -> None:
    absorbed = f"p-{uuid.uuid4()}"
    apply(conn, lab(HOSPITAL_A, "L1", T0, person=absorbed))
    assert apply(conn, lab(HOSPITAL_B, "L2", T0 + DAY, person=person)) == ([], [])  # two persons, so far
    with conn.transaction():
        merged = move_person(conn, absorbed, person, cause="merge-1", now=NOW)
    assert summary(merged[0]) == {("lab_report:L2", "HBA1C", "lab_report:L1", "ACTIVE")}
    assert merged[0][0].person_id == person
    assert move_person(conn, absorbed, person, cause="merge-1", now=NOW) == merged  # a replayed merge
    assert count(conn, "order_history", "person_id = %s", absorbed) == 0
    raised, _ = apply(conn, lab(CLINIC_C, "L3", T0 + 2 * DAY, person=person))
    assert summary(raised) == {("lab_report:L3", "HBA1C", "lab_report:L2", "ACTIVE")}
    raised, _ = apply(conn, rx(CLINIC_C, "CF9", T0 + 3 * DAY, [VALSARTAN], person=person))
    assert raised == []


def test_an_absorbed_persons_earlier_order_reminds_the_survivors_next_order(
    conn: psycopg.Connection, person: str
) -> None:
    absorbed = f"p-{uuid.uuid4()}"
    apply(conn, rx(HOSPITAL_A, "CF1", T0, [(*VALSARTAN, 30)], person=absorbed))
    move_person(conn, absorbed, person, now=NOW)
    raised, _ = apply(conn, rx(HOSPITAL_B, "CF2", T0 + 10 * DAY, [IRBESARTAN], person=person))
    assert summary(raised) == {("prescription:CF2", "C09C", "prescription:CF1", "ACTIVE")}
    assert raised[0].person_id == person and raised[0].earlier_org_code == HOSPITAL_A


def test_a_relink_moves_one_patients_orders_and_withdraws_their_reminders(
    conn: psycopg.Connection, person: str
) -> None:
    other = f"p-{uuid.uuid4()}"
    apply(conn, lab(HOSPITAL_A, "L1", T0, person=person, patient="MZ-A1"))
    raised, _ = apply(conn, lab(HOSPITAL_B, "L2", T0 + DAY, person=person, patient="MZ-B7"))
    assert len(raised) == 1
    with conn.transaction():
        result = relink_record(conn, HOSPITAL_A, "MZ-A1", other, cause="relink-1", now=NOW)
    assert result[0] == [] and summary(result[1]) == {("lab_report:L2", "HBA1C", "lab_report:L1", "WITHDRAWN")}
    assert count(conn, "order_history", "person_id = %s", other) == 1
    assert count(conn, "order_records", "person_id = %s", other) == 1
    raised, _ = apply(conn, lab(CLINIC_C, "L3", T0 + 2 * DAY, person=other))
    assert summary(raised) == {("lab_report:L3", "HBA1C", "lab_report:L1", "ACTIVE")}


def test_record_orders_is_record_batch_for_one_event(conn: psycopg.Connection, person: str) -> None:
    record_orders(conn, *lab(HOSPITAL_A, "L1", T0, person=person), now=NOW)
    raised, withdrawn = record_orders(conn, *lab(HOSPITAL_B, "L2", T0 + DAY, person=person), now=NOW)
    assert len(raised) == 1 and withdrawn == [] and raised[0].earlier_org_code == HOSPITAL_A


def test_pruning_forgets_orders_older_than_the_horizon(conn: psycopg.Connection, person: str) -> None:
    apply(conn, lab(HOSPITAL_A, "L1", T0, person=person), lab(HOSPITAL_B, "L2", T0 + 40 * DAY, person=person))
    assert prune_order_history(conn, T0 + 20 * DAY) == 1
    assert count(conn, "order_history") == 1 and count(conn, "order_records") == 1
    raised, _ = apply(conn, lab(CLINIC_C, "L3", T0 + 41 * DAY, person=person))
    assert summary(raised) == {("lab_report:L3", "HBA1C", "lab_report:L2", "ACTIVE")}

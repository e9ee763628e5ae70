"""Routing work queues: idempotent by business key, and a county sees and decides on its own items only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from foundation.settings import Settings
from streams.routing.work_queue import ItemRow, decide, ensure_county_role, ensure_work_queues, item_id, save_items

XINYANG_SHIHE, GUSHI = "411502", "411525"


@pytest.fixture
def queues(own_db_settings: Settings) -> Iterator[tuple[psycopg.Connection, str]]:
    """A database with the work queues, county roles under a prefix of this test's own (roles are
    cluster-wide: dropped afterwards), and one downstream login per county."""
    prefix = f"hbt{uuid.uuid4().hex[:6]}_county_"
    conn = psycopg.connect(own_db_settings.postgres_url, autocommit=True)
    ensure_work_queues(conn, prefix)
    roles = []
    try:
        for county in (XINYANG_SHIHE, GUSHI):
            county_role = ensure_county_role(conn, county, prefix)
            login = f"{prefix}ds_{county}"
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(login), sql.Identifier(county_role))
            )
            roles += [login, county_role]
        yield conn, prefix
    finally:
        conn.execute("RESET ROLE")
        for role in roles:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.close()


def _item(person: str, county: str, disease: str = "HYPERTENSION") -> ItemRow:
    key = f"{person}:{disease}"
    return ItemRow(
        "chronic_disease",
        item_id("chronic_disease", key),
        key,
        person,
        county,
        "registration",
        {"disease": disease, "diagnosis_code": "I10.x00x002"},
        ["e-1"],
        stored=False,
    )


def test_saving_again_updates_the_row_and_the_business_key_is_unique(queues: tuple[psycopg.Connection, str]) -> None:
    conn, _ = queues
    items = [_item("p1", XINYANG_SHIHE), _item("p2", GUSHI), _item("p1", XINYANG_SHIHE, "DIABETES")]
    save_items(conn, items)
    items[0].status, items[0].status_reason = "withdrawn", "cancelled"
    save_items(conn, items)  # stored rows are updated, not added
    assert conn.execute("SELECT count(*) FROM routing.chronic_disease").fetchone()[0] == 3
    assert (
        conn.execute("SELECT status FROM routing.chronic_disease WHERE item_id = %s", (items[0].item_id,)).fetchone()[0]
        == "withdrawn"
    )
    clash = _item("p1", XINYANG_SHIHE)
    clash.item_id = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(psycopg.errors.UniqueViolation):
        save_items(conn, [clash])


def _connect_as(conn: psycopg.Connection, login: str) -> psycopg.Connection:
    return psycopg.connect(psycopg.conninfo.make_conninfo(conn.info.dsn, user=login), autocommit=True)


def test_a_county_sees_and_decides_on_its_own_residents_items_only(queues: tuple[psycopg.Connection, str]) -> None:
    conn, prefix = queues
    mine, theirs = _item("p1", XINYANG_SHIHE), _item("p2", GUSHI)
    save_items(conn, [mine, theirs, _item("p3", "411528")])  # 息县 has no downstream system yet
    with _connect_as(conn, f"{prefix}ds_{XINYANG_SHIHE}") as county:
        visible = county.execute("SELECT person_id, county_code FROM routing.chronic_disease").fetchall()
        assert visible == [("p1", XINYANG_SHIHE)]
        assert decide(county, "chronic_disease", mine.item_id, "acknowledged", "shihe-ph-system")
        assert not decide(county, "chronic_disease", theirs.item_id, "rejected", "shihe-ph-system", "not ours")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # RLS: counties don't withdraw items
            decide(county, "chronic_disease", mine.item_id, "withdrawn", "shihe-ph-system")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # only the status columns are theirs
            county.execute("UPDATE routing.chronic_disease SET county_code = %s", (GUSHI,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            county.execute("DELETE FROM routing.chronic_disease")
    rows = dict(
        conn.execute(
            "SELECT person_id, status || ':' || coalesce(status_by, '') FROM routing.chronic_disease"
        ).fetchall()
    )
    # status_by is the login the database saw, not the label the system gave itself
    assert rows == {"p1": f"acknowledged:{prefix}ds_{XINYANG_SHIHE}", "p2": "pending:", "p3": "pending:"}
    history = conn.execute("SELECT status, old_status, db_user, claimed_by FROM routing.status_changes").fetchall()
    assert history == [("acknowledged", "pending", f"{prefix}ds_{XINYANG_SHIHE}", "shihe-ph-system")]


def test_a_county_cannot_reopen_a_withdrawn_item_or_forge_who_decided(queues: tuple[psycopg.Connection, str]) -> None:
    conn, prefix = queues
    mine, other = _item("p1", XINYANG_SHIHE), _item("p4", XINYANG_SHIHE, "DIABETES")
    save_items(conn, [mine, other])
    mine.status, mine.status_reason = "withdrawn", "the source cancelled the diagnosis"
    save_items(conn, [mine])  # the stage withdraws it
    login = f"{prefix}ds_{XINYANG_SHIHE}"
    with _connect_as(conn, login) as county:  # the county system's own login, as it connects in production
        assert not decide(county, "chronic_disease", mine.item_id, "acknowledged", "shihe-ph-system")  # stays withdrawn
        county.execute(  # writing someone else's name straight into the row
            "UPDATE routing.chronic_disease SET status = 'rejected', status_by = 'someone-else' WHERE item_id = %s",
            (other.item_id,),
        )
    rows = dict(conn.execute("SELECT person_id, status || ':' || coalesce(status_by, '') FROM routing.chronic_disease"))
    assert rows["p1"].startswith("withdrawn:") and rows["p4"] == f"rejected:{login}"
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):  # the history cannot be rewritten
        conn.execute("DELETE FROM routing.status_changes")


def test_unknown_routes_and_bad_statuses_are_refused(queues: tuple[psycopg.Connection, str]) -> None:
    conn, _ = queues
    with pytest.raises(ValueError):
        save_items(conn, [ItemRow("no_such_route", "k", "k", "p", XINYANG_SHIHE, "registration", {}, [])])
    with pytest.raises(ValueError):
        decide(conn, "chronic_disease", "00000000-0000-0000-0000-000000000000", "pending", "x")
    with pytest.raises(ValueError):
        ensure_county_role(conn, "4115", "x_")

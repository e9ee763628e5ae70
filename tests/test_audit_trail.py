"""The audit trail on real PostgreSQL (and the broker, for a dead-letter replay): every audit table refuses
UPDATE, DELETE and TRUNCATE; exports and grants through the real CLI leave their entries; `healthbus audit
list` shows EMPI actions, replays, exports and grants in order. One database for the module, dropped after."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from psycopg import sql

from avro_schemas.topics import topic
from foundation.dead_letter_replay import replay
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.topic_admin import create_topics, delete_topics
from read_side.audit_trail import EXPORT_QUALITY_REPORT, ensure_audit_trail, export_file, record_action
from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.audit_log import write_audit
from streams.identity.master_index.operator_actions import merge
from streams.identity.master_index.store import resolve_records
from streams.identity.record import SourceRecord
from tests.conftest import healthbus, settings_env

pytestmark = pytest.mark.integration  # its fixtures open their own PostgreSQL (and Redis) connections

MODEL = MatchModel.load(Path(__file__).resolve().parent.parent / "streams" / "identity" / "default_model.json")
AUDIT_TABLES = ("empi.audit_log", "dlq_replays", "dlq_skips", "audit.operator_actions")
ORG = "12411502MB0000002B"


@pytest.fixture(scope="module")
def db_url(module_db_url: str) -> str:
    with psycopg.connect(module_db_url, autocommit=True) as conn:
        ensure_audit_trail(conn)
        ensure_audit_trail(conn)  # idempotent
    return module_db_url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def test_every_audit_table_refuses_update_delete_and_truncate(conn: psycopg.Connection) -> None:
    write_audit(conn, "ops.wang", "merge", str(uuid.uuid4()), str(uuid.uuid4()), change=str(uuid.uuid4()), reason="dup")
    conn.execute(
        "INSERT INTO dlq_replays (dead_letter_id, replayed_at, stage, source_topic, actor, reason) "
        "VALUES (%s, now(), 'quality', 'validated.x', 'ops.wang', 'rule fixed')",
        (str(uuid.uuid4()),),
    )
    conn.execute(
        "INSERT INTO dlq_skips (dead_letter_id, skipped_at, stage, source_topic, source_partition, source_offset, "
        "actor, reason) VALUES (%s, now(), 'identify', 'raw.x', 0, 7, 'ops.wang', 'stage stopped on it')",
        (str(uuid.uuid4()),),
    )
    record_action(conn, "ops.wang", EXPORT_QUALITY_REPORT, {"org_code": ORG})
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in AUDIT_TABLES}
    assert all(counts.values())  # an empty table would refuse nothing: the triggers below must see rows
    statements = ["UPDATE {} SET actor = 'someone else'", "DELETE FROM {}", "TRUNCATE {}"]
    for table in AUDIT_TABLES:
        for statement in statements:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement.format(table))
        # a superuser replaying a dump (session_replication_role = replica) is refused too: ENABLE ALWAYS
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"), conn.transaction():
                conn.execute(f"DELETE FROM {table}")
    assert {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in AUDIT_TABLES} == counts


def test_an_export_that_cannot_be_written_leaves_no_entry(conn: psycopg.Connection, tmp_path: Path) -> None:
    before = conn.execute("SELECT count(*) FROM audit.operator_actions").fetchone()[0]
    with pytest.raises(FileNotFoundError):
        export_file(
            conn,
            "ops.wang",
            EXPORT_QUALITY_REPORT,
            {"org_code": ORG},
            tmp_path / "no-dir" / "r.html",
            b"<html></html>",
            {"received": 0},
        )
    assert conn.execute("SELECT count(*) FROM audit.operator_actions").fetchone()[0] == before


def _rec(local: str, name: str) -> SourceRecord:
    # no identifiers in common: two persons that the operator then merges
    return SourceRecord(f"{ORG}:{local}", ORG, local, name, "1", "", "", "", "", "", "", "")


def test_audit_list_shows_empi_action_replay_export_and_grant_in_order(
    conn: psycopg.Connection, db_url: str, bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    a, b = resolve_records(conn, [_rec(f"A-{run}", "张伟"), _rec(f"B-{run}", "李娜")], MODEL)
    merged = merge(conn, a.person_id, b.person_id, "ops.li", "同一人: 电话核实")

    kafka = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"t{run}-").confluent_config()
    source = topic("identified.outpatient.visit").full_name(f"t{run}-")  # the quality stage's input
    create_topics(kafka, f"t{run}-", specs=[topic("identified.outpatient.visit")])
    try:
        letter = {
            "dead_letter_id": str(uuid.uuid4()),
            "headers": {},
            "source_topic": source,
            "payload": b"\x00",
            "key": f"{ORG}:A-{run}".encode(),
            "stage": "quality",
        }
        forged = {**letter, "dead_letter_id": str(uuid.uuid4()), "source_topic": f"t{run}-collab.vaccination"}
        outcome = replay(
            conn, Producer(producer_config(kafka)), [letter, forged], "ops.zhao", "ICD table updated",
            stage="quality", topic_prefix=f"t{run}-",
        )  # fmt: skip
        assert outcome.replayed == 1 and outcome.refused == [forged["dead_letter_id"]]  # not quality's input
    finally:
        delete_topics(kafka, [source])

    prefix = f"hbt{run}_county_"
    login = f"{prefix}ds"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
    try:
        env = {
            **settings_env(Settings(postgres_url=db_url, state_dir=tmp_path / "state")),
            "HEALTHBUS_COUNTY_ROLE_PREFIX": prefix,
        }
        page = tmp_path / "surveillance.html"
        export = healthbus(
            "surveillance",
            "report",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-07",
            "--out",
            str(page),
            "--actor",
            "cdc.chen",
            env=env,
        )
        assert export.returncode == 0, export.stderr
        grant = healthbus("routing", "county-access", "411525", "--grant", login, "--actor", "ops.zhao", env=env)
        assert grant.returncode == 0, grant.stderr
        assert conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (login, f"{prefix}411525")).fetchone()[0]
        listed = healthbus("audit", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        only_exports = healthbus("audit", "list", "--kind", "export", "--actor", "cdc.chen", env=env)
    finally:
        for role in (login, f"{prefix}411525"):
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [e for e in entries if e["actor"] in ("ops.li", "ops.zhao", "cdc.chen")]
    assert [(e["kind"], e["actor"]) for e in mine] == [
        ("empi.merge", "ops.li"),
        ("dlq.replay", "ops.zhao"),
        ("export.surveillance_report", "cdc.chen"),
        ("grant.county_access", "ops.zhao"),
    ]
    assert [e["at"] for e in mine] == sorted(e["at"] for e in mine)
    assert not any(e["kind"] == "empi.link" for e in entries)  # the stage's per-record links stay out
    empi_merge, dlq_replay, exported, granted = mine
    assert empi_merge["detail"]["change_id"] == merged.change_id and empi_merge["reason"] == "同一人: 电话核实"
    assert dlq_replay["subject"] == "dlq.quality" and dlq_replay["detail"]["dead_letters"] == 1
    assert exported["subject"] == str(page.resolve())
    assert exported["detail"]["sha256"] == hashlib.sha256(page.read_bytes()).hexdigest()
    assert exported["detail"]["parameters"] == {"from": "2026-11-01", "to": "2026-11-07"}
    assert exported["detail"]["row_counts"]["visits"] == 0
    assert granted["detail"]["parameters"] == {"county": "411525", "role": f"{prefix}411525", "grantee": login}
    assert "张伟" not in listed.stdout and "李娜" not in listed.stdout  # persons by platform id only
    assert only_exports.returncode == 0 and only_exports.stdout.count("export.surveillance_report") == 1
    assert "dlq.replay" not in only_exports.stdout and "1 entry" in only_exports.stdout


def test_reads_of_personal_data_are_audited_with_the_database_login_and_refused_without_an_audit(
    db_url: str, tmp_path: Path
) -> None:
    env = settings_env(Settings(postgres_url=db_url, state_dir=tmp_path / "state"))
    key = healthbus("adapter", "key", "--org", ORG, "--actor", "ops.sun", env=env)
    assert key.returncode == 0 and len(key.stdout.strip()) == 64, key.stderr
    listed = healthbus("audit", "list", "--kind", "read", "--json", env=env)
    reads = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["kind"], e["actor"], e["detail"]["parameters"]["org_code"]) for e in reads][-1:] == [
        ("read.adapter_key", "ops.sun", ORG)
    ]
    with psycopg.connect(db_url) as conn:
        login = conn.execute("SELECT session_user").fetchone()[0]
    assert reads[-1]["db_user"] == login  # who connected, whatever --actor claims

    unreachable = {**env, "HEALTHBUS_POSTGRES_URL": "postgresql://postgres@127.0.0.1:1/healthbus"}
    refused = healthbus("adapter", "key", "--org", ORG, "--actor", "ops.sun", env=unreachable)
    assert refused.returncode == 1 and refused.stdout == "", refused.stdout  # no audit, no key
    assert "audited" in refused.stderr

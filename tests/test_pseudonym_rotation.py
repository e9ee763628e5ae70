"""Rotating the pseudonym key re-keys ClickHouse in place: every pseudonym PostgreSQL can explain is rewritten
as the new key makes it (sort-key columns too), nothing else changes, cross-table joins still agree, what
the sink writes next with the new key joins the old rows, and a pseudonym nothing explains is reported."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest

from avro_schemas.serde import EventCodec
from foundation.clickhouse import open_clickhouse
from foundation.settings import Settings
from sinks.clickhouse.event_log import ClickHouseEventLog
from sinks.clickhouse.pseudonym_rotation import MAP_TABLE, PSEUDONYM_COLUMNS, rotate_pseudonyms
from sinks.event_sink import SinkRecord
from sinks.postgres.event_store import PostgresEventStore
from streams.identity.master_index.schema import ensure_master_index
from streams.privacy import pseudonym
from streams.surveillance.stage import SurveillanceStage, SurveillanceState
from tests.conftest import healthbus, settings_env
from tests.routing_events import AT, Patient
from tests.test_surveillance_stage import PREFIX, messages, visit

CODEC = EventCodec()
OLD, NEW = b"old-pseudonym-key", b"new-pseudonym-key"
DB = "healthbus"


def _report(p: Patient) -> dict[str, Any]:
    """A notifiable-disease report as routing publishes it (collab.work_item_change, infectious_disease)."""
    return {
        "item_id": str(uuid.uuid4()),
        "changed_at": AT,
        "kind": "CREATED",
        "person_id": p.person_id,
        "county_code": p.county,
        "route": "infectious_disease",
        "infectious_disease": {
            "disease": "INFLUENZA",
            "disease_zh": "流行性感冒",
            "disease_class": "C",
            "diagnosis_code": "J10.100",
            "diagnosed_at": AT,
            "deadline_met": True,
            "age_years": 40,
            "population_group": "adult",
            "occupation": "",
        },
    }


def _records(values: list[tuple[str, dict[str, Any]]]) -> list[SinkRecord]:
    return [SinkRecord(t, v, "t", 0, n) for n, (t, v) in enumerate(values)]


def _column_values(client: Any) -> set[str]:
    values: set[str] = set()
    for table, columns in PSEUDONYM_COLUMNS.items():
        for c in columns:
            values |= {r[0] for r in client.query(f"SELECT DISTINCT {c} FROM {DB}.{table}").result_rows}
    return values


def _counts(client: Any) -> dict[str, tuple[int, int]]:
    return {
        t: (
            int(client.command(f"SELECT count() FROM {DB}.{t}")),
            int(client.command(f"SELECT count() FROM {DB}.{t} FINAL")),
        )
        for t in PSEUDONYM_COLUMNS
    }


def test_rotation_rekeys_every_explained_pseudonym_and_keeps_the_data(own_db_settings: Settings) -> None:
    s = own_db_settings
    a, b = Patient(county="411521"), Patient(county="411525")  # residents the event store knows
    empi_only = Patient(county="411521")  # known to the master index only
    stranger = Patient(county="411521")  # known nowhere in PostgreSQL
    unidentified = Patient(county="411521")  # its visit carries no person id
    visits = [
        visit(a, "发热2天，咳嗽", 38.8, birth=dt.date(1980, 1, 1)),
        visit(a, "咳嗽", None),
        visit(b, "手足口腔疱疹", None, birth=dt.date(2022, 6, 1)),
        visit(unidentified, "腹泻", None),
    ]
    visits[3]["envelope"]["person_id"] = None
    late = [visit(empi_only, "发热，咽痛", 38.5), visit(stranger, "头痛", None)]  # reach ClickHouse only

    state = SurveillanceState(s.postgres_url)  # the stage writes surveillance.visit_cases as it goes
    cases = [
        CODEC.decode(r.value).value for r in SurveillanceStage(CODEC, PREFIX, state, OLD).handle_batch(messages(visits))
    ]
    state.close()
    store = PostgresEventStore(s.postgres_url)
    store.write(_records([("outpatient.visit", v) for v in visits]))
    store.close()
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        ensure_master_index(conn)
        conn.execute("INSERT INTO empi.persons (person_id) VALUES (%s)", (empi_only.person_id,))
        conn.execute(
            "INSERT INTO empi.records (org_code, local_id, person_id, fingerprint, link_rule) "
            "VALUES (%s, %s, %s, 'f', 'operator')",
            (empi_only.org_code, empi_only.local_id, empi_only.person_id),
        )

    client = open_clickhouse(None, s.resolved_chdb_path, DB)
    sink = ClickHouseEventLog(client, DB, OLD)  # the real sink, with the old key
    sink.write(
        _records(
            [("outpatient.visit", v) for v in visits + late]
            + [("surveillance.case", c) for c in cases]
            + [("collab.work_item_change", _report(a)), ("collab.work_item_change", _report(empi_only))]
        )
    )
    old_values = _column_values(client)
    counts = _counts(client)
    daily = client.query(f"SELECT * FROM {DB}.surveillance_daily ORDER BY ALL").result_rows
    assert counts["surveillance_cases"][1] >= 2 and counts["notifiable_reports"][1] == 2

    pg = psycopg.connect(s.postgres_url, autocommit=True)
    dry = rotate_pseudonyms(pg, client, DB, OLD, NEW, dry_run=True)
    assert _column_values(client) == old_values  # a dry run changes nothing
    report = rotate_pseudonyms(pg, client, DB, OLD, NEW)
    assert report.rekeyed == dry.rekeyed and report.unmapped == dry.unmapped
    assert report.unmapped == {
        "event_log.person_pseudonym": 1,
        "outpatient_visits.person_pseudonym": 1,
        "surveillance_cases.visit_pseudonym": 0,
        "surveillance_cases.person_pseudonym": 0,
        "notifiable_reports.person_pseudonym": 0,
    }
    assert report.rekeyed["surveillance_cases.visit_pseudonym"] == counts["surveillance_cases"][0]

    stranger_old = pseudonym(OLD, "person", stranger.person_id)
    new_values = _column_values(client)
    assert old_values & new_values == {stranger_old}  # no old pseudonym remains but the one nothing explains
    assert _counts(client) == counts
    assert client.query(f"SELECT * FROM {DB}.surveillance_daily ORDER BY ALL").result_rows == daily
    q = client.query
    assert {r[0] for r in q(f"SELECT person_pseudonym FROM {DB}.event_log").result_rows} == {
        pseudonym(NEW, "person", p.person_id) for p in (a, b, empi_only)
    } | {pseudonym(NEW, unidentified.org_code, unidentified.local_id), stranger_old}
    assert {r[0] for r in q(f"SELECT visit_pseudonym FROM {DB}.surveillance_cases").result_rows} == {
        pseudonym(NEW, "visit", c["org_code"], c["record_key"]) for c in cases
    }
    # Joins across tables agree: each case's person is its visit's person; each report's person has visits.
    # (Not for a visit without a person id: the stage and the sink pseudonymise that patient differently.)
    joined = q(
        f"SELECT countIf(c.person_pseudonym = v.person_pseudonym), count() FROM {DB}.surveillance_cases c "
        f"JOIN {DB}.outpatient_visits v ON c.case_id = v.event_id WHERE v.event_id != {{u:UUID}}",
        parameters={"u": visits[3]["envelope"]["event_id"]},
    ).result_rows[0]
    assert joined[0] == joined[1] >= 2
    assert (
        q(
            f"SELECT count() FROM {DB}.notifiable_reports r WHERE r.person_pseudonym IN "
            f"(SELECT person_pseudonym FROM {DB}.event_log)"
        ).result_rows[0][0]
        == 2
    )

    # The sink, now configured with the new key, writes rows that join the re-keyed history.
    ClickHouseEventLog(client, DB, NEW).write(_records([("outpatient.visit", visit(a, "咳嗽", None))]))
    assert q(
        f"SELECT uniqExact(person_pseudonym), count() FROM {DB}.outpatient_visits WHERE event_id IN "
        f"(SELECT event_id FROM {DB}.event_log WHERE person_pseudonym = {{p:String}})",
        parameters={"p": pseudonym(NEW, "person", a.person_id)},
    ).result_rows[0] == (1, 3)

    with pytest.raises(ValueError):
        rotate_pseudonyms(pg, client, DB, NEW, NEW)
    pg.close()
    client.close()  # chDB: one process per directory, and the command is another process

    # Run again, as the operator's command: an interrupted run is simply run again.
    env = {**settings_env(s), "HEALTHBUS_PSEUDONYM_KEY": NEW.decode(), "HB_OLD_PSEUDONYM_KEY": OLD.decode()}
    run = healthbus(
        "privacy",
        "rotate-pseudonyms",
        "--old-key-env",
        "HB_OLD_PSEUDONYM_KEY",
        "--json",
        "--actor",
        "privacy-officer",
        env=env,
    )
    assert run.returncode == 0, run.stderr
    again = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(again["rekeyed"].values()) == {0} and again["unmapped"] == report.unmapped
    audited = healthbus("audit", "list", "--kind", "privacy", "--json", env=env)
    entries = [json.loads(line) for line in audited.stdout.splitlines() if line.startswith("{")]
    assert [(e["actor"], e["kind"]) for e in entries] == [("privacy-officer", "privacy.rotate_pseudonyms")], audited
    client = open_clickhouse(None, s.resolved_chdb_path, DB)
    assert (
        int(
            client.command(
                f"SELECT count() FROM system.tables WHERE database = '{DB}' AND "
                f"(name = '{MAP_TABLE}' OR name LIKE '%__rekey')"
            )
        )
        == 0
    )
    client.close()

"""The synthetic exchange-database source, against a real PostgreSQL: deterministic content, valid and
realistically flawed identifiers, shared residents across hospitals, defects at the requested share, an
adapter config that lists every schema, plausible volumes and event times inside the window."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from foundation.standards.citizen_id import parse_citizen_id
from foundation.standards.credit_code import is_valid_credit_code
from producers.adapters.config import load_config
from synthetic.county_records import CountyRecords
from synthetic.defects import ALL_KINDS
from synthetic.exchange_data import SynthSummary, generate_exchange_data, generate_records
from synthetic.hospital_records import HospitalRecords
from synthetic.world import build_world

pytestmark = pytest.mark.integration  # its fixtures open their own PostgreSQL (and Redis) connections

REPO = Path(__file__).resolve().parent.parent
BASE_URL = os.environ.get("HEALTHBUS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
START = dt.date(2026, 11, 1)
HOSPITALS, COUNTIES, DAYS, SEED, BAD_SHARE = 2, 1, 2, 20261101, 0.03
EVENT_TIME = {  # table -> (event time column, primary key)
    "outpatient_visit": ("visit_at", "visit_id"),
    "inpatient_admission": ("admitted_at", "admission_id"),
    "inpatient_discharge": ("discharged_at", "admission_id"),
    "lab_report": ("reported_at", "report_id"),
    "exam_report": ("reported_at", "report_id"),
    "prescription": ("prescribed_at", "prescription_id"),
    "death_record": ("died_at", "death_id"),
    "vaccination": ("administered_at", "vaccination_id"),
    "chronic_followup": ("followup_at", "followup_id"),
    "birth_record": ("born_at", "birth_id"),
}


@dataclass
class Run:
    dsn: str
    summary: SynthSummary
    config: Path
    first_checksums: dict[str, str]
    second_checksums: dict[str, str]


def _scalar(conn: psycopg.Connection, query: sql.Composable | str, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def _schemas(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name ~ '^(h|c)_' ORDER BY 1"
        )
    ]


def _checksums(dsn: str) -> dict[str, str]:
    """md5 of every table's rows (text form, sorted) in the institution schemas and the truth schema."""
    result = {}
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema ~ '^(h|c)_' OR table_schema = 'synth_truth' ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t")
            result[f"{schema}.{table}"] = _scalar(conn, query.format(sql.Identifier(schema, table)))
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    name = f"hb_synth_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(BASE_URL, dbname=name)
    config = tmp_path_factory.mktemp("synth") / "sources.yaml"
    try:
        # The first run in another interpreter with its own hash seed: content must not depend on hash().
        script = (
            "import sys, datetime as dt, pathlib\n"
            "from synthetic.exchange_data import generate_exchange_data\n"
            f"generate_exchange_data(sys.argv[1], {HOSPITALS}, {COUNTIES}, {DAYS}, {SEED}, "
            f"pathlib.Path(sys.argv[2]), {BAD_SHARE}, dt.date.fromisoformat('{START}'))\n"
        )
        subprocess.run(
            [sys.executable, "-c", script, dsn, str(config)],
            check=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": "4242"},
        )
        first = _checksums(dsn)
        summary = generate_exchange_data(dsn, HOSPITALS, COUNTIES, DAYS, SEED, config, BAD_SHARE, START)
        yield Run(dsn, summary, config, first, _checksums(dsn))
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_same_seed_gives_the_same_content(run: Run) -> None:
    assert len(run.first_checksums) == HOSPITALS * 18 + COUNTIES * 7 + 3  # every table of both DDLs + truth
    assert run.first_checksums == run.second_checksums


def test_another_seed_gives_another_world() -> None:
    a = generate_records(build_world(1, 1, 0, 1, START), 0.0)
    b = generate_records(build_world(2, 1, 0, 1, START), 0.0)
    names = lambda r: [row["chief_complaint"] for row in r.hospitals[0].tables["outpatient_visit"]]  # noqa: E731
    assert names(a) != names(b)
    assert a.ledger.defects == [] and b.ledger.defects == []  # bad_share 0: clean data


def test_most_id_numbers_are_valid_some_are_not(run: Run) -> None:
    counts: dict[str, int] = defaultdict(int)
    with psycopg.connect(run.dsn) as conn:
        for schema in _schemas(conn):
            table = "patient" if schema.startswith("h_") else "resident"
            for (number,) in conn.execute(sql.SQL("SELECT id_number FROM {}").format(sql.Identifier(schema, table))):
                parsed = parse_citizen_id(number)
                counts[
                    "missing"
                    if number is None
                    else "unparsed"
                    if parsed is None
                    else "valid"
                    if parsed.valid
                    else "invalid"
                ] += 1
                if number and (len(number) == 15 or not number.isascii() or number.endswith("x")):
                    counts["variant"] += 1
    total = counts["missing"] + counts["unparsed"] + counts["valid"] + counts["invalid"]
    assert 0.85 < counts["valid"] / total < 0.97, counts
    assert 0.03 < counts["missing"] / total < 0.12, counts
    assert counts["invalid"] > 0 and counts["variant"] > 0, counts  # bad check characters; 15-digit, full-width, x


def test_institution_codes_and_config(run: Run) -> None:
    config = load_config(run.config)
    with psycopg.connect(run.dsn) as conn:
        assert sorted(s.schema_name for s in config.sources) == _schemas(conn)
    hospitals = [s for s in config.sources if s.kind == "hospital"]
    counties = [s for s in config.sources if s.kind == "county"]
    assert (len(hospitals), len(counties)) == (HOSPITALS, COUNTIES)
    for source in config.sources:
        assert is_valid_credit_code(source.org_code), source
        assert source.dsn == run.dsn
        assert source.org_code[2:8] == source.region_code
    assert all(s.org_code.startswith("12") and s.schema_name == f"h_{s.org_code.lower()}" for s in hospitals)
    assert all(s.schema_name == f"c_{s.region_code}" for s in counties)


def test_residents_visit_several_hospitals(run: Run) -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    with psycopg.connect(run.dsn) as conn:
        for schema in (s for s in _schemas(conn) if s.startswith("h_")):
            for (number,) in conn.execute(
                sql.SQL("SELECT id_number FROM {}").format(sql.Identifier(schema, "patient"))
            ):
                parsed = parse_citizen_id(number)
                if parsed and parsed.valid:
                    seen[parsed.number].add(schema)
    assert sum(1 for schemas in seen.values() if len(schemas) > 1) >= 20


def test_defects_at_the_requested_share_and_recorded(run: Run) -> None:
    summary = run.summary
    assert abs(summary.defect_share - BAD_SHARE) < 0.006, summary.table()
    assert set(summary.defects) <= set(ALL_KINDS)
    kinds = {k.split(".")[0] for k in summary.defects}
    assert kinds >= {"missing", "invalid", "late", "contradiction", "out_of_range", "unmappable"}, summary.defects
    with psycopg.connect(run.dsn) as conn:
        ledger = conn.execute("SELECT schema_name, table_name, record_key, kind FROM synth_truth.defect").fetchall()
        assert len(ledger) == summary.defect_rows
        for schema, table, key, kind in ledger:
            ident = sql.Identifier(schema, table)
            if kind == "late.upload":
                column, pk = EVENT_TIME[table]
                delay = _scalar(
                    conn,
                    sql.SQL("SELECT updated_at - {} FROM {} WHERE {} = %s").format(
                        sql.Identifier(column), ident, sql.Identifier(pk)
                    ),
                    (key,),
                )
                assert delay > dt.timedelta(days=1)
            elif kind == "unmappable.visit_type":
                assert (
                    _scalar(conn, sql.SQL("SELECT visit_type FROM {} WHERE visit_id = %s").format(ident), (key,)) == "3"
                )
            elif kind == "unmappable.orphan_patient" and schema.startswith("h_"):
                column, pk = EVENT_TIME[table]
                orphan = _scalar(
                    conn,
                    sql.SQL(
                        "SELECT count(*) FROM {} x WHERE {} = %s AND NOT EXISTS "
                        "(SELECT 1 FROM {} p WHERE p.patient_id = x.patient_id)"
                    ).format(ident, sql.Identifier(pk), sql.Identifier(schema, "patient")),
                    (key,),
                )
                assert orphan == 1
            elif kind == "contradiction.male_pregnancy" and table == "outpatient_visit":
                row = conn.execute(
                    sql.SQL(
                        "SELECT p.sex, d.code FROM {} v JOIN {} p USING (patient_id) JOIN {} d USING (visit_id) "
                        "WHERE v.visit_id = %s AND d.is_primary"
                    ).format(ident, sql.Identifier(schema, "patient"), sql.Identifier(schema, "outpatient_diagnosis")),
                    (key,),
                ).fetchone()
                assert row == ("1", "O80.000")


def test_uploads_are_timely_except_the_late_ones(run: Run) -> None:
    start = dt.datetime(START.year, START.month, START.day, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=DAYS)
    with psycopg.connect(run.dsn) as conn:
        late = {
            (s, t, k)
            for s, t, k in conn.execute(
                "SELECT schema_name, table_name, record_key FROM synth_truth.defect WHERE kind = 'late.upload'"
            )
        }
        for schema in _schemas(conn):
            for table, (column, pk) in EVENT_TIME.items():
                try:
                    rows = conn.execute(
                        sql.SQL("SELECT {}, {}, updated_at FROM {}").format(
                            sql.Identifier(pk), sql.Identifier(column), sql.Identifier(schema, table)
                        )
                    ).fetchall()
                except psycopg.errors.UndefinedTable:
                    conn.rollback()
                    continue
                limit = dt.timedelta(days=7) if table == "death_record" else dt.timedelta(hours=24)
                for key, moment, updated in rows:
                    assert start <= moment < end, (schema, table, key, moment)
                    assert updated >= moment, (schema, table, key)
                    if (schema, table, key) not in late:
                        assert updated - moment < limit, (schema, table, key, updated - moment)


def test_plausible_volumes(run: Run) -> None:
    rows = run.summary.rows
    visits = rows[("hospital", "outpatient_visit")]
    assert 80 * HOSPITALS * DAYS < visits < 600 * HOSPITALS * DAYS
    assert visits * 0.3 < rows[("hospital", "patient")] < visits
    assert rows[("hospital", "outpatient_diagnosis")] >= visits * 0.97  # one primary each, some spoiled
    assert rows[("hospital", "lab_item")] > 2 * rows[("hospital", "lab_report")]
    for table in (
        "inpatient_admission",
        "inpatient_discharge",
        "lab_report",
        "exam_report",
        "prescription",
        "prescription_item",
        "inpatient_procedure",
        "patient_history",
        "outpatient_symptom",
    ):
        assert rows[("hospital", table)] > 0, table
    assert rows[("county", "resident")] > 300
    assert rows[("county", "chronic_followup")] > 0 and rows[("county", "birth_record")] > 0
    assert run.summary.identifier_noise["id_missing"] > 0
    assert [w.name for w in run.summary.waves] == ["influenza", "hfmd", "diarrhoea_cluster"]
    with psycopg.connect(run.dsn) as conn:
        written = _scalar(conn, "SELECT count(*) FROM synth_truth.wave_case")
    assert written == sum(sum(w.cases_per_day.values()) for w in run.summary.waves) > 0
    assert "outpatient_visit" in run.summary.table()


def test_nothing_clinical_after_a_death_or_during_a_stay_unless_injected() -> None:
    records = generate_records(build_world(5, 3, 1, 5, START), BAD_SHARE)
    injected = {(d.schema, d.table, d.record_key) for d in records.ledger.defects}
    sources: list[HospitalRecords | CountyRecords] = [*records.hospitals, *records.counties]
    assert records.world.home_deaths and any(h.tables["death_record"] for h in records.hospitals)
    for source in sources:
        for table, rows in source.tables.items():
            if table in ("patient", "resident"):
                continue
            for row in rows:
                person, moment = row["_person"], row["_event"]
                key = (source.inst.schema, table, str(row[EVENT_TIME[table][1]]))
                if key in injected:
                    continue
                assert person.died_at is None or moment <= person.died_at, key
                if table == "outpatient_visit":
                    assert not person.in_hospital_at(moment), key

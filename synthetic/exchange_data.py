"""Fill hospital and county exchange databases (PostgreSQL) with a synthetic Xinyang world, and write the
adapter configuration that lists them.

One schema per institution (``h_<org code>`` for hospitals, ``c_<region code>`` for county platforms),
dropped and recreated on every run and filled with COPY; the same seed always gives the same content.
The ground truth for later stages (which rows carry which defect, which visits belong to which epidemic
wave) goes to the schema ``synth_truth``, which no adapter reads.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from producers.adapters.config import AdapterConfig, SourceConfig, dump_config
from producers.exchange_db.ddl import SourceKind, create_exchange_schema
from synthetic.county_records import CountyRecords
from synthetic.defects import ALL_KINDS, DefectContext, Ledger, inject
from synthetic.hospital_records import HospitalRecords, WaveVisit
from synthetic.records import (
    CHILD_TABLES,
    COUNTY_TABLES,
    HOSPITAL_TABLES,
    PARENT_TABLES,
    Row,
    apply_revisions,
)
from synthetic.seeding import derive_rng
from synthetic.waves import Wave
from synthetic.world import World, build_world

TRUTH_SCHEMA = "synth_truth"
TRUTH_DDL = f"""
CREATE TABLE {TRUTH_SCHEMA}.defect (
    schema_name text NOT NULL, table_name text NOT NULL, record_key text NOT NULL, kind text NOT NULL,
    PRIMARY KEY (schema_name, table_name, record_key)
);
CREATE TABLE {TRUTH_SCHEMA}.wave_case (
    schema_name text NOT NULL, visit_id text NOT NULL, wave text NOT NULL, residence_region_code text NOT NULL,
    local_day date NOT NULL, PRIMARY KEY (schema_name, visit_id)
);
CREATE TABLE {TRUTH_SCHEMA}.wave (
    name text PRIMARY KEY, presentations text NOT NULL, first_day date NOT NULL, peak_day date NOT NULL,
    last_day date NOT NULL, peak_cases double precision NOT NULL, region_codes text, township text
);
"""


@dataclass(frozen=True, slots=True)
class WaveSummary:
    name: str
    diagnoses: str  # presentation keys and weights
    region_codes: tuple[str, ...]
    township: str | None
    first_day: dt.date
    peak_day: dt.date
    last_day: dt.date
    cases_per_day: dict[dt.date, int]  # wave visits actually written, by local day


@dataclass(slots=True)
class SynthSummary:
    """What a run wrote: row counts per (kind, table), injected defects and identifier noise by kind."""

    seed: int
    start: dt.date
    days: int
    residents: int  # people in the world (including newborns)
    schemas: list[tuple[str, str, str, str]]  # (kind, schema, org code, name)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)
    defects: dict[str, int] = field(default_factory=dict)
    defect_candidate_rows: int = 0  # non-cancelled parent rows the bad share applied to
    identifier_noise: dict[str, int] = field(default_factory=dict)
    waves: list[WaveSummary] = field(default_factory=list)
    config_path: Path | None = None

    @property
    def defect_rows(self) -> int:
        return sum(self.defects.values())

    @property
    def defect_share(self) -> float:
        return self.defect_rows / self.defect_candidate_rows if self.defect_candidate_rows else 0.0

    def table(self) -> str:
        """A plain-text report: institutions, rows per table, defects, identifier noise, waves."""
        lines = [
            f"synthetic exchange data: seed {self.seed}, {self.start} + {self.days} days, "
            f"{self.residents} residents, {len(self.schemas)} institutions"
        ]
        for kind, schema, code, name in self.schemas:
            lines.append(f"  {kind:<8} {schema:<22} {code}  {name}")
        width = max([len(f"{k}.{t}") for k, t in self.rows] + [len(k) for k in self.defects] + [20])
        lines += ["", f"{'table':<{width}}  {'rows':>9}"]
        for (kind, table), count in self.rows.items():
            lines.append(f"{kind + '.' + table:<{width}}  {count:>9,}")
        lines.append(f"{'total':<{width}}  {sum(self.rows.values()):>9,}")
        lines += ["", f"{'defect':<{width}}  {'rows':>9}"]
        for kind, count in self.defects.items():
            lines.append(f"{kind:<{width}}  {count:>9,}")
        lines.append(
            f"{'total':<{width}}  {self.defect_rows:>9,}  "
            f"({self.defect_share:.2%} of {self.defect_candidate_rows:,} rows)"
        )
        lines += ["", f"{'identifier noise':<{width}}  {'records':>9}"]
        for kind, count in self.identifier_noise.items():
            lines.append(f"{kind:<{width}}  {count:>9,}")
        if self.waves:
            lines += ["", "waves (cases written per local day)"]
            for w in self.waves:
                where = ",".join(w.region_codes) or "all counties"
                where += f" {w.township}" if w.township else ""
                per_day = " ".join(f"{d:%m-%d}:{n}" for d, n in sorted(w.cases_per_day.items()))
                lines.append(f"  {w.name:<18} {w.diagnoses:<40} {where:<18} peak {w.peak_day:%m-%d}  {per_day}")
        return "\n".join(lines)


@dataclass(slots=True)
class GeneratedRecords:
    """A world's rows, ready to write (what ``write_records`` needs; no database involved)."""

    world: World
    hospitals: list[HospitalRecords]
    counties: list[CountyRecords]
    ledger: Ledger
    wave_visits: list[WaveVisit]


def generate_records(world: World, bad_share: float) -> GeneratedRecords:
    """Every institution's rows: hospitals (stays of all hospitals planned first), then county platforms;
    then corrections/cancellations and the injected defects."""
    hospitals = [HospitalRecords(world, h) for h in world.hospitals]
    for h in hospitals:
        h.plan_deliveries()
    for h in hospitals:
        h.plan_stays()
    for h in hospitals:
        h.build()
    counties = [CountyRecords(world, c) for c in world.counties]
    for c in counties:
        c.build()
    all_deaths = sorted((d.died_at, d.person.pid, d.person) for d in world.home_deaths + world.hospital_deaths)
    ledger = Ledger()
    for source in hospitals:
        rng = derive_rng(world.seed, "quality", source.inst.org_code)
        events = tuple(t for t in PARENT_TABLES["hospital"] if t != "patient")
        for table in events:
            apply_revisions(source.tables[table], rng)
        ctx = DefectContext(rng, source, "patient_id", all_deaths)
        inject("hospital", source.inst.schema, source.tables, bad_share, ctx, ledger, events)
        source.finish_patients()
        apply_revisions(source.tables["patient"], rng, v2=0.0, cancelled=0.0)  # patients: see finish_patients
        inject("hospital", source.inst.schema, source.tables, bad_share, ctx, ledger, ("patient",))
    for county in counties:
        rng = derive_rng(world.seed, "quality", county.inst.org_code)
        for table in PARENT_TABLES["county"]:
            apply_revisions(county.tables[table], rng)
        own = [d for d in all_deaths if d[2].region_code == county.region]
        ctx = DefectContext(rng, county, "resident_id", own)
        order = tuple(t for t in PARENT_TABLES["county"] if t != "resident") + ("resident",)
        inject("county", county.inst.schema, county.tables, bad_share, ctx, ledger, order)
    wave_visits = [v for h in hospitals for v in h.wave_visits]
    return GeneratedRecords(world, hospitals, counties, ledger, wave_visits)


def _flatten(tables: dict[str, list[Row]], names: tuple[str, ...]) -> dict[str, list[Row]]:
    """Parent rows plus their child rows (each child gets the parent's key), per table."""
    flat: dict[str, list[Row]] = {name: [] for name in names}
    for name in names:
        if name in CHILD_TABLES:
            continue
        flat[name] = tables.get(name, [])
    for child, (parent, key) in CHILD_TABLES.items():
        if child not in flat:
            continue
        for row in tables.get(parent, []):
            for item in row.get("_children", {}).get(child, []):
                item[key] = row[key]
                flat[child].append(item)
    return flat


def _columns(conn: psycopg.Connection, schema: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
        "ORDER BY table_name, ordinal_position",
        (schema,),
    ):
        result.setdefault(table, []).append(column)
    return result


def _copy(conn: psycopg.Connection, schema: str, table: str, columns: list[str], rows: list[Row]) -> None:
    if not rows:
        return
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row([row.get(c) for c in columns])


def _write_truth(conn: psycopg.Connection, records: GeneratedRecords) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(TRUTH_SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(TRUTH_SCHEMA)))
    conn.execute(TRUTH_DDL)
    window = records.world.window
    with conn.cursor().copy(f"COPY {TRUTH_SCHEMA}.defect FROM STDIN") as copy:
        for d in records.ledger.defects:
            copy.write_row((d.schema, d.table, d.record_key, d.kind))
    with conn.cursor().copy(f"COPY {TRUTH_SCHEMA}.wave_case FROM STDIN") as copy:
        for v in records.wave_visits:
            copy.write_row((v.schema, v.visit_id, v.wave, v.region_code, window.date(v.day)))
    with conn.cursor().copy(f"COPY {TRUTH_SCHEMA}.wave FROM STDIN") as copy:
        for w in records.world.waves:
            copy.write_row(
                (
                    w.name,
                    ",".join(f"{k}:{p}" for k, p in w.presentations),
                    window.date(w.first_day),
                    window.date(w.peak_day),
                    window.date(w.last_day),
                    w.peak_cases,
                    ",".join(w.region_codes) or None,
                    w.township,
                )
            )


Progress = Callable[[int, int], None]


def _silent(done: int, total: int) -> None:
    pass


def write_records(dsn: str, records: GeneratedRecords, config_out: Path, progress: Progress = _silent) -> SynthSummary:
    """Drop and recreate each institution's schema, COPY its rows, write the truth schema and the config."""
    world = records.world
    summary = SynthSummary(world.seed, world.window.start, world.window.days, len(world.people), [])
    rows: Counter[tuple[str, str]] = Counter()
    sources: list[tuple[SourceKind, HospitalRecords | CountyRecords, tuple[str, ...]]] = [
        ("hospital", h, HOSPITAL_TABLES) for h in records.hospitals
    ]
    sources += [("county", c, COUNTY_TABLES) for c in records.counties]
    columns: dict[str, dict[str, list[str]]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for kind, source, names in sources:
            schema = source.inst.schema
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            create_exchange_schema(conn, kind, schema)
            if kind not in columns:
                columns[kind] = _columns(conn, schema)
            flat = _flatten(source.tables, names)
            with conn.transaction():
                for name in names:  # parents before children: the foreign keys hold at every step
                    _copy(conn, schema, name, columns[kind][name], flat[name])
                    rows[(kind, name)] += len(flat[name])
            summary.schemas.append((kind, schema, source.inst.org_code, source.inst.name))
            progress(len(summary.schemas), len(sources))
        with conn.transaction():
            _write_truth(conn, records)
    summary.rows = {
        key: rows[key]
        for key in [("hospital", t) for t in HOSPITAL_TABLES] + [("county", t) for t in COUNTY_TABLES]
        if key in rows
    }
    counts = Counter(d.kind for d in records.ledger.defects)
    summary.defects = {k: counts[k] for k in ALL_KINDS if counts[k]}
    summary.defect_candidate_rows = records.ledger.candidate_rows
    noise: Counter[str] = Counter()
    for _, source, _ in sources:
        noise.update(source.noise)
    summary.identifier_noise = dict(sorted(noise.items()))
    summary.waves = _wave_summaries(records)
    config = AdapterConfig(
        sources=[
            SourceConfig(
                kind=kind,
                org_code=source.inst.org_code,
                name=source.inst.name,
                region_code=source.inst.region_code,
                dsn=dsn,
                schema=source.inst.schema,
            )
            for kind, source, _ in sources
        ]
    )
    config_out.parent.mkdir(parents=True, exist_ok=True)
    dump_config(config, config_out)
    summary.config_path = config_out
    return summary


def _wave_summaries(records: GeneratedRecords) -> list[WaveSummary]:
    window = records.world.window
    result = []
    for w in records.world.waves:
        per_day = Counter(window.date(v.day) for v in records.wave_visits if v.wave == w.name)
        result.append(
            WaveSummary(
                w.name,
                ",".join(f"{k}:{p}" for k, p in w.presentations),
                w.region_codes,
                w.township,
                window.date(w.first_day),
                window.date(w.peak_day),
                window.date(w.last_day),
                dict(sorted(per_day.items())),
            )
        )
    return result


def generate_exchange_data(
    dsn: str,
    hospitals: int,
    counties: int,
    days: int,
    seed: int,
    config_out: Path,
    bad_share: float = 0.03,
    start: dt.date = dt.date(2026, 11, 1),
    progress: Progress = _silent,
) -> SynthSummary:
    """Build the world for ``seed`` and write it to ``dsn``; see the module docstring. ``progress(done,
    total)`` hears of each step: building the world and its records, then each institution written."""
    return generate_with_waves(
        dsn, hospitals, counties, days, seed, config_out, bad_share, start, waves=None, progress=progress
    )


def generate_with_waves(
    dsn: str,
    hospitals: int,
    counties: int,
    days: int,
    seed: int,
    config_out: Path,
    bad_share: float = 0.03,
    start: dt.date = dt.date(2026, 11, 1),
    waves: tuple[Wave, ...] | None = None,
    progress: Progress = _silent,
) -> SynthSummary:
    """As ``generate_exchange_data`` with explicit epidemic waves (None = waves.default_waves)."""
    if not 0.0 <= bad_share <= 1.0:
        raise ValueError("bad_share is a share of rows, between 0 and 1")
    steps = 2 + hospitals + counties
    progress(0, steps)
    world = build_world(seed, hospitals, counties, days, start, waves)
    progress(1, steps)
    records = generate_records(world, bad_share)
    progress(2, steps)
    return write_records(dsn, records, Path(config_out), lambda done, total: progress(2 + done, 2 + total))


def exchange_dsn(postgres_url: str) -> str:
    """The synthetic exchange databases live beside the platform database, in '<name>_exchange'."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(postgres_url, dbname=f"{conninfo_to_dict(postgres_url).get('dbname') or 'healthbus'}_exchange")

"""Re-keying ClickHouse's pseudonyms when the pseudonym key rotates (``healthbus privacy rotate-pseudonyms``).

A pseudonym is HMAC(key, parts) (streams/privacy.py), so it cannot be turned into the new key's pseudonym
by itself: the parts come from PostgreSQL, which knows every person and visit that ClickHouse can name.
Each pseudonym column is built from one of these part tuples:

- ``("person", person_id)``: a resolved resident (event_log, outpatient_visits, surveillance_cases,
  notifiable_reports); person ids from ``empi.persons`` (merged ones too) and the event store;
- ``(org_code, local_patient_id)``: an event seen without a person id (``privacy.person_pseudonym``), and
  ``("person", "org_code:local_patient_id")``, the surveillance stage's fallback before it shared that
  function (rows written by older builds); from ``empi.records`` and the event store;
- ``("visit", org_code, record_key)``: a syndrome case's visit (surveillance_cases, in its sort key); from
  ``surveillance.visit_cases`` and the event store's visits.

The old→new map is loaded into a ClickHouse Join table; each table is copied with its pseudonyms mapped into
a twin (``CREATE TABLE … AS``), which then takes its place (``EXCHANGE TABLES``, atomic). A copy rather than
``ALTER … UPDATE`` because ``visit_pseudonym`` is a sort-key column, which a mutation may not change. The map
also sends each new pseudonym to itself, so a run interrupted after some tables is simply run again.
A pseudonym that nothing in PostgreSQL explains is left as it is and counted (``unmapped``).
Writers must be stopped while it runs (docs/security.md): rows they add meanwhile would be lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from streams.privacy import pseudonym

# table → its pseudonym columns (sinks/clickhouse/event_log.py, surveillance_tables.py)
PSEUDONYM_COLUMNS: dict[str, tuple[str, ...]] = {
    "event_log": ("person_pseudonym",),
    "outpatient_visits": ("person_pseudonym",),
    "surveillance_cases": ("visit_pseudonym", "person_pseudonym"),
    "notifiable_reports": ("person_pseudonym",),
}
MAP_TABLE = "pseudonym_rekey_map"
_BATCH = 50_000

# (relation that must exist, query): the raw columns each kind of part tuple is made from
_PERSON_SOURCES = (
    ("empi.persons", "SELECT person_id::text FROM empi.persons"),
    (
        "public.event_store",
        "SELECT DISTINCT payload->'envelope'->>'person_id' FROM event_store "
        "WHERE payload->'envelope'->>'person_id' IS NOT NULL",
    ),
)
_PATIENT_SOURCES = (
    ("empi.records", "SELECT org_code, local_id FROM empi.records"),
    (
        "public.event_store",
        "SELECT DISTINCT org_code, payload->'envelope'->'patient'->>'local_patient_id' FROM event_store",
    ),
)
_VISIT_SOURCES = (
    ("surveillance.visit_cases", "SELECT org_code, record_key FROM surveillance.visit_cases"),
    (
        "public.event_store",
        "SELECT DISTINCT org_code, record_key FROM event_store WHERE event_type = 'outpatient.visit'",
    ),
)


@dataclass
class RotationReport:
    mappings: int = 0  # distinct old pseudonyms PostgreSQL explains
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied (unchanged in number)
    rekeyed: dict[str, int] = field(default_factory=dict)  # "table.column" → values changed
    unmapped: dict[str, int] = field(default_factory=dict)  # "table.column" → values nothing explains (kept)
    dry_run: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "mappings": self.mappings,
            "rows": self.rows,
            "rekeyed": self.rekeyed,
            "unmapped": self.unmapped,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
        }


def _rows(conn: psycopg.Connection, sources: tuple[tuple[str, str], ...]) -> Iterator[tuple[str, ...]]:
    for relation, query in sources:
        found = conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone()
        if found is None or found[0] is None:
            continue  # that component never ran against this database
        with conn.cursor() as cur:
            yield from cur.stream(query, size=_BATCH)  # rows as they come: there may be millions


def pseudonym_parts(conn: psycopg.Connection) -> Iterator[tuple[str, ...]]:
    """Every part tuple a ClickHouse pseudonym can have been made of, from what PostgreSQL knows (repeats possible)."""
    for (person_id,) in _rows(conn, _PERSON_SOURCES):
        yield ("person", person_id)
    for org_code, local_id in _rows(conn, _PATIENT_SOURCES):
        if local_id:
            yield (org_code, local_id)
            yield ("person", f"{org_code}:{local_id}")
    for org_code, record_key in _rows(conn, _VISIT_SOURCES):
        yield ("visit", org_code, record_key)


def _load_map(client: Any, database: str, pairs: Iterator[tuple[str, str]]) -> None:
    client.command(f"DROP TABLE IF EXISTS {database}.{MAP_TABLE}")
    client.command(f"CREATE TABLE {database}.{MAP_TABLE} (old String, new String) ENGINE = Join(ANY, LEFT, old)")
    batch: list[tuple[str, str]] = []
    for pair in pairs:
        batch.append(pair)
        if len(batch) >= _BATCH:
            client.insert(f"{database}.{MAP_TABLE}", batch, column_names=["old", "new"])
            batch = []
    if batch:
        client.insert(f"{database}.{MAP_TABLE}", batch, column_names=["old", "new"])


def rotate_pseudonyms(
    conn: psycopg.Connection,
    client: Any,
    database: str,
    old_key: bytes,
    new_key: bytes,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Rewrite every pseudonym made with ``old_key`` in ``database``'s tables as ``new_key`` makes it.
    ``progress(number, total)`` hears of each table as it starts."""
    if old_key == new_key:
        raise ValueError("the old and the new pseudonym key are the same: nothing to rotate")
    started = time.monotonic()
    report = RotationReport(dry_run=dry_run)
    present = {
        r[0]
        for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": database}
        ).result_rows
    }
    tables = [t for t in PSEUDONYM_COLUMNS if t in present]
    seen: set[str] = set()

    def pairs() -> Iterator[tuple[str, str]]:
        for parts in pseudonym_parts(conn):
            old = pseudonym(old_key, *parts)
            if old in seen:
                continue
            seen.add(old)
            new = pseudonym(new_key, *parts)
            yield old, new
            yield new, new  # idempotent re-runs: an already re-keyed value stays

    _load_map(client, database, pairs())
    report.mappings = len(seen)
    mapped = f"joinGetOrNull('{database}.{MAP_TABLE}', 'new', {{col}})"
    try:
        for number, table in enumerate(tables, start=1):
            if progress is not None:
                progress(number, len(tables))  # the table under way
            columns = PSEUDONYM_COLUMNS[table]
            figures = client.query(
                "SELECT count(), "
                + ", ".join(
                    f"countIf({c} != '' AND {mapped.format(col=c)} IS NULL), "
                    f"countIf({c} != '' AND {mapped.format(col=c)} != {c})"
                    for c in columns
                )
                + f" FROM {database}.{table}"
            ).result_rows[0]
            report.rows[table] = figures[0]
            for n, c in enumerate(columns):
                report.unmapped[f"{table}.{c}"] = figures[1 + 2 * n]
                report.rekeyed[f"{table}.{c}"] = figures[2 + 2 * n]
            if dry_run or not any(report.rekeyed[f"{table}.{c}"] for c in columns):
                continue
            _rewrite(client, database, table, columns, mapped)
    finally:
        client.command(f"DROP TABLE IF EXISTS {database}.{MAP_TABLE}")
    report.seconds = time.monotonic() - started
    return report


def _rewrite(client: Any, database: str, table: str, columns: tuple[str, ...], mapped: str) -> None:
    twin = f"{database}.{table}__rekey"
    client.command(f"DROP TABLE IF EXISTS {twin}")
    client.command(f"CREATE TABLE {twin} AS {database}.{table}")
    replace = ", ".join(f"coalesce({mapped.format(col=c)}, {c}) AS {c}" for c in columns)
    # One INSERT may span every month partition of the table: lift the 100-partition guard for it.
    client.command(
        f"INSERT INTO {twin} SELECT * REPLACE ({replace}) FROM {database}.{table} "
        "SETTINGS max_partitions_per_insert_block = 0"
    )
    before = int(client.command(f"SELECT count() FROM {database}.{table}"))
    after = int(client.command(f"SELECT count() FROM {twin}"))
    if before != after:  # a writer is still running: leave the original in place
        client.command(f"DROP TABLE IF EXISTS {twin}")
        raise RuntimeError(
            f"{table}: {before} rows but the re-keyed copy has {after}; stop the ClickHouse sink and run again"
        )
    client.command(f"EXCHANGE TABLES {database}.{table} AND {twin}")
    client.command(f"DROP TABLE {twin} SYNC")

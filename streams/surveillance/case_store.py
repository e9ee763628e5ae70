"""The surveillance stage's state in PostgreSQL: each visit's classification, and the daily counts the
early-warning detection reads.

``surveillance.visit_cases`` keeps the latest classified version of every outpatient visit (by source
record), so a corrected or cancelled visit moves its counts instead of adding to them, and a replayed one
changes nothing. ``surveillance.daily_counts`` holds cases per syndrome × county × population group × day
(China time), plus the visits themselves under the pseudo-syndrome ``VISITS`` (the denominator a CDC
analyst reads proportions from); group ``ALL`` sums the groups. Detection reads series from it as each day
closes and, for a partial day, during it (streams/surveillance/monitor.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

VISITS = "VISITS"  # pseudo-syndrome: every classified visit, the denominator
ALL_GROUPS = "ALL"
UNKNOWN_GROUP = "UNKNOWN"  # no birth date: counted in ALL only, and under this group

DDL = """
CREATE SCHEMA IF NOT EXISTS surveillance;
CREATE TABLE IF NOT EXISTS surveillance.visit_cases (
    org_code       text    NOT NULL,
    record_key     text    NOT NULL,
    event_id       text    NOT NULL,
    record_version int     NOT NULL,
    cancelled      boolean NOT NULL,
    day            date    NOT NULL,
    county_code    char(6) NOT NULL,
    population_group text  NOT NULL,
    syndromes      text[]  NOT NULL,
    PRIMARY KEY (org_code, record_key)
);
CREATE TABLE IF NOT EXISTS surveillance.daily_counts (
    syndrome         text    NOT NULL,
    county_code      char(6) NOT NULL,
    population_group text    NOT NULL,
    day              date    NOT NULL,
    cases            integer NOT NULL,
    PRIMARY KEY (syndrome, county_code, population_group, day)
);
CREATE INDEX IF NOT EXISTS daily_counts_day ON surveillance.daily_counts (day);
COMMENT ON TABLE surveillance.daily_counts IS '症候群日计数 (县区×人群×日) / Syndrome cases per county × population group × day';
"""


@dataclass(frozen=True, slots=True)
class VisitCase:
    """One visit's contribution: a case of each syndrome (and one VISITS) on its day, county and group."""

    org_code: str
    record_key: str
    event_id: str
    record_version: int
    cancelled: bool
    day: dt.date
    county_code: str
    population_group: str
    syndromes: tuple[str, ...]

    def counts(self) -> Iterable[tuple[str, str, str, dt.date]]:
        if self.cancelled:
            return
        for syndrome in (VISITS, *self.syndromes):
            yield syndrome, self.county_code, self.population_group, self.day
            yield syndrome, self.county_code, ALL_GROUPS, self.day


def ensure_case_store(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('healthbus.surveillance.ddl'))")
        conn.execute(DDL)


def apply_cases(conn: psycopg.Connection, cases: Sequence[VisitCase]) -> list[tuple[VisitCase, VisitCase | None]]:
    """Record visits in order (in the caller's transaction); returns (case, the version it replaced) for each
    that changed something. An older version, or the same event again, changes nothing."""
    if not cases:
        return []
    keys = sorted({(c.org_code, c.record_key) for c in cases})
    stored: dict[tuple[str, str], VisitCase] = {}
    for row in conn.execute(
        "SELECT v.org_code, v.record_key, v.event_id, v.record_version, v.cancelled, v.day, v.county_code, "
        "v.population_group, v.syndromes FROM surveillance.visit_cases v "
        "JOIN unnest(%s::text[], %s::text[]) AS k(o, r) ON v.org_code = k.o AND v.record_key = k.r FOR UPDATE",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall():
        stored[(row[0], row[1])] = VisitCase(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6].strip(), row[7], tuple(row[8])
        )
    delta: Counter[tuple[str, str, str, dt.date]] = Counter()
    changed: list[tuple[VisitCase, VisitCase | None]] = []
    for case in cases:
        key = (case.org_code, case.record_key)
        before = stored.get(key)
        if before is not None and (before.record_version > case.record_version or before.event_id == case.event_id):
            continue
        if before is not None:
            delta.subtract(before.counts())
        delta.update(case.counts())
        stored[key] = case
        changed.append((case, before))
    if not changed:
        return []
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO surveillance.visit_cases (org_code, record_key, event_id, record_version, cancelled, day, "
            "county_code, population_group, syndromes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (org_code, record_key) DO UPDATE SET event_id = EXCLUDED.event_id, "
            "record_version = EXCLUDED.record_version, cancelled = EXCLUDED.cancelled, day = EXCLUDED.day, "
            "county_code = EXCLUDED.county_code, population_group = EXCLUDED.population_group, "
            "syndromes = EXCLUDED.syndromes",
            [
                (
                    c.org_code,
                    c.record_key,
                    c.event_id,
                    c.record_version,
                    c.cancelled,
                    c.day,
                    c.county_code,
                    c.population_group,
                    list(c.syndromes),
                )
                for c in {(c.org_code, c.record_key): c for c, _ in changed}.values()
            ],
        )
        rows = sorted((k, n) for k, n in delta.items() if n)
        cur.executemany(
            "INSERT INTO surveillance.daily_counts (syndrome, county_code, population_group, day, cases) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (syndrome, county_code, population_group, day) "
            "DO UPDATE SET cases = surveillance.daily_counts.cases + EXCLUDED.cases",
            [(*k, n) for k, n in rows],
        )
    return changed


def daily_counts(
    conn: psycopg.Connection, first: dt.date, last: dt.date, group: str | None = ALL_GROUPS
) -> dict[tuple[str, str, str], dict[dt.date, int]]:
    """(syndrome, county, group) → day → cases, for the days in [first, last] (days without a row: 0)."""
    query = (
        "SELECT syndrome, county_code, population_group, day, cases FROM surveillance.daily_counts "
        "WHERE day BETWEEN %s AND %s"
    )
    params: list[object] = [first, last]
    if group is not None:
        query += " AND population_group = %s"
        params.append(group)
    out: dict[tuple[str, str, str], dict[dt.date, int]] = {}
    for syndrome, county, grp, day, cases in conn.execute(query, params).fetchall():
        out.setdefault((syndrome, county.strip(), grp), {})[day] = cases
    return out

"""Gather the syndromic surveillance report from PostgreSQL: ``surveillance.daily_counts`` (cases per
syndrome × county × day, group ALL; ``VISITS`` the denominator) and ``surveillance.alerts``.

`healthbus surveillance report` calls :func:`gather_surveillance_report`, then renders the result
(read_side/reports/surveillance_report.py). :func:`build_surveillance_report` is the pure part: counts and alerts
in, the report's model out.

* Counties: those with any count (visits included) or any alert in the period, ordered by code; named by
  GB/T 2260 in the period's last year (the code itself when the table does not know it).
* Curves: per county, one per syndrome with any case or any alert in the period, in the order of
  ``streams.surveillance.syndromes.Syndrome`` (codes not in it after, alphabetically); days without a row
  count 0.
* Alarm days: every day from an alert's ``opened_day`` to its ``last_day`` (the last day judged above the
  threshold), clipped to the period, on the curve of its syndrome and county whatever its population group;
  EWMA yellow is yellow, every other level red, red winning a day with both.
* Alerts: those open at some time in the period (``alert_store.alerts_between``), open ones first, then red
  before yellow, then by opening day (latest first), county and syndrome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import psycopg

from foundation.standards.china_time import CST
from foundation.standards.region_codes import region_name
from read_side.reports.surveillance_report import (
    GROUPS,
    METHODS,
    AlertEntry,
    CountySection,
    SurveillanceReport,
    SyndromeCurve,
    mark_level,
)
from streams.surveillance.alert_store import StoredAlert, alerts_between
from streams.surveillance.case_store import ALL_GROUPS, VISITS, daily_counts
from streams.surveillance.syndromes import Syndrome

_ORDER = {s.value: k for k, s in enumerate(Syndrome)}
_ZH = {s.value: s.zh for s in Syndrome}


def syndrome_zh(code: str) -> str:
    return _ZH.get(code, code)


def county_name(code: str, year: int) -> str:
    return region_name(code, year) or code


def _syndrome_key(code: str) -> tuple[int, str]:
    return _ORDER.get(code, len(_ORDER)), code


def _alert_note(a: StoredAlert) -> str:
    group = GROUPS.get(a.population_group or ALL_GROUPS, (a.population_group or "", ""))[0]
    return f"{METHODS.get(a.method, a.method)} {a.level} {group} {a.opened_day:%m-%d}–{a.last_day:%m-%d}"


def build_surveillance_report(
    counts: Mapping[tuple[str, str, str], Mapping[dt.date, int]],
    alerts: Sequence[StoredAlert],
    first: dt.date,
    last: dt.date,
    generated_at: dt.datetime,
) -> SurveillanceReport:
    """The report's model from ``case_store.daily_counts(conn, first, last, ALL_GROUPS)`` and the alerts open in
    [first, last]. Counts of other groups, and days outside the period, are ignored."""
    if first > last:
        raise ValueError(f"period {first} .. {last} is reversed")
    n_days = (last - first).days + 1

    series: dict[tuple[str, str], list[int]] = {}  # (county, syndrome) → cases per day
    for (syndrome, county, group), by_day in counts.items():
        if group != ALL_GROUPS:
            continue
        values = series.setdefault((county, syndrome), [0] * n_days)
        for day, n in by_day.items():
            if first <= day <= last:
                values[(day - first).days] += int(n)

    alerts = [a for a in alerts if a.opened_day <= last and (a.closed_day is None or a.closed_day >= first)]
    marks: dict[tuple[str, str], dict[int, str]] = {}
    notes: dict[tuple[str, str], dict[int, list[str]]] = {}
    for a in alerts:
        key = (a.county_code, a.syndrome)
        level = mark_level(a.level)
        start, end = max(a.opened_day, first), min(max(a.last_day, a.opened_day), last)
        for k in range((start - first).days, (end - first).days + 1):
            days = marks.setdefault(key, {})
            if days.get(k) != "red":
                days[k] = level
            notes.setdefault(key, {}).setdefault(k, []).append(_alert_note(a))

    counties = sorted({c for c, _ in series} | {a.county_code for a in alerts})
    sections = []
    for county in counties:
        syndromes = sorted(
            {s for c, s in series if c == county and s != VISITS and (any(series[(c, s)]) or (c, s) in marks)}
            | {s for c, s in marks if c == county},
            key=_syndrome_key,
        )
        curves = [
            SyndromeCurve(
                s,
                syndrome_zh(s),
                series.get((county, s), [0] * n_days),
                dict(marks.get((county, s), {})),
                {k: "; ".join(v) for k, v in notes.get((county, s), {}).items()},
            )
            for s in syndromes
        ]
        mine = [a for a in alerts if a.county_code == county]
        sections.append(
            CountySection(
                county,
                county_name(county, last.year),
                series.get((county, VISITS), [0] * n_days),
                curves,
                len(mine),
                sum(1 for a in mine if a.state == "OPEN"),
            )
        )

    by_syndrome: dict[str, int] = {}
    for (_county, syndrome), values in sorted(series.items(), key=lambda kv: _syndrome_key(kv[0][1])):
        if syndrome != VISITS:
            by_syndrome[syndrome] = by_syndrome.get(syndrome, 0) + sum(values)
    visits = sum(sum(v) for (c, s), v in series.items() if s == VISITS)

    rank = {"red": 0, "yellow": 1}
    ordered = sorted(
        alerts,
        key=lambda a: (
            a.state != "OPEN",
            rank[mark_level(a.level)],
            -a.opened_day.toordinal(),
            a.county_code,
            _syndrome_key(a.syndrome),
            a.population_group or "",
            a.method,
        ),
    )
    entries = [AlertEntry(a, syndrome_zh(a.syndrome), county_name(a.county_code, last.year)) for a in ordered]
    zh = {s: syndrome_zh(s) for s in set(by_syndrome) | {a.syndrome for a in alerts}}
    return SurveillanceReport(first, last, generated_at, sections, entries, by_syndrome, visits, zh)


def gather_surveillance_report(
    conn: psycopg.Connection, first: dt.date, last: dt.date, now: dt.datetime
) -> SurveillanceReport:
    """Read the period's counts (group ALL) and alerts, and build the report (times in China time)."""
    return build_surveillance_report(
        daily_counts(conn, first, last, ALL_GROUPS), alerts_between(conn, first, last), first, last, now.astimezone(CST)
    )

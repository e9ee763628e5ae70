"""Drug classes for the clinical reminders (智能提示): the ATC level-3 group of a prescribed drug.

A "same drug class" reminder compares ATC level-3 groups (4 characters, "C09C" = angiotensin II receptor
blockers, plain): two ARBs from two hospitals are a duplicate therapy even when the molecules differ
(valsartan C09CA03, irbesartan C09CA04); an ARB and an ACE inhibitor (C09A) are not.

Source of ``data/atc_level3.csv`` (code, name_en, name_zh; every level-3 group of the 14 anatomical main
groups, 271 rows):

* codes and English names: the WHO Collaborating Centre for Drug Statistics Methodology, ATC/DDD Index
  (structure as published at atcddd.fhi.no, 2026 edition), written in sentence case;
* Chinese names: the wording of the classification of the 国家基本医疗保险、工伤保险和生育保险药品目录
  (西药部分), which follows ATC, where the catalogue names the group; otherwise a translation of the WHO
  name. The Chinese names are a convenience for the reminder text, not an official translation.

A class's identity is its code: a well-formed level-3 code missing from the CSV (a group WHO adds later)
still counts as a class, with empty names.

Where the code comes from, per prescription item:

1. the item's ATC code, when present and well formed (levels 3 to 5: "C09C", "C09CA", "C09CA03");
   normalised first: full-width folded (NFKC), whitespace removed, upper-cased;
2. otherwise the national medical-insurance drug code (国家医保药品编码): a Western medicine's code is
   "X" followed by its ATC-derived level-4 code ("XC09CAX…", "XA10BAE…"), so "X" + a well-formed level-4
   prefix gives the class. Chinese patent medicines (中成药, "Z…") have no ATC class, and in-house codes
   (anything else) say nothing: both give None.

The anatomical main groups are A B C D G H J L M N P R S V; a code starting with another letter is not
ATC (and keeps an in-house code such as "XE12AB…" from passing for a national one).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_PATH = Path(__file__).with_name("data") / "atc_level3.csv"
ANATOMICAL_GROUPS = "ABCDGHJLMNPRSV"

# ATC levels 3 to 5 (level 1 "C" and level 2 "C09" name no pharmacological class).
_ATC = re.compile(rf"([{ANATOMICAL_GROUPS}][0-9]{{2}}[A-Z])(?:[A-Z](?:[0-9]{{2}})?)?")
# A national insurance code of a Western medicine: "X" + ATC level 4 + the rest of its 23 characters.
_NATIONAL_WESTERN = re.compile(rf"X([{ANATOMICAL_GROUPS}][0-9]{{2}}[A-Z])[A-Z].+")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class DrugClass:
    code: str  # ATC level 3, e.g. "C09C"
    name_en: str  # "" when the shipped table lacks the class
    name_zh: str


def normalise_code(code: str) -> str:
    """Full-width folded, whitespace removed, upper-cased: "ｃ09ｃａ 03" → "C09CA03"."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", code)).upper()


@cache
def _names() -> dict[str, tuple[str, str]]:
    with DATA_PATH.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader))
        if header != ("code", "name_en", "name_zh"):
            raise ValueError(f"{DATA_PATH}: header {header}, expected ('code', 'name_en', 'name_zh')")
        names: dict[str, tuple[str, str]] = {}
        for line, (code, name_en, name_zh) in enumerate(reader, start=2):
            if _ATC.fullmatch(code) is None or len(code) != 4 or code in names:
                raise ValueError(f"{DATA_PATH}:{line}: bad or repeated level-3 code {code!r}")
            names[code] = (name_en, name_zh)
    return names


def atc_level3(atc_code: str | None) -> str | None:
    """The level-3 group of an ATC code of level 3 to 5, or None for anything else."""
    if not atc_code:
        return None
    match = _ATC.fullmatch(normalise_code(atc_code))
    return match.group(1) if match else None


def national_code_level3(drug_code: str | None) -> str | None:
    """The ATC level-3 group a national insurance drug code of a Western medicine carries, else None."""
    if not drug_code:
        return None
    match = _NATIONAL_WESTERN.fullmatch(normalise_code(drug_code))
    return match.group(1) if match else None


def class_of_code(code: str) -> DrugClass:
    """The DrugClass of a level-3 code (names from the shipped table, "" when it lacks the code)."""
    name_en, name_zh = _names().get(code, ("", ""))
    return DrugClass(code, name_en, name_zh)


def drug_class(atc_code: str | None, drug_code: str | None) -> DrugClass | None:
    """The ATC level-3 class of a prescribed drug: from its ATC code, else from a national insurance code.

    A malformed ATC code counts as missing (the national code may still tell), so a typo in one field
    does not hide a class the other field states."""
    code = atc_level3(atc_code) or national_code_level3(drug_code)
    return class_of_code(code) if code else None

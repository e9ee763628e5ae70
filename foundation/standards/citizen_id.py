"""GB 11643-1999 citizen ID numbers (居民身份证号码): check character, 15→18 conversion, normalisation."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"
# 居民身份证 (01) and 户口簿 (02) carry the same number; no type at all is read as one of them.
CITIZEN_ID_TYPES = frozenset({"", "01", "02"})
# ASCII digits only: str.isdigit() also takes Arabic-Indic (٣, which int() reads), Ethiopic (፫, which it
# doesn't) and other scripts' digits, none of which NFKC turns into ASCII ones.
_EIGHTEEN = re.compile(r"[0-9]{17}[0-9X]")
_FIFTEEN = re.compile(r"[0-9]{15}")


def check_character(first17: str) -> str:
    """The 18th character for 17 digits."""
    return CHECK_CHARACTERS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True, slots=True)
class CitizenId:
    """A parsed ID number. ``valid`` means the check character holds; an invalid one is still evidence."""

    number: str  # 18 characters, upper-case X
    valid: bool
    area_code: str
    birth_date: dt.date | None
    sex: str  # GB/T 2261.1: "1" male (odd sequence), "2" female (even)


def parse_citizen_id(raw: str | None) -> CitizenId | None:
    """Normalise (NFKC, spaces out, upper X, 15→18 digits) and parse; None when it isn't shaped like one:
    after NFKC (full-width ０-９ become 0-9) it must be ASCII digits with an optional final X."""
    if not raw:
        return None
    text = "".join(unicodedata.normalize("NFKC", raw).split()).upper()
    if _FIFTEEN.fullmatch(text):
        body = f"{text[:6]}19{text[6:]}"
        text = body + check_character(body)
    if not _EIGHTEEN.fullmatch(text):
        return None
    try:
        birth = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        birth = None
    return CitizenId(
        number=text,
        valid=text[17] == check_character(text[:17]) and birth is not None,
        area_code=text[:6],
        birth_date=birth,
        sex="1" if int(text[16]) % 2 else "2",
    )


def make_citizen_id(area_code: str, birth_date: dt.date, sequence: int) -> str:
    """A valid 18-character number (for synthetic data): sequence 0..999, odd = male."""
    body = f"{area_code}{birth_date:%Y%m%d}{sequence:03d}"
    return body + check_character(body)

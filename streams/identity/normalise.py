"""What institutions record about a person, normalised so records of one resident compare equal.

Names arrive as simplified or traditional characters, with stray spaces and full-width letters, or
romanised ("ZHANG WEI", "Wei Zhang"); phones with +86 and separators; card numbers with dashes. These
functions are pure and cheap (they run on every event in the identity stage and in the batch linker).

Why these libraries: traditional→simplified needs a maintained character table (OpenCC's, via
opencc-python-reimplemented, pure Python), and pinyin needs a dictionary with phrase-level readings
(pypinyin); neither is something to hand-write.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from opencc import OpenCC
from pypinyin import lazy_pinyin

_T2S = OpenCC("t2s")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[a-z]+")
# Surnames whose reading as a surname differs from the everyday one (pypinyin reads words, not surnames).
SURNAME_READINGS = {
    "曾": "zeng",
    "单": "shan",
    "仇": "qiu",
    "解": "xie",
    "区": "ou",
    "朴": "piao",
    "查": "zha",
    "盖": "ge",
    "乐": "yue",
    "覃": "qin",
    "缪": "miao",
    "尉迟": "yuchi",
    "万俟": "moqi",
    "长孙": "zhangsun",
    "翟": "zhai",
    "繁": "po",
    "秘": "bi",
    "种": "chong",
    "单于": "chanyu",
    "贲": "ben",
    "句": "gou",
}
COMPOUND_SURNAMES = tuple(s for s in SURNAME_READINGS if len(s) == 2) + (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "夏侯",
    "令狐",
    "慕容",
    "公孙",
    "宇文",
    "司徒",
    "轩辕",
)


@dataclass(frozen=True, slots=True)
class NormalisedName:
    text: str  # simplified Chinese without spaces, or the romanised name upper-cased with single spaces
    pinyin: str  # syllables without tones, surname first, no spaces: "zhangwei" (the homophone key)
    pinyin_given_first: str  # the same for a romanised name written given-name first ("Wei Zhang")
    romanised: bool


def _split_surname(name: str) -> tuple[str, str]:
    for surname in COMPOUND_SURNAMES:
        if name.startswith(surname) and len(name) > len(surname):
            return surname, name[len(surname) :]
    return name[:1], name[1:]


@lru_cache(maxsize=200_000)
def normalise_name(raw: str | None) -> NormalisedName | None:
    """None when nothing name-like is left."""
    if not raw:
        return None
    text = "".join(unicodedata.normalize("NFKC", raw).split())
    text = text.replace("·", "").replace("•", "").replace("．", "")
    if _HAN.search(text):
        simplified = _T2S.convert("".join(ch for ch in text if _HAN.match(ch)))
        surname, given = _split_surname(simplified)
        surname_pinyin = SURNAME_READINGS.get(surname) or "".join(lazy_pinyin(surname))
        key = surname_pinyin + "".join(lazy_pinyin(given))
        return NormalisedName(simplified, key, key, False)
    words = _LATIN.findall(unicodedata.normalize("NFKC", raw).lower())
    if not words:
        return None
    surname_first = "".join(words)
    given_first = "".join(words[-1:] + words[:-1]) if len(words) > 1 else surname_first
    return NormalisedName(" ".join(words).upper(), surname_first, given_first, True)


def names_homophone(a: NormalisedName, b: NormalisedName) -> bool:
    """Same sound: 张伟 ~ 章伟 ~ ZHANG WEI ~ Wei Zhang."""
    return a.pinyin in (b.pinyin, b.pinyin_given_first) or b.pinyin == a.pinyin_given_first


def normalise_phone(raw: str | None) -> str | None:
    """Digits only, country code dropped: '+86 138-0000-1111' → '13800001111'. None when too short to use.
    Digits are ASCII after NFKC (full-width ones become ASCII); other scripts' digits are not phone digits."""
    if not raw:
        return None
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", raw) if "0" <= ch <= "9")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            digits = digits[len(prefix) :]
    return digits if len(digits) >= 7 else None


def normalise_card(raw: str | None) -> str | None:
    """Card numbers (e-health, insurance): NFKC, upper case, separators and spaces out."""
    if not raw:
        return None
    text = re.sub(r"[\s\-_/]", "", unicodedata.normalize("NFKC", raw)).upper()
    return text or None

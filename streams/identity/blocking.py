"""Blocking keys: which earlier records a new record is compared with.

A record is compared only with records sharing at least one key. The keys are chosen so that a true
match survives one error or one gap in any single field: the name's sound with the birth year (typo in the
date), the birth date with sex (typo or homophone in the name), the phone, the ID number's area and birth
digits (bad check character, missing name), the card numbers' trailing digits and sorted characters, and the address's numbers
(house number, postcode) with a name initial (a changed surname, a missing date).

A record is filed under `index_keys` and looks up `query_keys`. They differ in one place: every record is
filed under its name's sound alone, but only a record without a birth date looks that up (a record with
one looks up name + year, plus the few dateless records filed under name + "?"). Common names stay
cheap and a missing date still finds its match.
"""

from __future__ import annotations

import re

from streams.identity.features import MatchFeatures

# A key shared by more records than this (张伟 born 1980 in a city of millions) is capped at its most
# recent records: comparison cost stays bounded and the other keys still find the true match.
MAX_RECORDS_PER_KEY = 200
_NUMBERS = re.compile(r"\d{3,}")


def _keys(f: MatchFeatures, filing: bool) -> list[str]:
    keys: list[str] = []
    sounds = sorted({f.name.pinyin, f.name.pinyin_given_first}) if f.name is not None else []
    if f.birth_date is not None:
        keys.extend(f"n:{sound}:{f.birth_date.year}" for sound in sounds)
        keys.extend(f"n:{sound}:?" for sound in sounds if not filing)
        keys.append(f"d:{f.birth_date.isoformat()}:{f.sex or ''}")
    else:
        keys.extend(f"n:{sound}:?" for sound in sounds if filing)
        keys.extend(f"n:{sound}" for sound in sounds if not filing)
    if filing:
        keys.extend(f"n:{sound}" for sound in sounds)
    if f.phone:
        keys.append(f"p:{f.phone}")
    number = f.citizen_id or f.id_evidence
    if number:
        keys.append(f"i:{number[:14]}")
    for card in (f.insurance_card, f.health_card):
        if card and len(card) >= 6:
            # The second half (card numbers share regional prefixes, so the first half blocks nothing), and
            # the sorted characters, which survive a transposition anywhere.
            keys.append(f"c:{card[len(card) // 2 :]}")
            keys.append(f"cs:{''.join(sorted(card))}")
    if f.address and sounds:
        initials = {sound[0] for sound in sounds}
        keys.extend(f"a:{number}:{initial}" for number in _NUMBERS.findall(f.address) for initial in sorted(initials))
    return keys


def index_keys(f: MatchFeatures) -> list[str]:
    """The keys a record is filed under."""
    return _keys(f, filing=True)


def query_keys(f: MatchFeatures) -> list[str]:
    """The keys a record's candidates are looked up by."""
    return _keys(f, filing=False)


def blocking_keys(f: MatchFeatures) -> list[str]:
    """Keys two records must share to be a candidate pair in training (filed and looked up alike)."""
    return [key for key in index_keys(f) if not key.startswith("n:") or key.count(":") == 2 and not key.endswith("?")]

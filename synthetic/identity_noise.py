"""How a clerk records a person: the ID number and name variants that identity resolution must absorb.

Shares are per record (a patient row at one hospital, a resident row at one county): the same person can be
recorded cleanly in one place and with an old 15-digit number or a typo in another.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

from synthetic.names import pinyin_name, traditional_name
from synthetic.population import Person

ID_MISSING_SHARE = 0.05  # no ID number at all (includes newborns, who have none yet)
OLD_15_DIGIT_SHARE = 0.01  # share of all records; only people born before 1984 can have one
FULL_WIDTH_SHARE = 0.01
BAD_CHECK_SHARE = 0.01
SPACES_SHARE = 0.005
LOWERCASE_X_SHARE = 0.35  # of the numbers ending in X
TRADITIONAL_NAME_SHARE = 0.01
PINYIN_NAME_SHARE = 0.01
_OLD_ID_BORN_BEFORE = 1984
_ELIGIBLE_OLD_SHARE = 0.55  # about this share of a Xinyang population was born before 1984

_FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


def _bad_check(number: str, rng: random.Random) -> str:
    wrong = [c for c in "0123456789X" if c != number[17]]
    return number[:17] + rng.choice(wrong)


def record_id(person: Person, rng: random.Random, day: dt.date, noise: Counter[str]) -> tuple[str | None, str | None]:
    """(id_type, id_number) as written on one record; counts each variant in ``noise``."""
    if person.id_number is None or rng.random() < ID_MISSING_SHARE - 0.004:
        noise["id_missing"] += 1
        return None, None
    number = person.id_number
    # Children under 16 usually show the household register (户口簿), which carries the same number.
    id_type = "02" if person.age_on(day) < 16 and rng.random() < 0.7 else "01"
    r = rng.random()
    if r < OLD_15_DIGIT_SHARE / _ELIGIBLE_OLD_SHARE and person.birth_date.year < _OLD_ID_BORN_BEFORE:
        noise["id_15_digit"] += 1
        return id_type, number[:6] + number[8:17]
    r = rng.random()
    if r < FULL_WIDTH_SHARE:
        noise["id_full_width"] += 1
        number = number.translate(_FULL_WIDTH)
    elif r < FULL_WIDTH_SHARE + BAD_CHECK_SHARE:
        noise["id_bad_check"] += 1
        number = _bad_check(number, rng)
    elif r < FULL_WIDTH_SHARE + BAD_CHECK_SHARE + SPACES_SHARE:
        noise["id_spaces"] += 1
        number = f"{number[:6]} {number[6:14]} {number[14:]}"
    if number.endswith("X") and rng.random() < LOWERCASE_X_SHARE:
        noise["id_lowercase_x"] += 1
        number = number[:-1] + "x"
    return id_type, number


def record_name(person: Person, rng: random.Random, noise: Counter[str]) -> str:
    """The name as typed: mostly as registered, sometimes in traditional characters or in pinyin."""
    r = rng.random()
    if r < TRADITIONAL_NAME_SHARE:
        variant = traditional_name(person.name)
        if variant:
            noise["name_traditional"] += 1
            return variant
    elif r < TRADITIONAL_NAME_SHARE + PINYIN_NAME_SHARE and person.display_name is None:
        variant = pinyin_name(person.surname, person.given)
        if variant:
            noise["name_pinyin"] += 1
            return variant
    return person.name

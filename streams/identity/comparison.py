"""Pairwise comparison of two records: a vector of agreement levels, plus the hard vetoes.

Each comparison maps a pair to a small integer level (higher = closer agreement); NULL (-1) means one
side lacks the field, which the Fellegi-Sunter model scores as neither for nor against (as Splink does).
The vetoes are not scores: two different valid ID numbers, or two known different sexes, are never one
person, whatever else agrees (twins share everything else).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rapidfuzz.distance import OSA, JaroWinkler
from rapidfuzz.fuzz import token_sort_ratio

from streams.identity.features import MatchFeatures
from streams.identity.normalise import names_homophone

NULL = -1


@dataclass(frozen=True, slots=True)
class Comparison:
    name: str
    levels: tuple[str, ...]  # level labels, index = level (0 = disagree)


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("name", ("different", "one_word", "similar", "homophone", "exact")),
    Comparison("birth_date", ("different", "same_year", "near", "exact")),
    Comparison("sex", ("different", "same")),
    Comparison("phone", ("different", "one_edit", "exact")),
    Comparison("address", ("different", "similar", "very_similar", "exact")),
    Comparison("id_number", ("different", "same_area_and_birth", "one_edit")),
    Comparison("card", ("different", "two_edits", "one_edit")),
)
COMPARISON_NAMES = tuple(c.name for c in COMPARISONS)

ComparisonVector = tuple[int, int, int, int, int, int, int]


def _name_level(a: MatchFeatures, b: MatchFeatures) -> int:
    if a.name is None or b.name is None:
        return NULL
    if a.name.text == b.name.text:
        return 4
    if names_homophone(a.name, b.name):
        return 3
    if not a.name.romanised and not b.name.romanised:
        # Two names in characters that neither match nor sound alike: siblings share the surname and often
        # a generation character (尹豪俊 / 尹豪家), and input-method typos come out as homophones anyway.
        return 0
    # A romanised name: Jaro-Winkler on the pinyin keys absorbs spelling typos.
    best = max(
        JaroWinkler.similarity(a.name.pinyin, b.name.pinyin),
        JaroWinkler.similarity(a.name.pinyin, b.name.pinyin_given_first),
        JaroWinkler.similarity(a.name.pinyin_given_first, b.name.pinyin),
    )
    if best >= 0.88:
        return 2
    if a.name.romanised and b.name.romanised and set(a.name.text.split()) & set(b.name.text.split()):
        return 1  # one word shared: a given name replaced by a nickname, or the surname after marriage
    return 0


def _near_date(a: dt.date, b: dt.date) -> bool:
    if abs((a - b).days) <= 1:
        return True
    if a.year == b.year:  # day/month swapped, or one month/day digit typed wrong or swapped
        return (a.month == b.day and a.day == b.month) or OSA.distance(f"{a:%m%d}", f"{b:%m%d}") <= 1
    # A wrong last digit of the year. Not the others: 1950 and 1980 differ in one digit, and a father and
    # son of one name may share a birthday.
    return (a.month, a.day) == (b.month, b.day) and a.year // 10 == b.year // 10


def _birth_level(a: MatchFeatures, b: MatchFeatures) -> int:
    if a.birth_date is None or b.birth_date is None:
        return NULL
    if a.birth_date == b.birth_date:
        return 3
    if _near_date(a.birth_date, b.birth_date):
        return 2
    return 1 if a.birth_date.year == b.birth_date.year else 0


def _sex_level(a: MatchFeatures, b: MatchFeatures) -> int:
    if a.sex is None or b.sex is None:
        return NULL
    return 1 if a.sex == b.sex else 0


def _phone_level(a: MatchFeatures, b: MatchFeatures) -> int:
    if a.phone is None or b.phone is None:
        return NULL
    if a.phone == b.phone:
        return 2
    return 1 if OSA.distance(a.phone, b.phone) <= 1 else 0


def _address_level(a: MatchFeatures, b: MatchFeatures) -> int:
    if a.address is None or b.address is None:
        return NULL
    if a.address == b.address:
        return 3
    # Word order varies in romanised addresses ("23 allunga woollum street"); Chinese ones have no spaces,
    # where the sorted-token ratio is the plain ratio.
    similarity = token_sort_ratio(a.address, b.address)
    return 2 if similarity >= 90 else 1 if similarity >= 75 else 0


def _id_number(f: MatchFeatures) -> str | None:
    return f.citizen_id or f.id_evidence


def _id_level(a: MatchFeatures, b: MatchFeatures) -> int:
    """Partial agreement of ID numbers where at least one failed its check (equal valid ones are a key)."""
    x, y = _id_number(a), _id_number(b)
    if x is None or y is None or (a.citizen_id and b.citizen_id):
        return NULL
    if OSA.distance(x, y) <= 1:  # a typo; twins' numbers differ in the sequence digit and the check
        return 2
    return 1 if x[:14] == y[:14] else 0


def _card_level(a: MatchFeatures, b: MatchFeatures) -> int:
    """Near agreement of card numbers; equal ones are a key (NULL here), a reissued card differs entirely."""
    levels = [
        min(2, max(0, 3 - OSA.distance(x, y, score_cutoff=3))) if len(x) >= 6 else 0
        for x, y in ((a.insurance_card, b.insurance_card), (a.health_card, b.health_card))
        if x and y and x != y
    ]
    return max(levels) if levels else NULL


def compare(a: MatchFeatures, b: MatchFeatures) -> ComparisonVector:
    return (
        _name_level(a, b),
        _birth_level(a, b),
        _sex_level(a, b),
        _phone_level(a, b),
        _address_level(a, b),
        _id_level(a, b),
        _card_level(a, b),
    )


def veto(a: MatchFeatures, b: MatchFeatures) -> str | None:
    """Why these two can never be one person, or None."""
    if a.citizen_id and b.citizen_id and a.citizen_id != b.citizen_id:
        return "different_valid_id_numbers"
    if a.sex and b.sex and a.sex != b.sex:
        return "different_sexes"
    return None


NAME, BIRTH_DATE, SEX, PHONE, ADDRESS, ID_NUMBER, CARD = range(len(COMPARISONS))


def personally_corroborated(vector: ComparisonVector) -> bool:
    """May a score link these two at all? Household evidence alone may not.

    A family shares phone and address, so those two can outweigh everything under the model's
    independence assumption: twins (another name, same birth date), a father and son of one name (other
    birth year). A probabilistic link therefore needs a personal attribute that agrees (name, birth date,
    near-equal ID number or card), and where the name or the birth date disagrees outright, a near-equal ID
    number or card to explain it.
    """
    name, birth, ident, card = vector[NAME], vector[BIRTH_DATE], vector[ID_NUMBER], vector[CARD]
    strong = ident == 2 or card >= 1
    if name == 0 or birth in (0, 1):
        return strong
    return strong or name >= 2 or birth >= 2

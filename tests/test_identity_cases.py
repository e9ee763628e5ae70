"""The synthetic identity cases: deterministic, truthful, hard where they claim to be, decidable by a human."""

from __future__ import annotations

import csv
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from pypinyin import lazy_pinyin

from foundation.standards.citizen_id import parse_citizen_id
from streams.identity.normalise import (
    NormalisedName,
    names_homophone,
    normalise_card,
    normalise_name,
    normalise_phone,
)
from streams.identity.record import CSV_HEADER, SourceRecord
from synthetic.identity_cases import (
    HOMOPHONES,
    RECORD_CASES,
    IdentityCaseSet,
    generate_identity_cases,
    write_cases_csv,
)

PERSONS = 4000
HARD_CASES = (
    "shared_name_birth_year_persons",
    "shared_name_birth_date_persons",
    "namesake_planted_pairs",
    "twin_pairs",
    "shared_phone_persons",
    "phone_family_records",
    "father_son_same_name_pairs",
    "name_homophone_records",
    "name_traditional_records",
    "name_pinyin_records",
    "id_15_digit_records",
    "id_full_width_records",
    "id_bad_check_records",
    "id_digit_typo_records",
    "phone_transposed_records",
    "address_one_char_records",
    "birth_date_swapped_records",
    "birth_date_off_by_one_records",
    "id_missing_records",
    "phone_missing_records",
    "birth_date_missing_records",
    "sex_unknown_records",
    "name_missing_records",
    "no_id_persons",
    "newborn_placeholder_persons",
    "newborn_renamed_persons",
    "card_only_persons",
    "re_registered_persons",
)


@pytest.fixture(scope="module")
def cases() -> IdentityCaseSet:
    return generate_identity_cases(PERSONS, seed=7)


def _is_placeholder(record: SourceRecord) -> bool:
    return record.name.endswith(("之子", "之女"))


@dataclass(frozen=True)
class _Seen:
    """What a careful clerk reads off one record."""

    record: SourceRecord
    id17: str | None
    name: NormalisedName | None
    phone: str | None
    cards: tuple[str, ...]


def _seen(record: SourceRecord) -> _Seen:
    parsed = parse_citizen_id(record.id_number)
    cards = tuple(
        f"{kind}:{normalise_card(value)}"
        for kind, value in (("h", record.health_card), ("i", record.insurance_card))
        if value
    )
    return _Seen(
        record,
        parsed.number[:17] if parsed else None,
        normalise_name(record.name),
        normalise_phone(record.phone),
        cards,
    )


def _evidently_same(a: _Seen, b: _Seen) -> bool:
    """The module docstring's linkability rule, written independently of the generator's bookkeeping."""
    ra, rb = a.record, b.record
    if a.id17 and a.id17 == b.id17 or set(a.cards) & set(b.cards):
        return True
    if ra.local_id and (ra.org_code, ra.local_id) == (rb.org_code, rb.local_id):
        return True
    if not (a.name and b.name and ra.birth_date and ra.birth_date == rb.birth_date and names_homophone(a.name, b.name)):
        return False
    if a.phone and a.phone == b.phone or ra.address and ra.address == rb.address:
        return True
    return bool(a.id17 and b.id17 and sum(x != y for x, y in zip(a.id17, b.id17, strict=True)) <= 1)


def _by_person(cases: IdentityCaseSet) -> dict[str, list[SourceRecord]]:
    persons: dict[str, list[SourceRecord]] = defaultdict(list)
    for record in cases.records:
        persons[cases.truth[record.record_id]].append(record)
    return persons


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    first, again = generate_identity_cases(600, seed=11), generate_identity_cases(600, seed=11)
    assert first.records == again.records and first.truth == again.truth and first.case_counts == again.case_counts
    assert generate_identity_cases(600, seed=12).records != first.records
    assert set(RECORD_CASES) <= set(first.case_counts)  # every bench row, even where a small set has none
    assert generate_identity_cases(0).records == []


def test_truth_covers_every_record_and_exactly_the_persons(cases: IdentityCaseSet) -> None:
    ids = [r.record_id for r in cases.records]
    assert len(set(ids)) == len(ids) and set(cases.truth) == set(ids)
    assert len(set(cases.truth.values())) == PERSONS == cases.case_counts["persons"]
    assert 2.2 < len(ids) / PERSONS < 2.8
    assert all(r.sex in "0129" and len(r.sex) == 1 for r in cases.records)


def test_csv_files(cases: IdentityCaseSet, tmp_path: Path) -> None:
    records_csv, truth_csv = tmp_path / "records.csv", tmp_path / "truth.csv"
    write_cases_csv(cases, records_csv, truth_csv)
    with records_csv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CSV_HEADER
        assert [SourceRecord.from_row(row) for row in reader] == cases.records
    with truth_csv.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["record_id", "person_key"] and dict(map(tuple, rows[1:])) == cases.truth


def test_every_hard_case_occurs(cases: IdentityCaseSet) -> None:
    missing = [case for case in HARD_CASES if cases.case_counts.get(case, 0) <= 0]
    assert not missing, missing


def test_strangers_share_common_names_birth_dates_and_counties(cases: IdentityCaseSet) -> None:
    persons = _by_person(cases)
    named: dict[str, set[str]] = defaultdict(set)
    same_birth: dict[tuple[str, str], set[str]] = defaultdict(set)
    same_year_county: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for key, records in persons.items():
        for r in records:
            named[r.name].add(key)
            if r.birth_date:
                same_birth[(r.name, r.birth_date)].add(key)
                if r.address:
                    same_year_county[(r.name, r.birth_date[:4], r.address[6:9])].add(key)
    assert sum(len(named[n]) for n in ("张伟", "王伟", "王芳", "李娜", "刘洋", "李伟", "张浩")) >= 15
    assert any(len(keys) > 1 for keys in same_birth.values())
    assert any(len(keys) > 1 for keys in same_year_county.values())


def test_twins_share_birth_date_phone_and_address_but_not_id(cases: IdentityCaseSet) -> None:
    households: dict[tuple[str, str, str], dict[str, SourceRecord]] = defaultdict(dict)
    for r in cases.records:
        if r.birth_date and r.phone and r.address and r.name and not _is_placeholder(r):
            households[(r.birth_date, r.phone, r.address)].setdefault(cases.truth[r.record_id], r)
    twins = [group for group in households.values() if len(group) > 1]
    assert twins
    sequence_gaps = []
    for group in twins:
        a, b = list(group.values())[:2]
        assert normalise_name(a.name).pinyin != normalise_name(b.name).pinyin  # a human can tell them apart
        ia, ib = parse_citizen_id(a.id_number), parse_citizen_id(b.id_number)
        if ia and ib and ia.valid and ib.valid:
            assert ia.number != ib.number
            sequence_gaps.append(abs(int(ia.number[14:17]) - int(ib.number[14:17])))
    assert any(gap <= 4 for gap in sequence_gaps)


def test_father_and_son_share_a_name_phone_and_address(cases: IdentityCaseSet) -> None:
    families: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)  # (name, address) -> person -> birth
    for r in cases.records:
        if r.name and r.address and r.birth_date:
            families[(r.name, r.address)].setdefault(cases.truth[r.record_id], r.birth_date)
    gaps = [
        abs(int(a[:4]) - int(b[:4]))
        for group in families.values()
        if len(group) > 1
        for a, b in itertools.combinations(group.values(), 2)
    ]
    assert any(20 <= gap <= 40 for gap in gaps)


def test_ids_parse_and_are_valid_unless_deliberately_bad(cases: IdentityCaseSet) -> None:
    invalid = 0
    valid_by_person: dict[str, set[str]] = defaultdict(set)
    sex_checked = 0
    for r in cases.records:
        if not r.id_number:
            assert r.id_type == ""
            continue
        parsed = parse_citizen_id(r.id_number)
        assert parsed is not None, r.id_number
        assert r.id_type in ("01", "02")
        if not parsed.valid:
            invalid += 1
            continue
        valid_by_person[cases.truth[r.record_id]].add(parsed.number)
        if r.sex in ("1", "2"):
            assert parsed.sex == r.sex
            sex_checked += 1
        if len(r.id_number) == 15:
            assert parsed.birth_date is not None and parsed.birth_date.year < 1984
    assert invalid == cases.case_counts["id_bad_check_records"] + cases.case_counts["id_digit_typo_records"]
    assert all(len(numbers) == 1 for numbers in valid_by_person.values())  # one person, one number
    assert sex_checked > PERSONS


def test_local_ids_are_per_institution_and_re_registration_happens(cases: IdentityCaseSet) -> None:
    owners: dict[tuple[str, str], set[str]] = defaultdict(set)
    local_ids: dict[tuple[str, str], set[str]] = defaultdict(set)  # (person, org) -> local ids
    for r in cases.records:
        assert r.org_code and r.local_id
        owners[(r.org_code, r.local_id)].add(cases.truth[r.record_id])
        local_ids[(cases.truth[r.record_id], r.org_code)].add(r.local_id)
    assert all(len(keys) == 1 for keys in owners.values())
    assert any(len(ids) > 1 for ids in local_ids.values())


def test_every_person_is_linkable_by_a_careful_human(cases: IdentityCaseSet) -> None:
    """Each person's records are connected under the linkability rule (a newborn's placeholder-named birth
    records among themselves: linking them to the named ones is the declared hard case)."""
    broken = []
    for key, records in _by_person(cases).items():
        for part in ([r for r in records if not _is_placeholder(r)], [r for r in records if _is_placeholder(r)]):
            seen = [_seen(r) for r in part]
            reached, frontier = {0}, [0]
            while frontier and seen:
                i = frontier.pop()
                for j in range(len(seen)):
                    if j not in reached and _evidently_same(seen[i], seen[j]):
                        reached.add(j)
                        frontier.append(j)
            if seen and len(reached) != len(seen):
                broken.append(key)
    assert not broken, broken[:5]


def test_the_linkability_rule_never_joins_two_persons(cases: IdentityCaseSet) -> None:
    blocks: dict[tuple[str, ...], list[_Seen]] = defaultdict(list)
    for r in cases.records:
        s = _seen(r)
        keys = [("local", r.org_code, r.local_id), *(("card", c) for c in s.cards)]
        if s.id17:
            keys.append(("id", s.id17))
        if s.name and r.birth_date:  # homophone names: the pinyin keys (both orders for romanised names)
            keys += [("name", k, r.birth_date) for k in {s.name.pinyin, s.name.pinyin_given_first}]
        for k in keys:
            blocks[k].append(s)
    joined = [
        (a.record.record_id, b.record.record_id)
        for block in blocks.values()
        for a, b in itertools.combinations(block, 2)
        if cases.truth[a.record.record_id] != cases.truth[b.record.record_id] and _evidently_same(a, b)
    ]
    assert not joined, joined[:5]


def test_naive_name_and_birth_date_matching_is_fooled(cases: IdentityCaseSet) -> None:
    """Same normalised name and birth date → same person: the strangers (namesakes) make it imprecise."""
    groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for r in cases.records:
        name = normalise_name(r.name)
        if name and r.birth_date:
            groups[(name.text, r.birth_date)][cases.truth[r.record_id]] += 1
    pairs = sum(n * (n - 1) // 2 for g in groups.values() for n in [sum(g.values())])
    true_pairs = sum(n * (n - 1) // 2 for g in groups.values() for n in g.values())
    assert pairs > 0 and true_pairs / pairs < 0.99


def test_homophones_read_the_same() -> None:
    for char, variants in HOMOPHONES.items():
        for variant in variants:
            assert lazy_pinyin(variant) == lazy_pinyin(char), (char, variant)


def test_name_variants_of_one_person_sound_alike(cases: IdentityCaseSet) -> None:
    """Homophone, traditional and pinyin spellings normalise to the person's own name sound."""
    variants = 0
    for records in _by_person(cases).values():
        sounds: Counter[str] = Counter()
        names = [normalise_name(r.name) for r in records if r.name and not _is_placeholder(r)]
        for n in names:
            sounds[n.pinyin] += 1
        if len(sounds) > 1:
            main = sounds.most_common(1)[0][0]
            reference = next(n for n in names if n.pinyin == main)
            variants += 1
            assert all(names_homophone(reference, n) for n in names), [n.text for n in names]
    assert variants > 0

"""Patient-identity records with ground truth, for measuring an EMPI matcher's pairwise precision and recall.

``generate_identity_cases(persons, seed)`` draws Xinyang residents household by household (the shared
``population`` builder: families sharing a phone and an address, the old and children giving the household's
number, realistic cohort names), gives each person a few records at Xinyang hospitals and county platforms
(each institution numbering its patients in its own ``local_id`` namespace) and returns the records, the true
person of every record and how often each hard case occurs. Same seed, same output. Births run 1930 to the
fixed reference day 2025-06-30; records date from 2018 on. ``case_counts`` keys end in ``_persons``, ``_pairs``
or ``_records``: the unit of each count.

Hard cases, with approximate shares:

1. Common names shared by strangers: on top of the name module's natural concentration (张浩, 王芳, 李建国 …),
   ~6% of people carry one of their cohort's top given names (伟, 芳, 娜, 洋, 秀英, 欣怡 …); ~2% are planted
   in same-name-same-birth-date stranger pairs (``NAMESAKE_PAIR_SHARE``). A small synthetic population holds
   far fewer such coincidences than Xinyang's 6 million, so they are planted to reach city-scale density.
2. Twins (~1% of people, child twins in the parents' household): same surname, given names usually sharing
   a character (子轩/子豪), same birth date, address and family phone, ID sequence numbers a few apart.
3. Families sharing phone and address: from the population builder (parents, children, left-behind
   grandparents; about half of all people share their phone with someone); on up to 4% of adult records
   (when a relative has another number: ~2% of all records) a spouse's or relative's phone is given.
4. Father and son with the same full name (~0.3% of people are such a son; 22-38 years apart, same household).
5.-9. Per record (a person can be clean at one hospital and noisy at another): homophone characters (2%,
   张伟→章伟, 李娜→李纳), traditional characters and pinyin in three styles (~1% each, via identity_noise;
   no pinyin for names with 长, which reads chang or zhang),
   15-digit, full-width, spaced, bad-check-character and lower-case-x IDs (identity_noise shares), one wrong
   ID digit (1%), transposed phone digits (1%), one-character address differences (2%), day/month-swapped
   (1%) and ±1-day (1%) birth dates.
10. Missing identifiers: IDs missing on ~5% of records (+20% for children under 3 and people over 85), and
   no ID on any record for half the infants and 15% of people over 85; phone (4%), birth date (2%), address
   (3%), name (0.5%) missing; sex recorded as 0/9 on 1.5%.
11. Newborns (born 2-12 months before the reference day, not twins) first recorded at a maternal and child
   health hospital as 王芳之子/李娜之女 under their own local id (35% of them), later under their real name:
   ``newborn_renamed`` counts the persons whose records show both. They are separate persons from the mother.
12. Card-only persons (1.5%): no ID on any record, linked by their insurance or e-health card.
Re-registration: 4% of (person, institution) pairs with several records get a second local id from a
random later visit on.

Human-linkability rule (the ground truth must be decidable by a careful clerk): two records are *evidently*
the same person when they share (a) the first 17 ID characters after normalisation (15→18 digits, NFKC,
spaces, case), (b) an insurance or e-health card, (c) institution + local id, (d) a homophone-equal name and
the same birth date plus the same phone or address, or (e) an ID one character apart plus (d)'s name and
birth date. Every person's records (apart from a newborn's placeholder-named ones, the declared hard case
11) are connected under this rule: after noise is drawn, records outside the connected part get their
person's anchor evidence (clean ID, card, or name+birth date+phone) restored. And the rule never connects two
persons: persons who share a name's sound and birth date (namesakes, natural or planted) get IDs at least two
characters apart and no typo-class noise (ID digit, phone transposition, address character); an ID typo never
lands on another person's number; no two members of a household have names that sound alike (bar a planted
father and son, decades apart), so twins never do. A name's sound is its pinyin (names.PINYIN).
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import gc
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from foundation.standards.citizen_id import make_citizen_id
from streams.identity.record import CSV_HEADER, SourceRecord
from synthetic.identity_noise import record_id, record_name
from synthetic.institutions import CITY_DISTRICTS, Institution, build_institutions
from synthetic.names import GIVEN_NAMES, cohort, pick_given_name, pinyin_name
from synthetic.population import Person, PopulationBuilder, build_population
from synthetic.seeding import derive_rng, poisson, zipf_weights

REFERENCE_DAY = dt.date(2025, 6, 30)  # fixed, so the output does not depend on when it is generated
EARLIEST_BIRTH = dt.date(1930, 1, 1)
RECORDS_FROM = dt.date(2018, 1, 1)

# Person-level shares (of all persons).
COMMON_GIVEN_SHARE = 0.06
NAMESAKE_PAIR_SHARE = 0.01  # stranger pairs with the same name and birth date, per person
TWIN_PAIR_SHARE = 0.005  # twin pairs per person, natural ones included
FATHER_SON_SHARE = 0.003
CARD_ONLY_SHARE = 0.015
_CARD_HOLDERS = 0.83  # share of people with an insurance or e-health card (population builder: 70% / 45%)
NO_ID_INFANT_SHARE = 0.5  # under 1 year: not yet in the household register
NO_ID_OLDEST_SHARE = 0.15  # 85 and over
PLACEHOLDER_NEWBORN_SHARE = 0.35
RE_REGISTRATION_SHARE = 0.04  # per (person, institution) with at least two records

# Record-level shares (identity_noise adds its own for IDs, traditional and pinyin names).
NAME_MISSING_SHARE = 0.005
NAME_HOMOPHONE_SHARE = 0.02
SEX_UNKNOWN_SHARE = 0.015
BIRTH_MISSING_SHARE = 0.02
BIRTH_SWAPPED_SHARE = 0.025  # of records whose day is 12 or less (only those can be swapped): ~1% of all
BIRTH_OFF_BY_ONE_SHARE = 0.01
ID_DIGIT_TYPO_SHARE = 0.01
ID_MISSING_YOUNG_OLD_SHARE = 0.2  # extra, under 3 and 85 and over
PHONE_MISSING_SHARE = 0.04
PHONE_TRANSPOSED_SHARE = 0.01
FAMILY_PHONE_SHARE = 0.04  # adults giving a spouse's or relative's number
ADDRESS_MISSING_SHARE = 0.03
ADDRESS_ONE_CHAR_SHARE = 0.02
HEALTH_CARD_ON_RECORD = 0.5  # of the records of people who have an e-health card
INSURANCE_CARD_ON_RECORD = 0.6

# Each cohort's top given names, commonest first: where the 张伟s and 王芳s come from.
COMMON_GIVEN: dict[tuple[str, str], tuple[str, ...]] = {
    ("old", "1"): ("建国", "建华", "建军", "国强", "志强"),
    ("old", "2"): ("秀英", "桂英", "秀兰", "玉兰", "桂兰"),
    ("mid", "1"): ("伟", "勇", "军", "磊", "洋", "强", "杰", "涛"),
    ("mid", "2"): ("芳", "娜", "静", "敏", "丽", "艳", "洋"),
    ("young", "1"): ("浩", "宇", "子轩", "浩然", "宇轩"),
    ("young", "2"): ("欣怡", "梓涵", "一诺", "子涵", "诗涵"),
}
_COMMON_CUM = {key: tuple(itertools.accumulate(zipf_weights(len(v), 1.0))) for key, v in COMMON_GIVEN.items()}
# What a clerk's pinyin input method offers for the same syllable (same reading without tones).
HOMOPHONES: dict[str, str] = {
    "张": "章",
    "王": "汪",
    "李": "黎里",
    "刘": "柳留",
    "陈": "臣晨",
    "杨": "阳扬",
    "黄": "皇",
    "吴": "伍武",
    "周": "舟州",
    "徐": "许",
    "许": "徐",
    "朱": "珠诸",
    "胡": "湖",
    "郭": "国",
    "何": "和河",
    "林": "琳霖",
    "罗": "洛",
    "郑": "正",
    "梁": "良",
    "唐": "堂",
    "韩": "寒",
    "冯": "逢",
    "邓": "登",
    "伟": "玮炜韦",
    "娜": "纳",
    "芳": "方",
    "静": "晶婧",
    "丽": "莉俐",
    "敏": "民",
    "军": "君钧",
    "杰": "洁捷",
    "涛": "滔韬",
    "斌": "彬滨",
    "明": "鸣铭",
    "华": "桦",
    "峰": "锋枫",
    "辉": "晖",
    "鹏": "朋",
    "霞": "侠",
    "燕": "艳雁",
    "玲": "铃伶",
    "婷": "亭庭",
    "红": "虹鸿",
    "英": "瑛",
    "兰": "岚",
    "珍": "贞",
    "梅": "玫",
    "秀": "绣",
    "桂": "贵",
    "凤": "风",
    "宇": "雨羽",
    "浩": "皓昊",
    "轩": "萱宣",
    "涵": "含晗",
    "欣": "心鑫",
    "怡": "仪宜",
    "磊": "蕾",
    "勇": "永",
    "刚": "钢",
    "平": "萍",
    "俊": "骏峻",
    "飞": "菲",
    "琴": "芹",
    "慧": "惠",
    "艳": "燕",
    "娟": "鹃",
    "萍": "平",
    "莉": "丽",
    "颖": "莹",
    "洋": "阳",
    "建": "健",
    "志": "智",
    "文": "雯",
    "玉": "钰",
}
_POLYPHONIC = frozenset("长")  # chang/zhang: romanising it is a guess, so no pinyin variant is written
_COHORT_CHARS = {key: tuple(dict.fromkeys(c for n in names for c in n)) for key, names in GIVEN_NAMES.items()}
# Every HIS numbers its patients its own way; county platforms use health-archive numbers (area code first).
_LOCAL_ID_STYLES = ("P{n:08d}", "{n:010d}", "H{n:08d}", "MZ{n:08d}", "P{n:08d}", "{n:09d}")
_CLEAN_NAME_KINDS = frozenset(("clean", "traditional", "pinyin", "homophone"))


@dataclass(frozen=True)
class IdentityCaseSet:
    records: list[SourceRecord]
    truth: dict[str, str]  # record_id -> true person key (ground truth; never a CSV column)
    case_counts: dict[str, int]  # keys end in _persons, _pairs or _records: the unit of the count


@dataclass(slots=True)
class _Draft:
    """One record being written, with what was done to each field (for repair and counting)."""

    person: Person
    org: Institution
    local_id: str
    day: dt.date
    name: str = ""
    name_kind: str = "clean"  # clean traditional pinyin homophone missing placeholder
    sex: str = ""
    sex_kind: str = "clean"
    birth_date: str = ""
    birth_kind: str = "exact"  # exact swapped off_by_one missing
    id_type: str = ""
    id_number: str = ""
    id_kinds: tuple[str, ...] = ()  # () clean; "id_missing", "id_digit_typo" or identity_noise's labels
    health_card: str = ""
    insurance_card: str = ""
    phone: str = ""
    phone_kind: str = "exact"  # exact missing transposed family
    address: str = ""
    address_kind: str = "exact"  # exact missing one_char

    @property
    def id_ok(self) -> bool:
        return bool(self.id_number) and "id_digit_typo" not in self.id_kinds

    @property
    def name_and_birth_ok(self) -> bool:
        return self.name_kind in _CLEAN_NAME_KINDS and self.birth_kind == "exact"


@dataclass(slots=True)
class _Plan:
    """Person-level cases, decided before any record is written."""

    twins: list[tuple[Person, Person]] = field(default_factory=list)
    father_son: list[tuple[Person, Person]] = field(default_factory=list)
    namesakes: int = 0  # planted pairs
    card_only: set[int] = field(default_factory=set)  # pids; membership only
    no_id: set[int] = field(default_factory=set)
    placeholder_mother: dict[int, Person] = field(default_factory=dict)  # newborn pid -> mother
    protected: set[int] = field(default_factory=set)  # in a same-sound-same-birth-date group: no typo noise


def generate_identity_cases(persons: int, seed: int = 7, records_per_person_mean: float = 2.5) -> IdentityCaseSet:
    """``persons`` true persons with on average ``records_per_person_mean`` records each (at least one)."""
    if persons < 0 or records_per_person_mean < 1:
        raise ValueError("need persons >= 0 and records_per_person_mean >= 1")
    with _gc_paused():
        return _generate(persons, seed, records_per_person_mean)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Generation allocates ~15 long-lived objects per record and frees none: the cyclic collector's passes
    over them find nothing and cost a fifth of the run at 40,000 persons."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _generate(persons: int, seed: int, records_per_person_mean: float) -> IdentityCaseSet:
    builder = build_population(
        derive_rng(seed, "identity_cases", "population"), round(persons * 1.02) + 50, REFERENCE_DAY, []
    )
    _add_twins(builder, derive_rng(seed, "identity_cases", "twins"), persons)
    people, households = _select(builder, persons)
    _separate_household_sounds(households, derive_rng(seed, "identity_cases", "household_names"))
    plan = _plan_cases(people, households, derive_rng(seed, "identity_cases", "cases"))

    writer = _RecordWriter(
        derive_rng(seed, "identity_cases", "records"),
        households,
        plan,
        {p.id_number[:17] for p in people if p.id_number},
    )
    factors = [_record_factor(p) for p in people]
    scale = (records_per_person_mean - 1) * len(factors) / (sum(factors) or 1)
    drafts: list[tuple[int, _Draft]] = []
    for index, person in enumerate(people):
        count = 1 + poisson(writer.rng, scale * factors[index])
        drafts.extend((index, d) for d in writer.person_records(person, count))

    derive_rng(seed, "identity_cases", "order").shuffle(drafts)  # no person's records side by side
    records: list[SourceRecord] = []
    truth: dict[str, str] = {}
    for n, (index, d) in enumerate(drafts, 1):
        rid = f"R{n:08d}"
        records.append(
            SourceRecord(
                rid,
                d.org.org_code,
                d.local_id,
                d.name,
                d.sex,
                d.birth_date,
                d.id_type,
                d.id_number,
                d.health_card,
                d.insurance_card,
                d.phone,
                d.address,
            )
        )
        truth[rid] = f"person-{index:06d}"
    return IdentityCaseSet(records, truth, _count_cases(people, [d for _, d in drafts], plan, writer))


def write_cases_csv(cases: IdentityCaseSet, records_csv: Path, truth_csv: Path | None = None) -> None:
    """Records with the ``healthbus empi link`` header; the truth, when asked for, in a separate file."""
    with records_csv.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_HEADER)
        out.writerows([getattr(r, name) for name in CSV_HEADER] for r in cases.records)
    if truth_csv is not None:
        with truth_csv.open("w", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            out.writerow(("record_id", "person_key"))
            out.writerows(cases.truth.items())


# --- persons ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=65_536)
def _sound(surname: str, given: str) -> str:
    """What a name sounds like (homophones and pinyin spellings compare equal); the name itself if unknown."""
    return pinyin_name(surname, given) or surname + given


def _age(person: Person) -> int:
    return person.age_on(REFERENCE_DAY)


def _household_phone(builder: PopulationBuilder, household: int) -> str | None:
    return builder.population.people[builder.population.by_household[household][0]].phone


def _add_twins(builder: PopulationBuilder, rng: random.Random, persons: int) -> None:
    """Child twins in their parents' household until twins make up ``TWIN_PAIR_SHARE`` of the pairs."""
    people = builder.population.people
    paired = {p.twin_of for p in people if p.twin_of is not None}
    wanted = round(TWIN_PAIR_SHARE * persons) - len(paired)
    if wanted <= 0:
        return
    candidates = [
        p
        for p in people
        if _age(p) <= 25
        and p.twin_of is None
        and p.pid not in paired
        and any(
            q.birth_date.year - p.birth_date.year <= -18
            for q in (people[i] for i in builder.population.by_household[p.household])
        )
    ]
    for first in rng.sample(candidates, min(wanted, len(candidates))):
        sex = first.sex if rng.random() < 0.65 else ("2" if first.sex == "1" else "1")
        twin = builder.person(
            age=_age(first),
            sex=sex,
            surname=first.surname,
            county=first.region_code,
            township=first.township,
            address=first.address,
            household=first.household,
            phone=_household_phone(builder, first.household),
            birth=first.birth_date,
            twin_of=first,
        )
        twin.given = _twin_given(rng, first, twin)


def _twin_given(rng: random.Random, first: Person, twin: Person) -> str:
    """Parents often give twins names sharing a character (子轩/子豪); never names that sound the same."""
    chars = _COHORT_CHARS[(cohort(twin.birth_date.year), twin.sex)]
    taken = _sound(first.surname, first.given)
    for _ in range(30):
        r = rng.random()
        if len(first.given) == 2 and r < 0.65:
            given = first.given[0] + rng.choice(chars)
        elif len(first.given) == 2 and r < 0.8:
            given = rng.choice(chars) + first.given[1]
        else:
            given = pick_given_name(rng, twin.sex, twin.birth_date.year)
        if given != first.given and _sound(first.surname, given) != taken:
            return given
    raise RuntimeError("no distinct twin name found")


def _select(builder: PopulationBuilder, persons: int) -> tuple[list[Person], dict[int, list[Person]]]:
    """Exactly ``persons`` people, whole households first (the last one may be cut), all born 1930 or later."""
    people = builder.population.people
    chosen: list[Person] = []
    households: dict[int, list[Person]] = {}
    for household, pids in builder.population.by_household.items():
        if len(chosen) == persons:
            break
        members = [people[i] for i in pids]
        if any(p.birth_date < EARLIEST_BIRTH for p in members):
            continue
        members = members[: persons - len(chosen)]
        chosen.extend(members)
        households[household] = members
    if len(chosen) < persons:
        raise RuntimeError(f"population builder produced too few people ({len(chosen)} < {persons})")
    return chosen, households


def _confusable(person: Person, given: str, members: Iterable[Person], allowed: Iterable[int] = ()) -> bool:
    """Would ``person`` named ``given`` sound like another member of the household (bar ``allowed`` pids)?"""
    sound = _sound(person.surname, given)
    return any(m is not person and m.pid not in allowed and _sound(m.surname, m.given) == sound for m in members)


def _separate_household_sounds(households: dict[int, list[Person]], rng: random.Random) -> None:
    """Rename the rare household member whose name sounds like another's: parents don't do that, and the
    linkability rule needs it (name + birth date + shared phone must single out a person)."""
    for members in households.values():
        for person in members:
            while _confusable(person, person.given, members):
                person.given = pick_given_name(rng, person.sex, person.birth_date.year)


def _plan_cases(people: list[Person], households: dict[int, list[Person]], rng: random.Random) -> _Plan:
    plan = _Plan()
    by_pid = {p.pid: p for p in people}
    plan.twins = [(by_pid[p.twin_of], p) for p in people if p.twin_of is not None and p.twin_of in by_pid]
    twins = {p.pid for pair in plan.twins for p in pair}
    ids = {p.id_number for p in people if p.id_number}

    def plantable(p: Person) -> bool:
        return p.pid not in twins and p.twin_of is None

    # 1. Common names: a cohort's top given names on top of the natural concentration.
    for p in people:
        if plantable(p) and rng.random() < COMMON_GIVEN_SHARE:
            key = (cohort(p.birth_date.year), p.sex)
            given = COMMON_GIVEN[key][bisect.bisect_right(_COMMON_CUM[key], rng.random() * _COMMON_CUM[key][-1])]
            if not _confusable(p, given, households[p.household]):
                p.given = given

    # 4. Father and son with the same name (a son 22-38 years younger, same household).
    sons = [
        (p, f)
        for p in people
        if plantable(p) and p.sex == "1"
        for f in households[p.household]
        if plantable(f) and f.sex == "1" and 22 <= p.birth_date.year - f.birth_date.year <= 38
    ]
    rng.shuffle(sons)
    used: set[int] = set()
    for son, father in sons:
        if len(plan.father_son) >= round(FATHER_SON_SHARE * len(people)):
            break
        if son.pid in used or father.pid in used:
            continue
        if _confusable(son, father.given, households[son.household], (father.pid,)):
            continue
        son.given = father.given
        plan.father_son.append((father, son))
        used.update((son.pid, father.pid))

    # 1b. Stranger namesakes with the same birth date: B takes A's given name and birth date (and a new ID).
    pool: dict[tuple[str, str, int], list[Person]] = defaultdict(list)
    for p in people:
        if plantable(p) and p.pid not in used and _age(p) >= 1:
            pool[(p.surname, p.sex, p.birth_date.year)].append(p)
    common = [
        p
        for p in people
        if plantable(p)
        and p.pid not in used
        and _age(p) >= 1
        and p.given in COMMON_GIVEN[(cohort(p.birth_date.year), p.sex)]
    ]
    rng.shuffle(common)
    wanted = round(NAMESAKE_PAIR_SHARE * len(people))
    for a in common:
        if plan.namesakes >= wanted:
            break
        if a.pid in used:
            continue
        options = [
            b
            for d in (0, -1, 1)
            for b in pool[(a.surname, a.sex, a.birth_date.year + d)]
            if b.pid not in used and b.household != a.household and b.phone != a.phone and b.address != a.address
        ]
        if not options:
            continue
        b = rng.choice(options)
        members = households[b.household]
        if _confusable(b, a.given, members) or any(m.birth_date == a.birth_date for m in members if m is not b):
            continue  # no namesake that sounds like a relative, no accidental twin
        b.given, b.birth_date = a.given, a.birth_date
        b.id_number = _reissue_id(b, [a.id_number], ids, rng)
        used.update((a.pid, b.pid))
        plan.namesakes += 1

    # Every same-sound-same-birth-date group (planted or natural): IDs two characters apart, no typo noise.
    groups: dict[tuple[str, dt.date], list[Person]] = defaultdict(list)
    for p in people:
        groups[(_sound(p.surname, p.given), p.birth_date)].append(p)
    for group in groups.values():
        if len(group) < 2:
            continue
        plan.protected.update(p.pid for p in group)
        for i, p in enumerate(group[1:], 1):
            earlier = [q.id_number for q in group[:i]]
            if any(_distance17(p.id_number, q) < 2 for q in earlier):
                p.id_number = _reissue_id(p, earlier, ids, rng)

    # 12. Card-only persons; 10. persons no record shows an ID for.
    for p in people:
        age = _age(p)
        if p.pid not in used and (p.insurance_card or p.health_card) and rng.random() < CARD_ONLY_SHARE / _CARD_HOLDERS:
            plan.card_only.add(p.pid)
        elif age < 1 and rng.random() < NO_ID_INFANT_SHARE or age >= 85 and rng.random() < NO_ID_OLDEST_SHARE:
            plan.no_id.add(p.pid)

    # 11. Newborns first registered as 王芳之子 at a maternal and child health hospital.
    born_from, born_until = REFERENCE_DAY - dt.timedelta(days=365), REFERENCE_DAY - dt.timedelta(days=60)
    for p in people:
        if p.pid in twins or not born_from <= p.birth_date <= born_until:  # twins: 王芳之子 twice is undecidable
            continue
        mother = next(
            (m for m in households[p.household] if m.sex == "2" and 18 <= p.birth_date.year - m.birth_date.year <= 48),
            None,
        )
        if mother is not None and rng.random() < PLACEHOLDER_NEWBORN_SHARE:
            plan.placeholder_mother[p.pid] = mother
    return plan


def _distance17(a: str | None, b: str | None) -> int:
    if not a or not b:
        return 17
    return sum(x != y for x, y in zip(a[:17], b[:17], strict=True))


def _reissue_id(person: Person, avoid: list[str | None], ids: set[str], rng: random.Random) -> str:
    """A fresh valid number for ``person``'s (possibly changed) birth date: same area, same sex digit parity,
    unused, and at least two characters from each of ``avoid`` so no one-typo rule can join them."""
    assert person.id_number is not None
    area, male = person.id_number[:6], person.sex == "1"
    for _ in range(200):
        number = make_citizen_id(area, person.birth_date, rng.randrange(500) * 2 + (1 if male else 0))
        if number not in ids and all(_distance17(number, other) >= 2 for other in avoid):
            ids.discard(person.id_number)
            ids.add(number)
            return number
    raise RuntimeError("ran out of ID sequence numbers")


def _record_factor(person: Person) -> float:
    """Relative number of records: the old and small children see doctors most, young men least."""
    age = _age(person)
    if age >= 65:
        return 1.6
    if age < 7:
        return 1.2
    return 0.8 if person.sex == "1" and 16 <= age <= 45 else 1.0


# --- records ------------------------------------------------------------------------------------------------


class _RecordWriter:
    """Writes one person's records at a time: venues, local ids, per-record noise, then the linkability repair."""

    def __init__(
        self, rng: random.Random, households: dict[int, list[Person]], plan: _Plan, id_bodies: set[str]
    ) -> None:
        self.rng = rng
        self.plan = plan
        self.households = households
        self._id_bodies = id_bodies  # everyone's first 17 ID digits: a typo must not land on someone else's
        institutions = build_institutions(28, 10)
        self._hospitals = [i for i in institutions if i.kind == "hospital"]
        self._platforms = {i.region_code: i for i in institutions if i.kind == "county"}
        self._venues: dict[tuple[str, bool, bool], tuple[tuple[Institution, ...], tuple[float, ...]]] = {}
        self._local_ids: dict[tuple[str, int, str], str] = {}
        self._serials: dict[str, set[int]] = defaultdict(set)  # membership only
        self.re_registered: set[int] = set()
        self.repaired_records = 0
        self._noise: Counter[str] = Counter()  # identity_noise's tally, cleared per call (one allocation)

    # where ----------------------------------------------------------------------------------------------
    def _hospital(self, region: str, kind: str) -> Institution:
        """The county's hospital of that kind; the city's when the county has none (the city districts)."""
        for inst in self._hospitals:
            if inst.region_code == region and inst.hospital_type == kind:
                return inst
        city_kind = "city_general" if kind == "county_general" else kind
        return next(i for i in self._hospitals if i.region_code == CITY_DISTRICTS[0] and i.hospital_type == city_kind)

    def _venue_table(self, region: str, mch: bool, elderly: bool) -> tuple[tuple[Institution, ...], tuple[float, ...]]:
        """Where someone of this county goes: mostly the county's own hospitals and platform, sometimes the city's;
        women of childbearing age and children also the maternal and child health hospital."""
        key = (region, mch, elderly)
        if key not in self._venues:
            central = self._hospital(CITY_DISTRICTS[0], "city_general")
            weighted = [
                (self._hospital(region, "county_general"), 40.0),
                (self._hospital(region, "tcm"), 8.0),
                (self._hospital(region, "mch"), 25.0 if mch else 2.0),
                (central, 15.0),
                (self._hospital(CITY_DISTRICTS[0], "tcm"), 3.0),
                (self._hospital(CITY_DISTRICTS[0], "mch"), 6.0 if mch else 1.0),
                (self._platforms[region], 35.0 if elderly else 15.0),
            ]
            others = [i for i in self._hospitals if i.hospital_type == "county_general" and i.region_code != region]
            weighted += [(i, 6.0 / len(others)) for i in others]
            self._venues[key] = (tuple(i for i, _ in weighted), tuple(itertools.accumulate(w for _, w in weighted)))
        return self._venues[key]

    def _pick_venues(self, person: Person, count: int) -> list[Institution]:
        age = _age(person)
        mch = age < 14 or person.sex == "2" and 18 <= age <= 45
        venues, cum = self._venue_table(person.region_code, mch, age >= 60)
        return self.rng.choices(venues, cum_weights=cum, k=count)

    def _days(self, first: dt.date, count: int) -> list[dt.date]:
        """``count`` record days from ``first`` to the reference day, in order."""
        start, span, random_ = first.toordinal(), REFERENCE_DAY.toordinal() - first.toordinal() + 1, self.rng.random
        return [dt.date.fromordinal(start + n) for n in sorted(int(random_() * span) for _ in range(count))]

    def _local_id(self, org: Institution, person: Person, slot: str) -> str:
        key = (org.org_code, person.pid, slot)
        if key not in self._local_ids:
            serials = self._serials[org.org_code]
            n = self.rng.randrange(1, 10**7)
            while n in serials:
                n = self.rng.randrange(1, 10**7)
            serials.add(n)
            self._local_ids[key] = (
                f"{org.region_code}{n:011d}"
                if org.kind == "county"
                else _LOCAL_ID_STYLES[org.index % len(_LOCAL_ID_STYLES)].format(n=n)
            )
        return self._local_ids[key]

    # what -----------------------------------------------------------------------------------------------
    def person_records(self, person: Person, count: int) -> list[_Draft]:
        rng = self.rng
        mother = self.plan.placeholder_mother.get(person.pid)
        days = self._days(max(person.birth_date, RECORDS_FROM), count)
        drafts: list[_Draft] = []
        if mother is not None:  # the birth record(s) under the placeholder name, at the MCH hospital
            mch = self._hospital(person.region_code, "mch")
            named_from = person.birth_date + dt.timedelta(days=42)
            placeholders = 2 if count >= 4 else 1
            drafts += [
                self._placeholder(person, mother, mch, person.birth_date + dt.timedelta(days=rng.randrange(8)))
                for _ in range(placeholders)
            ]
            days = self._days(named_from, count - placeholders)
        orgs = self._pick_venues(person, len(days))
        visits: dict[str, int] = {}
        switch: dict[str, int] = {}  # org -> visit number from which a second local id is used (re-registration)
        for org, day in zip(orgs, days, strict=True):
            code = org.org_code
            visit = visits[code] = visits.get(code, -1) + 1
            if visit == 0:
                total = sum(o is org for o in orgs)
                switch[code] = rng.randrange(1, total) if total >= 2 and rng.random() < RE_REGISTRATION_SHARE else total
            slot = "first"
            if visit >= switch[code]:
                slot = "second"
                self.re_registered.add(person.pid)
            drafts.append(self._noisy(person, org, self._local_id(org, person, slot), day))
        self._repair(person, [d for d in drafts if d.name_kind != "placeholder"])
        return drafts

    def _placeholder(self, person: Person, mother: Person, org: Institution, day: dt.date) -> _Draft:
        """A newborn's birth record: the mother's name + 之子/之女, no ID yet, the mother's phone and address."""
        return _Draft(
            person,
            org,
            self._local_id(org, person, "newborn"),
            day,
            name=f"{mother.name}之{'子' if person.sex == '1' else '女'}",
            name_kind="placeholder",
            id_kinds=("id_missing",),
            sex=person.sex,
            birth_date=person.birth_date.isoformat(),
            phone=mother.phone or "",
            phone_kind="exact" if mother.phone == person.phone else "family",
            address=person.address,
        )

    def _noisy(self, person: Person, org: Institution, local_id: str, day: dt.date) -> _Draft:
        rng, plan = self.rng, self.plan
        protected = person.pid in plan.protected
        d = _Draft(person, org, local_id, day)
        age = person.age_on(day)

        # Identifiers: identity_noise's per-record variants, then this module's cases on top.
        if (
            person.pid in plan.card_only
            or person.pid in plan.no_id
            or (age < 3 or age >= 85)
            and rng.random() < ID_MISSING_YOUNG_OLD_SHARE
        ):
            d.id_kinds = ("id_missing",)
        else:
            noise = self._noise
            noise.clear()
            id_type, number = record_id(person, rng, day, noise)
            d.id_type, d.id_number, d.id_kinds = id_type or "", number or "", tuple(noise)
            if not noise and not protected and rng.random() < ID_DIGIT_TYPO_SHARE:
                d.id_number, d.id_kinds = _digit_typo(d.id_number, rng, self._id_bodies), ("id_digit_typo",)
        if person.health_card and rng.random() < HEALTH_CARD_ON_RECORD:
            d.health_card = person.health_card
        if person.insurance_card and rng.random() < INSURANCE_CARD_ON_RECORD:
            d.insurance_card = person.insurance_card
        if person.pid in plan.card_only and not (d.health_card or d.insurance_card):  # the card is all they show
            if person.insurance_card:
                d.insurance_card = person.insurance_card
            else:
                d.health_card = person.health_card or ""

        # Name, sex, birth date.
        r = rng.random()
        if r < NAME_MISSING_SHARE:
            d.name_kind = "missing"
        elif r < NAME_MISSING_SHARE + NAME_HOMOPHONE_SHARE and (variant := _homophone(person, rng)):
            d.name, d.name_kind = variant, "homophone"
        else:
            noise = self._noise
            noise.clear()
            d.name = record_name(person, rng, noise)
            if "name_traditional" in noise:
                d.name_kind = "traditional"
            elif "name_pinyin" in noise:
                if _POLYPHONIC.isdisjoint(person.given):
                    d.name, d.name_kind = _pinyin_style(d.name, rng), "pinyin"
                else:
                    d.name = person.name
        d.sex = person.sex
        if rng.random() < SEX_UNKNOWN_SHARE:
            d.sex, d.sex_kind = rng.choice("009"), "unknown"
        d.birth_date = person.birth_date.isoformat()
        r = rng.random()
        if r < BIRTH_MISSING_SHARE:
            d.birth_date, d.birth_kind = "", "missing"
        elif r < BIRTH_MISSING_SHARE + BIRTH_SWAPPED_SHARE:
            if swapped := _swapped(person.birth_date):
                d.birth_date, d.birth_kind = swapped.isoformat(), "swapped"
        elif r < BIRTH_MISSING_SHARE + BIRTH_SWAPPED_SHARE + BIRTH_OFF_BY_ONE_SHARE:
            shifted = person.birth_date + dt.timedelta(days=rng.choice((-1, 1)))
            if shifted > REFERENCE_DAY:
                shifted = person.birth_date - dt.timedelta(days=1)
            d.birth_date, d.birth_kind = shifted.isoformat(), "off_by_one"

        # Phone and address.
        d.phone = person.phone or ""
        r = rng.random()
        if r < PHONE_MISSING_SHARE or not d.phone:
            d.phone, d.phone_kind = "", "missing"
        elif r < PHONE_MISSING_SHARE + PHONE_TRANSPOSED_SHARE:
            if not protected and (typo := _transposed(d.phone, rng)):
                d.phone, d.phone_kind = typo, "transposed"
        elif r < PHONE_MISSING_SHARE + PHONE_TRANSPOSED_SHARE + FAMILY_PHONE_SHARE and age >= 18:
            family = [
                m.phone
                for m in self.households[person.household]
                if m.phone and m.phone != person.phone and m.age_on(day) >= 18
            ]
            if family:
                d.phone, d.phone_kind = rng.choice(family), "family"
        d.address = person.address
        r = rng.random()
        if r < ADDRESS_MISSING_SHARE:
            d.address, d.address_kind = "", "missing"
        elif r < ADDRESS_MISSING_SHARE + ADDRESS_ONE_CHAR_SHARE and not protected:
            d.address, d.address_kind = _one_char_address(person.address, rng), "one_char"
        return d

    # linkability ------------------------------------------------------------------------------------------
    def _anchor(self, person: Person) -> str:
        """The evidence a repaired record gets back: the person's most specific identifier."""
        if person.pid in self.plan.card_only:
            return "insurance_card" if person.insurance_card else "health_card"
        if person.pid not in self.plan.no_id and person.id_number:
            return "id"
        return "name_birth_phone" if person.phone else "name_birth_address"

    def _repair(self, person: Person, drafts: list[_Draft]) -> None:
        """Restore the anchor on every record outside the component that holds it (see the module docstring)."""
        if len(drafts) <= 1 or all(d.id_ok for d in drafts):  # the common case, settled without a graph
            return
        components = _components(drafts)
        if len(components) <= 1:
            return
        anchor = self._anchor(person)
        holding = [c for c in components if any(anchor in _evidence(drafts[i]) for i in c)]
        if not holding:
            largest = max(components, key=len)
            self._restore(drafts[largest[0]], anchor)
            holding = [largest]
        for component in components:
            if component not in holding:
                for i in component:
                    self._restore(drafts[i], anchor)

    def _restore(self, d: _Draft, anchor: str) -> None:
        self.repaired_records += 1
        p = d.person
        if anchor == "id":
            d.id_number, d.id_kinds = p.id_number or "", ()
            d.id_type = "02" if p.age_on(d.day) < 16 else "01"
        elif anchor == "insurance_card":
            d.insurance_card = p.insurance_card or ""
        elif anchor == "health_card":
            d.health_card = p.health_card or ""
        else:
            d.name, d.name_kind = p.name, "clean"
            d.birth_date, d.birth_kind = p.birth_date.isoformat(), "exact"
            if anchor == "name_birth_phone":
                d.phone, d.phone_kind = p.phone or "", "exact"
            else:
                d.address, d.address_kind = p.address, "exact"


def _evidence(d: _Draft) -> list[str]:
    """The keys that join a record to others of the same person (the linkability rule, in generator terms)."""
    keys = [f"local:{d.org.org_code}:{d.local_id}"]
    if d.id_ok:
        keys.append("id")
    if d.health_card:
        keys.append("health_card")
    if d.insurance_card:
        keys.append("insurance_card")
    if d.name_and_birth_ok:
        if d.phone_kind == "exact" and d.phone:
            keys.append("name_birth_phone")
        if d.address_kind == "exact":
            keys.append("name_birth_address")
        if d.id_ok:
            keys.append("name_birth_id")
    return keys


def _components(drafts: list[_Draft]) -> list[list[int]]:
    parent = list(range(len(drafts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for i, d in enumerate(drafts):
        for key in _evidence(d):
            parent[root(i)] = root(first_with.setdefault(key, i))
    # A one-digit ID typo joins a record with a clean ID and the same name and birth date, not another typo.
    if "name_birth_id" in first_with:
        for i, d in enumerate(drafts):
            if "id_digit_typo" in d.id_kinds and d.name_and_birth_ok:
                parent[root(i)] = root(first_with["name_birth_id"])
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(drafts)):
        groups[root(i)].append(i)
    return list(groups.values())


# --- field variants -------------------------------------------------------------------------------------


def _homophone(person: Person, rng: random.Random) -> str | None:
    name = person.name
    positions = [i for i, c in enumerate(name) if c in HOMOPHONES]
    if not positions:
        return None
    i = rng.choice(positions)
    return name[:i] + rng.choice(HOMOPHONES[name[i]]) + name[i + 1 :]


def _pinyin_style(romanised: str, rng: random.Random) -> str:
    """``ZHANG WEI`` as identity_noise writes it, or ``Wei Zhang`` / ``zhang wei`` as other systems do."""
    surname, given = romanised.split(" ", 1)
    r = rng.random()
    if r < 0.5:
        return romanised
    return f"{given.title()} {surname.title()}" if r < 0.75 else romanised.lower()


def _digit_typo(number: str, rng: random.Random, id_bodies: set[str]) -> str:
    """One of the first 17 digits mistyped; the check character no longer holds (any single change breaks it).
    Twins' numbers are a digit or two apart: a typo that turns one into the other is redrawn."""
    while True:
        i = rng.randrange(17)
        typo = number[:i] + rng.choice([c for c in "0123456789" if c != number[i]]) + number[i + 1 :]
        if typo[:17] not in id_bodies:
            return typo


def _swapped(day: dt.date) -> dt.date | None:
    return dt.date(day.year, day.day, day.month) if day.day <= 12 and day.day != day.month else None


def _transposed(phone: str, rng: random.Random) -> str | None:
    """Two neighbouring different digits swapped, after the prefix (138…, 0376-)."""
    spots = [
        i
        for i in range(3, len(phone) - 1)
        if phone[i].isdigit() and phone[i + 1].isdigit() and phone[i] != phone[i + 1]
    ]
    if not spots:
        return None
    i = rng.choice(spots)
    return phone[:i] + phone[i + 1] + phone[i] + phone[i + 2 :]


def _one_char_address(address: str, rng: random.Random) -> str:
    """A house or group number digit mistyped, or 省/市 left out."""
    digits = [i for i, c in enumerate(address) if c.isdigit()]
    if digits and rng.random() < 0.6:
        i = rng.choice(digits)
        return address[:i] + rng.choice([c for c in "0123456789" if c != address[i]]) + address[i + 1 :]
    i = address.index("省") if rng.random() < 0.5 else address.index("市")
    return address[:i] + address[i + 1 :]


# --- counting ---------------------------------------------------------------------------------------------

# Record-level counts, listed so a bench table has every row even when a small set has none of a case.
RECORD_CASES = (
    "name_homophone_records",
    "name_traditional_records",
    "name_pinyin_records",
    "name_missing_records",
    "name_placeholder_records",
    "sex_unknown_records",
    "birth_date_swapped_records",
    "birth_date_off_by_one_records",
    "birth_date_missing_records",
    "id_missing_records",
    "id_15_digit_records",
    "id_full_width_records",
    "id_bad_check_records",
    "id_spaces_records",
    "id_lowercase_x_records",
    "id_digit_typo_records",
    "phone_missing_records",
    "phone_transposed_records",
    "phone_family_records",
    "address_missing_records",
    "address_one_char_records",
    "health_card_records",
    "insurance_card_records",
)


def _count_cases(people: list[Person], drafts: list[_Draft], plan: _Plan, writer: _RecordWriter) -> dict[str, int]:
    counts: Counter[str] = Counter(dict.fromkeys(RECORD_CASES, 0))
    counts["persons"], counts["records"] = len(people), len(drafts)

    by_name: dict[str, set[int]] = defaultdict(set)  # name -> households
    by_name_year: dict[tuple[str, int], set[int]] = defaultdict(set)
    by_name_birth: dict[tuple[str, dt.date], set[int]] = defaultdict(set)
    names = [p.name for p in people]
    for p, name in zip(people, names, strict=True):
        by_name[name].add(p.household)
        by_name_year[(name, p.birth_date.year)].add(p.household)
        by_name_birth[(name, p.birth_date)].add(p.household)
    phones = Counter(p.phone for p in people if p.phone)
    counts["shared_name_persons"] = sum(len(by_name[n]) > 1 for n in names)
    counts["shared_name_birth_year_persons"] = sum(
        len(by_name_year[(n, p.birth_date.year)]) > 1 for p, n in zip(people, names, strict=True)
    )
    counts["shared_name_birth_date_persons"] = sum(
        len(by_name_birth[(n, p.birth_date)]) > 1 for p, n in zip(people, names, strict=True)
    )
    counts["shared_phone_persons"] = sum(phones[p.phone] > 1 for p in people if p.phone)
    counts["namesake_planted_pairs"] = plan.namesakes
    counts["twin_pairs"] = len(plan.twins)
    counts["twin_pairs_same_sex"] = sum(a.sex == b.sex for a, b in plan.twins)
    counts["father_son_same_name_pairs"] = len(plan.father_son)
    counts["card_only_persons"] = len(plan.card_only)
    counts["no_id_persons"] = len(plan.no_id)
    counts["re_registered_persons"] = len(writer.re_registered)

    shown: dict[int, set[str]] = defaultdict(set)  # newborn pid -> placeholder / named
    for d in drafts:
        if d.person.pid in plan.placeholder_mother:
            shown[d.person.pid].add("placeholder" if d.name_kind == "placeholder" else "named")
    # Tally distinct label combinations first (a few hundred), then expand them into the counts.
    combos = Counter(
        (
            d.name_kind,
            d.sex_kind,
            d.birth_kind,
            d.id_kinds,
            d.phone_kind,
            d.address_kind,
            bool(d.health_card),
            bool(d.insurance_card),
        )
        for d in drafts
    )
    for (name, sex, birth, id_kinds, phone, address, health, insurance), n in combos.items():
        labels = [*(f"{kind}_records" for kind in id_kinds)]
        labels += [f"name_{name}_records"] if name != "clean" else []
        labels += ["sex_unknown_records"] if sex != "clean" else []
        labels += [f"birth_date_{birth}_records"] if birth != "exact" else []
        labels += [f"phone_{phone}_records"] if phone != "exact" else []
        labels += [f"address_{address}_records"] if address != "exact" else []
        labels += ["health_card_records"] if health else []
        labels += ["insurance_card_records"] if insurance else []
        for label in labels:
            counts[label] += n
    counts["newborn_placeholder_persons"] = len(shown)
    counts["newborn_renamed_persons"] = sum(len(kinds) == 2 for kinds in shown.values())
    counts["repaired_records"] = writer.repaired_records
    return dict(sorted(counts.items()))

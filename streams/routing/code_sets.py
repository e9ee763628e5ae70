"""The collaboration routing code sets of docs/domain.md §4: chronic disease management, tumour registry,
notifiable infectious diseases. Plain functions over one diagnosis code, no I/O.

* ``chronic_disease(code) -> ChronicDisease | None``: the managed chronic disease (基本公卫慢病管理), with
  ``basic_public_health`` telling the basic public-health programmes (hypertension, diabetes, severe mental
  disorders, pulmonary TB) from the diseases "registered for follow-up as well" (CHD, stroke, COPD).
* ``tumour_site(code) -> TumourSite | None``: behaviour class and the 3-character site category the
  tumour registry keys its registrations by (one per person × site).
* ``notifiable_disease(code) -> NotifiableDisease | None``: the notifiable infectious disease (法定传染病)
  with its class (A / B / C / LOCAL) and report deadline (2 h class A, 24 h otherwise).

Matching is by code prefix, as docs/domain.md says. Each table below is one tuple of declarations written like
the spec: "I10-I15" is a range of 3-character categories (compared as text, ``in_category_range``), "A20"
one category, and "U07.1" a WHO 4-character subcategory, which matches only codes with that subcategory
("U07.1", "U07.100", "U07.100x001"; not "U07", "U07.x" nor "U07.2"). A subcategory declaration is more
specific than a category range and wins over it; two declarations of one table may not claim the same
code at the same specificity (checked when the table is built). The three tables are independent: a code
may be in several (pulmonary TB A15–A16 is chronic-managed and class B notifiable).

Input is normalised like ``foundation.standards.icd10``: spaces stripped, full-width folded, upper-cased, so
national-edition extension codes ("A15.000x001", "i10.x00x002") map by their category / subcategory. A code
that is malformed or not valid there (``icd10_valid``: unknown WHO category, "I10.9") routes nowhere.

Speed: the declared ranges are expanded into a category index when a table is built; the first look-up
of a code validates it (a microsecond or two) and makes two dict look-ups; the answer is memoised per code
string, so a repeated code costs one dict look-up.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from foundation.standards.icd10 import icd10_category, icd10_valid, in_category_range

V = TypeVar("V")  # what a declaration names (a disease, a behaviour class)
R = TypeVar("R")  # what a look-up returns

# A declaration's code: "A00" (category), "B15-B19" (category range, one letter), "U07.1" (subcategory).
_SPEC = re.compile(r"([A-Z][0-9][0-9])(?:-([A-Z][0-9][0-9])|\.([0-9]))?")


class CodeSet(Generic[V, R]):
    """A code set matched by prefix: declarations ``(value, ("I10-I15", "U07.1", …))`` → look-up by code.

    ``lookup(code)`` answers ``result(value, category)`` for the declaration the code falls under (a
    subcategory declaration before a category range), else None; answers are memoised per input string
    (the cache is dropped when it reaches ``cache_limit`` entries). Non-strings and invalid codes: None.
    """

    def __init__(
        self,
        name: str,
        declarations: Iterable[tuple[V, tuple[str, ...]]],
        result: Callable[[V, str], R] | None = None,
        cache_limit: int = 100_000,
    ) -> None:
        self.name = name
        self._result = result if result is not None else (lambda value, category: value)
        self._subcategories: dict[str, V] = {}  # "U07.1" → value
        self._categories: dict[str, V] = {}  # every category of the declared ranges: "I10", "I11", … → value
        for value, specs in declarations:
            if not specs:
                raise ValueError(f"{name}: {value!r} declares no codes")
            for spec in specs:
                self._declare(value, spec)
        self._cache: dict[str, R | None] = {}
        self._cache_limit = cache_limit

    def _declare(self, value: V, spec: str) -> None:
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ValueError(f"{self.name}: malformed code {spec!r} (want 'A00', 'B15-B19' or 'U07.1')")
        first, last, digit = match.groups()
        if digit is not None:
            key = f"{first}.{digit}"
            if key in self._subcategories:
                raise ValueError(f"{self.name}: {key} declared for {self._subcategories[key]!r} and {value!r}")
            self._subcategories[key] = value
            return
        last = last or first
        if last < first or last[0] != first[0]:
            raise ValueError(f"{self.name}: range {spec!r} is empty or spans letters")
        # Expanded once into the category index (a letter has 100 possible categories), so a look-up is a
        # dict hit instead of a scan over the ranges.
        for category in (f"{first[0]}{n:02d}" for n in range(100)):
            if in_category_range(category, first, last):
                if category in self._categories:
                    raise ValueError(
                        f"{self.name}: {spec!r} ({value!r}) overlaps the declaration of "
                        f"{category} ({self._categories[category]!r})"
                    )
                self._categories[category] = value

    def lookup(self, code: str) -> R | None:
        try:
            return self._cache[code]
        except (KeyError, TypeError):  # TypeError: an unhashable non-string
            if not isinstance(code, str):
                return None
            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
            answer = self._cache[code] = self._match(code)
            return answer

    def _match(self, code: str) -> R | None:
        if not icd10_valid(code):
            return None
        category = icd10_category(code)
        assert category is not None  # valid implies well-formed
        text = unicodedata.normalize("NFKC", code).strip().upper()  # as icd10 normalises: "u07.100 " → "U07.100"
        value = self._subcategories.get(text[:5]) if len(text) >= 5 else None
        if value is None:
            value = self._categories.get(category)
        return None if value is None else self._result(value, category)


# ---------------------------------------------------------------------------------------------------------
# Chronic disease management (基本公卫慢病管理)


class ChronicDisease(Enum):
    """A managed chronic disease; ``basic_public_health`` False = "registered for follow-up as well"."""

    zh: str
    en: str
    basic_public_health: bool

    HYPERTENSION = ("高血压", "hypertension", True)
    DIABETES = ("糖尿病", "diabetes", True)
    SEVERE_MENTAL_DISORDER = ("严重精神障碍", "severe mental disorder", True)
    PULMONARY_TB = ("肺结核", "pulmonary tuberculosis", True)
    CORONARY_HEART_DISEASE = ("冠心病", "coronary heart disease", False)
    STROKE = ("脑卒中", "stroke", False)
    COPD = ("慢性阻塞性肺疾病", "chronic obstructive pulmonary disease", False)

    def __init__(self, zh: str, en: str, basic_public_health: bool) -> None:
        self.zh = zh
        self.en = en
        self.basic_public_health = basic_public_health


CHRONIC_DISEASE_CODES: tuple[tuple[ChronicDisease, tuple[str, ...]], ...] = (
    (ChronicDisease.HYPERTENSION, ("I10-I15",)),
    (ChronicDisease.DIABETES, ("E10-E14",)),
    (ChronicDisease.SEVERE_MENTAL_DISORDER, ("F20", "F22", "F25", "F31", "F06")),
    (ChronicDisease.PULMONARY_TB, ("A15-A16",)),
    (ChronicDisease.CORONARY_HEART_DISEASE, ("I20-I25",)),
    (ChronicDisease.STROKE, ("I60-I64",)),
    (ChronicDisease.COPD, ("J44",)),
)

_CHRONIC: CodeSet[ChronicDisease, ChronicDisease] = CodeSet("chronic disease management", CHRONIC_DISEASE_CODES)


def chronic_disease(code: str) -> ChronicDisease | None:
    """The managed chronic disease of a diagnosis code ("I10.x00x002" → HYPERTENSION), else None."""
    return _CHRONIC.lookup(code)


# ---------------------------------------------------------------------------------------------------------
# Tumour registry (肿瘤登记)


class TumourBehaviour(Enum):
    zh: str
    en: str

    MALIGNANT = ("恶性肿瘤", "malignant")
    IN_SITU = ("原位肿瘤", "in situ")
    BENIGN_OR_UNCERTAIN_CNS = (
        "中枢神经系统良性及动态未定肿瘤",
        "benign or uncertain behaviour, central nervous system",
    )

    def __init__(self, zh: str, en: str) -> None:
        self.zh = zh
        self.en = en


@dataclass(frozen=True, slots=True)
class TumourSite:
    """What the tumour registry keys a registration by (with the person): ``site`` is the 3-character
    ICD-10 category of the code ("C34.100x001" → "C34")."""

    behaviour: TumourBehaviour
    site: str


TUMOUR_CODES: tuple[tuple[TumourBehaviour, tuple[str, ...]], ...] = (
    (TumourBehaviour.MALIGNANT, ("C00-C97",)),
    (TumourBehaviour.IN_SITU, ("D00-D09",)),
    (TumourBehaviour.BENIGN_OR_UNCERTAIN_CNS, ("D32-D33", "D42-D43")),
)

_TUMOUR: CodeSet[TumourBehaviour, TumourSite] = CodeSet("tumour registry", TUMOUR_CODES, result=TumourSite)


def tumour_site(code: str) -> TumourSite | None:
    """Behaviour class and site category of a registrable tumour ("C34.1" → MALIGNANT, "C34"), else None."""
    return _TUMOUR.lookup(code)


# ---------------------------------------------------------------------------------------------------------
# Notifiable infectious diseases (法定传染病)


class NotifiableClass(Enum):
    """Class of a notifiable disease and its report deadline. LOCAL (locally monitored, SFTS) is treated
    like class B: ``treated_as`` says so, and its deadline is class B's."""

    zh: str
    en: str
    report_deadline: dt.timedelta

    A = ("甲类", "class A", dt.timedelta(hours=2))
    B = ("乙类", "class B", dt.timedelta(hours=24))
    C = ("丙类", "class C", dt.timedelta(hours=24))
    LOCAL = ("地方监测", "monitored locally", dt.timedelta(hours=24))

    def __init__(self, zh: str, en: str, report_deadline: dt.timedelta) -> None:
        self.zh = zh
        self.en = en
        self.report_deadline = report_deadline

    @property
    def treated_as(self) -> NotifiableClass:
        return NotifiableClass.B if self is NotifiableClass.LOCAL else self


@dataclass(frozen=True, slots=True)
class NotifiableDisease:
    disease_class: NotifiableClass
    en: str
    zh: str
    codes: tuple[str, ...]  # as declared: "B15-B19", "A06.0"

    @property
    def report_deadline(self) -> dt.timedelta:
        return self.disease_class.report_deadline


def _disease(disease_class: NotifiableClass, en: str, zh: str, *codes: str) -> NotifiableDisease:
    return NotifiableDisease(disease_class, en, zh, codes)


_A, _B, _C, _LOCAL = NotifiableClass.A, NotifiableClass.B, NotifiableClass.C, NotifiableClass.LOCAL

NOTIFIABLE_DISEASES: tuple[NotifiableDisease, ...] = (
    # Class A (2 h)
    _disease(_A, "cholera", "霍乱", "A00"),
    _disease(_A, "plague", "鼠疫", "A20"),
    # Class B (24 h)
    _disease(_B, "COVID-19", "新型冠状病毒感染", "U07.1"),
    _disease(_B, "viral hepatitis", "病毒性肝炎", "B15-B19"),
    _disease(_B, "HIV/AIDS", "艾滋病", "B20-B24"),
    _disease(_B, "measles", "麻疹", "B05"),
    _disease(_B, "pulmonary tuberculosis", "肺结核", "A15-A16"),
    _disease(_B, "bacillary and amoebic dysentery", "细菌性和阿米巴性痢疾", "A03", "A06.0"),
    _disease(_B, "typhoid and paratyphoid fever", "伤寒和副伤寒", "A01"),
    _disease(_B, "haemorrhagic fever with renal syndrome", "流行性出血热", "A98.5"),
    # A90-A91 as docs/domain.md says; WHO ICD-10 2019 (what icd10_valid checks) replaced them by A97, so until
    # icd10 accepts them these codes are invalid there and route nowhere (and A97 is not declared).
    _disease(_B, "dengue", "登革热", "A90-A91"),
    _disease(_B, "rabies", "狂犬病", "A82"),
    _disease(_B, "Japanese encephalitis", "流行性乙型脑炎", "A83.0"),
    _disease(_B, "anthrax", "炭疽", "A22"),
    _disease(_B, "scarlet fever", "猩红热", "A38"),
    _disease(_B, "brucellosis", "布鲁氏菌病", "A23"),
    _disease(_B, "gonorrhoea", "淋病", "A54"),
    _disease(_B, "syphilis", "梅毒", "A50-A53"),
    _disease(_B, "leptospirosis", "钩端螺旋体病", "A27"),
    _disease(_B, "schistosomiasis", "血吸虫病", "B65"),
    _disease(_B, "malaria", "疟疾", "B50-B54"),
    _disease(_B, "pertussis", "百日咳", "A37"),
    _disease(_B, "diphtheria", "白喉", "A36"),
    _disease(_B, "neonatal tetanus", "新生儿破伤风", "A33"),
    _disease(_B, "meningococcal meningitis", "流行性脑脊髓膜炎", "A39"),
    _disease(_B, "human avian influenza", "人感染禽流感", "J09"),
    _disease(_B, "monkeypox", "猴痘", "B04"),
    # Class C (24 h)
    _disease(_C, "influenza", "流行性感冒", "J10-J11"),
    _disease(_C, "mumps", "流行性腮腺炎", "B26"),
    _disease(_C, "rubella", "风疹", "B06"),
    _disease(_C, "acute haemorrhagic conjunctivitis", "急性出血性结膜炎", "B30.3"),
    _disease(_C, "leprosy", "麻风病", "A30"),
    _disease(_C, "typhus", "流行性和地方性斑疹伤寒", "A75"),
    _disease(_C, "kala-azar", "黑热病", "B55"),
    _disease(_C, "echinococcosis", "包虫病", "B67"),
    _disease(_C, "filariasis", "丝虫病", "B74"),
    _disease(_C, "other infectious diarrhoea", "其它感染性腹泻病", "A04", "A08", "A09"),
    _disease(_C, "hand, foot and mouth disease", "手足口病", "B08.4"),
    # Monitored locally, treated like class B (24 h): Xinyang is one of SFTS's main endemic areas
    _disease(_LOCAL, "severe fever with thrombocytopenia syndrome", "发热伴血小板减少综合征", "A93.8"),
)

_NOTIFIABLE: CodeSet[NotifiableDisease, NotifiableDisease] = CodeSet(
    "notifiable infectious diseases", ((d, d.codes) for d in NOTIFIABLE_DISEASES)
)


def notifiable_disease(code: str) -> NotifiableDisease | None:
    """The notifiable infectious disease of a diagnosis code ("A15.000x001" → pulmonary TB, class B), else None."""
    return _NOTIFIABLE.lookup(code)

"""Public-health content: vaccines and the national childhood immunisation schedule, cause-of-death chains,
birth measurements, and chronic-disease follow-up measurements.

Vaccine codes follow the layout of the immunisation information system's category codes but are
illustrative; names, manufacturers, routes and schedule are the real ones.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from synthetic.population import Person


@dataclass(frozen=True, slots=True)
class Vaccine:
    code: str
    name: str
    manufacturers: tuple[str, ...]
    route: str
    site: str


V = Vaccine
VACCINES: dict[str, Vaccine] = {
    "HepB": V(
        "0201",
        "乙肝疫苗(酿酒酵母)",
        ("深圳康泰生物制品股份有限公司", "大连汉信生物制药有限公司"),
        "肌内注射",
        "右上臂三角肌",
    ),
    "BCG": V(
        "0101",
        "皮内注射用卡介苗",
        ("上海生物制品研究所有限责任公司", "成都生物制品研究所有限责任公司"),
        "皮内注射",
        "左上臂三角肌",
    ),
    "IPV": V(
        "0303",
        "脊髓灰质炎灭活疫苗(IPV)",
        ("北京生物制品研究所有限责任公司", "中国医学科学院医学生物学研究所"),
        "肌内注射",
        "右大腿前外侧",
    ),
    "bOPV": V(
        "0311",
        "二价脊灰减毒活疫苗",
        ("北京生物制品研究所有限责任公司", "中国医学科学院医学生物学研究所"),
        "口服",
        "口服",
    ),
    "DTaP": V(
        "0401",
        "吸附无细胞百白破联合疫苗",
        ("武汉生物制品研究所有限责任公司", "成都欧林生物科技股份有限公司"),
        "肌内注射",
        "左上臂三角肌",
    ),
    "DT": V("0601", "吸附白喉破伤风联合疫苗", ("武汉生物制品研究所有限责任公司",), "肌内注射", "左上臂三角肌"),
    "MMR": V(
        "1201",
        "麻腮风联合减毒活疫苗",
        ("北京生物制品研究所有限责任公司", "上海生物制品研究所有限责任公司"),
        "皮下注射",
        "上臂外侧三角肌下缘",
    ),
    "JE": V("1401", "乙脑减毒活疫苗", ("成都生物制品研究所有限责任公司",), "皮下注射", "上臂外侧三角肌下缘"),
    "MPSV-A": V(
        "1601",
        "A群脑膜炎球菌多糖疫苗",
        ("兰州生物制品研究所有限责任公司", "玉溪沃森生物技术有限公司"),
        "皮下注射",
        "上臂外侧三角肌",
    ),
    "MPSV-AC": V(
        "1701",
        "A群C群脑膜炎球菌多糖疫苗",
        ("兰州生物制品研究所有限责任公司", "玉溪沃森生物技术有限公司"),
        "皮下注射",
        "上臂外侧三角肌",
    ),
    "HepA": V(
        "1801",
        "甲肝减毒活疫苗",
        ("浙江普康生物技术股份有限公司", "长春生物制品研究所有限责任公司"),
        "皮下注射",
        "上臂外侧三角肌",
    ),
    "Flu": V(
        "5201",
        "流感病毒裂解疫苗",
        ("华兰生物疫苗股份有限公司", "长春生物制品研究所有限责任公司"),
        "肌内注射",
        "上臂三角肌",
    ),
    "PPV23": V(
        "2501",
        "23价肺炎球菌多糖疫苗",
        ("成都生物制品研究所有限责任公司", "玉溪沃森生物技术有限公司"),
        "肌内注射",
        "上臂三角肌",
    ),
    "Rabies": V(
        "2801",
        "冻干人用狂犬病疫苗(Vero细胞)",
        ("辽宁成大生物股份有限公司", "长春卓谊生物股份有限公司"),
        "肌内注射",
        "上臂三角肌",
    ),
}
# National immunisation programme (2021 edition): (vaccine, dose number, age in days). The birth doses of
# HepB and BCG are in the birth record.
CHILD_SCHEDULE: tuple[tuple[str, int, int], ...] = (
    ("HepB", 2, 30),
    ("IPV", 1, 60),
    ("IPV", 2, 90),
    ("DTaP", 1, 90),
    ("bOPV", 1, 120),
    ("DTaP", 2, 120),
    ("DTaP", 3, 150),
    ("HepB", 3, 180),
    ("MPSV-A", 1, 180),
    ("MMR", 1, 240),
    ("JE", 1, 240),
    ("MPSV-A", 2, 270),
    ("DTaP", 4, 540),
    ("MMR", 2, 540),
    ("HepA", 1, 540),
    ("JE", 2, 730),
    ("MPSV-AC", 1, 1095),
    ("bOPV", 2, 1460),
    ("DT", 1, 2190),
    ("MPSV-AC", 2, 2190),
)
RABIES_DAYS = (0, 3, 7, 14, 28)  # Essen schedule, dose n on day RABIES_DAYS[n-1]


def batch_no(vaccine: str, day: dt.date, institution_index: int) -> str:
    """Lot numbers change slowly: one lot per vaccine, institution and quarter."""
    quarter_month = (day.month - 1) // 3 * 3 + 1
    return f"{day.year}{quarter_month:02d}{(int(VACCINES[vaccine].code) * 7 + institution_index * 13) % 1000:03d}"


# Cause-of-death chains: key -> ((line, code, description, interval), …), underlying (code, name).
CauseLine = tuple[str, str, str, str]
DEATH_CHAINS: dict[str, tuple[tuple[CauseLine, ...], tuple[str, str]]] = {
    "stroke": (
        (
            ("Ia", "G93.500", "脑疝", "1天"),
            ("Ib", "I63.900", "脑梗死", "7天"),
            ("Ic", "I10.x00x002", "高血压", "10余年"),
        ),
        ("I63.900", "脑梗死"),
    ),
    "haemorrhage": (
        (
            ("Ia", "G93.500", "脑疝", "6小时"),
            ("Ib", "I61.900", "脑出血", "2天"),
            ("Ic", "I10.x00x002", "高血压", "15年"),
        ),
        ("I61.900", "脑出血"),
    ),
    "ami": (
        (
            ("Ia", "R57.000", "心源性休克", "6小时"),
            ("Ib", "I21.900", "急性心肌梗死", "2天"),
            ("Ic", "I25.103", "冠状动脉粥样硬化性心脏病", "5年"),
        ),
        ("I21.900", "急性心肌梗死"),
    ),
    "chd": (
        (("Ia", "I50.900", "心力衰竭", "3天"), ("Ib", "I25.103", "冠状动脉粥样硬化性心脏病", "8年")),
        ("I25.103", "冠状动脉粥样硬化性心脏病"),
    ),
    "heart_failure": (
        (("Ia", "I50.900", "心力衰竭", "5天"), ("Ib", "I11.000", "高血压性心脏病伴心力衰竭", "10年")),
        ("I11.000", "高血压性心脏病伴心力衰竭"),
    ),
    "copd": (
        (
            ("Ia", "J96.900", "呼吸衰竭", "2天"),
            ("Ib", "J44.100", "慢性阻塞性肺疾病伴有急性加重", "10天"),
            ("II", "I10.x00x002", "高血压", ""),
        ),
        ("J44.100", "慢性阻塞性肺疾病伴有急性加重"),
    ),
    "pneumonia": ((("Ia", "J96.900", "呼吸衰竭", "1天"), ("Ib", "J18.900", "肺炎", "8天")), ("J18.900", "肺炎")),
    "lung_cancer": (
        (("Ia", "R64.x00", "恶病质", "1月"), ("Ib", "C34.900", "肺恶性肿瘤", "2年")),
        ("C34.900", "肺恶性肿瘤"),
    ),
    "gastric_cancer": (
        (("Ia", "R64.x00", "恶病质", "2月"), ("Ib", "C16.900", "胃恶性肿瘤", "1年")),
        ("C16.900", "胃恶性肿瘤"),
    ),
    "liver_cancer": (
        (
            ("Ia", "K72.900", "肝功能衰竭", "5天"),
            ("Ib", "C22.000", "肝细胞癌", "1年"),
            ("II", "B18.100", "慢性乙型病毒性肝炎", ""),
        ),
        ("C22.000", "肝细胞癌"),
    ),
    "oesophageal_cancer": (
        (("Ia", "R64.x00", "恶病质", "1月"), ("Ib", "C15.900", "食管恶性肿瘤", "1年")),
        ("C15.900", "食管恶性肿瘤"),
    ),
    "breast_cancer": (
        (("Ia", "C78.000", "肺继发恶性肿瘤", "6月"), ("Ib", "C50.900", "乳腺恶性肿瘤", "3年")),
        ("C50.900", "乳腺恶性肿瘤"),
    ),
    "colon_cancer": (
        (("Ia", "R64.x00", "恶病质", "1月"), ("Ib", "C18.900", "结肠恶性肿瘤", "2年")),
        ("C18.900", "结肠恶性肿瘤"),
    ),
    "diabetes": (
        (("Ia", "N18.900", "慢性肾衰竭", "2年"), ("Ib", "E11.200", "2型糖尿病性肾病", "12年")),
        ("E11.200", "2型糖尿病性肾病"),
    ),
    "sfts": (
        (("Ia", "D65.x00", "弥散性血管内凝血", "2天"), ("Ib", "A93.800", "发热伴血小板减少综合征", "8天")),
        ("A93.800", "发热伴血小板减少综合征"),
    ),
    "encephalitis": (
        (("Ia", "G93.500", "脑疝", "1天"), ("Ib", "A86.x00", "病毒性脑炎", "10天")),
        ("A86.x00", "病毒性脑炎"),
    ),
    "hip_fracture": (
        (("Ia", "J18.900", "坠积性肺炎", "5天"), ("Ib", "S72.000", "股骨颈骨折", "15天")),
        ("W19.x00", "跌倒"),
    ),
    "traffic": ((("Ia", "S06.900", "颅脑损伤", "1小时"),), ("V89.200", "机动车交通事故")),
    "fall": ((("Ia", "S06.900", "颅脑损伤", "3小时"),), ("W19.x00", "跌倒")),
    "senility": ((("Ia", "R54.x00", "衰老", ""),), ("R54.x00", "衰老")),
}
# Which chain a presentation's in-hospital death follows.
CHAIN_FOR_PRESENTATION: dict[str, str] = {
    "acute_stroke": "stroke",
    "ami": "ami",
    "chd": "chd",
    "heart_failure": "heart_failure",
    "copd": "copd",
    "pneumonia": "pneumonia",
    "lung_cancer": "lung_cancer",
    "gastric_cancer": "gastric_cancer",
    "liver_cancer": "liver_cancer",
    "oesophageal_cancer": "oesophageal_cancer",
    "breast_cancer": "breast_cancer",
    "colon_cancer": "colon_cancer",
    "diabetes": "diabetes",
    "sfts": "sfts",
    "encephalitis": "encephalitis",
    "hip_fracture": "hip_fracture",
}
_CONDITION_CHAIN = {
    "CA_LUNG": "lung_cancer",
    "CA_GASTRIC": "gastric_cancer",
    "CA_LIVER": "liver_cancer",
    "CA_ESOPH": "oesophageal_cancer",
    "CA_BREAST": "breast_cancer",
    "CA_COLON": "colon_cancer",
    "COPD": "copd",
    "CHD": "chd",
    "DM": "diabetes",
}


def home_death_chain(person: Person, rng: random.Random, day: dt.date) -> str:
    """The chain of a death outside hospital, from the person's conditions (mostly) or the usual mix."""
    own = [_CONDITION_CHAIN[c] for c in person.conditions if c in _CONDITION_CHAIN]
    if own and rng.random() < 0.8:
        return rng.choice(own)
    if "HTN" in person.conditions and rng.random() < 0.6:
        return rng.choice(("stroke", "haemorrhage", "heart_failure"))
    chain = rng.choices(
        ("stroke", "haemorrhage", "ami", "lung_cancer", "pneumonia", "traffic", "fall", "senility"),
        (25, 8, 18, 12, 8, 4, 4, 6),
    )[0]
    return "stroke" if chain == "senility" and person.age_on(day) < 85 else chain  # 衰老 only for the very old


def death_weight(person: Person, day: dt.date) -> float:
    """Relative chance of dying soon: steep with age, heavier with serious conditions."""
    age = person.age_on(day)
    if age < 40:
        return 0.02
    weight = 2 ** ((age - 60) / 7)
    for c in person.conditions:
        weight *= (
            6.0
            if c.startswith("CA_")
            else 2.0
            if c in ("COPD", "CHD", "STROKE")
            else 1.3
            if c in ("HTN", "DM")
            else 1.0
        )
    return weight


def birth_measurements(rng: random.Random) -> tuple[int, int, float]:
    """(gestational weeks, weight g, length cm): about 6% preterm; weight follows gestational age."""
    weeks = rng.choices((32, 33, 34, 35, 36, 37, 38, 39, 40, 41), (0.5, 0.5, 1, 1.5, 2.5, 10, 24, 32, 22, 6))[0]
    weight = int(round(rng.gauss(3300 + (weeks - 39) * 190, 380), -1))
    length = round(rng.gauss(50 + (weeks - 39) * 0.8, 1.6), 1)
    return weeks, max(1300, weight), max(40.0, length)


@dataclass(slots=True)
class ChronicBaseline:
    """A managed patient's usual readings, so successive follow-ups resemble each other."""

    controlled: bool
    systolic: float
    diastolic: float
    glucose: float


def chronic_baseline(rng: random.Random) -> ChronicBaseline:
    controlled = rng.random() < 0.68
    systolic = rng.gauss(128, 7) if controlled else rng.gauss(152, 10)
    return ChronicBaseline(
        controlled,
        systolic,
        systolic * 0.6 + rng.gauss(3, 4),
        rng.gauss(6.3, 0.5) if controlled else rng.gauss(9.2, 1.6),
    )

"""Event-level synthetic outpatient visits, deterministic for a seed: for stage tests and benchmarks that
start at the raw topics. Exchange databases (what adapters read) come from ``exchange_data``.

Each visit is a complete ``outpatient.visit`` event value (envelope included) as an adapter would
publish it. Residents recur across institutions; complaints carry syndromes and negations.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from avro_schemas.envelope import make_event_id
from foundation.standards.citizen_id import make_citizen_id
from foundation.standards.credit_code import make_credit_code
from synthetic.regions import COUNTIES

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
# (ICD-10 code, name, chief complaint, temperature range or None, weight)
PRESENTATIONS: tuple[tuple[str, str, str, tuple[float, float] | None, int], ...] = (
    ("I10.x00x002", "高血压", "头晕1周，无胸痛", None, 18),
    ("E11.900", "2型糖尿病", "口干多饮2月，否认多尿", None, 10),
    ("J06.900", "急性上呼吸道感染", "发热2天，伴咳嗽、咽痛，无腹泻", (37.5, 39.2), 20),
    ("J11.100", "流行性感冒", "高热1天，体温39度，咳嗽，全身酸痛", (38.5, 40.0), 6),
    ("K52.900", "急性胃肠炎", "腹泻3次，水样便，伴呕吐，不伴发热", None, 9),
    ("A09.000", "感染性腹泻", "拉肚子2天，发烧", (37.4, 38.6), 4),
    ("B08.401", "手足口病", "发热1天，口腔疱疹，手足皮疹", (37.6, 39.0), 3),
    ("J18.900", "肺炎", "咳嗽咳痰5天，气促，发热", (38.0, 39.5), 5),
    ("M54.500", "腰痛", "腰痛3天，无发热", None, 8),
    ("K29.700", "胃炎", "上腹痛1周，无呕吐", None, 7),
    ("H10.300", "急性结膜炎", "双眼发红2天，无发热", None, 2),
    ("A93.800", "发热伴血小板减少综合征", "发热3天，皮下出血点，乏力", (38.2, 40.0), 1),
)
DEPARTMENTS = (("0301", "内科"), ("0701", "儿科"), ("0201", "急诊科"), ("0401", "外科"), ("5001", "发热门诊"))


@dataclass(frozen=True)
class Institution:
    org_code: str
    name: str
    region_code: str


@dataclass(frozen=True)
class Resident:
    local_ids: dict[str, str]  # org_code -> local patient id, filled lazily per institution
    name: str
    sex: str
    birth_date: dt.date
    id_number: str
    phone: str
    region_code: str


def make_institutions(count: int, rng: random.Random) -> list[Institution]:
    counties = list(COUNTIES)
    institutions = []
    for i in range(count):
        region = counties[i % len(counties)]
        body = f"{rng.choice('MP')}{rng.choice('ABCDEFGH')}{i:06d}"
        institutions.append(
            Institution(make_credit_code("12", region, body), f"{COUNTIES[region]}第{i // 10 + 1}人民医院", region)
        )
    return institutions


def make_residents(count: int, rng: random.Random) -> list[Resident]:
    counties = list(COUNTIES)
    residents = []
    for _i in range(count):
        birth = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 32000))
        sequence = rng.randrange(0, 1000)
        region = rng.choice(counties)
        residents.append(
            Resident(
                local_ids={},
                name=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
                sex="1" if sequence % 2 else "2",
                birth_date=birth,
                id_number=make_citizen_id(region, birth, sequence),
                phone=f"1{rng.choice('3578')}{rng.randrange(10**8, 10**9)}",
                region_code=region,
            )
        )
    return residents


def _epoch_ms(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=(moment.microsecond // 1000) * 1000)


def outpatient_visits(
    count: int, seed: int = 1, hospitals: int = 20, residents: int | None = None, start: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` outpatient.visit event values, deterministic for ``seed``."""
    rng = random.Random(seed)
    institutions = make_institutions(hospitals, rng)
    people = make_residents(residents or max(10, count // 3), rng)
    start = start or dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    weights = [p[4] for p in PRESENTATIONS]
    for n in range(count):
        org = rng.choice(institutions)
        person = rng.choice(people)
        local_id = person.local_ids.setdefault(org.org_code, f"P{rng.randrange(10**7, 10**8)}")
        code, diagnosis, complaint, temp_range, _ = rng.choices(PRESENTATIONS, weights)[0]
        occurred = _epoch_ms(start + dt.timedelta(seconds=n * 7 + rng.randrange(0, 5)))
        dept_code, dept_name = rng.choice(DEPARTMENTS)
        visit_no = (
            f"MZ{seed % 10000:04d}{n:010d}"  # a seed is a separate world: its visits never collide with another's
        )
        record_key = f"outpatient_visit:{visit_no}"
        yield {
            "envelope": {
                "event_id": make_event_id(org.org_code, record_key, 1),
                "event_type": "outpatient.visit",
                "occurred_at": occurred,
                "emitted_at": occurred + dt.timedelta(minutes=rng.randrange(1, 90)),
                "record_version": 1,
                "cancelled": False,
                "source": {
                    "org_code": org.org_code,
                    "org_name": org.name,
                    "system": "HIS",
                    "region_code": org.region_code,
                    "level": "HOSPITAL",
                    "record_key": record_key,
                },
                "patient": {
                    "local_patient_id": local_id,
                    "name": person.name,
                    "sex": person.sex,
                    "birth_date": person.birth_date,
                    "id_type": "01",
                    "id_number": person.id_number,
                    "phone": person.phone,
                    "residence_region_code": person.region_code,
                },
            },
            "visit_no": visit_no,
            "visit_type": "EMERGENCY" if dept_code == "0201" else "OUTPATIENT",
            "department_code": dept_code,
            "department_name": dept_name,
            "chief_complaint": complaint,
            "symptoms": [],
            "temperature_c": round(rng.uniform(*temp_range), 1) if temp_range else round(rng.uniform(36.2, 37.1), 1),
            "diagnoses": [{"code": code, "name": diagnosis, "is_primary": True}],
        }

"""The data-quality rules (streams/quality/rulesets/quality_rules.yaml, docs/domain.md §7) and their engine.

* Every shipped rule has a row in ``CASES``: the event type it is tried on, a mutation of that type's clean
  base event that makes it (and only it) fail, the field the violation must name and the rule's severity.
  The clean event passes the rule (and the rule applies to it); the broken one fails with exactly one
  violation. A meta-test keeps the table and the rule file in step: a new rule without a row fails.
* The base event of every pipeline type is schema-true (it encodes) and passes every rule of its type.
* Edge cases: region codes by year, ICD-10 extension codes, the 2 h / 24 h / 7 d upload limits, the grace
  after a registered death, cancellations, the weighted score.
* Versioning: versions.lock records the current version's digest; malformed rule files are refused.

No services needed: rules are plain functions over decoded events. Performance is measured elsewhere.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from avro_schemas.envelope import make_event_id
from avro_schemas.serde import EventCodec
from avro_schemas.topics import PIPELINE_EVENT_TYPES
from foundation.standards.citizen_id import make_citizen_id
from foundation.standards.credit_code import make_credit_code
from foundation.standards.region_codes import region_valid
from streams.quality.checks import EvaluationContext
from streams.quality.engine import RuleEngine, Verdict
from streams.quality.rule_set import (
    DEFAULT_RULE_FILE,
    Category,
    Severity,
    default_rule_set,
    file_digest,
    load_rule_set,
    lock_current,
    locked_versions,
)
from synthetic.outpatient_visits import outpatient_visits

UTC = dt.UTC
CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 11, 2, 1, 30, tzinfo=UTC)  # 09:30 in Xinyang
UPLOADED_AFTER = dt.timedelta(minutes=30)

ORG_CODE = make_credit_code("12", "411503", "MB012345")  # a public hospital in 平桥区
COUNTY_CODE = make_credit_code("11", "411525", "MA000007")  # 固始县 county platform (public health)

CODEC = EventCodec()
RULE_SET = default_rule_set()
RULES = RULE_SET.by_id()
ENGINE = RuleEngine(RULE_SET)


# -- patients ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    sex: str
    birth_date: dt.date
    area: str
    sequence: int  # odd = male (GB 11643)

    @property
    def id_number(self) -> str:
        return make_citizen_id(self.area, self.birth_date, self.sequence)


ADULT = Person("hb-person-adult", "王建国", "1", dt.date(1980, 5, 12), "411503", 123)
ELDER = Person("hb-person-elder", "李秀英", "2", dt.date(1941, 3, 8), "411524", 42)
CHILD = Person("hb-person-child", "张可欣", "2", dt.date(2025, 9, 1), "411502", 88)
NEWBORN = Person("hb-person-newborn", "陈之子", "1", T0.astimezone(CST).date(), "411503", 0)
MOTHER_ID = make_citizen_id("411503", dt.date(1995, 7, 20), 246)
PERSONS = (ADULT, ELDER, CHILD, NEWBORN)

# Every person registered dead a day after the base events: LOG-AFTER-DEATH applies to the base events
# and passes. (Without a registered death the rule does not apply at all.)
ALIVE_AT_EVENT = EvaluationContext(deaths={p.person_id: T0 + dt.timedelta(days=1) for p in PERSONS})
DIED_BEFORE_EVENT = EvaluationContext(deaths={ADULT.person_id: T0 - dt.timedelta(hours=3)})


def _patient(person: Person, *, with_id: bool = True) -> dict[str, Any]:
    return {
        "local_patient_id": f"L{person.sequence:07d}",
        "name": person.name,
        "sex": person.sex,
        "birth_date": person.birth_date,
        "id_type": "01" if with_id else None,
        "id_number": person.id_number if with_id else None,
        "health_card": None,
        "insurance_card": None,
        "phone": "13912345678",
        "address": "河南省信阳市平桥区平桥大道1号",
        "residence_region_code": person.area,
        "occupation": None,
    }


def _envelope(
    event_type: str,
    record_key: str,
    person: Person,
    *,
    occurred: dt.datetime = T0,
    delay: dt.timedelta = UPLOADED_AFTER,
    county: bool = False,
    with_id: bool = True,
) -> dict[str, Any]:
    org = COUNTY_CODE if county else ORG_CODE
    return {
        "event_id": make_event_id(org, record_key, 1),
        "event_type": event_type,
        "occurred_at": occurred,
        "emitted_at": occurred + delay,
        "record_version": 1,
        "cancelled": False,
        "source": {
            "org_code": org,
            "org_name": "固始县卫生健康委员会" if county else "信阳市平桥区人民医院",
            "system": "PH" if county else "HIS",
            "region_code": "411525" if county else "411503",
            "level": "COUNTY" if county else "HOSPITAL",
            "record_key": record_key,
        },
        "patient": _patient(person, with_id=with_id),
        "person_id": person.person_id,
        "identity": {"rule": "citizen_id", "weight": None, "review": False},
    }


def _diagnosis(code: str, name: str | None = None, primary: bool = False) -> dict[str, Any]:
    return {"code": code, "name": name, "is_primary": primary, "diagnosed_at": None}


def base_event(event_type: str) -> dict[str, Any]:
    """A fresh, fully valid event of ``event_type``: schema-true, and passing every quality rule of its type."""
    if event_type == "outpatient.visit":
        return {
            "envelope": _envelope(event_type, "outpatient_visit:MZ0000000001", ADULT),
            "visit_no": "MZ0000000001",
            "visit_type": "OUTPATIENT",
            "department_code": "0301",
            "department_name": "内科",
            "chief_complaint": "头晕1周，无胸痛",
            "symptoms": ["头晕"],
            "temperature_c": 36.6,
            "exposure_history": None,
            "diagnoses": [{"code": "I10.x00x002", "name": "高血压", "is_primary": True, "diagnosed_at": T0}],
        }
    if event_type == "inpatient.admission":
        return {
            "envelope": _envelope(event_type, "inpatient_admission:ZY0000000001", ADULT),
            "admission_no": "ZY0000000001",
            "admitted_at": T0,
            "department_code": "0301",
            "department_name": "内科",
            "ward": "内科一病区",
            "admission_route": "2",
            "diagnoses": [_diagnosis("J18.900", "肺炎", True)],
        }
    if event_type == "inpatient.discharge":
        return {
            "envelope": _envelope(event_type, "inpatient_discharge:ZY0000000001", ADULT),
            "admission_no": "ZY0000000001",
            "admitted_at": T0 - dt.timedelta(days=7),
            "discharged_at": T0,
            "department_code": "0301",
            "department_name": "内科",
            "diagnoses": [_diagnosis("J18.900", "肺炎", True), _diagnosis("I10.x00x002", "高血压")],
            "procedures": [
                {
                    "code": "87.4401",
                    "name": "胸部X线检查",
                    "performed_at": T0 - dt.timedelta(days=6),
                    "is_primary": True,
                }
            ],
            "discharge_method": "ORDERED",
            "died_at": None,
            "total_cost": decimal.Decimal("8234.50"),
        }
    if event_type == "lab.report":
        return {
            "envelope": _envelope(event_type, "lab_report:JY0000000001", ADULT),
            "report_no": "JY0000000001",
            "specimen_type": "血液",
            "collected_at": T0 - dt.timedelta(hours=3),
            "reported_at": T0,
            "department_name": "内科",
            "items": [
                {
                    "item_code": "2345-7",
                    "item_name": "葡萄糖",
                    "result_text": "5.4",
                    "numeric_value": 5.4,
                    "unit": "mmol/L",
                    "reference_range": "3.9-6.1",
                    "reference_low": 3.9,
                    "reference_high": 6.1,
                    "abnormal_flag": "N",
                },
                {
                    "item_code": "HBSAG",
                    "item_name": "乙肝表面抗原",
                    "result_text": "阴性",
                    "numeric_value": None,
                    "unit": None,
                    "reference_range": "阴性",
                    "reference_low": None,
                    "reference_high": None,
                    "abnormal_flag": "N",
                },
            ],
        }
    if event_type == "exam.report":
        return {
            "envelope": _envelope(event_type, "exam_report:JC0000000001", ADULT),
            "report_no": "JC0000000001",
            "modality": "CT",
            "exam_item_code": "CT0101",
            "exam_item_name": "胸部CT平扫",
            "body_part": "胸部",
            "findings": "右肺下叶见斑片状高密度影",
            "impression": "右肺下叶炎症",
            "reported_at": T0,
        }
    if event_type == "prescription":
        return {
            "envelope": _envelope(event_type, "prescription:CF0000000001", ADULT),
            "prescription_no": "CF0000000001",
            "visit_no": "MZ0000000001",
            "prescribed_at": T0,
            "department_name": "内科",
            "items": [
                {
                    "drug_code": "XC08CAA001A001010100001",
                    "drug_name": "苯磺酸氨氯地平片",
                    "atc_code": "C08CA01",
                    "dose": 5.0,
                    "dose_unit": "mg",
                    "frequency": "qd",
                    "route": "口服",
                    "days": 30,
                    "quantity": 30.0,
                }
            ],
        }
    if event_type == "death.record":
        return {  # a death certificate uploaded two days after the death (limit: 7 days)
            "envelope": _envelope(event_type, "death_record:SW0000000001", ELDER, delay=dt.timedelta(days=2)),
            "certificate_no": "SW0000000001",
            "died_at": T0,
            "death_place": "1",
            "cause_chain": [
                {"line": "Ia", "code": "I21.900", "description": "急性心肌梗死", "interval": "2小时"},
                {"line": "Ib", "code": "I25.100", "description": "动脉粥样硬化性心脏病", "interval": "10年"},
                {"line": "II", "code": "E11.900", "description": "2型糖尿病", "interval": "15年"},
            ],
            "underlying_cause_code": "I25.100",
            "underlying_cause_name": "动脉粥样硬化性心脏病",
        }
    if event_type == "vaccination.record":
        return {
            "envelope": _envelope(event_type, "vaccination:JZ0000000001", CHILD),
            "vaccination_no": "JZ0000000001",
            "vaccine_code": "0202",
            "vaccine_name": "乙肝疫苗(酿酒酵母)",
            "dose_number": 3,
            "batch_no": "202603B012",
            "manufacturer": "深圳康泰生物制品股份有限公司",
            "administered_at": T0,
            "site": "左上臂三角肌",
            "route": "肌内注射",
        }
    if event_type == "birth.record":
        # The newborn has no ID number yet: the envelope's ID fields are empty (their rules do not apply).
        return {
            "envelope": _envelope(event_type, "birth_record:CS0000000001", NEWBORN, with_id=False),
            "certificate_no": "R410000001",
            "born_at": T0,
            "birth_weight_g": 3350,
            "birth_length_cm": 50.0,
            "gestational_weeks": 39,
            "mother_name": "刘芳",
            "mother_id_type": "01",
            "mother_id_number": MOTHER_ID,
            "vaccines_at_birth": [
                {
                    "vaccine_code": "0201",
                    "vaccine_name": "乙肝疫苗",
                    "batch_no": "202601A003",
                    "administered_at": T0 + dt.timedelta(hours=12),
                }
            ],
        }
    if event_type == "ph.chronic_followup":
        return {
            "envelope": _envelope(event_type, "chronic_followup:SF0000000001", ADULT, county=True),
            "followup_no": "SF0000000001",
            "disease_code": "I10",
            "followup_at": T0,
            "followup_method": "1",
            "systolic_bp": 138,
            "diastolic_bp": 86,
            "fasting_glucose_mmol": None,
            "followup_class": "SATISFACTORY",
            "next_followup_date": dt.date(2027, 2, 2),
        }
    if event_type == "patient.registered":
        return {
            "envelope": _envelope(event_type, "patient:L0000123", ADULT),
            "abo_blood_type": "1",
            "rh_blood_type": "2",
            "ethnicity": "01",
            "marital_status": "20",
            "history": [{"kind": "ALLERGY", "code": None, "description": "青霉素过敏", "recorded_at": None}],
        }
    raise KeyError(event_type)


BASE_EVENT_TYPES = (
    "birth.record",
    "death.record",
    "exam.report",
    "inpatient.admission",
    "inpatient.discharge",
    "lab.report",
    "outpatient.visit",
    "patient.registered",
    "ph.chronic_followup",
    "prescription",
    "vaccination.record",
)

# Rules a base event cannot exercise: a newborn has no ID document yet.
NOT_APPLICABLE_TO_BASE = {
    ("birth.record", "COR-ID-TYPE"),
    ("birth.record", "COR-CITIZEN-ID"),
    ("birth.record", "CMP-PATIENT-ID-NUMBER"),
}


def roundtrip(event_type: str, event: dict[str, Any]) -> dict[str, Any]:
    """Encode (proves the event schema-true) and decode: the value as the quality stage sees it."""
    decoded = CODEC.decode(CODEC.encode(event_type, event))
    assert decoded.event_type == event_type
    return decoded.value


def judge(event_type: str, event: dict[str, Any], ctx: EvaluationContext = ALIVE_AT_EVENT) -> Verdict:
    return ENGINE.judge(event_type, roundtrip(event_type, event), ctx)


def found(verdict: Verdict) -> list[tuple[str, str]]:
    return [(v.rule_id, v.field) for v in verdict.violations]


# -- mutations ----------------------------------------------------------------------------------------------
Mutation = Callable[[dict[str, Any]], None]


def _step(node: Any, step: str) -> Any:
    name, _, index = step.partition("[")
    node = node[name]
    return node[int(index[:-1])] if index else node


def put(path: str, value: Any) -> Mutation:
    """Set ``value`` at a field path such as ``envelope.patient.sex`` or ``diagnoses[1].code``."""
    *parents, last = path.split(".")

    def mutate(event: dict[str, Any]) -> None:
        node = event
        for step in parents:
            node = _step(node, step)
        name, _, index = last.partition("[")
        if index:
            node[name][int(index[:-1])] = value
        else:
            node[name] = value

    return mutate


def puts(**changes: Any) -> Mutation:
    """Several ``put``s; keyword names use ``__`` for the dots of a path."""
    mutations = [put(path.replace("__", "."), value) for path, value in changes.items()]

    def mutate(event: dict[str, Any]) -> None:
        for m in mutations:
            m(event)

    return mutate


def shift(path: str, delta: dt.timedelta, relative_to: str | None = None) -> Mutation:
    """Set a time to another time of the event (``relative_to``, default itself) + ``delta``."""

    def mutate(event: dict[str, Any]) -> None:
        node = event
        for step in (relative_to or path).split("."):
            node = _step(node, step)
        put(path, node + delta)(event)

    return mutate


def add_diagnosis(code: str) -> Mutation:
    return lambda event: event["diagnoses"].append(_diagnosis(code))


def wrong_check_character(code: str) -> str:
    return code[:-1] + ("1" if code[-1] != "1" else "2")


# -- one row per shipped rule -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    event_type: str
    fail: Mutation
    field: str
    severity: str  # as declared: changing a rule's severity must show up here
    ctx: EvaluationContext = ALIVE_AT_EVENT


PREFIX_CATEGORY = {
    "CMP": Category.COMPLETENESS,
    "COR": Category.CORRECTNESS,
    "LOG": Category.LOGIC,
    "TIM": Category.TIMELINESS,
}
E, W = "error", "warning"
OV, ADM, DIS, LAB, EXAM = "outpatient.visit", "inpatient.admission", "inpatient.discharge", "lab.report", "exam.report"
RX, DEATH, VAC, BIRTH = "prescription", "death.record", "vaccination.record", "birth.record"
FUP, REG = "ph.chronic_followup", "patient.registered"

CASES: dict[str, Case] = {
    # envelope
    "COR-ORG-CODE": Case(
        OV, put("envelope.source.org_code", wrong_check_character(ORG_CODE)), "envelope.source.org_code", E
    ),
    "COR-ORG-REGION": Case(
        LAB,
        put("envelope.source.region_code", "413023"),  # 信阳县: abolished 1998
        "envelope.source.region_code",
        W,
    ),
    "COR-RESIDENCE-REGION": Case(
        OV, put("envelope.patient.residence_region_code", "411599"), "envelope.patient.residence_region_code", W
    ),
    "COR-SEX-CODE": Case(REG, put("envelope.patient.sex", "3"), "envelope.patient.sex", E),
    "COR-SEX-CODE-EVENT": Case(OV, put("envelope.patient.sex", "M"), "envelope.patient.sex", W),
    "COR-ID-TYPE": Case(OV, put("envelope.patient.id_type", "1"), "envelope.patient.id_type", W),
    "COR-CITIZEN-ID": Case(
        OV, put("envelope.patient.id_number", wrong_check_character(ADULT.id_number)), "envelope.patient.id_number", W
    ),
    "CMP-PATIENT-BASICS": Case(OV, put("envelope.patient.name", " "), "envelope.patient.name", W),
    "CMP-PATIENT-ID-NUMBER": Case(OV, put("envelope.patient.id_number", None), "envelope.patient.id_number", W),
    "COR-NOT-IN-FUTURE": Case(
        OV, shift("envelope.emitted_at", -dt.timedelta(hours=1), "envelope.occurred_at"), "envelope.occurred_at", E
    ),
    "LOG-AFTER-BIRTH": Case(
        OV,
        put("envelope.patient.birth_date", T0.astimezone(CST).date() + dt.timedelta(days=1)),
        "envelope.occurred_at",
        E,
    ),
    "LOG-AFTER-DEATH": Case(OV, lambda e: None, "envelope.occurred_at", W, ctx=DIED_BEFORE_EVENT),
    # timeliness
    "TIM-CLINICAL-24H": Case(
        OV, shift("envelope.emitted_at", dt.timedelta(hours=25), "envelope.occurred_at"), "envelope.emitted_at", W
    ),
    "TIM-RECORD-24H": Case(
        LAB, shift("envelope.emitted_at", dt.timedelta(hours=25), "envelope.occurred_at"), "envelope.emitted_at", W
    ),
    "TIM-DEATH-7D": Case(
        DEATH, shift("envelope.emitted_at", dt.timedelta(days=8), "envelope.occurred_at"), "envelope.emitted_at", W
    ),
    # diagnoses
    "CMP-DIAGNOSIS": Case(DIS, put("diagnoses[1].code", ""), "diagnoses[1].code", E),
    "COR-ICD10": Case(DIS, put("diagnoses[1].code", "I10.900"), "diagnoses[1].code", E),  # I10 has no .9
    "LOG-SEX-DIAGNOSIS": Case(OV, add_diagnosis("O00.900"), "diagnoses[1].code", E),  # ectopic pregnancy, male
    "LOG-AGE-DIAGNOSIS": Case(ADM, add_diagnosis("P07.300"), "diagnoses[1].code", W),  # preterm, a 46-year-old
    # per event type
    "CMP-VISIT": Case(OV, put("visit_no", ""), "visit_no", E),
    "CMP-CHIEF-COMPLAINT": Case(OV, put("chief_complaint", None), "chief_complaint", W),
    "CMP-DEPARTMENT": Case(ADM, puts(department_code=None, department_name=""), "department_code", W),
    "COR-TEMPERATURE": Case(OV, put("temperature_c", 365.0), "temperature_c", W),  # 36.5 keyed without the dot
    "CMP-ADMISSION": Case(DIS, put("admission_no", " "), "admission_no", E),
    "LOG-DISCHARGE-AFTER-ADMISSION": Case(
        DIS, shift("discharged_at", -dt.timedelta(hours=1), "admitted_at"), "discharged_at", E
    ),
    "LOG-DISCHARGE-DEATH": Case(DIS, put("discharge_method", "DEATH"), "died_at", E),
    "CMP-LAB": Case(LAB, put("items[1].item_code", ""), "items[1].item_code", E),
    "CMP-SPECIMEN": Case(LAB, put("specimen_type", None), "specimen_type", W),
    "COR-LAB-NUMERIC": Case(LAB, put("items[0].unit", None), "items[0].unit", W),
    "LOG-LAB-REPORTED-AFTER-COLLECTED": Case(
        LAB, shift("collected_at", dt.timedelta(hours=1), "reported_at"), "reported_at", W
    ),
    "CMP-EXAM": Case(EXAM, put("modality", ""), "modality", E),
    "CMP-EXAM-IMPRESSION": Case(EXAM, put("impression", None), "impression", W),
    "CMP-PRESCRIPTION": Case(RX, put("items", []), "items", E),
    "CMP-DEATH": Case(DEATH, put("certificate_no", ""), "certificate_no", E),
    "CMP-DEATH-CAUSE-CHAIN": Case(DEATH, put("underlying_cause_name", None), "underlying_cause_name", W),
    "COR-DEATH-ICD10": Case(DEATH, put("cause_chain[2].code", "E11.X9Z"), "cause_chain[2].code", E),
    "LOG-DEATH-RECORD": Case(DEATH, put("underlying_cause_code", "J18.900"), "underlying_cause_code", E),
    "CMP-VACCINATION": Case(VAC, put("vaccine_code", ""), "vaccine_code", E),
    "CMP-VACCINE-BATCH": Case(VAC, put("batch_no", None), "batch_no", W),
    "COR-DOSE-NUMBER": Case(VAC, put("dose_number", 0), "dose_number", W),
    "COR-BIRTH-MEASURES": Case(BIRTH, put("birth_weight_g", 33500), "birth_weight_g", W),
    "COR-GESTATION": Case(BIRTH, put("gestational_weeks", 390), "gestational_weeks", W),
    "CMP-MOTHER-ID": Case(BIRTH, put("mother_id_number", None), "mother_id_number", W),
    "COR-MOTHER-CITIZEN-ID": Case(
        BIRTH, put("mother_id_number", wrong_check_character(MOTHER_ID)), "mother_id_number", W
    ),
    "CMP-FOLLOWUP": Case(FUP, put("followup_no", ""), "followup_no", E),
    "COR-FOLLOWUP-ICD10": Case(FUP, put("disease_code", "I10.900"), "disease_code", E),
    "CMP-HYPERTENSION-BP": Case(FUP, put("diastolic_bp", None), "diastolic_bp", W),
    "COR-BLOOD-PRESSURE": Case(FUP, put("systolic_bp", 1380), "systolic_bp", W),
    "COR-DIASTOLIC": Case(FUP, put("diastolic_bp", 8), "diastolic_bp", W),
    "COR-BLOOD-TYPE": Case(REG, put("abo_blood_type", "A"), "abo_blood_type", W),
    "COR-RH-TYPE": Case(REG, put("rh_blood_type", "4"), "rh_blood_type", W),
}


def test_every_shipped_rule_has_a_case() -> None:
    shipped = {r.id for r in RULE_SET.rules}
    assert not shipped - CASES.keys(), f"rules without a pass/fail case in CASES: {sorted(shipped - CASES.keys())}"
    assert not CASES.keys() - shipped, f"cases for rules not in the rule file: {sorted(CASES.keys() - shipped)}"


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_case_matches_the_declaration(rule_id: str) -> None:
    rule, case = RULES[rule_id], CASES[rule_id]
    assert case.event_type in rule.event_types
    assert rule.severity is Severity(case.severity), f"{rule_id}: severity changed from {case.severity}"
    assert rule.category is PREFIX_CATEGORY[rule_id.split("-")[0]], f"{rule_id}: id prefix and category disagree"


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_passes_on_the_clean_event(rule_id: str) -> None:
    rule, case = RULES[rule_id], CASES[rule_id]
    event = roundtrip(case.event_type, base_event(case.event_type))
    assert rule.check(event, ALIVE_AT_EVENT) == [], f"{rule_id} must apply to the clean event and pass"
    verdict = ENGINE.judge(case.event_type, event, ALIVE_AT_EVENT)
    assert verdict.violations == () and verdict.passed and verdict.score == 1.0


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fails_on_its_mutation(rule_id: str) -> None:
    rule, case = RULES[rule_id], CASES[rule_id]
    event = base_event(case.event_type)
    case.fail(event)
    verdict = judge(case.event_type, event, case.ctx)  # the broken event is still schema-true

    assert found(verdict) == [(rule_id, case.field)], "the mutation must break this rule and only this rule"
    (violation,) = verdict.violations
    assert violation.category is PREFIX_CATEGORY[rule_id.split("-")[0]]
    assert violation.severity is Severity(case.severity)
    assert verdict.passed is (case.severity != "error")
    assert verdict.late is (violation.category is Category.TIMELINESS)
    assert verdict.weight_failed == rule.weight
    assert verdict.score == pytest.approx(1 - rule.weight / verdict.weight_applied)
    assert verdict.rule_set_version == RULE_SET.version
    assert verdict.output_json() == {
        "event_id": event["envelope"]["event_id"],
        "passed": verdict.passed,
        "score": round(verdict.score, 6),
        "violations": [
            {"rule_id": rule_id, "category": violation.category.value, "severity": case.severity, "field": case.field}
        ],
    }


# -- clean events -------------------------------------------------------------------------------------------
def test_base_events_cover_every_pipeline_type() -> None:
    assert set(BASE_EVENT_TYPES) == set(PIPELINE_EVENT_TYPES)
    for rule in RULE_SET.rules:
        assert rule.event_types <= set(PIPELINE_EVENT_TYPES)


@pytest.mark.parametrize("event_type", BASE_EVENT_TYPES)
def test_base_event_passes_every_rule(event_type: str) -> None:
    event = base_event(event_type)
    assert event["envelope"]["event_type"] == event_type
    verdict = judge(event_type, event)
    assert verdict.violations == ()
    assert verdict.passed and not verdict.late
    assert verdict.score == 1.0 and verdict.weight_failed == 0
    rules = RULE_SET.for_event_type(event_type)
    applicable = [r for r in rules if (event_type, r.id) not in NOT_APPLICABLE_TO_BASE]
    decoded = roundtrip(event_type, event)
    assert {r.id: r.check(decoded, ALIVE_AT_EVENT) for r in applicable} == {r.id: [] for r in applicable}
    assert verdict.weight_applied == sum(r.weight for r in applicable)


def test_synthetic_outpatient_visits_are_clean() -> None:
    for event in outpatient_visits(300, seed=11):
        verdict = judge("outpatient.visit", event, EvaluationContext())
        assert verdict.violations == (), (event["diagnoses"], found(verdict))


# -- region codes by year (docs/domain.md §1) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "year", "valid"),
    [
        ("411503", 1997, False),
        ("411503", 1998, True),
        ("411503", 2026, True),  # 平桥区 since 1998
        ("413023", 1980, True),
        ("413023", 1997, True),
        ("413023", 1998, False),  # 信阳县 until 1997
        ("411500", 1998, True),
        ("413000", 1998, False),
    ],
)
def test_region_code_is_judged_by_the_event_year(code: str, year: int, valid: bool) -> None:
    assert region_valid(code, year) is valid
    event = base_event("outpatient.visit")
    when = dt.datetime(year, 6, 1, 2, tzinfo=UTC)
    puts(
        envelope__occurred_at=when,
        envelope__emitted_at=when + UPLOADED_AFTER,
        envelope__source__region_code=code,
        envelope__patient__residence_region_code=code,
        diagnoses=[_diagnosis("I10.x00x002")],
    )(event)
    ctx = EvaluationContext()
    expected = (
        []
        if valid
        else [
            ("COR-ORG-REGION", "envelope.source.region_code"),
            ("COR-RESIDENCE-REGION", "envelope.patient.residence_region_code"),
        ]
    )
    assert found(judge("outpatient.visit", event, ctx)) == expected


@pytest.mark.parametrize(
    ("occurred", "valid"),
    [
        (dt.datetime(1997, 12, 31, 15, 59, tzinfo=UTC), False),  # 23:59 on 31 Dec 1997 in Xinyang
        (dt.datetime(1997, 12, 31, 16, 0, tzinfo=UTC), True),  # 00:00 on 1 Jan 1998 in Xinyang
    ],
)
def test_event_year_is_chinas(occurred: dt.datetime, valid: bool) -> None:
    event = base_event("outpatient.visit")
    puts(envelope__occurred_at=occurred, envelope__emitted_at=occurred + UPLOADED_AFTER)(event)
    ids = {v.rule_id for v in judge("outpatient.visit", event, EvaluationContext()).violations}
    assert ids == (set() if valid else {"COR-ORG-REGION", "COR-RESIDENCE-REGION"})


def test_malformed_and_blank_region_codes() -> None:
    event = base_event("outpatient.visit")
    puts(envelope__source__region_code="４１１５０３", envelope__patient__residence_region_code=None)(event)
    assert found(judge("outpatient.visit", event)) == [("COR-ORG-REGION", "envelope.source.region_code")]
    rule = RULES["COR-RESIDENCE-REGION"]
    assert rule.check(roundtrip("outpatient.visit", event), ALIVE_AT_EVENT) is None  # absent: not judged


# -- ICD-10 (docs/domain.md §3) ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("I10.x00x002", True),
        ("J18.900", True),
        ("I10", True),
        ("I10.x", True),
        ("i10.x00x002", True),
        ("U07.1", True),
        ("S72.00", True),
        ("I10.900", False),
        ("I10.9", False),
        ("J189", False),
        ("J18.A00", False),
        ("XYZ", False),
        ("I1", False),
        ("I10.x00x0021", False),
    ],
)
def test_icd10_codes(code: str, valid: bool) -> None:
    event = base_event("outpatient.visit")
    put("diagnoses[0].code", code)(event)
    expected = [] if valid else [("COR-ICD10", "diagnoses[0].code")]
    assert found(judge("outpatient.visit", event)) == expected


def test_icd10_names_each_bad_diagnosis_and_counts_once() -> None:
    event = base_event("inpatient.discharge")
    event["diagnoses"] = [_diagnosis("I10.900"), _diagnosis("J18.900"), _diagnosis("ZZZ")]
    verdict = judge("inpatient.discharge", event)
    assert found(verdict) == [("COR-ICD10", "diagnoses[0].code"), ("COR-ICD10", "diagnoses[2].code")]
    assert verdict.weight_failed == RULES["COR-ICD10"].weight
    assert not verdict.passed


def test_death_causes_are_icd10_checked() -> None:
    event = base_event("death.record")
    put("underlying_cause_code", "I25.9xx")(event)  # I25.9 exists: extension placeholders are fine
    put("cause_chain[1].code", "I25.9xx")(event)
    assert found(judge("death.record", event)) == []
    put("underlying_cause_code", "I25.A")(event)
    assert found(judge("death.record", event)) == [("COR-DEATH-ICD10", "underlying_cause_code")]


def test_empty_diagnosis_list() -> None:
    event = base_event("outpatient.visit")
    event["diagnoses"] = []
    verdict = judge("outpatient.visit", event)
    assert found(verdict) == [("CMP-DIAGNOSIS", "diagnoses")]
    assert not verdict.passed


# -- sex- and age-specific diagnoses -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sex", "code", "fails"),
    [
        ("1", "O00.900", True),
        ("2", "O00.900", False),
        ("1", "O99.800", True),  # O99 inside O00–O9A
        ("2", "N40.x00", True),
        ("1", "N40.x00", False),
        ("2", "C61.x00", True),
        ("1", "C61.x00", False),
        ("2", "N51.800", True),
        ("2", "N39.000", False),  # N39 (urinary tract) is outside the range
        ("9", "O00.900", False),
        ("0", "N40.x00", False),  # unknown sex: not judged
    ],
)
def test_sex_specific_diagnoses(sex: str, code: str, fails: bool) -> None:
    event = base_event("outpatient.visit")
    puts(envelope__patient__sex=sex)(event)
    add_diagnosis(code)(event)
    expected = [("LOG-SEX-DIAGNOSIS", "diagnoses[1].code")] if fails else []
    assert found(judge("outpatient.visit", event)) == expected


@pytest.mark.parametrize(("age_days", "fails"), [(0, False), (365, False), (366, True), (3000, True)])
def test_perinatal_diagnoses_belong_to_infants(age_days: int, fails: bool) -> None:
    event = base_event("outpatient.visit")
    birth = T0.astimezone(CST).date() - dt.timedelta(days=age_days)
    puts(
        envelope__patient__birth_date=birth,
        envelope__patient__id_number=make_citizen_id("411503", birth, 123),
        diagnoses=[_diagnosis("P07.300")],
    )(event)
    expected = [("LOG-AGE-DIAGNOSIS", "diagnoses[0].code")] if fails else []
    assert found(judge("outpatient.visit", event)) == expected


def test_after_birth_uses_chinas_date() -> None:
    """A baby born at 00:30 in Xinyang (16:30 UTC the day before): the birth date is Xinyang's."""
    born = dt.datetime(2026, 11, 1, 16, 30, tzinfo=UTC)
    event = base_event("birth.record")
    puts(
        envelope__occurred_at=born,
        envelope__emitted_at=born + UPLOADED_AFTER,
        born_at=born,
        envelope__patient__birth_date=dt.date(2026, 11, 2),
    )(event)
    assert found(judge("birth.record", event)) == []
    put("envelope.patient.birth_date", dt.date(2026, 11, 3))(event)
    assert found(judge("birth.record", event)) == [("LOG-AFTER-BIRTH", "envelope.occurred_at")]


# -- timeliness (docs/domain.md §7) -------------------------------------------------------------------------------
def _uploaded_after(event: dict[str, Any], delay: dt.timedelta) -> dict[str, Any]:
    envelope = event["envelope"]
    envelope["emitted_at"] = envelope["occurred_at"] + delay
    return event


@pytest.mark.parametrize(
    ("codes", "delay", "late"),
    [
        (["I10.x00x002"], dt.timedelta(hours=23), False),
        (["I10.x00x002"], dt.timedelta(hours=24), False),  # the limit itself is in time
        (["I10.x00x002"], dt.timedelta(hours=24, seconds=1), True),
        (["A00.900"], dt.timedelta(hours=1, minutes=59), False),  # cholera: class A, 2 h
        (["A00.900"], dt.timedelta(hours=2), False),
        (["A00.900"], dt.timedelta(hours=2, seconds=1), True),
        (["A20.900"], dt.timedelta(hours=3), True),  # plague: class A
        (["I10.x00x002", "a00.100"], dt.timedelta(hours=3), True),  # any diagnosis of class A makes it urgent
        (["A01.000"], dt.timedelta(hours=3), False),  # typhoid: class B, 24 h
        (["A01.000"], dt.timedelta(hours=25), True),
        (["B08.401"], dt.timedelta(hours=12), False),  # hand-foot-mouth: class C, 24 h
    ],
)
@pytest.mark.parametrize("event_type", [OV, ADM, DIS])
def test_clinical_upload_limit(event_type: str, codes: list[str], delay: dt.timedelta, late: bool) -> None:
    event = _uploaded_after(base_event(event_type), delay)
    event["diagnoses"] = [_diagnosis(c) for c in codes]
    verdict = judge(event_type, event)
    assert found(verdict) == ([("TIM-CLINICAL-24H", "envelope.emitted_at")] if late else [])
    assert verdict.late is late
    assert verdict.passed  # lateness is a warning


@pytest.mark.parametrize("event_type", [LAB, EXAM, RX, VAC, BIRTH, FUP, REG])
@pytest.mark.parametrize(
    ("delay", "late"),
    [
        (dt.timedelta(hours=24), False),
        (dt.timedelta(hours=24, minutes=1), True),
    ],
)
def test_record_upload_limit(event_type: str, delay: dt.timedelta, late: bool) -> None:
    verdict = judge(event_type, _uploaded_after(base_event(event_type), delay))
    assert found(verdict) == ([("TIM-RECORD-24H", "envelope.emitted_at")] if late else [])
    assert verdict.late is late


@pytest.mark.parametrize(
    ("delay", "late"),
    [
        (dt.timedelta(hours=25), False),
        (dt.timedelta(days=6), False),
        (dt.timedelta(days=7), False),
        (dt.timedelta(days=7, minutes=1), True),
        (dt.timedelta(days=30), True),
    ],
)
def test_death_record_upload_limit_is_seven_days(delay: dt.timedelta, late: bool) -> None:
    verdict = judge("death.record", _uploaded_after(base_event("death.record"), delay))
    assert found(verdict) == ([("TIM-DEATH-7D", "envelope.emitted_at")] if late else [])
    assert verdict.late is late and verdict.passed


def test_every_pipeline_type_has_one_timeliness_rule() -> None:
    for event_type in PIPELINE_EVENT_TYPES:
        timeliness = [r.id for r in RULE_SET.for_event_type(event_type) if r.category is Category.TIMELINESS]
        assert len(timeliness) == 1, (event_type, timeliness)


# -- registered deaths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("died_before_event", "fails"),
    [
        (dt.timedelta(hours=-1), False),  # died after the event
        (dt.timedelta(0), False),
        (dt.timedelta(hours=2), False),  # within the 2 h grace (a report finished after the death)
        (dt.timedelta(hours=2, minutes=1), True),
        (dt.timedelta(days=30), True),
    ],
)
@pytest.mark.parametrize("event_type", [OV, ADM, LAB, EXAM, RX, FUP])
def test_clinical_record_after_registered_death(event_type: str, died_before_event: dt.timedelta, fails: bool) -> None:
    ctx = EvaluationContext(deaths={ADULT.person_id: T0 - died_before_event})
    verdict = judge(event_type, base_event(event_type), ctx)
    assert found(verdict) == ([("LOG-AFTER-DEATH", "envelope.occurred_at")] if fails else [])
    assert verdict.passed  # a warning: the record stays, flagged


def test_after_death_needs_a_registered_death_of_that_person() -> None:
    event = base_event("outpatient.visit")
    weight = RULES["LOG-AFTER-DEATH"].weight
    alive = judge("outpatient.visit", event, EvaluationContext())  # nobody registered dead: not applied
    assert alive.violations == () and alive.weight_applied == judge("outpatient.visit", event).weight_applied - weight
    other = EvaluationContext(deaths={"hb-person-somebody-else": T0 - dt.timedelta(days=1)})
    assert judge("outpatient.visit", event, other).violations == ()
    put("envelope.person_id", None)(event)  # not identified yet
    assert judge("outpatient.visit", event, DIED_BEFORE_EVENT).violations == ()


@pytest.mark.parametrize("event_type", [DIS, DEATH, BIRTH, REG])
def test_after_death_ignores_records_of_the_death_itself(event_type: str) -> None:
    """A discharge by death, the death certificate, a birth record or a registration update are not
    'clinical records after the death'."""
    event = base_event(event_type)
    person = event["envelope"]["person_id"]
    ctx = EvaluationContext(deaths={person: T0 - dt.timedelta(days=1)})
    assert judge(event_type, event, ctx).violations == ()


# -- discharges, deaths, labs, follow-ups ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "died_at", "field"),
    [
        ("DEATH", T0 - dt.timedelta(hours=1), None),
        ("DEATH", T0, None),
        ("DEATH", None, "died_at"),
        ("ORDERED", T0 - dt.timedelta(hours=1), "discharge_method"),
        ("DEATH", T0 - dt.timedelta(days=8), "died_at"),  # before the admission
    ],
)
def test_discharge_by_death(method: str, died_at: dt.datetime | None, field: str | None) -> None:
    event = base_event("inpatient.discharge")
    puts(discharge_method=method, died_at=died_at)(event)
    verdict = judge("inpatient.discharge", event)
    assert found(verdict) == ([("LOG-DISCHARGE-DEATH", field)] if field else [])
    assert verdict.passed is (field is None)


def test_death_before_birth() -> None:
    event = base_event("death.record")
    born = ELDER.birth_date
    died = dt.datetime(born.year, born.month, born.day, tzinfo=CST) - dt.timedelta(hours=1)
    puts(died_at=died.astimezone(UTC))(event)
    assert found(judge("death.record", event)) == [("LOG-DEATH-RECORD", "died_at")]


def test_underlying_cause_matches_the_chain_by_category() -> None:
    event = base_event("death.record")
    put("underlying_cause_code", "i25.1")(event)  # I25 is on the chain as I25.100
    assert found(judge("death.record", event)) == []


@pytest.mark.parametrize(
    ("item", "fields"),
    [
        ({"numeric_value": -1.0}, ["items[0].numeric_value"]),
        ({"numeric_value": math.nan}, ["items[0].numeric_value"]),
        ({"numeric_value": math.inf, "unit": " "}, ["items[0].numeric_value", "items[0].unit"]),
        ({"reference_low": 7.0}, ["items[0].reference_low"]),
        ({"numeric_value": 0.0}, []),
    ],
)
def test_lab_numeric_results(item: dict[str, Any], fields: list[str]) -> None:
    event = base_event("lab.report")
    event["items"][0].update(item)
    verdict = judge("lab.report", event)
    assert found(verdict) == [("COR-LAB-NUMERIC", f) for f in fields]
    assert verdict.weight_failed == (RULES["COR-LAB-NUMERIC"].weight if fields else 0)


def test_lab_numeric_does_not_apply_to_text_results() -> None:
    event = roundtrip("lab.report", base_event("lab.report"))
    event["items"] = event["items"][1:]  # the text-only item
    assert RULES["COR-LAB-NUMERIC"].check(event, ALIVE_AT_EVENT) is None


@pytest.mark.parametrize(
    ("disease", "method", "applies"),
    [
        ("I10", "1", True),
        ("I15.000", "2", True),
        ("I10", "3", False),  # telephone follow-ups measure nothing
        ("E11.900", "1", False),
        ("I20.000", "1", False),
    ],
)
def test_hypertension_followup_needs_blood_pressure(disease: str, method: str, applies: bool) -> None:
    event = base_event("ph.chronic_followup")
    puts(disease_code=disease, followup_method=method, systolic_bp=None, diastolic_bp=None)(event)
    verdict = judge("ph.chronic_followup", event)
    expected = [("CMP-HYPERTENSION-BP", "systolic_bp"), ("CMP-HYPERTENSION-BP", "diastolic_bp")] if applies else []
    assert found(verdict) == expected
    assert verdict.weight_failed == (RULES["CMP-HYPERTENSION-BP"].weight if applies else 0)


# -- identity documents ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("id_type", "number", "expected"),
    [
        ("01", ADULT.id_number[:-1] + ADULT.id_number[-1].lower(), []),
        ("01", ADULT.id_number[:6] + ADULT.id_number[8:17], []),  # the old 15 digits
        ("01", "".join(chr(ord(c) + 0xFEE0) for c in ADULT.id_number), []),  # full-width digits
        ("01", "41150319800230123X", [("COR-CITIZEN-ID", "envelope.patient.id_number")]),  # 30 Feb
        ("01", ADULT.id_number[:17], [("COR-CITIZEN-ID", "envelope.patient.id_number")]),
        (None, wrong_check_character(ADULT.id_number), [("COR-CITIZEN-ID", "envelope.patient.id_number")]),
        ("03", "E12345678", []),  # a passport: not a citizen ID number
        ("02", None, [("CMP-PATIENT-ID-NUMBER", "envelope.patient.id_number")]),
        ("04", None, []),
        ("99", None, []),
    ],
)
def test_identity_documents(id_type: str | None, number: str | None, expected: list[tuple[str, str]]) -> None:
    event = base_event("outpatient.visit")
    puts(envelope__patient__id_type=id_type, envelope__patient__id_number=number)(event)
    assert found(judge("outpatient.visit", event)) == expected


def test_patient_basics_name_every_missing_field_and_count_once() -> None:
    event = base_event("exam.report")
    puts(envelope__patient__name=None, envelope__patient__sex="")(event)
    verdict = judge("exam.report", event)
    assert found(verdict) == [
        ("CMP-PATIENT-BASICS", "envelope.patient.name"),
        ("CMP-PATIENT-BASICS", "envelope.patient.sex"),
    ]
    assert verdict.weight_failed == RULES["CMP-PATIENT-BASICS"].weight


# -- cancellations ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", BASE_EVENT_TYPES)
def test_cancelled_event_is_judged_only_by_on_cancelled_rules(event_type: str) -> None:
    on_cancelled = [r for r in RULE_SET.for_event_type(event_type) if r.on_cancelled]
    assert {r.id for r in RULE_SET.for_event_type(event_type, cancelled=True)} == {r.id for r in on_cancelled}
    event = base_event(event_type)
    envelope = event["envelope"]
    envelope["cancelled"] = True
    # Withdrawn content is not judged: missing elements, bad codes, lateness.
    envelope["emitted_at"] = envelope["occurred_at"] + dt.timedelta(days=60)
    envelope["patient"].update(sex="X", name=None, id_number="123", residence_region_code="999999")
    verdict = judge(event_type, event)
    assert verdict.violations == () and verdict.passed and verdict.score == 1.0
    assert verdict.weight_applied == sum(r.weight for r in on_cancelled)


def test_cancelled_event_with_a_bad_institution_code() -> None:
    event = base_event("outpatient.visit")
    puts(envelope__cancelled=True, envelope__source__org_code=wrong_check_character(ORG_CODE), visit_no="")(event)
    verdict = judge("outpatient.visit", event)
    assert found(verdict) == [("COR-ORG-CODE", "envelope.source.org_code")]
    assert not verdict.passed and verdict.score == 0.0


# -- the weighted score ------------------------------------------------------------------------------------------
MINI_RULES = """\
version: "2026.1.1"
rules:
  - id: T-VISIT
    category: completeness
    event_types: [outpatient.visit]
    severity: error
    weight: 3
    check: required
    params: {fields: [visit_no]}
    message: {zh: "x", en: "x"}
  - id: T-COMPLAINT-DEPT
    category: completeness
    event_types: [outpatient.visit]
    severity: warning
    weight: 1
    check: required
    params: {fields: [chief_complaint, department_name]}
    message: {zh: "x", en: "x"}
  - id: T-TEMPERATURE
    category: correctness
    event_types: ["*"]
    severity: warning
    weight: 4
    check: range
    params: {fields: [temperature_c], min: 34, max: 43}
    message: {zh: "x", en: "x"}
  - id: T-LAB-ONLY
    category: completeness
    event_types: [lab.report]
    severity: error
    weight: 10
    check: required
    params: {fields: [report_no]}
    message: {zh: "x", en: "x"}
"""


@pytest.fixture
def mini_engine(tmp_path: Path) -> RuleEngine:
    path = tmp_path / "mini.yaml"
    path.write_text(MINI_RULES, encoding="utf-8")
    return RuleEngine(load_rule_set(path))


def test_score_is_one_minus_failed_over_applied_weight(mini_engine: RuleEngine) -> None:
    event = roundtrip("outpatient.visit", base_event("outpatient.visit"))
    clean = mini_engine.judge("outpatient.visit", event)
    assert (clean.score, clean.weight_applied, clean.weight_failed) == (1.0, 8, 0)

    event["chief_complaint"] = None  # warning, weight 1 of 8
    v = mini_engine.judge("outpatient.visit", event)
    assert (v.score, v.weight_applied, v.weight_failed, v.passed) == (1 - 1 / 8, 8, 1, True)

    event["temperature_c"] = None  # T-TEMPERATURE no longer applies: 1 of 4
    v = mini_engine.judge("outpatient.visit", event)
    assert (v.score, v.weight_applied, v.weight_failed) == (0.75, 4, 1)

    event["visit_no"] = ""  # plus the error rule, weight 3: 4 of 4
    v = mini_engine.judge("outpatient.visit", event)
    assert (v.score, v.passed) == (0.0, False)
    assert [x.rule_id for x in v.errors] == ["T-VISIT"] and [x.rule_id for x in v.warnings] == ["T-COMPLAINT-DEPT"]


def test_a_rule_failing_on_two_fields_counts_once(mini_engine: RuleEngine) -> None:
    event = roundtrip("outpatient.visit", base_event("outpatient.visit"))
    event["chief_complaint"] = event["department_name"] = " "
    v = mini_engine.judge("outpatient.visit", event)
    assert found(v) == [("T-COMPLAINT-DEPT", "chief_complaint"), ("T-COMPLAINT-DEPT", "department_name")]
    assert (v.weight_failed, v.weight_applied, v.score) == (1, 8, 1 - 1 / 8)


def test_no_applicable_rule_scores_one(mini_engine: RuleEngine) -> None:
    v = mini_engine.judge("exam.report", roundtrip("exam.report", base_event("exam.report")))
    assert (v.score, v.weight_applied, v.passed, v.violations) == (1.0, 0, True, ())


def test_shipped_score_with_errors_and_warnings() -> None:
    event = base_event("outpatient.visit")
    puts(chief_complaint=None, temperature_c=45.0)(event)
    event["diagnoses"] = [_diagnosis("I10.900"), _diagnosis("J18.900"), _diagnosis("K29.A")]
    verdict = judge("outpatient.visit", event)
    assert found(verdict) == [
        ("COR-ICD10", "diagnoses[0].code"),
        ("COR-ICD10", "diagnoses[2].code"),
        ("CMP-CHIEF-COMPLAINT", "chief_complaint"),
        ("COR-TEMPERATURE", "temperature_c"),
    ]
    failed = sum(RULES[r].weight for r in ("COR-ICD10", "CMP-CHIEF-COMPLAINT", "COR-TEMPERATURE"))
    applied = sum(r.weight for r in RULE_SET.for_event_type("outpatient.visit"))
    assert (verdict.weight_failed, verdict.weight_applied) == (failed, applied)
    assert verdict.score == pytest.approx(1 - failed / applied)
    assert not verdict.passed and not verdict.late


# -- the rule file and its versions ---------------------------------------------------------------------------
def test_versions_lock_records_the_current_rule_file() -> None:
    rs = load_rule_set()
    assert locked_versions().get(rs.version) == rs.digest, (
        f"quality_rules.yaml version {rs.version} (sha256 {rs.digest}) is not recorded in versions.lock, or was "
        f"changed after it was: bump `version` in the rule file and run `healthbus quality rules --lock`"
    )


def test_rule_file_is_valid() -> None:
    rs = load_rule_set()
    ids = [r.id for r in rs.rules]
    assert len(ids) == len(set(ids))
    assert rs.digest == file_digest(DEFAULT_RULE_FILE) and re.fullmatch(r"[0-9a-f]{64}", rs.digest)
    for rule in rs.rules:
        assert rule.message_zh.strip() and rule.message_en.strip() and rule.weight > 0


def test_lock_current(tmp_path: Path) -> None:
    rules, lock = tmp_path / "rules.yaml", tmp_path / "versions.lock"
    shutil.copy(DEFAULT_RULE_FILE, rules)
    lock.write_text("# version sha256\n", encoding="utf-8")
    version = lock_current(rules, lock)
    assert locked_versions(lock) == {version: file_digest(rules)}
    assert lock_current(rules, lock) == version  # idempotent
    assert len(lock.read_text("utf-8").splitlines()) == 2

    rules.write_text(rules.read_text("utf-8").replace("weight: 3", "weight: 4", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="bump"):  # changed rules under a released version
        lock_current(rules, lock)

    bumped = rules.read_text("utf-8").replace(f'version: "{version}"', 'version: "2099.1.1"', 1)
    rules.write_text(bumped, encoding="utf-8")
    assert lock_current(rules, lock) == "2099.1.1"
    assert set(locked_versions(lock)) == {version, "2099.1.1"}


BROKEN_RULE = """\
version: "2026.11.9"
rules:
  - id: GOOD-RULE
    category: completeness
    event_types: [outpatient.visit]
    severity: error
    weight: 1
    check: required
    params: {{fields: [visit_no]}}
    message: {{zh: "x", en: "x"}}
  - id: {id}
    category: completeness
    event_types: [{event_type}]
    severity: error
    weight: 1
    check: {check}
    params: {params}
    message: {{zh: "x", en: "x"}}
"""


@pytest.mark.parametrize(
    ("id_", "event_type", "check", "params", "problem"),
    [
        ("BROKEN-KIND", "outpatient.visit", "no_such_check", "{fields: [visit_no]}", "no_such_check"),
        ("BROKEN-TYPE", "outpatient.vist", "required", "{fields: [visit_no]}", "outpatient.vist"),
        ("GOOD-RULE", "outpatient.visit", "required", "{fields: [chief_complaint]}", "twice"),
        ("BROKEN-PARAMS", "outpatient.visit", "range", "{fields: [temperature_c], min: 34}", "'max'"),
        ("BROKEN-PARAMS", "outpatient.visit", "range", "{fields: [temperature_c], min: low, max: 43}", "low"),
        ("BROKEN-PARAMS", "outpatient.visit", "required", "{field: visit_no}", "'fields'"),
        (
            "BROKEN-PARAMS",
            "outpatient.visit",
            "upload_delay",
            "{limit_hours: 24, urgent_ranges: [{from: A00}]}",
            "'to'",
        ),
        (
            "BROKEN-PARAMS",
            "outpatient.visit",
            "not_in_future",
            "{fields: [envelope.occurred_at], skew_minute: 5}",
            "skew_minute",
        ),
        ("BROKEN-PARAMS", "outpatient.visit", "required", "{fields: visit_no}", "must be a list"),
    ],
)
def test_malformed_rule_file_is_refused_naming_the_rule(
    tmp_path: Path, id_: str, event_type: str, check: str, params: str, problem: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN_RULE.format(id=id_, event_type=event_type, check=check, params=params), encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_rule_set(path)
    message = str(raised.value)
    assert id_ in message, f"the error must name the rule {id_}: {message}"
    assert problem in message


def test_shipped_rule_file_text_matches_what_loads() -> None:
    text = DEFAULT_RULE_FILE.read_text("utf-8")
    declared = re.findall(r"^  - id: (\S+)$", text, flags=re.MULTILINE)
    assert declared == [r.id for r in RULE_SET.rules]

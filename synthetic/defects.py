"""Bad data for the quality stage, injected at a chosen share of each table's rows and recorded in a ledger.

Kinds are named "<dimension>.<what>": missing.* (completeness), invalid.* (codes), late.upload (timeliness),
contradiction.* (logical consistency), out_of_range.* (values), unmappable.* (rows the adapter cannot turn
into an event at all and must quarantine).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from synthetic.population import Person
from synthetic.records import PRIMARY_KEYS, Row
from synthetic.timeline import CST

# Codes that do not exist in ICD-10 (unknown category, a subcategory WHO does not have, letter O for zero,
# a lost dot). Note "X99.999" would not do: X99 is a WHO category and X99.9 exists.
INVALID_ICD10 = ("U99.900", "K99.000", "I10.900", "E11.9OO", "J1890")
INVALID_REGION_CODES = ("411529", "411599", "419901")  # shaped like GB/T 2260 codes, not in the table


class Source(Protocol):
    """What an injector needs from the institution whose rows it spoils."""

    def reference_id(self, person: Person, moment: dt.datetime) -> str: ...
    def unused_reference_id(self) -> str: ...
    def knows(self, person: Person) -> bool: ...


@dataclass(slots=True)
class DefectContext:
    rng: random.Random
    source: Source
    reference_column: str  # patient_id (hospital) or resident_id (county)
    deaths: list[tuple[dt.datetime, int, Person]]  # (died_at, pid, person), sorted


Injector = Callable[[Row, DefectContext], bool]


def _primary_dx_table(row: Row) -> str | None:
    for table in ("outpatient_diagnosis", "inpatient_admission_diagnosis", "inpatient_discharge_diagnosis"):
        if row.get("_children", {}).get(table):
            return table
    return None


def _set_primary(code: str, name: str) -> Injector:
    def apply(row: Row, ctx: DefectContext) -> bool:
        table = _primary_dx_table(row)
        if table is None:
            return False
        row["_children"][table][0].update(code=code, name=name)
        return True

    return apply


def _clear(*columns: str, child: str | None = None, require: str | None = None) -> Injector:
    def apply(row: Row, ctx: DefectContext) -> bool:
        if require is not None and row.get(require) is None:
            return False
        for column in columns:
            row[column] = None
        if child is not None:
            row.setdefault("_children", {})[child] = []
        return True

    return apply


def missing_id_number(row: Row, ctx: DefectContext) -> bool:
    """An ID type that promises a number, and no number."""
    key = "mother_id_number" if "mother_id_number" in row else "id_number"
    row["mother_id_type" if key == "mother_id_number" else "id_type"] = "01"
    row[key] = None
    return True


def missing_blood_pressure(row: Row, ctx: DefectContext) -> bool:
    if row.get("_disease") != "HTN" or row["followup_method"] == "3":
        return False
    row["systolic_bp"] = row["diastolic_bp"] = None
    return True


def invalid_icd10(row: Row, ctx: DefectContext) -> bool:
    code = ctx.rng.choice(INVALID_ICD10)
    if "underlying_cause_code" in row:
        row["underlying_cause_code"] = code
        return True
    if "disease_code" in row:
        row["disease_code"] = ctx.rng.choice(("I1O", "E1l", "I10.900"))
        return True
    table = _primary_dx_table(row)
    if table is None:
        return False
    row["_children"][table][0]["code"] = code
    return True


def invalid_region(row: Row, ctx: DefectContext) -> bool:
    row["residence_region_code"] = ctx.rng.choice(INVALID_REGION_CODES)
    return True


def invalid_sex(row: Row, ctx: DefectContext) -> bool:
    row["sex"] = ctx.rng.choice(("5", "5", "3"))
    return True


def late_upload(row: Row, ctx: DefectContext) -> bool:
    # Past the limit (24 h clinical, 7 days deaths) but not by weeks, so a window ending today is fully
    # readable by an adapter within two weeks.
    days = ctx.rng.uniform(8, 12) if "died_at" in row and "death_place" in row else ctx.rng.uniform(2, 10)
    row["updated_at"] = (row["_event"] + dt.timedelta(days=days)).replace(microsecond=0)
    row["_late"] = True
    return True


def discharge_before_admission(row: Row, ctx: DefectContext) -> bool:
    if row.get("died_at") is not None:
        return False
    row["admitted_at"] = row["discharged_at"] + dt.timedelta(minutes=ctx.rng.randint(60, 48 * 60))
    return True


def event_after_death(row: Row, ctx: DefectContext) -> bool:
    """The row is re-attributed to someone whose death was registered before it happened."""
    moment: dt.datetime = row["_event"]
    last = bisect_left(ctx.deaths, (moment - dt.timedelta(hours=2),))
    if last == 0:
        return False
    candidates = [p for _, _, p in ctx.deaths[:last]]
    known = [p for p in candidates if ctx.source.knows(p)]
    person = ctx.rng.choice(known or candidates)
    row[ctx.reference_column] = ctx.source.reference_id(person, moment)
    row["_person"] = person
    return True


def male_pregnancy(row: Row, ctx: DefectContext) -> bool:
    person: Person = row["_person"]
    if person.sex != "1" or person.age_on(row["_event"].astimezone(CST).date()) < 15:
        return False
    return _set_primary("O80.000", "单胎顺产")(row, ctx)


def perinatal_adult(row: Row, ctx: DefectContext) -> bool:
    person: Person = row["_person"]
    if person.age_on(row["_event"].astimezone(CST).date()) < 18:
        return False
    return _set_primary("P07.300", "早产儿")(row, ctx)


def temperature_out_of_range(row: Row, ctx: DefectContext) -> bool:
    row["temperature_c"] = ctx.rng.choice((45.5, 46.2, 25.0))
    return True


def systolic_out_of_range(row: Row, ctx: DefectContext) -> bool:
    if row.get("systolic_bp") is None:
        return False
    row["systolic_bp"] = ctx.rng.choice((400, 350, 30))
    return True


def birth_weight_out_of_range(row: Row, ctx: DefectContext) -> bool:
    row["birth_weight_g"] = ctx.rng.choice((9800, 150, 33000))
    return True


def unknown_visit_type(row: Row, ctx: DefectContext) -> bool:
    row["visit_type"] = "3"
    return True


def unknown_discharge_method(row: Row, ctx: DefectContext) -> bool:
    row["discharge_method"] = "7"
    return True


def orphan_reference(row: Row, ctx: DefectContext) -> bool:
    """A row pointing at a patient/resident id that has no patient/resident row."""
    row[ctx.reference_column] = ctx.source.unused_reference_id()
    return True


# (kind, injector, weight) per (source kind, table).
_PERSON_TABLE = (
    ("missing.id_number", missing_id_number, 4.0),
    ("invalid.region_code", invalid_region, 2.0),
    ("invalid.sex_code", invalid_sex, 2.0),
)
PLAN: dict[tuple[str, str], tuple[tuple[str, Injector, float], ...]] = {
    ("hospital", "patient"): _PERSON_TABLE,
    ("hospital", "outpatient_visit"): (
        ("missing.chief_complaint", _clear("chief_complaint", "temperature_c", child="outpatient_symptom"), 3.0),
        ("invalid.icd10", invalid_icd10, 3.0),
        ("late.upload", late_upload, 3.0),
        ("contradiction.event_after_death", event_after_death, 1.0),
        ("contradiction.male_pregnancy", male_pregnancy, 1.0),
        ("contradiction.perinatal_adult", perinatal_adult, 1.0),
        ("out_of_range.temperature", temperature_out_of_range, 2.0),
        ("unmappable.visit_type", unknown_visit_type, 0.6),
        ("unmappable.orphan_patient", orphan_reference, 0.6),
    ),
    ("hospital", "inpatient_admission"): (
        ("missing.department", _clear("department_code", "department_name"), 2.0),
        ("invalid.icd10", invalid_icd10, 2.0),
        ("late.upload", late_upload, 3.0),
        ("contradiction.male_pregnancy", male_pregnancy, 1.0),
    ),
    ("hospital", "inpatient_discharge"): (
        ("missing.discharge_diagnosis", _clear(child="inpatient_discharge_diagnosis"), 2.0),
        ("invalid.icd10", invalid_icd10, 2.0),
        ("late.upload", late_upload, 3.0),
        ("contradiction.discharge_before_admission", discharge_before_admission, 2.0),
        ("unmappable.discharge_method", unknown_discharge_method, 1.0),
    ),
    ("hospital", "lab_report"): (
        ("missing.specimen_type", _clear("specimen_type"), 2.0),
        ("late.upload", late_upload, 3.0),
        ("contradiction.event_after_death", event_after_death, 1.0),
        ("unmappable.orphan_patient", orphan_reference, 0.5),
    ),
    ("hospital", "exam_report"): (("missing.impression", _clear("impression"), 2.0), ("late.upload", late_upload, 3.0)),
    ("hospital", "prescription"): (
        ("missing.drug_items", _clear(child="prescription_item"), 2.0),
        ("late.upload", late_upload, 3.0),
        ("contradiction.event_after_death", event_after_death, 0.5),
        ("unmappable.orphan_patient", orphan_reference, 0.5),
    ),
    ("hospital", "death_record"): (
        ("missing.cause_chain", _clear("underlying_cause_name", child="death_cause"), 2.0),
        ("invalid.icd10", invalid_icd10, 1.0),
        ("late.upload", late_upload, 2.0),
    ),
    ("hospital", "vaccination"): (
        ("missing.batch_no", _clear("batch_no", "manufacturer"), 2.0),
        ("late.upload", late_upload, 2.0),
    ),
    ("county", "resident"): _PERSON_TABLE,
    ("county", "chronic_followup"): (
        ("missing.blood_pressure", missing_blood_pressure, 2.0),
        ("invalid.icd10", invalid_icd10, 1.0),
        ("out_of_range.systolic_bp", systolic_out_of_range, 2.0),
        ("late.upload", late_upload, 2.0),
        ("contradiction.event_after_death", event_after_death, 1.0),
        ("unmappable.orphan_patient", orphan_reference, 0.5),
    ),
    ("county", "vaccination"): (
        ("missing.batch_no", _clear("batch_no", "manufacturer"), 2.0),
        ("late.upload", late_upload, 2.0),
        ("unmappable.orphan_patient", orphan_reference, 0.5),
    ),
    ("county", "birth_record"): (
        ("missing.mother_id", missing_id_number, 2.0),
        ("out_of_range.birth_weight", birth_weight_out_of_range, 2.0),
        ("late.upload", late_upload, 2.0),
    ),
    ("county", "death_record"): (
        ("missing.cause_chain", _clear("underlying_cause_name", child="death_cause"), 2.0),
        ("invalid.icd10", invalid_icd10, 1.0),
        ("late.upload", late_upload, 2.0),
    ),
}
ALL_KINDS: tuple[str, ...] = tuple(dict.fromkeys(kind for plan in PLAN.values() for kind, _, _ in plan))


@dataclass(frozen=True, slots=True)
class Defect:
    schema: str
    table: str
    record_key: str
    kind: str


@dataclass(slots=True)
class Ledger:
    defects: list[Defect] = field(default_factory=list)
    candidate_rows: int = 0  # rows the share applied to (not cancelled)


def inject(
    source_kind: str,
    schema: str,
    tables: dict[str, list[Row]],
    share: float,
    ctx: DefectContext,
    ledger: Ledger,
    order: tuple[str, ...],
) -> None:
    """Spoil round(share × rows) rows of each table (probabilistic rounding), one defect per row."""
    rng = ctx.rng
    for table in order:
        plan = PLAN.get((source_kind, table))
        rows = [r for r in tables.get(table, []) if not r["cancelled"]]
        if not plan or not rows:
            continue
        ledger.candidate_rows += len(rows)
        exact = share * len(rows)
        count = min(len(rows), math.floor(exact) + (1 if rng.random() < exact - math.floor(exact) else 0))
        for index in rng.sample(range(len(rows)), count):
            row = rows[index]
            remaining = list(plan)
            while remaining:
                choice = rng.choices(range(len(remaining)), [w for _, _, w in remaining])[0]
                kind, injector, _ = remaining.pop(choice)
                if injector(row, ctx):
                    ledger.defects.append(Defect(schema, table, str(row[PRIMARY_KEYS[table]]), kind))
                    break

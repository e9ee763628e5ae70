"""What the adapter reads: for each exchange table, its key, its children, its person and its event.

One ``TableSpec`` per polled (parent) table. The poll, the watermark and the mapping are generic; this
module is the only place that knows the exchange databases' shape (producers/exchange_db/*.sql).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from producers.adapters import mapping

BodyMapper = Callable[[mapping.Row, dict[str, list[mapping.Row]]], dict[str, Any]]


@dataclass(frozen=True)
class ChildTable:
    name: str
    order_by: str  # children keep the source's order (seq, line)


@dataclass(frozen=True)
class TableSpec:
    name: str
    pk: str
    event_type: str
    occurred_at: str  # column holding when the recorded thing happened
    person_column: str  # column referencing the person table ("" for the person table itself)
    body: BodyMapper
    children: tuple[ChildTable, ...] = ()


def _clinical(
    name: str, pk: str, event_type: str, occurred_at: str, body: BodyMapper, person_column: str, *children: ChildTable
) -> TableSpec:
    return TableSpec(name, pk, event_type, occurred_at, person_column, body, children)


PERSON_TABLE = {"hospital": "patient", "county": "resident"}
PERSON_PK = {"hospital": "patient_id", "county": "resident_id"}

HOSPITAL_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "patient",
        "patient_id",
        "patient.registered",
        "updated_at",
        "",
        mapping.patient_registered,
        (ChildTable("patient_history", "seq"),),
    ),
    _clinical(
        "outpatient_visit",
        "visit_id",
        "outpatient.visit",
        "visit_at",
        mapping.outpatient_visit,
        "patient_id",
        ChildTable("outpatient_diagnosis", "seq"),
        ChildTable("outpatient_symptom", "seq"),
    ),
    _clinical(
        "inpatient_admission",
        "admission_id",
        "inpatient.admission",
        "admitted_at",
        mapping.inpatient_admission,
        "patient_id",
        ChildTable("inpatient_admission_diagnosis", "seq"),
    ),
    _clinical(
        "inpatient_discharge",
        "admission_id",
        "inpatient.discharge",
        "discharged_at",
        mapping.inpatient_discharge,
        "patient_id",
        ChildTable("inpatient_discharge_diagnosis", "seq"),
        ChildTable("inpatient_procedure", "seq"),
    ),
    _clinical(
        "lab_report",
        "report_id",
        "lab.report",
        "reported_at",
        mapping.lab_report,
        "patient_id",
        ChildTable("lab_item", "seq"),
    ),
    _clinical("exam_report", "report_id", "exam.report", "reported_at", mapping.exam_report, "patient_id"),
    _clinical(
        "prescription",
        "prescription_id",
        "prescription",
        "prescribed_at",
        mapping.prescription,
        "patient_id",
        ChildTable("prescription_item", "seq"),
    ),
    _clinical(
        "death_record",
        "death_id",
        "death.record",
        "died_at",
        mapping.death_record,
        "patient_id",
        ChildTable("death_cause", "line"),
    ),
    _clinical(
        "vaccination",
        "vaccination_id",
        "vaccination.record",
        "administered_at",
        mapping.vaccination_record,
        "patient_id",
    ),
)

COUNTY_TABLES: tuple[TableSpec, ...] = (
    TableSpec("resident", "resident_id", "patient.registered", "updated_at", "", mapping.patient_registered),
    _clinical(
        "chronic_followup", "followup_id", "ph.chronic_followup", "followup_at", mapping.chronic_followup, "resident_id"
    ),
    _clinical(
        "vaccination",
        "vaccination_id",
        "vaccination.record",
        "administered_at",
        mapping.vaccination_record,
        "resident_id",
    ),
    _clinical(
        "birth_record",
        "birth_id",
        "birth.record",
        "born_at",
        mapping.birth_record,
        "resident_id",
        ChildTable("birth_vaccine", "seq"),
    ),
    _clinical(
        "death_record",
        "death_id",
        "death.record",
        "died_at",
        mapping.death_record,
        "resident_id",
        ChildTable("death_cause", "line"),
    ),
)

TABLES = {"hospital": HOSPITAL_TABLES, "county": COUNTY_TABLES}

"""Exchange-database rows → event values (the contracts in avro_schemas/events). Pure functions.

A row that cannot become a valid event (an unknown code where the contract has an enum, a missing
required value, a reference to a person the database does not hold) raises ``UnmappableRow`` with a
machine-readable reason; the adapter quarantines it and carries on. Values that map but look wrong (an
invalid ICD-10 code, a temperature of 45 ℃) are passed on untouched: judging them is the quality stage's job.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avro_schemas.envelope import make_event_id
from foundation.standards.blank import is_blank
from foundation.standards.china_time import CST

Row = Mapping[str, Any]

VISIT_TYPES = {"1": "OUTPATIENT", "2": "EMERGENCY"}
DISCHARGE_METHODS = {
    "1": "ORDERED",
    "2": "TRANSFER_HOSPITAL",
    "3": "TRANSFER_COMMUNITY",
    "4": "AGAINST_ADVICE",
    "5": "DEATH",
    "9": "OTHER",
}
FOLLOWUP_CLASSES = {"1": "SATISFACTORY", "2": "UNSATISFACTORY", "3": "ADVERSE_REACTION", "4": "COMPLICATION"}
HISTORY_KINDS = {"ALLERGY", "OPERATION", "FAMILY", "DISEASE"}
CENT = decimal.Decimal("0.01")


class UnmappableRow(ValueError):
    """``code``: unknown_code | missing_value | broken_reference | bad_value; ``column``: where."""

    def __init__(self, code: str, column: str, message: str) -> None:
        super().__init__(f"{code} in {column}: {message}")
        self.code = code
        self.column = column
        self.message = message


@dataclass(frozen=True)
class SourceIdentity:
    """Who the rows come from: the envelope's ``source`` block minus the record key."""

    org_code: str
    org_name: str
    region_code: str
    level: str  # HOSPITAL | COUNTY
    system: str  # HIS | PH


def _required(row: Row, column: str) -> Any:
    value = row.get(column)
    if is_blank(value):  # spaces of any width, a padded CHAR column, zero-width characters: nothing entered
        raise UnmappableRow("missing_value", column, "required by the event contract")
    return value


def _code(mapping: dict[str, str], row: Row, column: str) -> str:
    raw = _required(row, column)
    try:
        return mapping[str(raw).strip()]
    except KeyError:
        raise UnmappableRow("unknown_code", column, f"not one of {sorted(mapping)}") from None  # the value stays out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _money(value: Any) -> decimal.Decimal | None:
    return None if value is None else decimal.Decimal(value).quantize(CENT)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a timestamp without zone is the hospital's local time (China Standard Time)
        value = value.replace(tzinfo=CST)
    return value.astimezone(dt.UTC)


def patient_block(person: Row | None, person_id: str, person_column: str) -> dict[str, Any]:
    if person is None:
        raise UnmappableRow("broken_reference", person_column, "no such person in the exchange database")
    return {
        "local_patient_id": person_id,
        "name": person.get("name"),
        "sex": person.get("sex"),
        "birth_date": person.get("birth_date"),
        "id_type": person.get("id_type"),
        "id_number": person.get("id_number"),
        "health_card": person.get("health_card"),
        "insurance_card": person.get("insurance_card"),
        "phone": person.get("phone"),
        "address": person.get("address"),
        "residence_region_code": person.get("residence_region_code"),
        "occupation": person.get("occupation"),
    }


def envelope(
    event_type: str,
    source: SourceIdentity,
    table: str,
    key: str,
    row: Row,
    occurred_at: dt.datetime,
    patient: dict[str, Any],
    emitted_at: dt.datetime,
) -> dict[str, Any]:
    record_key = f"{table}:{key}"
    version = int(row["record_version"])
    cancelled = bool(row["cancelled"])
    return {
        "event_id": make_event_id(source.org_code, record_key, version, cancelled),
        "event_type": event_type,
        "occurred_at": occurred_at,
        "emitted_at": emitted_at,
        "record_version": version,
        "cancelled": cancelled,
        "source": {
            "org_code": source.org_code,
            "org_name": source.org_name,
            "system": source.system,
            "region_code": source.region_code,
            "level": source.level,
            "record_key": record_key,
        },
        "patient": patient,
    }


def diagnoses(children: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "code": _required(c, "code").strip(),
            "name": c.get("name"),
            "is_primary": bool(c.get("is_primary")),
            "diagnosed_at": None,
        }
        for c in children
    ]


# -- one function per event type: (row, children by table, source) -> the event body without envelope ------
def patient_registered(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    history = []
    for h in children.get("patient_history", []):
        kind = str(_required(h, "kind")).strip().upper()
        if kind not in HISTORY_KINDS:
            raise UnmappableRow(
                "unknown_code", "patient_history.kind", f"{kind!r} is not one of {sorted(HISTORY_KINDS)}"
            )
        history.append(
            {
                "kind": kind,
                "code": h.get("code"),
                "description": h.get("description"),
                "recorded_at": as_utc(h.get("recorded_at")),
            }
        )
    return {
        "abo_blood_type": row.get("abo_blood_type"),
        "rh_blood_type": row.get("rh_blood_type"),
        "ethnicity": row.get("ethnicity"),
        "marital_status": row.get("marital_status"),
        "history": history,
    }


def outpatient_visit(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "visit_no": _required(row, "visit_no"),
        "visit_type": _code(VISIT_TYPES, row, "visit_type"),
        "department_code": row.get("department_code"),
        "department_name": row.get("department_name"),
        "chief_complaint": row.get("chief_complaint"),
        "symptoms": [_required(s, "symptom") for s in children.get("outpatient_symptom", [])],
        "temperature_c": _float(row.get("temperature_c")),
        "exposure_history": row.get("exposure_history"),
        "diagnoses": diagnoses(children.get("outpatient_diagnosis", [])),
    }


def inpatient_admission(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "admission_no": _required(row, "admission_no"),
        "admitted_at": as_utc(_required(row, "admitted_at")),
        "department_code": row.get("department_code"),
        "department_name": row.get("department_name"),
        "ward": row.get("ward"),
        "admission_route": row.get("admission_route"),
        "diagnoses": diagnoses(children.get("inpatient_admission_diagnosis", [])),
    }


def inpatient_discharge(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "admission_no": _required(row, "admission_no"),
        "admitted_at": as_utc(_required(row, "admitted_at")),
        "discharged_at": as_utc(_required(row, "discharged_at")),
        "department_code": row.get("department_code"),
        "department_name": row.get("department_name"),
        "diagnoses": diagnoses(children.get("inpatient_discharge_diagnosis", [])),
        "procedures": [
            {
                "code": _required(p, "code").strip(),
                "name": p.get("name"),
                "performed_at": as_utc(p.get("performed_at")),
                "is_primary": bool(p.get("is_primary")),
            }
            for p in children.get("inpatient_procedure", [])
        ],
        "discharge_method": _code(DISCHARGE_METHODS, row, "discharge_method"),
        "died_at": as_utc(row.get("died_at")),
        "total_cost": _money(row.get("total_cost")),
    }


def lab_report(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "report_no": _required(row, "report_no"),
        "specimen_type": row.get("specimen_type"),
        "collected_at": as_utc(row.get("collected_at")),
        "reported_at": as_utc(_required(row, "reported_at")),
        "department_name": row.get("department_name"),
        "items": [
            {
                "item_code": _required(i, "item_code"),
                "item_name": i.get("item_name"),
                "result_text": i.get("result_text"),
                "numeric_value": _float(i.get("numeric_value")),
                "unit": i.get("unit"),
                "reference_range": i.get("reference_range"),
                "reference_low": _float(i.get("reference_low")),
                "reference_high": _float(i.get("reference_high")),
                "abnormal_flag": i.get("abnormal_flag"),
            }
            for i in children.get("lab_item", [])
        ],
    }


def exam_report(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "report_no": _required(row, "report_no"),
        "modality": _required(row, "modality"),
        "exam_item_code": row.get("exam_item_code"),
        "exam_item_name": row.get("exam_item_name"),
        "body_part": row.get("body_part"),
        "findings": row.get("findings"),
        "impression": row.get("impression"),
        "reported_at": as_utc(_required(row, "reported_at")),
    }


def prescription(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "prescription_no": _required(row, "prescription_no"),
        "visit_no": row.get("visit_no"),
        "prescribed_at": as_utc(_required(row, "prescribed_at")),
        "department_name": row.get("department_name"),
        "items": [
            {
                "drug_code": _required(i, "drug_code"),
                "drug_name": i.get("drug_name"),
                "atc_code": i.get("atc_code"),
                "dose": _float(i.get("dose")),
                "dose_unit": i.get("dose_unit"),
                "frequency": i.get("frequency"),
                "route": i.get("route"),
                "days": i.get("days"),
                "quantity": _float(i.get("quantity")),
            }
            for i in children.get("prescription_item", [])
        ],
    }


def death_record(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "certificate_no": _required(row, "certificate_no"),
        "died_at": as_utc(_required(row, "died_at")),
        "death_place": row.get("death_place"),
        "cause_chain": [
            {
                "line": _required(c, "line"),
                "code": c.get("code"),
                "description": c.get("description"),
                "interval": c.get("interval"),
            }
            for c in children.get("death_cause", [])
        ],
        "underlying_cause_code": _required(row, "underlying_cause_code"),
        "underlying_cause_name": row.get("underlying_cause_name"),
    }


def vaccination_record(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "vaccination_no": _required(row, "vaccination_no"),
        "vaccine_code": _required(row, "vaccine_code"),
        "vaccine_name": row.get("vaccine_name"),
        "dose_number": int(_required(row, "dose_number")),
        "batch_no": row.get("batch_no"),
        "manufacturer": row.get("manufacturer"),
        "administered_at": as_utc(_required(row, "administered_at")),
        "site": row.get("site"),
        "route": row.get("route"),
    }


def birth_record(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "certificate_no": row.get("certificate_no"),
        "born_at": as_utc(_required(row, "born_at")),
        "birth_weight_g": row.get("birth_weight_g"),
        "birth_length_cm": _float(row.get("birth_length_cm")),
        "gestational_weeks": row.get("gestational_weeks"),
        "mother_name": row.get("mother_name"),
        "mother_id_type": row.get("mother_id_type"),
        "mother_id_number": row.get("mother_id_number"),
        "vaccines_at_birth": [
            {
                "vaccine_code": _required(v, "vaccine_code"),
                "vaccine_name": v.get("vaccine_name"),
                "batch_no": v.get("batch_no"),
                "administered_at": as_utc(_required(v, "administered_at")),
            }
            for v in children.get("birth_vaccine", [])
        ],
    }


def chronic_followup(row: Row, children: dict[str, list[Row]]) -> dict[str, Any]:
    return {
        "followup_no": _required(row, "followup_no"),
        "disease_code": _required(row, "disease_code"),
        "followup_at": as_utc(_required(row, "followup_at")),
        "followup_method": row.get("followup_method"),
        "systolic_bp": row.get("systolic_bp"),
        "diastolic_bp": row.get("diastolic_bp"),
        "fasting_glucose_mmol": _float(row.get("fasting_glucose_mmol")),
        "followup_class": _code(FOLLOWUP_CLASSES, row, "followup_class"),
        "next_followup_date": row.get("next_followup_date"),
    }

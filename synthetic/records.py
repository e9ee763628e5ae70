"""Rows of an exchange database while they are being generated, and what every table shares: primary keys,
child tables, upload delays (updated_at) and the correction/cancellation lifecycle (record_version).

A row is a dict of column values plus private keys starting with "_" (the person, the event time, child
rows) that never reach the database.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any, Literal

Row = dict[str, Any]
DelayKind = Literal["realtime", "summary", "death", "registry"]

PRIMARY_KEYS: dict[str, str] = {
    "patient": "patient_id",
    "outpatient_visit": "visit_id",
    "inpatient_admission": "admission_id",
    "inpatient_discharge": "admission_id",
    "lab_report": "report_id",
    "exam_report": "report_id",
    "prescription": "prescription_id",
    "death_record": "death_id",
    "vaccination": "vaccination_id",
    "resident": "resident_id",
    "chronic_followup": "followup_id",
    "birth_record": "birth_id",
}
# Child table -> (parent table, the parent's key column it carries).
CHILD_TABLES: dict[str, tuple[str, str]] = {
    "patient_history": ("patient", "patient_id"),
    "outpatient_diagnosis": ("outpatient_visit", "visit_id"),
    "outpatient_symptom": ("outpatient_visit", "visit_id"),
    "inpatient_admission_diagnosis": ("inpatient_admission", "admission_id"),
    "inpatient_discharge_diagnosis": ("inpatient_discharge", "admission_id"),
    "inpatient_procedure": ("inpatient_discharge", "admission_id"),
    "lab_item": ("lab_report", "report_id"),
    "prescription_item": ("prescription", "prescription_id"),
    "death_cause": ("death_record", "death_id"),
    "birth_vaccine": ("birth_record", "birth_id"),
}
HOSPITAL_TABLES: tuple[str, ...] = (
    "patient",
    "patient_history",
    "outpatient_visit",
    "outpatient_diagnosis",
    "outpatient_symptom",
    "inpatient_admission",
    "inpatient_admission_diagnosis",
    "inpatient_discharge",
    "inpatient_discharge_diagnosis",
    "inpatient_procedure",
    "lab_report",
    "lab_item",
    "exam_report",
    "prescription",
    "prescription_item",
    "death_record",
    "death_cause",
    "vaccination",
)
COUNTY_TABLES: tuple[str, ...] = (
    "resident",
    "chronic_followup",
    "vaccination",
    "birth_record",
    "birth_vaccine",
    "death_record",
    "death_cause",
)
PARENT_TABLES = {
    "hospital": tuple(t for t in HOSPITAL_TABLES if t not in CHILD_TABLES),
    "county": tuple(t for t in COUNTY_TABLES if t not in CHILD_TABLES),
}

CORRECTED_V2_SHARE = 0.04
CORRECTED_V3_SHARE = 0.01
CANCELLED_SHARE = 0.006


def upload_delay(rng: random.Random, kind: DelayKind) -> dt.timedelta:
    """Time from the event to the row reaching the exchange database (log-normal, capped within the limit:
    24 h for clinical records, 7 days for deaths; only injected late uploads exceed it)."""
    if kind == "realtime":  # HIS/LIS/PACS write-through or a few-minute batch: median ~6 min
        minutes = min(20 * 60, math.exp(rng.gauss(1.8, 1.1)))
    elif kind == "summary":  # front sheet of the record, completed by the ward later the same day
        minutes = min(22 * 60, math.exp(rng.gauss(5.0, 0.9)))
    elif kind == "death":  # the certificate is signed and keyed in within a day or three
        minutes = min(4 * 24 * 60, math.exp(rng.gauss(6.5, 0.9)))
    else:  # county registries: keyed in at the end of the session or next morning
        minutes = min(22 * 60, math.exp(rng.gauss(5.2, 0.8)))
    return dt.timedelta(seconds=int(60 + minutes * 60))


def children(row: Row, table: str) -> list[Row]:
    return row.setdefault("_children", {}).setdefault(table, [])


def apply_revisions(
    rows: list[Row],
    rng: random.Random,
    v2: float = CORRECTED_V2_SHARE,
    v3: float = CORRECTED_V3_SHARE,
    cancelled: float = CANCELLED_SHARE,
) -> None:
    """Corrections (record_version 2 or 3) and withdrawals (cancelled, with a bumped version), a few hours
    after the row was first written and still within the upload limit (``_limit``, default 23 h), so that
    only the injected late uploads break timeliness."""
    for row in rows:
        r = rng.random()
        if r < cancelled:
            row["cancelled"] = True
            row["record_version"] = rng.choice((2, 2, 3))
        elif r < cancelled + v3:
            row["record_version"] = 3
        elif r < cancelled + v3 + v2:
            row["record_version"] = 2
        else:
            continue
        updated = row["updated_at"] + dt.timedelta(minutes=rng.randint(20, 12 * 60))
        if "_event" in row:
            updated = min(updated, row["_event"] + row.get("_limit", dt.timedelta(hours=23)))
        row["updated_at"] = max(updated, row["updated_at"] + dt.timedelta(minutes=1))

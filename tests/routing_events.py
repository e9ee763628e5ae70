"""Validated events for the routing tests, built from one synthetic visit's envelope: a person at an
institution with chosen diagnoses, deaths, follow-ups, doses and record elements."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

from avro_schemas.envelope import make_event_id
from tests.quality_events import identified_visits, revised

AT = dt.datetime(2026, 11, 2, 1, 30, tzinfo=dt.UTC)  # 09:30 in Xinyang
_BASE = identified_visits(1, seed=6)[0]

__all__ = ["AT", "Patient", "revised"]


class Patient:
    """One source patient (institution + local id) of one platform person, living in ``county``."""

    def __init__(
        self,
        person_id: str | None = None,
        org_code: str = "12411500MB1234567X",
        local_id: str | None = None,
        county: str = "411521",
        org_region: str = "411502",
    ) -> None:
        self.person_id = person_id or str(uuid.uuid4())
        self.org_code = org_code
        self.local_id = local_id or f"P{uuid.uuid4().hex[:10]}"
        self.county = county
        self.org_region = org_region
        self._serial = 0

    def _envelope(
        self,
        event_type: str,
        record_key: str | None,
        at: dt.datetime,
        version: int = 1,
        cancelled: bool = False,
        uploaded_after: dt.timedelta = dt.timedelta(hours=1),
    ) -> dict[str, Any]:
        self._serial += 1
        env = copy.deepcopy(_BASE["envelope"])
        key = record_key or f"{event_type}:{self.local_id}:{self._serial}:{uuid.uuid4().hex[:6]}"
        env.update(
            event_type=event_type,
            occurred_at=at,
            emitted_at=at + uploaded_after,
            record_version=version,
            cancelled=cancelled,
            person_id=self.person_id,
            event_id=make_event_id(self.org_code, key, version, cancelled),
        )
        env["source"].update(org_code=self.org_code, record_key=key, region_code=self.org_region)
        env["patient"].update(local_patient_id=self.local_id, residence_region_code=self.county)
        return env

    def visit(
        self,
        *codes: str,
        at: dt.datetime = AT,
        record_key: str | None = None,
        uploaded_after: dt.timedelta = dt.timedelta(hours=1),
    ) -> dict[str, Any]:
        event = copy.deepcopy(_BASE)
        event["envelope"] = self._envelope("outpatient.visit", record_key, at, uploaded_after=uploaded_after)
        event["diagnoses"] = [
            {"code": c, "name": None, "is_primary": n == 0, "diagnosed_at": None} for n, c in enumerate(codes)
        ]
        return event

    def death(
        self, died_at: dt.datetime = AT, cause: str = "C34.900", certificate: str | None = None
    ) -> dict[str, Any]:
        certificate = certificate or f"4115{uuid.uuid4().int % 10**14:014d}"
        return {
            "envelope": self._envelope(
                "death.record", f"death_record:{certificate}", died_at, uploaded_after=dt.timedelta(hours=5)
            ),
            "certificate_no": certificate,
            "died_at": died_at,
            "death_place": "1",
            "cause_chain": [{"line": "Ia", "code": cause, "description": None, "interval": None}],
            "underlying_cause_code": cause,
            "underlying_cause_name": None,
        }

    def discharge_by_death(self, died_at: dt.datetime = AT, cause: str = "I21.900") -> dict[str, Any]:
        admitted = died_at - dt.timedelta(days=3)
        return {
            "envelope": self._envelope("inpatient.discharge", None, died_at),
            "admission_no": "Z1",
            "admitted_at": admitted,
            "discharged_at": died_at,
            "department_code": None,
            "department_name": None,
            "diagnoses": [{"code": cause, "name": None, "is_primary": True, "diagnosed_at": None}],
            "procedures": [],
            "discharge_method": "DEATH",
            "died_at": died_at,
            "total_cost": None,
        }

    def followup(self, disease_code: str = "I10", at: dt.datetime = AT) -> dict[str, Any]:
        return {
            "envelope": self._envelope("ph.chronic_followup", None, at),
            "followup_no": "F1",
            "disease_code": disease_code,
            "followup_at": at,
            "followup_method": "1",
            "systolic_bp": 138,
            "diastolic_bp": 86,
            "fasting_glucose_mmol": None,
            "followup_class": "SATISFACTORY",
            "next_followup_date": (at + dt.timedelta(days=90)).date(),
        }

    def vaccination(self, vaccine: str = "0201", dose: int = 1, at: dt.datetime = AT) -> dict[str, Any]:
        return {
            "envelope": self._envelope("vaccination.record", None, at),
            "vaccination_no": "V1",
            "vaccine_code": vaccine,
            "vaccine_name": None,
            "dose_number": dose,
            "batch_no": "B1",
            "manufacturer": None,
            "administered_at": at,
            "site": None,
            "route": None,
        }

    def prescription(self, atc: str = "C09CA03", days: int | None = 30, at: dt.datetime = AT) -> dict[str, Any]:
        return {
            "envelope": self._envelope("prescription", None, at),
            "prescription_no": "CF1",
            "visit_no": None,
            "prescribed_at": at,
            "department_name": None,
            "items": [
                {
                    "drug_code": "H0001",
                    "drug_name": None,
                    "atc_code": atc,
                    "dose": 80.0,
                    "dose_unit": "mg",
                    "frequency": "qd",
                    "route": "口服",
                    "days": days,
                    "quantity": None,
                }
            ],
        }

    def registered(
        self,
        abo: str | None = "1",
        rh: str | None = "2",
        history: list[dict[str, Any]] | None = None,
        at: dt.datetime = AT,
    ) -> dict[str, Any]:
        return {
            "envelope": self._envelope("patient.registered", None, at),
            "abo_blood_type": abo,
            "rh_blood_type": rh,
            "ethnicity": "01",
            "marital_status": "20",
            "history": history or [],
        }


def corrected(event: dict[str, Any], version: int = 2, **changes: Any) -> dict[str, Any]:
    out = revised(event, version)
    out.update(changes)
    return out


def cancelled(event: dict[str, Any], version: int = 2) -> dict[str, Any]:
    return revised(event, version, cancelled=True)

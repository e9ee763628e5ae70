"""How well the quality rules catch the defects the synthetic sources inject (the demo's truth table).

`synthetic/defects.py` spoils a share of the rows of each exchange table, one defect per row,
and records it (schema, table, primary key, kind). Each kind has the rules meant to catch it; a defect
counts as detected when a verdict on an event of that source record names one of them. Unmappable rows
(``unmappable.*``) never become events (the adapters quarantine them) and are not counted. A false
rejection is an event rejected although its source record carries no injected defect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EXPECTED_RULES: dict[str, frozenset[str]] = {
    "missing.id_number": frozenset({"CMP-PATIENT-ID-NUMBER", "CMP-MOTHER-ID"}),
    "missing.mother_id": frozenset({"CMP-MOTHER-ID"}),
    "invalid.region_code": frozenset({"COR-RESIDENCE-REGION"}),
    "invalid.sex_code": frozenset({"COR-SEX-CODE", "COR-SEX-CODE-EVENT"}),
    "missing.chief_complaint": frozenset({"CMP-CHIEF-COMPLAINT"}),
    "invalid.icd10": frozenset({"COR-ICD10", "COR-DEATH-ICD10", "COR-FOLLOWUP-ICD10"}),
    "late.upload": frozenset({"TIM-CLINICAL-24H", "TIM-RECORD-24H", "TIM-DEATH-7D"}),
    "contradiction.event_after_death": frozenset({"LOG-AFTER-DEATH"}),
    "contradiction.male_pregnancy": frozenset({"LOG-SEX-DIAGNOSIS"}),
    "contradiction.perinatal_adult": frozenset({"LOG-AGE-DIAGNOSIS"}),
    "contradiction.discharge_before_admission": frozenset({"LOG-DISCHARGE-AFTER-ADMISSION"}),
    "out_of_range.temperature": frozenset({"COR-TEMPERATURE"}),
    "out_of_range.systolic_bp": frozenset({"COR-BLOOD-PRESSURE"}),
    "out_of_range.birth_weight": frozenset({"COR-BIRTH-MEASURES"}),
    "missing.department": frozenset({"CMP-DEPARTMENT"}),
    "missing.discharge_diagnosis": frozenset({"CMP-DIAGNOSIS"}),
    "missing.specimen_type": frozenset({"CMP-SPECIMEN"}),
    "missing.impression": frozenset({"CMP-EXAM-IMPRESSION"}),
    "missing.drug_items": frozenset({"CMP-PRESCRIPTION"}),
    "missing.cause_chain": frozenset({"CMP-DEATH-CAUSE-CHAIN"}),
    "missing.batch_no": frozenset({"CMP-VACCINE-BATCH"}),
    "missing.blood_pressure": frozenset({"CMP-HYPERTENSION-BP"}),
}

RecordRef = tuple[str, str]  # (org_code, envelope record_key "<table>:<primary key>")


@dataclass(frozen=True, slots=True)
class DetectionRow:
    kind: str
    injected: int  # defects whose record became at least one judged event
    detected: int

    @property
    def recall(self) -> float:
        return self.detected / self.injected if self.injected else 1.0


def measure_detection(
    defects: Iterable[tuple[RecordRef, str]],
    events_of: Mapping[RecordRef, list[str]],
    rules_of: Mapping[str, frozenset[str]],
    rejected: set[str],
) -> tuple[list[DetectionRow], int, int]:
    """(per kind: injected / detected, events rejected without a defect, events judged)."""
    totals: dict[str, list[int]] = {}
    defective: set[RecordRef] = set()
    for ref, kind in defects:
        defective.add(ref)
        expected = EXPECTED_RULES.get(kind)
        events = events_of.get(ref, [])
        if expected is None or not events:
            continue  # unmappable rows, and rows not published (quarantined, outside the window)
        row = totals.setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += any(rules_of.get(e, frozenset()) & expected for e in events)
    false_rejections = sum(
        1 for ref, events in events_of.items() if ref not in defective for e in events if e in rejected
    )
    judged = sum(len(events) for events in events_of.values())
    return [DetectionRow(k, *v) for k, v in sorted(totals.items())], false_rejections, judged

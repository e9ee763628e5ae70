"""Outpatient visits whose patient blocks are given identity records: the identify stage's test and bench input.

`identity_cases` decides who is who (with the hard cases); this wraps each of its records in a complete
outpatient.visit event of the record's institution, so the stream stage sees exactly what `empi link`
sees in batch, and the results of the two can be compared with the same ground truth.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from avro_schemas.envelope import make_event_id
from streams.identity.record import SourceRecord
from synthetic.outpatient_visits import outpatient_visits


def _or_none(value: str) -> str | None:
    return value or None


def visits_for_records(
    records: Sequence[SourceRecord], seed: int = 5, visits_per_record: int = 1
) -> Iterator[dict[str, Any]]:
    """``visits_per_record`` visits per record, in record order (a record's later visits follow its first)."""
    templates = outpatient_visits(len(records) * visits_per_record, seed=seed)
    for round_no in range(visits_per_record):
        for record in records:
            visit = next(templates)
            envelope = visit["envelope"]
            record_key = f"outpatient_visit:{record.record_id}:{round_no}"
            envelope["event_id"] = make_event_id(record.org_code, record_key, 1)
            envelope["source"].update(
                org_code=record.org_code,
                record_key=record_key,
                region_code=record.org_code[2:8] if len(record.org_code) == 18 else "411500",
            )
            envelope["patient"] = {
                "local_patient_id": record.local_id,
                "name": _or_none(record.name),
                "sex": _or_none(record.sex),
                "birth_date": dt.date.fromisoformat(record.birth_date) if record.birth_date else None,
                "id_type": _or_none(record.id_type),
                "id_number": _or_none(record.id_number),
                "health_card": _or_none(record.health_card),
                "insurance_card": _or_none(record.insurance_card),
                "phone": _or_none(record.phone),
                "address": _or_none(record.address),
            }
            visit["visit_no"] = f"{visit['visit_no']}-{round_no}"
            yield visit

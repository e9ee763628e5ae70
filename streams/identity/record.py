"""The identity-bearing part of one source record: what the matcher sees, in stream and batch alike.

Field names are the batch CSV's header (`healthbus empi link`), so the CSV edge, the Avro `Patient`
block and test data all convert to this one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

CSV_HEADER = (
    "record_id",
    "org_code",
    "local_id",
    "name",
    "sex",
    "birth_date",
    "id_type",
    "id_number",
    "health_card",
    "insurance_card",
    "phone",
    "address",
)

RecordKey = tuple[str, str]  # (org_code, local_id): one patient record of one institution


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as an institution wrote it; every field but record_id may be empty ("")."""

    record_id: str
    org_code: str = ""
    local_id: str = ""
    name: str = ""
    sex: str = ""  # GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 unstated
    birth_date: str = ""  # YYYY-MM-DD
    id_type: str = ""  # WS 364 CV02.01.101
    id_number: str = ""
    health_card: str = ""
    insurance_card: str = ""
    phone: str = ""
    address: str = ""

    @classmethod
    def from_row(cls, row: dict[str, str | None]) -> SourceRecord:
        return cls(
            **{
                name: (row.get(name) or "").strip() if name != "record_id" else str(row["record_id"])
                for name in CSV_HEADER
            }
        )


assert tuple(f.name for f in fields(SourceRecord)) == CSV_HEADER

"""The batch twin's files (``healthbus empi link|train``): records in, links and reviews out, as CSV.

The records file's header is ``CSV_HEADER`` (streams/identity/record.py), exactly; record ids must be unique.
"""

from __future__ import annotations

import csv
from pathlib import Path

from streams.identity.memory_index import BatchLinkResult
from streams.identity.record import CSV_HEADER, SourceRecord


def read_records_csv(path: Path) -> list[SourceRecord]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CSV_HEADER:
            raise ValueError(
                f"{path}: header must be exactly {','.join(CSV_HEADER)}; got {','.join(reader.fieldnames or [])}"
            )
        records = [SourceRecord.from_row(row) for row in reader]
    seen: set[str] = set()
    for r in records:
        if not r.record_id:
            raise ValueError(f"{path}: a row has an empty record_id")
        if r.record_id in seen:
            raise ValueError(f"{path}: record_id {r.record_id!r} appears twice")
        seen.add(r.record_id)
    return records


def write_links(path: Path, records: list[SourceRecord], result: BatchLinkResult) -> None:
    """``record_id,person_id``, in the input's order."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("record_id", "person_id"))
        writer.writerows((r.record_id, result.person_of[r.record_id]) for r in records)


def write_reviews(path: Path, result: BatchLinkResult) -> None:
    """The possible matches for a person to decide: ``record_id,reason,candidate_person_id,weight``."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("record_id", "reason", "candidate_person_id", "weight"))
        writer.writerows(
            (record_id, item.reason.value, item.candidate_person_id, item.weight) for record_id, item in result.reviews
        )

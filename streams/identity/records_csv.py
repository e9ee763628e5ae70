"""The batch twin's files (``healthbus empi link|train``): records in, links and reviews out, as CSV.

The records file's header is ``CSV_HEADER`` (streams/identity/record.py), exactly; every row has its fields
(trailing empty cells, as Excel pads rows, are allowed); record ids must be unique. The file is read by
foundation/text_files.py: UTF-8 with or without BOM, or GBK/GB18030, detected or named; Excel's quoting.
Any problem is an ``InputFileError`` with the line: a file is linked whole or not at all.
"""

from __future__ import annotations

import csv
from pathlib import Path

from foundation.text_files import InputFileError, csv_records, open_text
from streams.identity.memory_index import BatchLinkResult
from streams.identity.record import CSV_HEADER, SourceRecord


def read_records_csv(path: Path, encoding: str | None = None) -> list[SourceRecord]:
    """The records of ``path`` (``encoding`` None: detected); InputFileError names the line of a problem."""
    rows = csv_records(open_text(path, encoding))
    _, header = next(rows, (1, []))
    if tuple(h.strip() for h in header) != CSV_HEADER:
        raise InputFileError(path, f"the header must be exactly {','.join(CSV_HEADER)}; got {','.join(header)}", line=1)
    width = len(CSV_HEADER)
    records: list[SourceRecord] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        if not "".join(row).strip():
            continue  # a blank line, or a row of empty cells
        if len(row) < width or any(cell.strip() for cell in row[width:]):
            raise InputFileError(path, f"{len(row)} fields, the header has {width}", line)
        record = SourceRecord.from_row(dict(zip(CSV_HEADER, row)))
        if not record.record_id.strip():
            raise InputFileError(path, "empty record_id", line)
        if record.record_id in first_line:
            raise InputFileError(
                path,
                f"record_id {record.record_id!r} appears twice (first on line {first_line[record.record_id]})",
                line,
            )
        first_line[record.record_id] = line
        records.append(record)
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

"""Complaints from a CSV file, labelled with their syndromes into another (``healthbus syndromes classify``):
the batch twin of the surveillance stage, with the same ``classify``.

Input columns (any order, others ignored): ``record_id,chief_complaint,temperature,diagnosis_codes,age_years``;
output ``record_id,syndromes`` (codes sorted, joined by ";"). A bad row is reported and left out; the others
carry on. The file is read by foundation/text_files.py (UTF-8 with or without BOM, or GBK/GB18030, detected
unless named; Excel's quoting); a file that cannot be read as CSV (undecodable bytes, a NUL byte, an over-long
line or field, a quote left open) raises ``InputFileError`` naming the line, and no output is left behind.
"""

from __future__ import annotations

import csv
import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from foundation.text_files import InputFileError, csv_records, open_text
from streams.surveillance.syndromes import Syndrome, classify, syndromes_field


class HeaderError(InputFileError):
    """The input's header lacks a column."""


INPUT_COLUMNS = ("record_id", "chief_complaint", "temperature", "diagnosis_codes", "age_years")


class RowError(ValueError):
    pass


def _number(text: str, what: str) -> float | None:
    text = unicodedata.normalize("NFKC", text).strip()
    if what == "temperature":
        text = text.removesuffix("°C").removesuffix("°").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"{what} {text!r} is not a number")
    if what == "age_years" and value < 0:
        raise RowError(f"age_years {text!r} is negative")
    return value


@dataclass
class ClassifySummary:
    rows: int = 0
    with_syndrome: int = 0
    failed: int = 0
    counts: Counter[Syndrome] = field(default_factory=Counter)


def classify_complaints(
    input_path: Path, output_path: Path, on_error: Callable[[int, str, str], None], encoding: str | None = None
) -> ClassifySummary:
    """Classify every row; ``on_error(line, record_id, problem)`` hears of each row left out."""
    rows = csv_records(open_text(input_path, encoding))  # the file is checked whole before the output is opened
    _, first = next(rows, (1, []))
    header = [h.strip() for h in first]
    missing = [c for c in INPUT_COLUMNS if c not in header]
    if missing:
        raise HeaderError(input_path, f"the header lacks {', '.join(missing)} (needs {','.join(INPUT_COLUMNS)})", 1)
    try:
        with output_path.open("w", encoding="utf-8", newline="") as dst:
            return _classify_rows(rows, header, dst, on_error)
    except InputFileError:
        output_path.unlink(missing_ok=True)  # a file that is not CSV further down: no half output
        raise


def _classify_rows(
    rows: Iterator[tuple[int, list[str]]],
    header: list[str],
    dst: TextIO,
    on_error: Callable[[int, str, str], None],
) -> ClassifySummary:
    summary = ClassifySummary()
    writer = csv.writer(dst, lineterminator="\n")
    i_id, i_text, i_temp, i_dx, i_age = (header.index(c) for c in INPUT_COLUMNS)
    width = max(i_id, i_text, i_temp, i_dx, i_age) + 1
    writer.writerow(("record_id", "syndromes"))
    for first_line, row in rows:
        if not "".join(row).strip():
            continue  # a blank line, or a row of empty cells
        summary.rows += 1
        record_id = row[i_id].strip() if len(row) > i_id else ""
        try:
            if len(row) < width or any(cell.strip() for cell in row[len(header) :]):
                raise RowError(f"{len(row)} fields, the header has {len(header)}")
            if not record_id:
                raise RowError("no record_id")
            temperature = _number(row[i_temp], "temperature")
            _number(row[i_age], "age_years")
        except RowError as exc:
            summary.failed += 1
            on_error(first_line, record_id, str(exc))
            continue
        codes = [c for c in row[i_dx].replace("；", ";").split(";") if c.strip()]
        result = classify(row[i_text], (), temperature, codes)
        if result.syndromes:
            summary.with_syndrome += 1
            summary.counts.update(result.syndromes)
        writer.writerow((record_id, syndromes_field(result)))
    return summary

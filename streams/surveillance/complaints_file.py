"""Complaints from a CSV file, labelled with their syndromes into another (``healthbus syndromes classify``):
the batch twin of the surveillance stage, with the same ``classify``.

Input columns (any order, others ignored): ``record_id,chief_complaint,temperature,diagnosis_codes,age_years``;
output ``record_id,syndromes`` (codes sorted, joined by ";"). A bad row is reported and left out; the others
carry on.
"""

from __future__ import annotations

import csv
import math
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.surveillance.syndromes import Syndrome, classify, syndromes_field


class HeaderError(ValueError):
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
    input_path: Path, output_path: Path, on_error: Callable[[int, str, str], None]
) -> ClassifySummary:
    """Classify every row; ``on_error(line, record_id, problem)`` hears of each row left out."""
    summary = ClassifySummary()
    with input_path.open(encoding="utf-8-sig", newline="") as src:
        reader = csv.reader(src)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in INPUT_COLUMNS if c not in header]
        if missing:
            raise HeaderError(f"{input_path}: the header lacks {', '.join(missing)} (needs {','.join(INPUT_COLUMNS)})")
        i_id, i_text, i_temp, i_dx, i_age = (header.index(c) for c in INPUT_COLUMNS)
        width = max(i_id, i_text, i_temp, i_dx, i_age) + 1
        with output_path.open("w", encoding="utf-8", newline="") as dst:
            writer = csv.writer(dst, lineterminator="\n")
            writer.writerow(("record_id", "syndromes"))
            line = reader.line_num + 1  # where the next record starts
            for row in reader:
                first_line, line = line, reader.line_num + 1
                if not row:
                    continue
                summary.rows += 1
                record_id = row[i_id].strip() if len(row) > i_id else ""
                try:
                    if len(row) < width:
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

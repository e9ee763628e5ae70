"""Daily count series from a CSV file, judged day by day into a CSV of judgements (``healthbus surveillance
detect``; the file formats are described there). The monitor judges the same way from PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from foundation.text_files import InputFileError, csv_records, open_text
from streams.surveillance.detection import LEVEL_NAMES, DetectionParams, Method, detect_many, first_judged_day

OUTPUT_HEADER = ["series_id", "date", "alarm", "level", "count", "expected", "sd", "statistic", "threshold", "p_value"]


class Gaps(str, Enum):
    zero = "zero"
    error = "error"


class SeriesInputError(InputFileError):
    """A problem in the input file (the message names the line)."""


@dataclass
class Series:
    series_id: str
    start: dt.date
    counts: list[float]


@dataclass
class ReadResult:
    series: list[Series]  # ordered by series_id
    rows: int
    filled_days: int  # missing days counted as 0 (gaps=zero)


def read_series(path: Path, gaps: Gaps = Gaps.zero, encoding: str | None = None) -> ReadResult:
    """Parse and check the input file; build one consecutive-day series per series_id.

    The file is read by foundation/text_files.py (UTF-8 with or without BOM, or GBK/GB18030, detected unless
    ``encoding`` names it; Excel's quoting); a row with more fields than the header is refused unless the
    surplus cells are empty (Excel pads rows so), as it usually means an unquoted comma shifted the row."""
    rows: dict[str, dict[dt.date, tuple[float, int]]] = {}
    records = csv_records(open_text(path, encoding))
    header = next(records, None)
    if header is None:
        raise SeriesInputError(path, "empty file (expected the header series_id,date,count)")
    names = [h.strip() for h in header[1]]
    missing = [c for c in ("series_id", "date", "count") if c not in names]
    if missing:
        raise SeriesInputError(path, f"header lacks {', '.join(missing)} (expected series_id,date,count)", 1)
    i_id, i_date, i_count = names.index("series_id"), names.index("date"), names.index("count")
    n_rows = 0
    parsed_dates: dict[str, dt.date] = {}
    for line, record in records:
        if not "".join(record).strip():
            continue  # a blank line, or a row of empty cells
        if len(record) < len(names) or any(cell.strip() for cell in record[len(names) :]):
            raise SeriesInputError(path, f"{len(record)} fields, the header has {len(names)}", line)
        series_id = record[i_id].strip()
        if not series_id:
            raise SeriesInputError(path, "empty series_id", line)
        day = parsed_dates.get(record[i_date])
        if day is None:
            try:
                day = parsed_dates[record[i_date]] = dt.date.fromisoformat(record[i_date].strip())
            except ValueError:
                raise SeriesInputError(path, f"date {record[i_date]!r} is not YYYY-MM-DD", line) from None
        try:
            count = float(record[i_count])
        except ValueError:
            count = math.nan
        if not math.isfinite(count) or count < 0:
            raise SeriesInputError(path, f"count {record[i_count]!r} is not a number >= 0", line)
        days = rows.setdefault(series_id, {})
        if day in days:
            raise SeriesInputError(
                path, f"duplicate row for series {series_id} on {day} (first on line {days[day][1]})", line
            )
        days[day] = (count, line)
        n_rows += 1
    out: list[Series] = []
    filled = 0
    if rows and gaps is Gaps.zero:
        first = min(min(d) for d in rows.values())
        last = max(max(d) for d in rows.values())
        span = (last - first).days + 1
        for series_id in sorted(rows):
            counts = [0.0] * span
            for day, (count, _) in rows[series_id].items():
                counts[(day - first).days] = count
            filled += span - len(rows[series_id])
            out.append(Series(series_id, first, counts))
    else:
        for series_id in sorted(rows):
            days = rows[series_id]
            first, last = min(days), max(days)
            span = (last - first).days + 1
            if span != len(days):
                gap = next(
                    first + dt.timedelta(days=k) for k in range(span) if first + dt.timedelta(days=k) not in days
                )
                raise SeriesInputError(
                    path,
                    f"series {series_id} has {span - len(days)} missing day(s) between "
                    f"{first} and {last}, the first {gap} (--gaps error)",
                )
            out.append(Series(series_id, first, [days[first + dt.timedelta(days=k)][0] for k in range(span)]))
    return ReadResult(out, n_rows, filled)


_date_cache: dict[tuple[dt.date, int], list[str]] = {}


def _dates(start: dt.date, days: int) -> list[str]:
    key = (start, days)
    if key not in _date_cache:
        _date_cache[key] = [(start + dt.timedelta(days=k)).isoformat() for k in range(days)]
    return _date_cache[key]


def _num(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass
class JudgeSummary:
    judged: int
    alarm_days: int
    alarmed_series: int
    too_short: int


def judge_series(data: ReadResult, chosen: Method, params: DetectionParams, output_path: Path) -> JudgeSummary:
    """Judge every day of every series and write one row per judged day to ``output_path``."""
    # series of equal length are judged together (all of them with --gaps zero)
    by_length: dict[int, list[int]] = {}
    for k, s in enumerate(data.series):
        by_length.setdefault(len(s.counts), []).append(k)
    results: dict[int, tuple] = {}
    for _length, members in by_length.items():
        result = detect_many(np.array([data.series[k].counts for k in members], dtype=np.float64), chosen, params)
        for row, k in enumerate(members):
            results[k] = (result, row)

    judged = alarm_days = alarmed_series = too_short = 0
    first = first_judged_day(chosen, params)
    with output_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(OUTPUT_HEADER)
        for k, s in enumerate(data.series):
            result, row = results[k]
            columns = result.count.shape[1]
            if columns == 0:
                too_short += 1
                continue
            alarms = result.alarm[row]
            judged += columns
            alarm_days += int(alarms.sum())
            alarmed_series += bool(alarms.any())
            dates = _dates(s.start + dt.timedelta(days=first), columns)
            levels = [LEVEL_NAMES[code] or "" for code in result.level[row].tolist()]
            p_values = [""] * columns if result.p_value is None else [repr(p) for p in result.p_value[row].tolist()]
            writer.writerows(
                zip(
                    [s.series_id] * columns,
                    dates,
                    alarms.astype(int).tolist(),
                    levels,
                    [_num(c) for c in result.count[row].tolist()],
                    [repr(v) for v in result.expected[row].tolist()],
                    [repr(v) for v in result.sd[row].tolist()],
                    [repr(v) for v in result.statistic[row].tolist()],
                    [repr(v) for v in result.threshold[row].tolist()],
                    p_values,
                )
            )
    return JudgeSummary(judged, alarm_days, alarmed_series, too_short)

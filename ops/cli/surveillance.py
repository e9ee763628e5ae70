"""``healthbus surveillance …``: early-warning detection over daily count series (docs/domain.md §6).

``detect`` reads ``series_id,date,count`` (one row per day per series, ISO dates, any order; extra columns are
ignored) and writes one row per judged day::

    series_id,date,alarm,level,count,expected,sd,statistic,threshold,p_value

alarm is 0/1; level is ``alarm`` (EARS), ``yellow``/``red`` (EWMA) or empty; p_value is empty for EARS; the
other columns are those of ``streams.surveillance.detection.Judgement`` (numbers in Python's shortest
round-trip form; the C3 statistic may be ``inf``). Rows are ordered by series_id, then
date. The first judged day of a series (1-based, baseline n): C1 day n + 1, C2 n + 3, C3 n + 5, EWMA B + g + 1
(the 31st day with the 28-day baseline and 2-day guard band); a shorter series gives no rows.

Days without a row (``--gaps``):

* ``zero`` (default): a missing (series, day) means no cases, which is how aggregated count tables are usually
  written (a GROUP BY emits no row for a zero day). Every series then spans the whole file's date range, first
  to last date over all series, and the missing days count 0. The summary line says how many were filled.
* ``error``: a day missing inside a series (between its own first and last date) is refused, naming the series
  and the first missing date; use it when a missing row may mean missing data (a feed that did not upload),
  which zero-filling would turn into a dip in the baseline and a silent day. Each series then spans its own
  first to last date.

A duplicate (series_id, date), an unreadable date or a count that is not a finite number ≥ 0 is an error with its
line number (exit status 2).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from foundation.metrics_server import serve_metrics
from ops.cli.audit import ActorOption

surveillance_app = typer.Typer(
    help="Syndromic surveillance: early-warning detection over daily count series.", no_args_is_help=True
)


@surveillance_app.callback()
def _group() -> None:
    """Syndromic surveillance: early-warning detection over daily count series."""
    # a callback keeps `detect` a subcommand while it is the app's only command


OUTPUT_HEADER = ["series_id", "date", "alarm", "level", "count", "expected", "sd", "statistic", "threshold", "p_value"]


class MethodName(str, Enum):
    ears_c1 = "ears-c1"
    ears_c2 = "ears-c2"
    ears_c3 = "ears-c3"
    ewma = "ewma"


class Gaps(str, Enum):
    zero = "zero"
    error = "error"


class SeriesInputError(ValueError):
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


def read_series(path: Path, gaps: Gaps = Gaps.zero) -> ReadResult:
    """Parse and check the input file; build one consecutive-day series per series_id."""
    rows: dict[str, dict[dt.date, tuple[float, int]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise SeriesInputError(f"{path}: empty file (expected the header series_id,date,count)")
        names = [h.strip() for h in header]
        missing = [c for c in ("series_id", "date", "count") if c not in names]
        if missing:
            raise SeriesInputError(f"{path} line 1: header lacks {', '.join(missing)} (expected series_id,date,count)")
        i_id, i_date, i_count = names.index("series_id"), names.index("date"), names.index("count")
        n_rows = 0
        parsed_dates: dict[str, dt.date] = {}
        for record in reader:
            line = reader.line_num
            if len(record) < len(names):
                if not "".join(record).strip():
                    continue  # a blank line
                raise SeriesInputError(f"{path} line {line}: {len(record)} fields, the header has {len(names)}")
            series_id = record[i_id].strip()
            if not series_id:
                raise SeriesInputError(f"{path} line {line}: empty series_id")
            day = parsed_dates.get(record[i_date])
            if day is None:
                try:
                    day = parsed_dates[record[i_date]] = dt.date.fromisoformat(record[i_date].strip())
                except ValueError:
                    raise SeriesInputError(f"{path} line {line}: date {record[i_date]!r} is not YYYY-MM-DD") from None
            try:
                count = float(record[i_count])
            except ValueError:
                count = math.nan
            if not math.isfinite(count) or count < 0:
                raise SeriesInputError(f"{path} line {line}: count {record[i_count]!r} is not a number >= 0")
            days = rows.setdefault(series_id, {})
            if day in days:
                raise SeriesInputError(
                    f"{path} line {line}: duplicate row for series {series_id} on {day} (first on line {days[day][1]})"
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
                    f"{path}: series {series_id} has {span - len(days)} missing day(s) between "
                    f"{first} and {last}, the first {gap} (--gaps error)"
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


@surveillance_app.command("detect")
def detect_command(
    input_path: Annotated[Path, typer.Option("--input", help="CSV with series_id,date,count")],
    method: Annotated[MethodName, typer.Option(help="Detection method (docs/domain.md §6)")],
    output_path: Annotated[Path, typer.Option("--output", help="CSV of judged days")],
    baseline: Annotated[int | None, typer.Option(help="Baseline days: EARS n (default 7); EWMA B (default 28)")] = None,
    min_sigma: Annotated[float, typer.Option(help="Floor of the baseline standard deviation")] = 0.0,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Significance: EARS default 0.001 (C1, C2), 0.025 (C3); EWMA the yellow level, default 0.05 "
            "(red stays 0.01)"
        ),
    ] = None,
    gaps: Annotated[Gaps, typer.Option(help="A day without a row: zero = no cases; error = refuse")] = Gaps.zero,
) -> None:
    """Judge every day of every series with EARS C1/C2/C3 or the ESSENCE EWMA; one output row per judged day."""
    import numpy as np

    from streams.surveillance.detection import LEVEL_NAMES, DetectionParams, Method, detect_many, first_judged_day

    started = time.perf_counter()
    chosen = Method(method.value)
    try:
        if chosen is Method.EWMA:
            ewma: dict[str, Any] = {"ewma_baseline": baseline} if baseline is not None else {}
            params = DetectionParams(min_sigma=min_sigma, alpha=alpha, **ewma)
        else:
            params = DetectionParams(baseline=7 if baseline is None else baseline, min_sigma=min_sigma, alpha=alpha)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if chosen is Method.EWMA and params.alpha_for(chosen) <= params.ewma_red_alpha:
        raise typer.BadParameter(f"--alpha for ewma is the yellow level: above the red {params.ewma_red_alpha}")
    try:
        data = read_series(input_path, gaps)
    except (SeriesInputError, OSError, UnicodeDecodeError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None

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
    seconds = time.perf_counter() - started
    short = f", {too_short} too short to judge" if too_short else ""
    filled = f" ({data.filled_days} missing days counted as 0)" if gaps is Gaps.zero else ""
    print(
        f"surveillance detect {chosen.value}: {len(data.series)} series{short}, {data.rows} rows{filled}, "
        f"{judged} judged days, {alarm_days} alarm days in {alarmed_series} series; {seconds:.2f} s -> "
        f"{output_path}",
        file=sys.stderr,
    )


@surveillance_app.command("report")
def report_command(
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (Asia/Shanghai)")],
    last: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (Asia/Shanghai)")],
    actor: ActorOption,
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("surveillance.html"),
) -> None:
    """症候群监测预警报告: a self-contained HTML page of every county's syndrome curves with the alarm days
    marked, and the alerts open in the period (PostgreSQL surveillance.daily_counts and surveillance.alerts).
    The export is audited (who, when, period, the file's SHA-256): `healthbus audit list`."""
    import psycopg

    from foundation.settings import get_settings
    from read_side.audit_trail import EXPORT_SURVEILLANCE_REPORT, ensure_audit_trail, export_file
    from read_side.reports.surveillance_report import render_surveillance_report
    from read_side.reports.surveillance_report_data import gather_surveillance_report
    from streams.surveillance.alert_store import ensure_alert_store
    from streams.surveillance.case_store import ensure_case_store

    try:
        day_from, day_to = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    except ValueError:
        raise typer.BadParameter(f"--from and --to must be YYYY-MM-DD, got {first!r} and {last!r}") from None
    if day_from > day_to:
        raise typer.BadParameter(f"--from {first} is after --to {last}")
    try:
        with psycopg.connect(get_settings().postgres_url, autocommit=True) as conn:
            ensure_case_store(conn)
            ensure_alert_store(conn)
            ensure_audit_trail(conn)
            data = gather_surveillance_report(conn, day_from, day_to, dt.datetime.now(dt.UTC))
            opened = sum(1 for e in data.alerts if e.alert.state == "OPEN")
            export_file(
                conn,
                actor,
                EXPORT_SURVEILLANCE_REPORT,
                {"from": first, "to": last},
                out,
                render_surveillance_report(data).encode("utf-8"),
                {
                    "counties": len(data.counties),
                    "curves": sum(len(c.curves) for c in data.counties),
                    "visits": data.visits,
                    "alerts": len(data.alerts),
                    "open_alerts": opened,
                },
            )
    except psycopg.OperationalError as exc:
        typer.secho(f"error: PostgreSQL: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{out}: {first} – {last}, {len(data.counties)} counties, {data.visits} visits, "
        f"{sum(len(c.curves) for c in data.counties)} curves, {len(data.alerts)} alerts ({opened} open)"
        + (" — no data" if data.empty else "")
    )


@surveillance_app.command("monitor")
def monitor_command(
    at: Annotated[str | None, typer.Option(help="Judge as of this moment (ISO 8601 with offset; default now)")] = None,
    every: Annotated[float, typer.Option(help="Seconds between runs; 0: run once")] = 0,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on 127.0.0.1:PORT")] = None,
) -> None:
    """Early warning: judge the closed days not judged yet (and today's partial day) from the daily counts;
    open, update and close alerts on alerts.surveillance (streams/surveillance/monitor.py)."""
    import psycopg
    from confluent_kafka import Producer

    from avro_schemas.serde import codec_for
    from foundation.kafka_config import producer_config
    from foundation.settings import get_settings
    from streams.surveillance.detection_plan import PlanError, load_plan
    from streams.surveillance.monitor import run_once

    settings = get_settings()
    moment = None
    if at:
        try:
            moment = dt.datetime.fromisoformat(at)
        except ValueError:
            raise typer.BadParameter(f"--at must be ISO 8601, got {at!r}") from None
        if moment.tzinfo is None:
            raise typer.BadParameter("--at needs a UTC offset, e.g. 2026-11-21T13:00+08:00")
    try:
        plan = load_plan(settings.surveillance_detection_plan)
    except (PlanError, OSError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    serve_metrics(metrics_port)
    codec = codec_for(settings.schema_registry_config())
    producer = Producer(producer_config(settings.confluent_config()))
    while True:
        now = moment or dt.datetime.now(dt.UTC)
        try:
            run = run_once(settings, now, producer, codec, plan)
        except (RuntimeError, OSError, psycopg.OperationalError) as exc:
            if not every:
                raise
            # with --every a broker or database outage skips this run; nothing was recorded, the next catches up
            typer.secho(f"{now.isoformat()}: run failed, retrying in {every:g} s: {exc}", fg=typer.colors.RED, err=True)
            time.sleep(every)
            continue
        judged = ", ".join(f"{d.day}{' (partial)' if d.partial_day else ''}" for d in run.days) or "nothing new"
        typer.echo(
            f"{now.isoformat()}: judged {judged}; opened {len(run.opened)}, updated {len(run.updated)}, "
            f"closed {len(run.closed)}, open now {run.open_now}"
        )
        for c in run.changes():
            a = c.alert
            partial = " partial" if c.partial_day else ""
            typer.echo(
                f"  {c.state:<7} {a.series_id} {a.method} {a.level} {c.day}{partial} "
                f"observed {a.observed} threshold {a.threshold:.4g} statistic {a.statistic:.4g}"
            )
        if not every:
            return
        time.sleep(every)

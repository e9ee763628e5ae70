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
line number (exit status 2), and so is a file that cannot be read as CSV (foundation/text_files.py): the
encoding is UTF-8 (with or without BOM) or GB18030/GBK, detected unless ``--encoding`` names it; undecodable
bytes, a NUL byte, an over-long line or field, a quote left open, a row with fewer fields than the header or
with surplus non-empty ones are refused with the file, line and reason.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from foundation.metrics_server import serve_metrics
from foundation.text_files import ENCODING_HELP, InputFileError, UnusableEncoding
from ops.cli.audit import ActorOption
from streams.surveillance.series_file import Gaps

surveillance_app = typer.Typer(
    help="Syndromic surveillance: early-warning detection over daily count series.", no_args_is_help=True
)


@surveillance_app.callback()
def _group() -> None:
    """Syndromic surveillance: early-warning detection over daily count series."""
    # a callback keeps `detect` a subcommand while it is the app's only command


class MethodName(str, Enum):
    ears_c1 = "ears-c1"
    ears_c2 = "ears-c2"
    ears_c3 = "ears-c3"
    ewma = "ewma"


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
    encoding: Annotated[str | None, typer.Option("--encoding", help=ENCODING_HELP)] = None,
) -> None:
    """Judge every day of every series with EARS C1/C2/C3 or the ESSENCE EWMA; one output row per judged day."""
    from streams.surveillance.detection import DetectionParams, Method
    from streams.surveillance.series_file import Gaps, judge_series, read_series

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
        data = read_series(input_path, gaps, encoding)
    except UnusableEncoding as exc:
        raise typer.BadParameter(str(exc), param_hint="--encoding") from None
    except InputFileError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None

    summary = judge_series(data, chosen, params, output_path)
    seconds = time.perf_counter() - started
    short = f", {summary.too_short} too short to judge" if summary.too_short else ""
    filled = f" ({data.filled_days} missing days counted as 0)" if gaps is Gaps.zero else ""
    print(
        f"surveillance detect {chosen.value}: {len(data.series)} series{short}, {data.rows} rows{filled}, "
        f"{summary.judged} judged days, {summary.alarm_days} alarm days in {summary.alarmed_series} series; {seconds:.2f} s -> "
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

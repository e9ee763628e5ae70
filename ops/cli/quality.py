"""``healthbus quality …``: the rule set, batch checks, ranking, feedback reports, upload monitoring.

`check` runs the same engine as the stream stage over a JSONL file. `ranking`, `report` and `monitor` read
ClickHouse (quality_results, fed by the ClickHouse sink); with embedded chDB only one process may open its
directory, so run them while the ClickHouse sink is stopped, or against a ClickHouse server.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from foundation.metrics_server import serve_metrics
from foundation.settings import Settings, get_settings
from foundation.text_files import ENCODING_HELP
from ops.cli.audit import ActorOption

quality_app = typer.Typer(
    help="Data quality: rules, batch checks, ranking, feedback reports, upload monitoring.", no_args_is_help=True
)
DateOption = Annotated[str, typer.Option(help="YYYY-MM-DD (Asia/Shanghai day)")]


def _fail(message: str) -> NoReturn:
    """A rule file or an input that can't be used: its file, line and reason; exit status 2, as the other
    batch commands (and a usage error)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _rule_set(settings: Settings):
    from streams.quality.rule_set import RuleFileError, rule_set_in_force

    try:
        return rule_set_in_force(settings.quality_rule_file)
    except RuleFileError as exc:
        _fail(str(exc))


def _clickhouse(settings: Settings):
    from foundation.clickhouse import open_clickhouse
    from sinks.clickhouse.quality_results import quality_ddl

    client = open_clickhouse(settings.clickhouse_url, settings.resolved_chdb_path, settings.clickhouse_database)
    for ddl in quality_ddl(settings.clickhouse_database):
        client.command(ddl)
    return client


def _day(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{name} must be YYYY-MM-DD, got {text!r}") from None


@quality_app.command("check")
def check(
    input_path: Annotated[Path, typer.Option("--input", help="Events in the JSON form, one per line")],
    output_path: Annotated[Path, typer.Option("--output", help="One verdict per input line (JSON)")],
    encoding: Annotated[str | None, typer.Option("--encoding", help=ENCODING_HELP)] = None,
) -> None:
    """Judge a file of events with the stream stage's rule engine (docs/quality.md has the formats). Exit
    status 2, with the file, the line and the reason, when the rule file or the input can't be used."""
    from foundation.text_files import InputFileError, UnusableEncoding
    from streams.quality.batch_check import check_file
    from streams.quality.engine import RuleEngine

    rule_set = _rule_set(get_settings())
    started = time.perf_counter()
    try:
        summary = check_file(input_path, output_path, RuleEngine(rule_set), encoding)
    except UnusableEncoding as exc:
        raise typer.BadParameter(str(exc), param_hint="--encoding") from None
    except InputFileError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or output_path}: {exc.strerror or exc}")
    seconds = time.perf_counter() - started
    typer.echo(
        f"rule set {rule_set.version}: {summary.lines} events, {summary.passed} passed, {summary.rejected} "
        f"rejected ({summary.unreadable} unreadable), {summary.deaths_registered} deaths in the file; "
        f"{seconds:.2f} s",
        err=True,
    )


@quality_app.command("rules")
def rules(
    lock: Annotated[bool, typer.Option("--lock", help="Record this rule file's digest under its version")] = False,
) -> None:
    """List the rules in force (id, category, severity, weight, event types, message)."""
    from streams.quality.rule_set import lock_current

    settings = get_settings()
    if lock:
        try:
            typer.echo(f"locked {lock_current()}")
        except ValueError as exc:  # a rule file that doesn't load, or a released version's rules changed
            _fail(str(exc))
        return
    rule_set = _rule_set(settings)
    typer.echo(f"rule set {rule_set.version} ({len(rule_set.rules)} rules, sha256 {rule_set.digest[:12]})")
    for r in rule_set.rules:
        types = "all" if len(r.event_types) > 8 else ",".join(sorted(r.event_types))
        typer.echo(
            f"{r.id:<32} {r.category.value:<12} {r.severity.value:<7} {r.weight:>4g}  {types}\n"
            f"{'':<32} {r.message_zh} / {r.message_en}"
        )


@quality_app.command("ranking")
def ranking(
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD")],
    county: Annotated[str | None, typer.Option(help="Only this county (GB/T 2260), ranked within it")] = None,
    min_received: Annotated[int, typer.Option(help="Fewer events than this: listed, not ranked")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per institution instead of a table")] = False,
) -> None:
    """质量考核排名: institutions by weighted quality score over the period (city and county rank)."""
    from sinks.clickhouse.quality_results import daily_figures
    from streams.quality.ranking import rank_institutions

    settings = get_settings()
    client = _clickhouse(settings)
    try:
        rows = rank_institutions(
            daily_figures(client, settings.clickhouse_database, _day(first, "--from"), _day(last, "--to")), min_received
        )
    finally:
        client.close()
    if county:
        rows = [r for r in rows if r.county_code == county]
    if as_json:
        for r in rows:
            typer.echo(
                json.dumps(
                    {
                        "city_rank": r.city_rank,
                        "county_rank": r.county_rank,
                        "org_code": r.org_code,
                        "org_name": r.org_name,
                        "county": r.county_code,
                        "received": r.received,
                        "accepted": r.accepted,
                        "rejected": r.rejected,
                        "late": r.late,
                        "score": round(r.score, 6),
                    },
                    ensure_ascii=False,
                )
            )
        return
    typer.echo(f"质量考核排名 / quality ranking {first} – {last}" + (f", county {county}" if county else ""))
    typer.echo(
        f"{'city':>4} {'county':>6}  {'institution':<20} {'name':<16} {'county':<6} {'received':>9} "
        f"{'rejected':>8} {'late':>6} {'score':>7}"
    )
    for r in rows:
        typer.echo(
            f"{r.city_rank or '-':>4} {r.county_rank or '-':>6}  {r.org_code:<20} {r.org_name[:16]:<16} "
            f"{r.county_code:<6} {r.received:>9} {r.rejected_share:>8.1%} {r.late / max(r.accepted, 1):>6.1%} "
            f"{r.score:>7.2%}"
        )


@quality_app.command("report")
def report(
    org: Annotated[str, typer.Option(help="The hospital's GB 32100 code")],
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD")],
    actor: ActorOption,
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML feedback report for one hospital (score trend, failures, worst fields, masked
    examples, rank). The export is audited (who, when, parameters, the file's SHA-256): `healthbus audit list`."""
    import psycopg

    from read_side.audit_trail import EXPORT_QUALITY_REPORT, ensure_audit_trail, export_file
    from read_side.reports.quality_feedback import render_quality_report
    from read_side.reports.quality_report_data import gather_quality_report

    settings = get_settings()
    client = _clickhouse(settings)
    try:
        with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
            from streams.quality.issue_store import ensure_issue_store

            ensure_issue_store(conn)
            ensure_audit_trail(conn)
            data = gather_quality_report(
                client,
                settings.clickhouse_database,
                conn,
                _rule_set(settings),
                org,
                _day(first, "--from"),
                _day(last, "--to"),
                dt.datetime.now(dt.UTC),
            )
            export_file(
                conn,
                actor,
                EXPORT_QUALITY_REPORT,
                {"org_code": org, "from": first, "to": last},
                out,
                render_quality_report(data).encode("utf-8"),
                {
                    "received": data.received,
                    "accepted": data.accepted,
                    "rejected": data.rejected,
                    "late": data.late,
                    "masked_examples": len(data.examples),
                },
            )
    except LookupError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    typer.echo(
        f"{out}: {data.org_name} {first} – {last}, score {data.score:.1%}, "
        f"city rank {data.city_rank.rank if data.city_rank else '-'}"
    )


@quality_app.command("monitor")
def monitor(
    at: Annotated[str | None, typer.Option(help="Judge as of this moment (ISO 8601; default now)")] = None,
    every: Annotated[float, typer.Option(help="Seconds between runs; 0: run once")] = 0,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on 127.0.0.1:PORT")] = None,
) -> None:
    """Daily upload monitoring: open/close alerts on alerts.quality, refresh the per-feed gauges."""
    import psycopg
    from confluent_kafka import Producer

    from avro_schemas.serde import codec_for
    from foundation.kafka_config import producer_config
    from read_side.quality_upload_monitor import run_monitor
    from streams.quality.upload_monitor import parse_cutoff

    settings = get_settings()
    serve_metrics(metrics_port)
    codec = codec_for(settings.schema_registry_config())
    producer = Producer(producer_config(settings.confluent_config()))
    while True:
        now = dt.datetime.fromisoformat(at) if at else dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            raise typer.BadParameter("--at needs a UTC offset, e.g. 2026-11-27T10:30+08:00")
        client = _clickhouse(settings)
        try:
            with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
                result = run_monitor(
                    client,
                    settings.clickhouse_database,
                    conn,
                    producer,
                    codec,
                    settings.topic_prefix,
                    now,
                    parse_cutoff(settings.quality_monitor_cutoff),
                    settings.quality_monitor_min_share,
                )
        finally:
            client.close()
        typer.echo(
            f"{now.isoformat()}: {result.feeds} feeds, opened {len(result.opened)}, closed "
            f"{len(result.closed)}, open now {result.open_now}"
        )
        for p in result.opened:
            typer.echo(
                f"  OPEN   {p.kind:<10} {p.key.org_code} {p.key.event_type} {p.day} observed {p.observed} "
                f"median {p.baseline_median:g}"
            )
        for a in result.closed:
            typer.echo(f"  CLOSED {a.kind:<10} {a.key.org_code} {a.key.event_type} {a.day}")
        if not every:
            return
        time.sleep(every)

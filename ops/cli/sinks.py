"""``healthbus sink``: land pipeline events in PostgreSQL or ClickHouse."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.metrics_server import serve_metrics
from foundation.settings import get_settings
from ops.cli.options import MetricsPort

sink_app = typer.Typer(help="Sinks: land pipeline events in PostgreSQL or ClickHouse.", no_args_is_help=True)


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

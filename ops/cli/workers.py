"""``healthbus worker NAME``: run one stream stage of the pipeline declaration (avro_schemas/pipeline.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any

import typer

from avro_schemas.pipeline import PIPELINE, Stage, stage
from foundation.metrics_server import serve_metrics
from foundation.settings import get_settings
from ops.cli.options import MetricsPort, fail

STREAM_STAGES = tuple(s.name for s in PIPELINE if s.kind == "stream")


def entry_point(spec: Stage) -> Callable[..., Any]:
    """The function a stage's declaration names (``module:function``)."""
    module, _, function = spec.entry.partition(":")
    return getattr(importlib.import_module(module), function)


def worker(
    name: Annotated[str, typer.Argument(help=f"The stage: {', '.join(STREAM_STAGES)}", show_default=False)],
    event_types: Annotated[list[str] | None, typer.Option("--event-type", help="Default: every event type")] = None,
    group_suffix: Annotated[str, typer.Option(help="Appended to the consumer group id")] = "",
    routes: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="routing only: run only these (repeat the option), e.g. chronic_disease or clinical_reminders; "
            "a consumer group of their own. Default: all",
        ),
    ] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Run a stream stage as a Faust worker until stopped: what it reads and writes is `healthbus pipeline show`."""
    try:
        spec = stage(name)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if spec.kind != "stream":
        fail(f"{name} is a {spec.kind}, not a stream stage; it runs as `healthbus {' '.join(spec.command)}`")
    options: dict[str, Any] = {}
    if routes:
        if "route" not in spec.options:
            fail(f"--route is an option of the routing stage, not of {name}")
        from streams.routing.stage import ROUTING_PARTS

        unknown = set(routes) - set(ROUTING_PARTS)
        if unknown:
            raise typer.BadParameter(
                f"unknown {', '.join(sorted(unknown))}; one of {', '.join(ROUTING_PARTS)}", param_hint="--route"
            )
        options["parts"] = tuple(routes)
    serve_metrics(metrics_port)
    entry_point(spec)(get_settings(), event_types or None, group_suffix, **options)

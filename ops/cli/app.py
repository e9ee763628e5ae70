"""``healthbus``: the one command line. Each command group is a module of ops/cli that parses and prints;
the work is done by the module it calls."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ops.cli import demo, status, synth, workers
from ops.cli.adapters import adapter_app
from ops.cli.audit import audit_app
from ops.cli.bench import bench_app
from ops.cli.dlq import dlq_app
from ops.cli.empi import empi_app
from ops.cli.pipeline import pipeline_app
from ops.cli.privacy import privacy_app
from ops.cli.quality import quality_app
from ops.cli.routing import routing_app
from ops.cli.schemas import schemas_app
from ops.cli.sinks import sink_app
from ops.cli.stack import stack_app
from ops.cli.surveillance import surveillance_app
from ops.cli.syndromes import syndromes_app
from ops.cli.topics import topics_app

app = typer.Typer(
    help="healthbus: the event-streaming integration bus of the Xinyang health information platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for sub, name in (
    (pipeline_app, "pipeline"),
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
    (sink_app, "sink"),
    (adapter_app, "adapter"),
    (privacy_app, "privacy"),
):
    app.add_typer(sub, name=name)
app.command("worker")(workers.worker)
app.command("synth")(synth.synth)
app.command("status")(status.status)
app.command("lag")(status.lag)
app.command("demo")(demo.demo)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def entrypoint() -> None:
    app()


if __name__ == "__main__":
    entrypoint()

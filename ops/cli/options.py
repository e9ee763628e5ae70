"""Options and helpers every command group shares."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object of the figures.")]
MetricsPort = Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on 127.0.0.1:PORT")]


def fail(message: str) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)

"""``healthbus stack``: the local stack (broker, PostgreSQL, Redis, ClickHouse), up, down, status."""

from __future__ import annotations

import typer

from foundation.settings import get_settings
from ops.cli.options import fail

stack_app = typer.Typer(help="The local stack: broker, PostgreSQL, Redis, ClickHouse (chDB).", no_args_is_help=True)


@stack_app.command("up")
def stack_up() -> None:
    """Start what is missing (broker; PostgreSQL and Redis if they don't answer) and wait until ready."""
    from ops.stack import lifecycle
    from ops.stack.processes import ServiceError

    try:
        rows = lifecycle.up(get_settings())
    except ServiceError as exc:
        fail(str(exc))
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

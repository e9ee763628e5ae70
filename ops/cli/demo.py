"""``healthbus demo``: the whole platform on synthetic data, end to end, with its checks."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.options import JsonFlag


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
    from synthetic.exchange_data import exchange_dsn

    result = run_demo(get_settings(), exchange_dsn(get_settings().postgres_url), hospitals, counties, days, seed)
    print(result.table())
    if as_json:
        print(json.dumps(result.figures()))
    if not result.consistent:
        raise typer.Exit(1)

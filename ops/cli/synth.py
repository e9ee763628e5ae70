"""``healthbus synth``: synthetic hospitals and counties for the demo and tests (synthetic/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.progress import progress_bar


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
    from synthetic.exchange_data import exchange_dsn, generate_exchange_data

    target = dsn or exchange_dsn(get_settings().postgres_url)
    ensure_database(target)
    config_out.parent.mkdir(parents=True, exist_ok=True)
    with progress_bar("synthesising institutions") as update:
        summary = generate_exchange_data(
            target, hospitals, counties, days, seed, config_out, bad_share, dt.date.fromisoformat(start), update
        )
    print(summary.table())
    print(f"adapter config: {config_out}  (healthbus adapter run --config {config_out})")

"""``healthbus adapter``: publish what institutions write to their exchange databases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.audit import ActorOption, record_read
from ops.cli.options import MetricsPort

adapter_app = typer.Typer(
    help="Adapters: publish what institutions write to their exchange databases.", no_args_is_help=True
)


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
def adapter_key(org: Annotated[str, typer.Option(help="GB 32100 code of the institution")], actor: ActorOption) -> None:
    """Print the signing key to configure on that institution's adapter (HEALTHBUS_ADAPTER_KEY), of its current
    generation (HEALTHBUS_ADAPTER_KEY_GENERATIONS). Audited: who printed which institution's key, and when."""
    from foundation.source_authentication import adapter_key as derive
    from read_side.audit_trail import READ_ADAPTER_KEY

    s = get_settings()
    generation = s.adapter_key_generations.get(org, 1)
    record_read(READ_ADAPTER_KEY, {"org_code": org, "generation": generation}, actor)
    print(derive(s.adapter_master_key.get_secret_value().encode(), org, generation).hex())


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

"""``healthbus privacy rotate-pseudonyms``: re-key ClickHouse after the pseudonym key changed (sinks/clickhouse/pseudonym_rotation.py)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.audit import ActorOption

privacy_app = typer.Typer(help="Privacy operations: pseudonym key rotation.", no_args_is_help=True)


@privacy_app.command("rotate-pseudonyms")
def rotate_pseudonyms_command(
    old_key_env: Annotated[
        str,
        typer.Option(
            "--old-key-env",
            help="Name of the environment variable holding the OLD key (never the key itself on a command line)",
        ),
    ],
    actor: ActorOption,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would change; change nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object of the figures.")] = False,
) -> None:
    """Rewrite every ClickHouse pseudonym made with the old key as HEALTHBUS_PSEUDONYM_KEY (the new key) makes
    it. Stop the ClickHouse sink and the surveillance worker first (docs/security.md)."""
    import psycopg

    from foundation.clickhouse import open_clickhouse
    from ops.cli.progress import progress_bar
    from read_side.audit_trail import ROTATE_PSEUDONYMS, ensure_audit_trail, record_action
    from sinks.clickhouse.pseudonym_rotation import rotate_pseudonyms

    old = os.environ.get(old_key_env)
    if not old:
        typer.echo(f"{old_key_env} is not set: export the old pseudonym key in it", err=True)
        raise typer.Exit(2)
    s = get_settings()
    client = open_clickhouse(s.clickhouse_url, s.resolved_chdb_path, s.clickhouse_database)
    try:
        with psycopg.connect(s.postgres_url, autocommit=True) as conn:
            with progress_bar("re-keying ClickHouse tables") as update:
                report = rotate_pseudonyms(
                    conn,
                    client,
                    s.clickhouse_database,
                    old.encode(),
                    s.pseudonym_key.get_secret_value().encode(),
                    dry_run=dry_run,
                    progress=update,
                )
            if not dry_run:  # who re-keyed the analytics, when, and how much (never a key)
                ensure_audit_trail(conn)
                record_action(
                    conn,
                    actor,
                    ROTATE_PSEUDONYMS,
                    {"clickhouse_database": s.clickhouse_database},
                    {column: changed for column, changed in report.rekeyed.items()},
                )
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        client.close()
    typer.echo(
        f"{'would re-key' if dry_run else 're-keyed'} with {report.mappings} known pseudonyms in {report.seconds:.1f} s"
    )
    typer.echo(f"{'column':<40} {'rows':>10} {'re-keyed':>10} {'unmapped':>10}")
    for column, changed in report.rekeyed.items():
        typer.echo(f"{column:<40} {report.rows[column.split('.')[0]]:>10} {changed:>10} {report.unmapped[column]:>10}")
    if any(report.unmapped.values()):
        typer.echo("unmapped: pseudonyms PostgreSQL cannot explain were left as they are (they join nothing new)")
    if as_json:
        typer.echo(json.dumps(report.as_dict()))

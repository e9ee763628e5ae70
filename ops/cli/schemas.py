"""``healthbus schemas``: the Avro contracts (list, check evolution, release)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

schemas_app = typer.Typer(help="Avro contracts: list, check evolution, release.", no_args_is_help=True)


@schemas_app.command("list")
def schemas_list() -> None:
    """Event types, their Avro record names and single-object fingerprints."""
    from avro_schemas.schema_set import current_schemas

    for s in current_schemas().values():
        print(f"{s.event_type:<22} {s.full_name:<42} {s.fingerprint.hex()}")


@schemas_app.command("check")
def schemas_check(
    released_dir: Annotated[
        Path | None, typer.Option(help="Released snapshots (default avro_schemas/released)")
    ] = None,
) -> None:
    """Fail when a schema change would stop this checkout's reader reading what a released version wrote."""
    from avro_schemas.evolution import check_against_releases

    problems, checked = check_against_releases(released_dir)
    for p in problems:
        typer.secho(f"INCOMPATIBLE {p}", fg=typer.colors.RED)
    print(f"{checked} released schema(s) checked, {len(problems)} incompatible")
    if problems:
        raise typer.Exit(1)


@schemas_app.command("release")
def schemas_release(version: Annotated[str, typer.Argument(help="e.g. 1.1.0")]) -> None:
    """Snapshot the current schemas as a released version (commit the files it writes)."""
    from avro_schemas.evolution import release

    path = release(version)
    print(f"released {version}: {path}")

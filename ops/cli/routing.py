"""``healthbus routing …``: routing decisions for a file, the work queues, and county access to them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from foundation.settings import get_settings
from foundation.text_files import ENCODING_HELP
from ops.cli.audit import ActorOption

routing_app = typer.Typer(help="Collaboration routing: decisions, work queues, county access.", no_args_is_help=True)


@routing_app.command("decide")
def decide(
    input_path: Annotated[Path, typer.Option("--input", help="Events in the JSON form, one per line")],
    output_path: Annotated[Path, typer.Option("--output", help="One line per input: the routes' claims (JSON)")],
    encoding: Annotated[str | None, typer.Option("--encoding", help=ENCODING_HELP)] = None,
) -> None:
    """Which routes each event feeds, with what facts (the stage's claim functions, no state).

    An unreadable line gets an error line in the output and is named on stderr (the first 20); a file that
    cannot be read as text exits 2 with its line and reason."""
    from avro_schemas.json_form import JsonFormError
    from foundation.text_files import InputFileError, UnusableEncoding
    from streams.routing.batch_decide import decide_file

    shown = 20

    def report(line: int, error: JsonFormError) -> None:
        nonlocal shown
        if shown > 0:
            typer.secho(
                f"{input_path}: line {line}: {error}; an error line in the output", fg=typer.colors.RED, err=True
            )
        shown -= 1

    started = time.perf_counter()
    try:
        summary = decide_file(input_path, output_path, encoding, report)
    except UnusableEncoding as exc:
        raise typer.BadParameter(str(exc), param_hint="--encoding") from None
    except InputFileError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if shown < 0:
        typer.secho(f"… and {-shown} more unreadable lines", fg=typer.colors.RED, err=True)
    per_route = ", ".join(f"{route} {n}" for route, n in sorted(summary.claims_by_route.items())) or "none"
    typer.echo(
        f"{summary.lines} events ({summary.unreadable} unreadable), {summary.routed} routed; claims: "
        f"{per_route}; {time.perf_counter() - started:.2f} s",
        err=True,
    )


@routing_app.command("items")
def items(
    route: Annotated[
        str,
        typer.Option(
            help="chronic_disease, tumor_registry, death_registration, infectious_disease, "
            "vaccination or resident_update"
        ),
    ],
    county: Annotated[str | None, typer.Option(help="Only this county of residence (GB/T 2260)")] = None,
    status: Annotated[str | None, typer.Option(help="pending, acknowledged, rejected or withdrawn")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per item")] = False,
) -> None:
    """List work items (no personal data: persons by platform id)."""
    import psycopg

    from streams.routing.work_queue import ROUTES, list_items

    if route not in ROUTES:
        raise typer.BadParameter(f"route must be one of {', '.join(ROUTES)}")
    with psycopg.connect(get_settings().postgres_url) as conn:
        rows = list_items(conn, route, county, status, limit)
    for item, key, person, cty, st, by, evidence, detail, created in rows:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "item_id": item,
                        "business_key": key,
                        "person_id": person,
                        "county_code": cty,
                        "status": st,
                        "status_by": by,
                        "evidence_count": int(evidence or 0),
                        "detail": detail,
                        "created_at": created.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            subject = key.split(":", 1)[1]
            typer.echo(f"{item}  {cty}  {st:<12} {subject:<36} evidence {evidence:>3}  {created:%Y-%m-%d %H:%M}")


@routing_app.command("county-access")
def county_access(
    county: Annotated[str, typer.Argument(help="County code (GB/T 2260, 6 digits)")],
    actor: ActorOption,
    grant: Annotated[str | None, typer.Option(help="Make this existing login a member of the county role")] = None,
) -> None:
    """Create the county's role over the work queues (its residents' items only) and grant it to a login;
    a grant is audited (`healthbus audit list`)."""
    import psycopg
    from psycopg import sql

    from read_side.audit_trail import GRANT_COUNTY_ACCESS, ensure_audit_trail, record_action
    from streams.routing.ledger import ensure_ledger
    from streams.routing.work_queue import ensure_county_role

    settings = get_settings()
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        ensure_ledger(conn, settings.county_role_prefix)
        role = ensure_county_role(conn, county, settings.county_role_prefix)
        if grant:
            ensure_audit_trail(conn)
            with conn.transaction():  # the grant and its audit entry, or neither
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(grant)))
                record_action(conn, actor, GRANT_COUNTY_ACCESS, {"county": county, "role": role, "grantee": grant})
    typer.echo(
        f"{role}: reads and decides routing items of county {county}" + (f"; granted to {grant}" if grant else "")
    )

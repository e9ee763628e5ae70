"""``healthbus audit list``: the audit trail (read_side/audit_trail.py), and the ``--actor`` option of audited commands."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from foundation.settings import get_settings

audit_app = typer.Typer(
    help="The audit trail: EMPI actions, dead-letter replays, report exports, access grants.", no_args_is_help=True
)


def os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry): still audit something true
        return "unknown"


ActorOption = Annotated[
    str,
    typer.Option(
        "--actor", help="Who does it, for the audit trail", default_factory=os_user, show_default="the OS user"
    ),
]


def record_read(kind: str, parameters: dict[str, object], actor: str) -> None:
    """Audit a read of personal data (or of a key) before showing it; no audit, no read. Parameters are codes
    and ids only (a topic, a dead-letter id, a platform person id, an institution code)."""
    import psycopg

    from foundation.settings import get_settings
    from read_side.audit_trail import ensure_audit_trail, record_action

    try:
        with psycopg.connect(get_settings().postgres_url, autocommit=True, connect_timeout=10) as conn:
            ensure_audit_trail(conn)
            record_action(conn, actor, kind, parameters)
    except psycopg.OperationalError as exc:
        typer.secho(
            f"error: this read is audited and PostgreSQL cannot record it ({exc}); nothing shown",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1) from None


def _moment(text: str | None, name: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{name} must be ISO 8601 (YYYY-MM-DD or YYYY-MM-DDTHH:MM+08:00), got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@audit_app.command("list")
def audit_list(
    since: Annotated[str | None, typer.Option(help="At or after (ISO 8601; no offset: UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="Before (ISO 8601; no offset: UTC)")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="A kind (empi.merge, dlq.replay, export.quality_report, "
            "grant.county_access) or its prefix (empi, export)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entry")] = False,
) -> None:
    """EMPI operator actions, dead-letter replays, report exports and access grants, oldest first."""
    import psycopg

    from read_side.audit_trail import ensure_audit_trail, trail

    first, last = _moment(since, "--since"), _moment(until, "--until")
    try:
        with psycopg.connect(get_settings().postgres_url, autocommit=True, connect_timeout=10) as conn:
            ensure_audit_trail(conn)
            entries = trail(conn, first, last, actor, kind)
    except psycopg.OperationalError as exc:
        typer.secho(f"error: PostgreSQL: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if as_json:
        for e in entries:
            typer.echo(e.as_json())
        return
    typer.echo(f"{'at (UTC)':<19}  {'actor':<16} {'login':<12} {'kind':<28} {'subject':<40} reason")
    for e in entries:
        typer.echo(
            f"{e.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}  {e.actor:<16} {e.db_user or '-':<12} {e.kind:<28} "
            f"{e.subject:<40} {e.reason or '-'}"
        )
    typer.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")

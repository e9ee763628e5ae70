"""``healthbus topics``: the topic catalogue on the broker (create, list, tail, ACLs)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.audit import ActorOption, record_read
from ops.cli.options import fail

topics_app = typer.Typer(help="The topic catalogue on the broker.", no_args_is_help=True)


@topics_app.command("create")
def topics_create(
    replication_factor: Annotated[int, typer.Option(help="-1: the broker's default")] = -1,
    event_partitions: Annotated[
        int | None,
        typer.Option(help="Partitions of each event-layer topic (default: the catalogue's 6); docs/scaling.md"),
    ] = None,
) -> None:
    """Create every catalogue topic that is missing (idempotent)."""
    from ops.topic_admin import create_topics

    s = get_settings()
    outcomes = create_topics(
        s.confluent_config(), s.topic_prefix, replication_factor, event_partitions=event_partitions
    )
    created = [o.name for o in outcomes if o.created]
    grown = [o for o in outcomes if o.grown_from is not None]
    print(f"{len(created)} created, {len(grown)} grown, {len(outcomes) - len(created) - len(grown)} already present")
    for name in created:
        print(f"  + {name}")
    for o in grown:
        print(f"  ^ {o.name}: {o.grown_from} -> {event_partitions} partitions")


@topics_app.command("acls")
def topics_acls(
    adapter: Annotated[
        list[str] | None, typer.Option(help="SASL user of an institution's adapter (repeatable)")
    ] = None,
    county: Annotated[list[str] | None, typer.Option(help="SASL user of a county system (repeatable)")] = None,
    stage_user_prefix: Annotated[str, typer.Option(help="Stage and sink users are <prefix><stage>")] = "hb-",
    apply: Annotated[bool, typer.Option("--apply", help="Create the ACLs on the broker (as a super user)")] = False,
) -> None:
    """The ACLs per principal kind (adapters, stages, sinks, counties); --apply creates them."""
    from ops.topic_acls import acl_plan, apply_acls

    s = get_settings()
    grants = acl_plan(s, adapter or [], county or [], stage_user_prefix)
    print(f"{'principal':<28} {'operation':<9} {'kind':<6} {'pattern':<9} resource")
    for grant in grants:
        print(grant.line())
    if apply:
        print(f"applied {apply_acls(s.confluent_config(), grants)} ACLs")


@topics_app.command("list")
def topics_list() -> None:
    """The catalogue, and whether each topic exists on the broker."""
    from avro_schemas.topics import CATALOGUE
    from ops.topic_admin import existing_topics

    s = get_settings()
    present = existing_topics(s.confluent_config(), s.topic_prefix)
    print(f"{'topic':<40} {'key':<15} {'value schema':<22} {'parts':>5} {'retention':>9}  on broker")
    for spec in CATALOGUE.values():
        name = spec.full_name(s.topic_prefix)
        print(
            f"{name:<40} {spec.key.value:<15} {spec.value_schema:<22} {spec.partitions:>5} "
            f"{spec.retention_ms // 86_400_000:>8}d  {'yes' if name in present else 'no'}"
        )


@topics_app.command("tail")
def topics_tail(
    topic: Annotated[
        str, typer.Argument(help="Catalogue name, e.g. raw.outpatient.visit (the topic prefix is applied)")
    ],
    actor: ActorOption,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One event per line in the contracts' JSON form and nothing "
            "else on stdout (input for `healthbus quality check --input`)",
        ),
    ] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning/--from-end", help="Start at the oldest message, or read only what arrives")
    ] = True,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N messages")] = None,
    idle_seconds: Annotated[
        float | None,
        typer.Option(
            "--idle-seconds",
            min=0,
            help="Stop when nothing arrived for S seconds; 0: never. "
            "Default: 5 when stdout is not a terminal, else run until --max or Ctrl-C",
        ),
    ] = None,
) -> None:
    """Print a topic's events: one summary line each (partition, offset, type, event id, time; no personal
    data), or with --json the events themselves (an audited read). Undecodable messages go to stderr as JSON
    lines."""
    from confluent_kafka import KafkaException

    from avro_schemas.json_form import to_json
    from ops.topic_tail import TopicTail, UnknownTopic, summary_line

    if as_json:  # events whole, personal data included: audited before the first is shown
        from read_side.audit_trail import READ_TOPIC_EVENTS

        record_read(READ_TOPIC_EVENTS, {"topic": topic, "from_beginning": from_beginning, "max": max_messages}, actor)
    if idle_seconds is None:
        idle_seconds = None if sys.stdout.isatty() else 5.0
    undecodable = 0

    def report(meta, error) -> None:  # noqa: ANN001
        nonlocal undecodable
        undecodable += 1
        print(
            json.dumps(
                {
                    "_undecodable": True,
                    "partition": meta.partition,
                    "offset": meta.offset,
                    "code": error.code.value,
                    "error": str(error),
                }
            ),
            file=sys.stderr,
            flush=True,
        )

    try:
        tail = TopicTail(
            get_settings(),
            topic,
            from_beginning=from_beginning,
            max_messages=max_messages,
            idle_seconds=idle_seconds,
            on_undecodable=report,
        )
    except UnknownTopic as exc:
        fail(str(exc))
    except KafkaException as exc:
        fail(f"broker: {exc}")
    if not as_json:
        print(
            f"tailing {tail.topic} ({len(tail.partitions)} partitions) from the "
            f"{'beginning' if from_beginning else 'end'}",
            file=sys.stderr,
            flush=True,
        )
    count = 0
    try:
        with tail:
            for meta, event_type, value in tail:
                print(to_json(value) if as_json else summary_line(meta, event_type, value), flush=True)
                count += 1
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `| head`: the reader has gone; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KafkaException as exc:
        fail(f"broker: {exc}")
    if not as_json:
        print(f"{count} event(s), {undecodable} undecodable", file=sys.stderr)

"""``healthbus dlq …``: dead letters of a stage, listed and replayed (foundation/dead_letter_replay.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from foundation.settings import get_settings
from ops.cli.audit import ActorOption, record_read
from ops.cli.options import fail

dlq_app = typer.Typer(
    help="Dead letters: list them, replay them to the stage that rejected them.", no_args_is_help=True
)
StageOption = Annotated[str, typer.Option(help="Stage whose dead letters: adapter, identify, quality, sink-…")]
RuleOption = Annotated[str | None, typer.Option("--rule", help="Only those a quality rule id rejected")]
OrgOption = Annotated[str | None, typer.Option("--org", help="Only this institution's (GB 32100)")]
CodeOption = Annotated[str | None, typer.Option("--reason", help="Only this error code")]
SinceOption = Annotated[str | None, typer.Option(help="Failed at or after (ISO 8601)")]
UntilOption = Annotated[str | None, typer.Option(help="Failed before (ISO 8601)")]
TopicOption = Annotated[
    str | None,
    typer.Option("--topic", help="Only those that came from this topic (catalogue name, e.g. raw.outpatient.visit)"),
]


def _filter(reason, rule, org, since, until, topic=None):
    from foundation.dead_letter_replay import DeadLetterFilter

    def moment(text: str | None) -> dt.datetime | None:
        if not text:
            return None
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    source = get_settings().topic_name(topic) if topic else None
    return DeadLetterFilter(reason, rule, org, moment(since), moment(until), source)


def _selected(stage: str, flt) -> list[dict]:
    from avro_schemas.serde import codec_for
    from foundation.dead_letter_replay import dlq_topic_name, read_dead_letters

    s = get_settings()
    topic = dlq_topic_name(s.topic_prefix, stage)
    return [
        d
        for d in read_dead_letters(s.confluent_config(), codec_for(s.schema_registry_config()), topic)
        if flt.matches(d)
    ]


@dlq_app.command("list")
def dlq_list(
    stage: StageOption = "quality",
    reason: CodeOption = None,
    rule: RuleOption = None,
    org: OrgOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    topic: TopicOption = None,
) -> None:
    """Dead letters with their reasons (no payloads: they hold personal data)."""
    letters = _selected(stage, _filter(reason, rule, org, since, until, topic))
    typer.echo(f"{'dead letter id':<36}  {'failed at (UTC)':<19}  {'reason':<22} {'rules / message'}")
    for d in letters:
        rules = d["details"].get("rule_ids") or d["error_message"]
        typer.echo(f"{d['dead_letter_id']:<36}  {d['failed_at']:%Y-%m-%d %H:%M:%S}  {d['error_code']:<22} {rules}")
    typer.echo(f"{len(letters)} dead letter(s) on dlq.{stage}")


@dlq_app.command("show")
def dlq_show(
    dead_letter_id: Annotated[str, typer.Argument(help="The id `healthbus dlq list` prints")],
    actor: ActorOption,
    stage: StageOption = "quality",
) -> None:
    """One dead letter whole: where it came from, why it failed (every detail), and its payload decoded with
    every personal field masked (the raw bytes stay on the topic for replay). The read is audited."""
    import json

    from avro_schemas.json_form import to_json
    from avro_schemas.serde import DecodeError, codec_for
    from read_side.audit_trail import READ_DEAD_LETTER
    from streams.privacy import masked_event

    record_read(READ_DEAD_LETTER, {"stage": stage, "dead_letter_id": dead_letter_id}, actor)

    matches = [
        d for d in _selected(stage, _filter(None, None, None, None, None)) if d["dead_letter_id"] == dead_letter_id
    ]
    if not matches:
        typer.secho(f"no dead letter {dead_letter_id} on dlq.{stage}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    d = matches[0]
    org = (d["key"] or b"").decode(errors="replace").split(":", 1)[0]
    typer.echo(f"dead letter {d['dead_letter_id']} on dlq.{stage}, failed {d['failed_at']:%Y-%m-%d %H:%M:%S} UTC")
    typer.echo(f"  from        {d['source_topic']} partition {d['source_partition']} offset {d['source_offset']}")
    typer.echo(f"  institution {org}")
    typer.echo(f"  reason      {d['error_code']}: {d['error_message']}")
    for name, value in sorted(d["details"].items()):
        typer.echo(f"  {name:<11} {value}")
    try:
        event = codec_for(get_settings().schema_registry_config()).decode(d["payload"])
    except DecodeError as exc:
        typer.echo(f"  payload     {len(d['payload'] or b'')} bytes, not decodable ({exc.code.value})")
        return
    typer.echo(f"  payload     {event.event_type}, personal fields masked:")
    typer.echo(json.dumps(json.loads(to_json(masked_event(event.value))), ensure_ascii=False, indent=2))


@dlq_app.command("replay")
def dlq_replay(
    reason_text: Annotated[str, typer.Option("--why", help="Why you replay (kept in the audit)")],
    actor: ActorOption,
    stage: StageOption = "quality",
    reason: CodeOption = None,
    rule: RuleOption = None,
    org: OrgOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    topic: TopicOption = None,
    again: Annotated[bool, typer.Option(help="Also those replayed before")] = False,
) -> None:
    """Send the selected dead letters back to the topic they came from; the stage judges them again."""
    import psycopg
    from confluent_kafka import Producer

    from foundation.dead_letter_replay import replay
    from foundation.kafka_config import producer_config
    from ops.cli.progress import progress_bar

    s = get_settings()
    letters = _selected(stage, _filter(reason, rule, org, since, until, topic))
    producer = Producer(producer_config(s.confluent_config()))
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        with progress_bar("replaying dead letters") as update:
            outcome = replay(
                conn, producer, letters, actor, reason_text, stage=stage, topic_prefix=s.topic_prefix, again=again,
                progress=update,
            )  # fmt: skip
    typer.echo(
        f"selected {outcome.selected}, replayed {outcome.replayed}, "
        f"skipped {outcome.skipped_already_replayed} already replayed (use --again)"
        + (f", refused {len(outcome.refused)} not from an input of {stage}" if outcome.refused else "")
    )
    for letter_id in outcome.refused[:10]:
        typer.secho(
            f"  refused {letter_id}: the topic it names is not an input of {stage}", fg=typer.colors.YELLOW, err=True
        )


@dlq_app.command("stuck")
def dlq_stuck(
    seconds: Annotated[float, typer.Option("--for", help="Watch this long for commits")] = 10.0,
) -> None:
    """Input partitions a stage has not committed past for --for seconds while messages wait, and the message
    at its position (codes only): what `healthbus dlq skip` would move past."""
    from avro_schemas.serde import codec_for
    from ops.stuck_partitions import stuck_partitions

    s = get_settings()
    rows = stuck_partitions(s, codec_for(s.schema_registry_config()), seconds)
    for r in rows:
        head = " ".join(f"{k}={v}" for k, v in r.head.items())
        typer.echo(f"{r.stage:<16} {r.topic}[{r.partition}]@{r.committed}  lag {r.lag:>6}  {head}")
    typer.echo(
        f"{len(rows)} stuck partition(s)" + ("" if rows else f": every group with lag committed within {seconds:g} s")
    )


@dlq_app.command("skip")
def dlq_skip(
    stage: Annotated[str, typer.Option(help="The stage that cannot get past it (its workers stopped)")],
    topic: Annotated[str, typer.Option(help="Catalogue name of the input topic, e.g. raw.outpatient.visit")],
    partition: Annotated[int, typer.Option()],
    offset: Annotated[int, typer.Option(help="The group's committed offset there (healthbus dlq stuck)")],
    reason_text: Annotated[str, typer.Option("--why", help="Why it must be skipped (kept in the audit)")],
    actor: ActorOption,
) -> None:
    """Move a stopped stage's group past one message: it becomes a dead letter (skipped_by_operator) of the
    stage, replayable later with `healthbus dlq replay`; who and why go to the audit trail."""
    import psycopg

    from avro_schemas.pipeline import stage as declared
    from avro_schemas.serde import codec_for
    from foundation.dead_letter_replay import SkipRefused, skip_message

    s = get_settings()
    try:
        declared(stage)
        with psycopg.connect(s.postgres_url, autocommit=True) as conn:
            letter = skip_message(
                conn, s.confluent_config(), codec_for(s.schema_registry_config()), stage=stage,
                group=s.group_id(stage), topic=s.topic_name(topic), partition=partition, offset=offset,
                topic_prefix=s.topic_prefix, actor=actor, reason=reason_text,
            )  # fmt: skip
    except (SkipRefused, KeyError) as exc:
        fail(f"not skipped: {exc}")
    typer.echo(f"skipped {topic}[{partition}]@{offset} for {stage}: dead letter {letter} (replayable)")

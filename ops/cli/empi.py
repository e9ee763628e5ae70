"""``healthbus empi …``: the master patient index from the command line.

`link` and `train` work on CSV files without Kafka or PostgreSQL (the batch twin of the identify stage:
the same `resolution.decide`). The operator actions work on the PostgreSQL index and publish what they
change to the empi.* topics.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from foundation.text_files import ENCODING_HELP, InputFileError, UnusableEncoding
from ops.cli.audit import ActorOption, record_read
from ops.cli.progress import progress_bar
from streams.identity.record import CSV_HEADER, SourceRecord
from streams.identity.records_csv import read_records_csv

empi_app = typer.Typer(
    help="Master patient index: batch linking, model training, operator actions.", no_args_is_help=True
)
EncodingOption = Annotated[str | None, typer.Option("--encoding", help=ENCODING_HELP)]


def _read_records(path: Path, encoding: str | None) -> list[SourceRecord]:
    """The records file, or exit 2 naming its problem (file, line, reason)."""
    try:
        return read_records_csv(path, encoding)
    except UnusableEncoding as exc:
        raise typer.BadParameter(str(exc), param_hint="--encoding") from None
    except InputFileError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@empi_app.command("link")
def link(
    input_csv: Annotated[Path, typer.Option("--input", help="records CSV (header: " + ",".join(CSV_HEADER) + ")")],
    output_csv: Annotated[Path, typer.Option("--output", help="links CSV: record_id,person_id")],
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="A trained model (`empi train`); "
            "default: EM on the input itself, or the shipped model for small inputs",
        ),
    ] = None,
    reviews_csv: Annotated[Path | None, typer.Option("--reviews", help="Also write the possible matches")] = None,
    encoding: EncodingOption = None,
) -> None:
    """Link the records of a CSV file into persons, without Kafka: the identify stage's matching, in batch."""
    from streams.identity.memory_index import link_records
    from streams.identity.records_csv import write_links, write_reviews
    from streams.identity.training import TRAIN_ON_INPUT_FROM, model_for

    started = time.perf_counter()
    records = _read_records(input_csv, encoding)
    if model_path is None and len(records) >= TRAIN_ON_INPUT_FROM:
        print(f"estimating the model (EM) on {len(records):,} records …", file=sys.stderr, flush=True)
    model, source = model_for(records, model_path)
    with progress_bar("linking records") as update:
        result = link_records(records, model, progress=update)
    write_links(output_csv, records, result)
    if reviews_csv is not None:
        write_reviews(reviews_csv, result)
    persons = len(set(result.person_of.values()))
    rules = ", ".join(f"{rule} {n:,}" for rule, n in result.rules.most_common())
    print(
        f"{len(records):,} records → {persons:,} persons in {time.perf_counter() - started:.1f} s "
        f"(model: {source}; {rules}; {len(result.reviews):,} for review)",
        file=sys.stderr,
    )


@empi_app.command("train")
def train(
    output: Annotated[Path, typer.Option("--output", help="Where to write the model (JSON)")],
    input_csv: Annotated[Path | None, typer.Option("--input", help="records CSV to learn from")] = None,
    synthetic_persons: Annotated[
        int,
        typer.Option("--synthetic", help="Or learn from this many synthetic residents (synthetic/identity_cases.py)"),
    ] = 0,
    seed: Annotated[int, typer.Option()] = 7,
    encoding: EncodingOption = None,
) -> None:
    """Estimate the Fellegi-Sunter model (u from random pairs, m and prior by EM) for the identify stage."""
    from streams.identity.features import extract_features
    from streams.identity.training import train_model

    if input_csv is not None:
        records = _read_records(input_csv, encoding)
    elif synthetic_persons > 0:
        from synthetic.identity_cases import generate_identity_cases

        records = generate_identity_cases(synthetic_persons, seed=seed).records
    else:
        typer.secho("give --input or --synthetic", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    with progress_bar("comparing records") as update:
        features = [extract_features(r) for r in records]
        model = train_model(features, seed=seed, progress=update)
    output.write_text(model.to_json() + "\n", encoding="utf-8")
    print(
        f"model from {len(records):,} records ({model.trained_on_pairs:,} candidate pairs, "
        f"{model.em_iterations} EM iterations) → {output}"
    )


# -- operator actions on the PostgreSQL index ------------------------------------------------------
# Each action commits first, then publishes the outbox (what it wrote, and anything left pending). A
# broker that is down costs a warning, never the action: the event waits in empi.outbox. Database, Redis and
# Kafka clients are imported inside the commands, so `empi link` and `train` stay free of them.

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    import psycopg

    from streams.identity.master_index.cache import PersonCache

ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the audit log (no personal data)")]
PUBLISH_TIMEOUT_S = 10.0
ForceOption = Annotated[bool, typer.Option("--force", help="Merge even with different valid citizen IDs or sexes")]


def _connect() -> psycopg.Connection:
    import psycopg

    from foundation.settings import get_settings
    from streams.identity.master_index.schema import ensure_master_index

    try:
        conn = psycopg.connect(get_settings().postgres_url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        typer.secho(f"error: database_unreachable: {exc}".strip(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    ensure_master_index(conn)
    return conn


def _cache() -> PersonCache:
    from foundation.settings import get_settings
    from streams.identity.master_index.cache import PersonCache

    return PersonCache.for_settings(get_settings())


def _warn_cache(error: str) -> None:
    if error:
        typer.secho(
            f"warning: committed, but the Redis cache still holds the old person of moved records: {error}; "
            "the identify workers invalidate them from PostgreSQL's log as soon as Redis answers",
            fg=typer.colors.YELLOW,
            err=True,
        )


def _refused(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _publish(conn: psycopg.Connection) -> None:
    from confluent_kafka import Producer

    from avro_schemas.serde import codec_for
    from foundation.kafka_config import producer_config
    from foundation.settings import get_settings
    from streams.identity.master_index.outbox import pending_count, publish_pending

    settings = get_settings()
    try:
        producer = Producer({**producer_config(settings.confluent_config()), "log_level": 2})
        codec = codec_for(settings.schema_registry_config())
        published = publish_pending(conn, producer, codec, settings.topic_prefix, flush_timeout=PUBLISH_TIMEOUT_S)
    except Exception as exc:  # the broker or registry is down: the change is committed, its event waits
        typer.secho(
            f"warning: committed, not yet published ({exc}); {pending_count(conn)} change(s) wait in "
            "empi.outbox for the next empi action or the identify stage",
            fg=typer.colors.YELLOW,
            err=True,
        )
        return
    if published:
        print(f"published {published} identity change(s)")


@empi_app.command("merge")
def merge_cmd(
    person_a: Annotated[str, typer.Argument(help="Survivor person id")],
    person_b: Annotated[str, typer.Argument(help="Person id merged into PERSON_A")],
    reason: ReasonOption,
    actor: ActorOption,
    force: ForceOption = False,
) -> None:
    """Merge PERSON_B into PERSON_A (A survives): B's records and identifiers move to A; B redirects to A."""
    from streams.identity.master_index.operator_actions import OperatorError, merge

    with _connect() as conn:
        try:
            result = merge(conn, person_a, person_b, actor, reason, force=force, cache=_cache())
        except OperatorError as exc:
            _refused(exc)
        if result.already_done:
            print(
                f"already one person: {result.absorbed_person_id} → {result.survivor_person_id} "
                f"(change {result.change_id or 'unknown'}); nothing changed"
            )
        else:
            forced = f"; forced over {', '.join(result.forced_over)}" if result.forced_over else ""
            print(
                f"merged {result.absorbed_person_id} into {result.survivor_person_id}: "
                f"{len(result.records_moved)} record(s) moved (change {result.change_id}{forced})"
            )
        _warn_cache(result.cache_error)
        _publish(conn)


@empi_app.command("unmerge")
def unmerge_cmd(
    record: Annotated[str, typer.Argument(help="The record, as ORG_CODE:LOCAL_ID")],
    reason: ReasonOption,
    actor: ActorOption,
) -> None:
    """Move one record out of its person: back where it came from (reactivated if merged), else to a new person.

    Identifiers only it carries move with it; the two persons are then never merged automatically."""
    from streams.identity.master_index.operator_actions import OperatorError, parse_record_key, unmerge

    with _connect() as conn:
        try:
            org, local = parse_record_key(record)
            result = unmerge(conn, org, local, actor, reason, cache=_cache())
        except OperatorError as exc:
            _refused(exc)
        if result.already_done:
            print(
                f"already unmerged: {record} is with {result.to_person_id} (change {result.change_id}); nothing changed"
            )
        else:
            how = " (reactivated)" if result.person_reactivated else " (new person)" if result.new_person else ""
            kinds = f"; identifiers moved: {', '.join(result.identifiers_moved)}" if result.identifiers_moved else ""
            print(
                f"moved {record} from {result.from_person_id} to {result.to_person_id}{how}{kinds} "
                f"(change {result.change_id})"
            )
        _warn_cache(result.cache_error)
        _publish(conn)


review_app = typer.Typer(
    help="Possible matches and identifier conflicts: `empi review` lists the open ones; "
    "`review accept|reject ID --reason …` decides one."
)
empi_app.add_typer(review_app, name="review")

StatusOption = Annotated[str, typer.Option("--status", help="open, accepted or rejected")]
LimitOption = Annotated[int, typer.Option("--limit", help="Most items to list")]


def _print_reviews(status: str, limit: int) -> None:
    from streams.identity.master_index.operator_actions import OperatorError, list_reviews

    with _connect() as conn:
        try:
            items = list_reviews(conn, status, limit)
        except OperatorError as exc:
            _refused(exc)
    if not items:
        print(f"no {status} review items")
        return
    print(f"{'id':>6}  {'reason':<19} {'weight':>6}  {'record':<32} {'record person':<36}  candidate person")
    for item in items:
        weight = f"{item.weight:.1f}" if item.weight is not None else "-"
        decided = f"  {item.status} by {item.decided_by}: {item.decision_reason}" if item.status != "open" else ""
        print(
            f"{item.review_id:>6}  {item.reason:<19} {weight:>6}  {item.org_code + ':' + item.local_id:<32} "
            f"{item.record_person_id:<36}  {item.candidate_person_id}{decided}"
        )


@review_app.callback(invoke_without_command=True)
def review_cmd(ctx: typer.Context, status: StatusOption = "open", limit: LimitOption = 50) -> None:
    """List review items (open ones by default), or decide one with `accept` / `reject`."""
    if ctx.invoked_subcommand is None:
        _print_reviews(status, limit)


@review_app.command("list")
def review_list_cmd(status: StatusOption = "open", limit: LimitOption = 50) -> None:
    """List review items, oldest first (the same as `empi review` alone)."""
    _print_reviews(status, limit)


@review_app.command("accept")
def review_accept_cmd(
    review_id: Annotated[int, typer.Argument(help="Review item id")],
    reason: ReasonOption,
    actor: ActorOption,
    force: ForceOption = False,
) -> None:
    """Same resident: the record's person (all its records) merges into the candidate person."""
    from streams.identity.master_index.operator_actions import OperatorError, accept_review

    with _connect() as conn:
        try:
            result = accept_review(conn, review_id, actor, reason, force=force, cache=_cache())
        except OperatorError as exc:
            _refused(exc)
        if result.already_decided:
            print(f"review {review_id} was accepted already; nothing changed")
        elif result.merge is None:
            print(f"review {review_id} accepted; the persons were one already (change {result.change_id})")
        else:
            print(
                f"review {review_id} accepted: merged {result.merge.absorbed_person_id} into "
                f"{result.merge.survivor_person_id}, {len(result.merge.records_moved)} record(s) moved "
                f"(change {result.change_id})"
            )
        _warn_cache(result.cache_error)
        _publish(conn)


@review_app.command("reject")
def review_reject_cmd(
    review_id: Annotated[int, typer.Argument(help="Review item id")],
    reason: ReasonOption,
    actor: ActorOption,
) -> None:
    """Two residents: the item closes and the two persons are never merged automatically."""
    from streams.identity.master_index.operator_actions import OperatorError, reject_review

    with _connect() as conn:
        try:
            result = reject_review(conn, review_id, actor, reason)
        except OperatorError as exc:
            _refused(exc)
    print(
        f"review {review_id} {'was rejected already; nothing changed' if result.already_decided else 'rejected'}"
        f" (change {result.change_id})"
    )


@empi_app.command("show")
def show_cmd(
    person: Annotated[str, typer.Argument(help="Person id (a merged one shows its survivor)")],
    actor: ActorOption,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of text")] = False,
) -> None:
    """A person: its records and identifiers (personal fields masked), open review items, recent audit. The
    read is audited (who, when, which person)."""
    import dataclasses
    import json

    from read_side.audit_trail import READ_PERSON
    from streams.identity.master_index.operator_actions import OperatorError, show_person

    record_read(READ_PERSON, {"person_id": person}, actor)

    with _connect() as conn:
        try:
            view = show_person(conn, person)
        except OperatorError as exc:
            _refused(exc)
    if as_json:
        print(json.dumps(dataclasses.asdict(view), ensure_ascii=False, default=str, indent=1))
        return
    via = f" (via {' → '.join(view.merge_chain)})" if len(view.merge_chain) > 1 else ""
    print(f"person {view.person_id}{via}: {view.status}, sex {view.sex or '-'}, {len(view.records)} record(s)")
    for r in view.records:
        weight = f" {r.link_weight:.1f}" if r.link_weight is not None else ""
        print(
            f"  {r.org_code}:{r.local_id}  {r.name or '-'} {r.sex or '-'} {r.birth_date or '-'}  "
            f"id {r.id_number or '-'}  phone {r.phone or '-'}  cards {r.health_card or '-'}/{r.insurance_card or '-'}"
            f"  {r.address or '-'}  [{r.link_rule}{weight}]"
        )
    if view.identifiers:
        print("identifiers: " + ", ".join(f"{kind} {value}" for kind, value in view.identifiers))
    for item in view.open_reviews:
        weight = f" {item.weight:.1f}" if item.weight is not None else ""
        print(
            f"open review {item.review_id}: {item.reason}{weight} {item.org_code}:{item.local_id} "
            f"{item.record_person_id} ↔ {item.candidate_person_id}"
        )
    for a in view.audit:
        record = f" {a.record}" if a.record else ""
        other = f" ↔ {a.other_person_id}" if a.other_person_id else ""
        print(f"  {a.at:%Y-%m-%d %H:%M:%S} {a.actor} {a.action}{record}{other}: {a.reason or '-'}")

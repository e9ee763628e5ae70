"""The routing stage, validated.* + empi.* → collab.<route>, record.deregistered, alerts.clinical.

Per batch: decode each message (a body that does not decode goes to dlq.routing), then, in one
PostgreSQL transaction per run of events (and one per identity change, in order):

- the routing ledger (ledger.py) turns each event's claims into work-item changes, and the death route's
  hook seals or re-opens the person's health record in the EMPI (record_seal.py);
- the order history (order_history.py) raises or withdraws clinical reminders;
- an EMPI merge or unmerge moves the claims and order history of the persons it names.

After commit the stage publishes every stored change of the batch's causes (routing.changes) and the
reminders it computed: on a replay after a crash it publishes them again, identical, and consumers dedupe
by change id / reminder id. Nothing is published for a change that did not commit.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter as PromCounter

from avro_schemas.json_form import from_json
from avro_schemas.serde import EventCodec, codec_for
from avro_schemas.topics import (
    CLINICAL_ALERTS,
    COLLAB_ROUTES,
    IDENTITY_CHANGE_TYPES,
    PIPELINE_EVENT_TYPES,
    RECORD_DEREGISTERED,
    collab_topic_name,
    declared_inputs,
    topic,
)
from foundation.settings import Settings
from streams.deadlock_retry import retry_on_deadlock
from streams.faust_runtime.batch_agent import OutRecord
from streams.inbound import InboundCheck
from streams.routing.clinical_reminders import ORDER_EVENT_TYPES, Reminder, ReminderWindows, reminder_value
from streams.routing.ledger import ChangeMessage, RoutingLedger

STAGE = "routing"
REMINDERS_PART = "clinical_reminders"
# What a routing worker can run: the collaboration routes and the clinical reminders. A worker runs all of
# them by default; `healthbus worker routing --route …` runs some in a consumer group of their own.
ROUTING_PARTS: tuple[str, ...] = (*COLLAB_ROUTES, REMINDERS_PART)
PRUNE_EVERY = dt.timedelta(minutes=10)


CHANGES = PromCounter("healthbus_routing_changes_total", "Work-item changes the routing stage made", ["route", "kind"])
REMINDERS = PromCounter(
    "healthbus_routing_reminders_total", "Clinical reminders raised or withdrawn", ["kind", "status"]
)


class RoutingState:
    """The stage's PostgreSQL edge: the ledger, the order history and the EMPI health-record seal."""

    def __init__(
        self, postgres_url: str, windows: ReminderWindows, role_prefix: str, parts: Sequence[str] = ROUTING_PARTS
    ) -> None:
        import psycopg

        from streams.identity.master_index.schema import ensure_master_index
        from streams.routing.ledger import ensure_ledger

        unknown = set(parts) - set(ROUTING_PARTS)
        if unknown or not parts:
            raise ValueError(f"unknown routing parts {sorted(unknown)}; parts: {', '.join(ROUTING_PARTS)}")
        from streams.routing.order_history import ensure_order_history
        from streams.routing.record_seal import death_hooks

        self.conn = psycopg.connect(postgres_url, autocommit=True)
        ensure_master_index(self.conn)
        ensure_ledger(self.conn, role_prefix)
        ensure_order_history(self.conn)
        routes = tuple(r for r in COLLAB_ROUTES if r in parts)
        self.ledger = RoutingLedger(self.conn, hooks=death_hooks(), routes=routes) if routes else None
        self.reminders = REMINDERS_PART in parts
        # What this worker publishes: a cause's stored changes of other routes are their workers' to publish.
        self.topics = [collab_topic_name(r) for r in routes] + (
            [RECORD_DEREGISTERED] if "death_registration" in routes else []
        )
        self.windows = windows
        self.pruned_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def route_events(self, events: list[tuple[str, dict[str, Any]]]) -> tuple[list[Reminder], list[Reminder]]:
        from streams.routing.order_history import record_batch

        def route() -> tuple[list[Reminder], list[Reminder]]:
            with self.conn.transaction():
                if self.ledger is not None:
                    self.ledger.apply_events(events)
                return record_batch(self.conn, events, self.windows) if self.reminders else ([], [])

        return retry_on_deadlock(route)  # sealing persons can meet the identify stage's person locks

    def identity_change(self, change_type: str, change: dict[str, Any]) -> tuple[list[Reminder], list[Reminder]]:
        from streams.routing.order_history import move_person, relink_record

        cause = change["change_id"]

        def move() -> tuple[list[Reminder], list[Reminder]]:
            with self.conn.transaction():
                merge = change_type == "empi.person_merged"
                if self.ledger is not None:
                    (self.ledger.apply_merge if merge else self.ledger.apply_relink)(change)
                if not self.reminders:
                    return [], []
                if merge:
                    return move_person(
                        self.conn,
                        change["absorbed_person_id"],
                        change["survivor_person_id"],
                        windows=self.windows,
                        cause=cause,
                    )
                return relink_record(
                    self.conn,
                    change["org_code"],
                    change["local_patient_id"],
                    change["to_person_id"],
                    windows=self.windows,
                    cause=cause,
                )

        return retry_on_deadlock(move)

    def prune(self) -> int:
        """Drop orders too old to remind anything (twice the longest window back, for late uploads)."""
        from streams.routing.order_history import prune_order_history

        now = dt.datetime.now(dt.UTC)
        if not self.reminders or now - self.pruned_at < PRUNE_EVERY:
            return 0
        self.pruned_at = now
        return prune_order_history(self.conn, now - 2 * self.windows.longest)

    def changes_for(self, cause_ids: Sequence[str]) -> list[ChangeMessage]:
        return self.ledger.changes_for(cause_ids, self.topics) if self.ledger is not None else []

    def reads(self, event_type: str) -> bool:
        return (self.ledger is not None and self.ledger.reads(event_type)) or (
            self.reminders and event_type in ORDER_EVENT_TYPES
        )

    def close(self) -> None:
        self.conn.close()


class RoutingStage:
    def __init__(
        self, codec: EventCodec, topic_prefix: str, state: RoutingState, event_types: list[str] | None = None
    ) -> None:
        types = [t for t in event_types or PIPELINE_EVENT_TYPES if state.reads(t)]
        self.codec = codec
        self.state = state
        self.prefix = topic_prefix
        self.intake = InboundCheck(codec, STAGE, topic_prefix, declared_inputs(STAGE, topic_prefix, types), None)
        self.alerts_topic = topic_prefix + topic(CLINICAL_ALERTS).name

    @property
    def inputs(self) -> list[str]:
        return list(self.intake.inputs)

    def close(self) -> None:
        self.state.close()

    def handle_batch(self, messages: list[Any]) -> list[OutRecord]:
        out: list[OutRecord] = []
        causes: list[str] = []
        reminders: list[Reminder] = []
        withdrawn: list[Reminder] = []
        run: list[tuple[str, dict[str, Any]]] = []

        def flush_run() -> None:
            if run:
                raised, gone = self.state.route_events(run)
                reminders.extend(raised)
                withdrawn.extend(gone)
                run.clear()

        for m in messages:
            event = self.intake.decode(m)
            if isinstance(event, OutRecord):  # undecodable or misfiled: a dead letter
                out.append(event)
                continue
            if event.event_type in IDENTITY_CHANGE_TYPES:
                flush_run()  # identity changes apply in order with the events around them
                raised, gone = self.state.identity_change(event.event_type, event.value)
                reminders.extend(raised)
                withdrawn.extend(gone)
                causes.append(event.value["change_id"])
            else:
                run.append((event.event_type, event.value))
                causes.append(event.value["envelope"]["event_id"])
        flush_run()
        self.state.prune()
        counts: Counter[tuple[str, str]] = Counter()
        for change in self.state.changes_for(causes):
            value = from_json(change.event_type, change.value)
            target = self.prefix + change.topic
            out.append(
                OutRecord(target, change.key.encode(), self.codec.encode(change.event_type, value, topic=target))
            )
            if change.event_type == "collab.work_item_change":
                counts[(change.value["route"], change.value["kind"])] += 1
        for reminder in reminders + withdrawn:
            out.append(
                OutRecord(
                    self.alerts_topic,
                    reminder.org_code.encode(),
                    self.codec.encode("alerts.clinical_reminder", reminder_value(reminder), topic=self.alerts_topic),
                )
            )
            REMINDERS.labels(reminder.kind.value, reminder.status.value).inc()
        for labels, n in counts.items():
            CHANGES.labels(*labels).inc(n)
        return out


def reminder_windows(settings: Settings) -> ReminderWindows:
    return ReminderWindows(
        drug_class=dt.timedelta(days=settings.reminder_drug_class_days),
        drug_supply_cap=dt.timedelta(days=settings.reminder_drug_supply_cap_days),
        lab_item=dt.timedelta(days=settings.reminder_lab_item_days),
        exam_item=dt.timedelta(days=settings.reminder_exam_item_days),
    )


def build_stage(
    settings: Settings, event_types: list[str] | None = None, parts: Sequence[str] = ROUTING_PARTS
) -> RoutingStage:
    state = RoutingState(settings.postgres_url, reminder_windows(settings), settings.county_role_prefix, parts)
    return RoutingStage(codec_for(settings.schema_registry_config()), settings.topic_prefix, state, event_types)


def group_suffix_of(parts: Sequence[str]) -> str:
    """All parts: the ``routing`` group; some: a group of their own (``routing.chronic_disease+vaccination``)."""
    return "" if set(parts) == set(ROUTING_PARTS) else "." + "+".join(sorted(parts))


def run_worker(
    settings: Settings,
    event_types: list[str] | None = None,
    group_suffix: str = "",
    parts: Sequence[str] = ROUTING_PARTS,
) -> None:
    from streams.faust_runtime.app import run_batch_stage

    run_batch_stage(
        settings, STAGE, lambda: build_stage(settings, event_types, parts), group_suffix_of(parts) + group_suffix
    )

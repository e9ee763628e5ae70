"""The quality stage, identified.<type> → validated.<type>: every event judged by the rule set.

Per batch: decode each event (a body that does not decode is dead-lettered), read the registered deaths
of the batch's persons, judge each event in order with `RuleEngine.judge` (the same engine as
`healthbus quality check`), then, in one PostgreSQL transaction, record deaths registered or withdrawn by
passing death records and the events that failed a rule (quality_issues). Outputs:

- ``quality.results``: the verdict on every event (no personal data), which ClickHouse aggregates;
- ``validated.<type>``: events with no error, payload bytes unchanged, the warnings in the
  ``healthbus-quality`` header (``<rule-set version>;<score>;<rule ids>``);
- ``dlq.quality``: events with an error, the original payload plus machine-readable reasons (rule ids,
  field paths, the rule-set version) in ``details``; `healthbus dlq replay` sends them back here.

At-least-once like every stage: a crash before the offsets commit re-judges the batch, which writes the
same rows (keyed by event id) and the same outputs again; sinks dedupe by event id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from typing import Any

from prometheus_client import Counter as PromCounter

from avro_schemas.serde import EventCodec, codec_for
from avro_schemas.topics import (
    PIPELINE_EVENT_TYPES,
    QUALITY_RESULTS,
    declared_inputs,
    validated_topic,
)
from foundation.settings import Settings
from streams.faust_runtime.batch_agent import OutRecord
from streams.inbound import InboundCheck, message_headers
from streams.quality.checks import EvaluationContext, platform_person
from streams.quality.engine import RuleEngine, Verdict
from streams.quality.issue_store import QualityIssue
from streams.quality.registered_deaths import DeathRegistration, death_registration
from streams.quality.rule_set import RuleFileError, rule_set_in_force

STAGE = "quality"
QUALITY_HEADER = "healthbus-quality"
RULE_FAILED = "quality_rule_failed"

log = logging.getLogger(__name__)

EVENTS_JUDGED = PromCounter(
    "healthbus_quality_events_total", "Events the quality stage judged, by outcome", ["event_type", "outcome"]
)
RULE_FAILURES = PromCounter(
    "healthbus_quality_rule_failures_total", "Rule failures (one per event and rule)", ["rule_id", "severity"]
)


class QualityState:
    """The stage's PostgreSQL edge: registered deaths in, deaths and issues out (one transaction)."""

    def __init__(self, postgres_url: str) -> None:
        import psycopg

        from streams.identity.master_index.schema import ensure_master_index
        from streams.quality.issue_store import ensure_issue_store
        from streams.quality.registered_deaths import ensure_registered_deaths

        self.conn = psycopg.connect(postgres_url, autocommit=True)
        ensure_master_index(self.conn)  # the rules read its health-record seals (empi.deregistrations)
        ensure_registered_deaths(self.conn)
        ensure_issue_store(self.conn)

    def deaths_of(self, person_ids: list[str]) -> dict[str, dt.datetime]:
        from streams.quality.registered_deaths import deaths_of

        return deaths_of(self.conn, person_ids)

    def save(self, deaths: list[DeathRegistration], issues: list[QualityIssue]) -> None:
        from streams.quality.issue_store import write_issues
        from streams.quality.registered_deaths import apply_registrations

        if not deaths and not issues:
            return
        with self.conn.transaction():
            apply_registrations(self.conn, deaths)
            write_issues(self.conn, issues)

    def close(self) -> None:
        self.conn.close()


def verdict_value(verdict: Verdict, envelope: dict[str, Any], judged_at: dt.datetime) -> dict[str, Any]:
    """The ``quality.result`` record of a verdict."""
    source = envelope["source"]
    return {
        "event_id": verdict.event_id,
        "event_type": verdict.event_type,
        "org_code": source["org_code"],
        "org_name": source.get("org_name"),
        "org_region_code": source["region_code"],
        "occurred_at": envelope["occurred_at"],
        "emitted_at": envelope["emitted_at"],
        "judged_at": judged_at,
        "record_version": envelope["record_version"],
        "cancelled": envelope["cancelled"],
        "rule_set_version": verdict.rule_set_version,
        "passed": verdict.passed,
        "late": verdict.late,
        "score": verdict.score,
        "weight_applied": verdict.weight_applied,
        "weight_failed": verdict.weight_failed,
        "violations": [
            {"rule_id": v.rule_id, "category": v.category.name, "severity": v.severity.name, "field": v.field}
            for v in verdict.violations
        ],
    }


def quality_header(verdict: Verdict) -> bytes:
    if not verdict.violations:  # most events: nothing to list
        return f"{verdict.rule_set_version};{verdict.score:.4f};".encode()
    ids = ",".join(dict.fromkeys(v.rule_id for v in verdict.warnings))
    return f"{verdict.rule_set_version};{verdict.score:.4f};{ids}".encode()


class QualityStage:
    def __init__(
        self,
        codec: EventCodec,
        topic_prefix: str,
        engine: RuleEngine,
        state: QualityState | None,
        event_types: list[str] | None = None,
    ) -> None:
        types = event_types or list(PIPELINE_EVENT_TYPES)
        self.codec = codec
        self.engine = engine
        self.state = state  # None: no registered deaths, nothing recorded (benchmarks of the rules alone)
        # The intake only builds dead letters here: identified events were authenticated upstream.
        self.intake = InboundCheck(codec, STAGE, topic_prefix, declared_inputs(STAGE, topic_prefix, types), None)
        self.outputs = {t: topic_prefix + validated_topic(t).name for t in types}
        self.results_topic = topic_prefix + QUALITY_RESULTS

    @property
    def inputs(self) -> list[str]:
        return list(self.intake.inputs)

    def close(self) -> None:
        if self.state is not None:
            self.state.close()

    def handle_batch(self, messages: list[Any]) -> list[OutRecord]:
        decoded: list[tuple[Any, str, dict[str, Any]] | OutRecord] = []
        for m in messages:
            taken = self.intake.decode(m)
            decoded.append(taken if isinstance(taken, OutRecord) else (m, taken.event_type, taken.value))
        persons = list(
            {person for d in decoded if not isinstance(d, OutRecord) and (person := platform_person(d[2]["envelope"]))}
        )
        deaths = dict(self.state.deaths_of(persons)) if self.state is not None and persons else {}
        ctx = EvaluationContext(deaths)
        judged_at = dt.datetime.now(dt.UTC)
        out: list[OutRecord] = []
        registrations: list[DeathRegistration] = []
        issues: list[QualityIssue] = []
        outcomes: Counter[tuple[str, str]] = Counter()  # metrics are counted per batch, not per event
        failures: Counter[tuple[str, str]] = Counter()
        for item in decoded:
            if isinstance(item, OutRecord):
                out.append(item)
                continue
            m, event_type, event = item
            envelope = event["envelope"]
            verdict = self.engine.judge(event_type, event, ctx)
            outcomes[(event_type, "accepted" if verdict.passed else "rejected")] += 1
            if verdict.violations:
                failures.update({(v.rule_id, v.severity.value) for v in verdict.violations})
            out.append(
                OutRecord(
                    self.results_topic,
                    m.key,
                    self.codec.encode(
                        "quality.result", verdict_value(verdict, envelope, judged_at), topic=self.results_topic
                    ),
                    timestamp=m.timestamp,
                )
            )
            if verdict.violations:
                issues.append(QualityIssue(verdict, envelope["occurred_at"], envelope["source"]["org_code"], event))
            if verdict.passed:
                registration = death_registration(event_type, event)
                if registration is not None:  # later events in this batch see it at once
                    registrations.append(registration)
                    if registration.died_at is None:
                        deaths.pop(registration.person_id, None)
                    else:
                        deaths[registration.person_id] = registration.died_at
                headers = [*(message_headers(m.headers) or ()), (QUALITY_HEADER, quality_header(verdict))]
                out.append(OutRecord(self.outputs[event_type], m.key, m.value, headers, m.timestamp))
            else:
                out.append(self._reject(m, verdict))
        if self.state is not None:
            self.state.save(registrations, issues)
        for labels, n in outcomes.items():
            EVENTS_JUDGED.labels(*labels).inc(n)
        for labels, n in failures.items():
            RULE_FAILURES.labels(*labels).inc(n)
        return out

    def _reject(self, m: Any, verdict: Verdict) -> OutRecord:
        errors = verdict.errors
        rule_ids = ",".join(dict.fromkeys(v.rule_id for v in errors))
        details = {
            "rule_set_version": verdict.rule_set_version,
            "rule_ids": rule_ids,
            "fields": ",".join(dict.fromkeys(v.field for v in errors)),
            "violations": json.dumps(verdict.output_json()["violations"], ensure_ascii=False),
            "event_id": verdict.event_id,
        }
        return self.intake.dead_letter(
            m, RULE_FAILED, f"rejected by {rule_ids} (rule set {verdict.rule_set_version})", details
        )


def build_stage(settings: Settings, event_types: list[str] | None = None) -> QualityStage:
    return QualityStage(
        codec_for(settings.schema_registry_config()),
        settings.topic_prefix,
        RuleEngine(rule_set_in_force(settings.quality_rule_file)),
        QualityState(settings.postgres_url),
        event_types,
    )


def run_worker(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> None:
    from streams.faust_runtime.app import run_batch_stage

    try:  # before anything starts: a rule file that cannot be loaded stops the worker with its file and line
        rule_set_in_force(settings.quality_rule_file)
    except RuleFileError as exc:
        raise SystemExit(f"healthbus worker quality: {exc}") from None
    run_batch_stage(settings, STAGE, lambda: build_stage(settings, event_types), group_suffix)

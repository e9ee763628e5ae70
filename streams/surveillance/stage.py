"""The surveillance stage, validated.outpatient.visit → surveillance.cases + daily counts.

Per batch: decode each visit (a body that does not decode goes to dlq.surveillance), classify it with
``syndromes.classify`` (the same function as `healthbus syndromes classify`), then in one PostgreSQL
transaction record each visit's classification and move the daily counts per syndrome × county ×
population group (case_store.py): a corrected visit moves its counts, a cancelled one removes them, a
replay changes nothing. After commit, every visit that is or was a case is published on
``surveillance.cases`` (pseudonymised person, matched terms only); a visit that stopped being a case is
published with ``withdrawn`` so downstream counts follow. Early-warning detection reads the daily counts
as each day closes and during the day (``healthbus surveillance monitor``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from prometheus_client import Counter as PromCounter

from avro_schemas.serde import EventCodec, codec_for
from avro_schemas.topics import SURVEILLANCE_CASES, declared_inputs
from foundation.settings import Settings
from foundation.standards.china_time import CST
from foundation.standards.population_groups import age_at, population_group
from foundation.standards.region_codes import residence_county
from streams.deadlock_retry import retry_on_deadlock
from streams.faust_runtime.batch_agent import OutRecord
from streams.inbound import InboundCheck
from streams.privacy import person_pseudonym
from streams.surveillance.case_store import UNKNOWN_GROUP, VisitCase
from streams.surveillance.syndromes import CLASSIFIER_VERSION, Classification, classify

STAGE = "surveillance"
EVENT_TYPE = "outpatient.visit"

CASES = PromCounter(
    "healthbus_surveillance_cases_total", "Visits classified into at least one syndrome, by syndrome", ["syndrome"]
)
VISITS = PromCounter("healthbus_surveillance_visits_total", "Outpatient visits the surveillance stage classified")


def classify_visit(visit: dict[str, Any]) -> Classification:
    """The visit's syndromes: chief complaint, structured symptoms, temperature, diagnosis codes."""
    return classify(
        visit.get("chief_complaint"),
        visit.get("symptoms") or (),
        visit.get("temperature_c"),
        [d["code"] for d in visit.get("diagnoses") or ()],
    )


def visit_case(visit: dict[str, Any], classification: Classification) -> VisitCase:
    envelope = visit["envelope"]
    source, patient = envelope["source"], envelope["patient"]
    day = envelope["occurred_at"].astimezone(CST).date()
    group = population_group(age_at(patient.get("birth_date"), day))
    return VisitCase(
        source["org_code"],
        source["record_key"],
        envelope["event_id"],
        envelope["record_version"],
        envelope["cancelled"],
        day,
        residence_county(envelope),
        group or UNKNOWN_GROUP,
        tuple(s.value for s in classification.syndromes),
    )


def case_value(
    visit: dict[str, Any], case: VisitCase, classification: Classification | None, pseudonym_key: bytes
) -> dict[str, Any]:
    """The ``surveillance.case`` record (no name, ID, phone, address or free text)."""
    envelope = visit["envelope"]
    withdrawn = case.cancelled or not case.syndromes
    evidence = (
        []
        if withdrawn or classification is None
        else [
            {
                "kind": e.kind,
                "term": e.term,
                "concept": e.concept.value if e.concept else None,
                "syndromes": [s.value for s in e.syndromes],
            }
            for e in classification.evidence
        ]
    )
    return {
        "case_id": case.event_id,
        "org_code": case.org_code,
        "record_key": case.record_key,
        "record_version": case.record_version,
        "person_pseudonym": person_pseudonym(
            pseudonym_key, envelope.get("person_id"), case.org_code, envelope["patient"]["local_patient_id"]
        ),
        "county_code": case.county_code,
        "population_group": case.population_group,
        "day": case.day,
        "occurred_at": envelope["occurred_at"],
        "syndromes": [] if case.cancelled else list(case.syndromes),
        "max_temperature_c": None if classification is None else classification.max_temperature,
        "evidence": evidence,
        "withdrawn": withdrawn,
        "classifier_version": CLASSIFIER_VERSION,
    }


class SurveillanceState:
    """The stage's PostgreSQL edge: visit classifications and daily counts (case_store.py)."""

    def __init__(self, postgres_url: str) -> None:
        import psycopg

        from streams.surveillance.case_store import ensure_case_store

        self.conn = psycopg.connect(postgres_url, autocommit=True)
        ensure_case_store(self.conn)

    def record(self, cases: list[VisitCase]) -> list[tuple[VisitCase, VisitCase | None]]:
        from streams.surveillance.case_store import apply_cases

        def apply() -> list[tuple[VisitCase, VisitCase | None]]:
            with self.conn.transaction():
                return apply_cases(self.conn, cases)

        return retry_on_deadlock(apply)

    def stored_events(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The event id each visit's stored classification came from."""
        rows = self.conn.execute(
            "SELECT v.org_code, v.record_key, v.event_id FROM surveillance.visit_cases v "
            "JOIN unnest(%s::text[], %s::text[]) AS k(o, r) ON v.org_code = k.o AND v.record_key = k.r",
            ([k[0] for k in keys], [k[1] for k in keys]),
        ).fetchall()
        return {(o, r): e for o, r, e in rows}

    def close(self) -> None:
        self.conn.close()


class SurveillanceStage:
    def __init__(self, codec: EventCodec, topic_prefix: str, state: SurveillanceState, pseudonym_key: bytes) -> None:
        self.codec = codec
        self.state = state
        self.key = pseudonym_key
        self.intake = InboundCheck(codec, STAGE, topic_prefix, declared_inputs(STAGE, topic_prefix), None)
        self.cases_topic = topic_prefix + SURVEILLANCE_CASES

    @property
    def inputs(self) -> list[str]:
        return list(self.intake.inputs)

    def close(self) -> None:
        self.state.close()

    def handle_batch(self, messages: list[Any]) -> list[OutRecord]:
        out: list[OutRecord] = []
        visits: list[tuple[Any, dict[str, Any], Classification, VisitCase]] = []
        for m in messages:
            event = self.intake.decode(m)
            if isinstance(event, OutRecord):  # undecodable or misfiled: a dead letter
                out.append(event)
                continue
            classification = classify_visit(event.value)
            visits.append((m, event.value, classification, visit_case(event.value, classification)))
        if not visits:
            return out
        changed = {
            (c.org_code, c.record_key, c.event_id): before for c, before in self.state.record([v[3] for v in visits])
        }
        # A replay finds nothing changed; it publishes again what the stored version said (the crash may have
        # come between commit and publish; consumers dedupe by case id): a case, or a correction or
        # cancellation (a withdrawal, or a version that never was a case, which says so harmlessly).
        stored = self.state.stored_events([(c.org_code, c.record_key) for *_, c in visits])
        syndromes: Counter[str] = Counter()
        for m, visit, classification, case in visits:
            key = (case.org_code, case.record_key, case.event_id)
            if key in changed:
                before = changed[key]
                was_case = before is not None and bool(before.syndromes) and not before.cancelled
                if not case.syndromes and not was_case:
                    continue  # never a case: nothing to say
                syndromes.update(case.syndromes if not case.cancelled else ())
            elif stored.get((case.org_code, case.record_key)) != case.event_id or not (
                case.syndromes or case.cancelled or case.record_version > 1
            ):
                continue  # an older version arriving late, or a replayed visit that never was a case
            out.append(
                OutRecord(
                    self.cases_topic,
                    m.key,
                    self.codec.encode(
                        "surveillance.case", case_value(visit, case, classification, self.key), topic=self.cases_topic
                    ),
                    timestamp=m.timestamp,
                )
            )
        VISITS.inc(len(changed))
        for syndrome, n in syndromes.items():
            CASES.labels(syndrome).inc(n)
        return out


def build_stage(settings: Settings, event_types: list[str] | None = None) -> SurveillanceStage:
    return SurveillanceStage(
        codec_for(settings.schema_registry_config()),
        settings.topic_prefix,
        SurveillanceState(settings.postgres_url),
        settings.pseudonym_key.get_secret_value().encode(),
    )


def run_worker(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> None:
    from streams.faust_runtime.app import run_batch_stage

    run_batch_stage(settings, STAGE, lambda: build_stage(settings, event_types), group_suffix)


def today() -> dt.date:
    return dt.datetime.now(CST).date()

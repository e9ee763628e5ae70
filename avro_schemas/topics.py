"""The topic catalogue: every topic healthbus uses, declared once.

Naming: ``<layer>.<event type>`` for the event pipeline, where the layer says how far an event has come:
``raw`` (as the adapter published it) → ``identified`` (person id attached) → ``validated`` (passed the
quality rules; warnings ride along as a header) → the sinks and the routing stages. The quality stage's
verdicts go to ``quality.results``, upload-monitoring alerts to ``alerts.quality``; dead letters go to
``dlq.<stage>``. The routing stage reads validated.* and publishes one ``collab.<route>`` topic per
collaboration route (work-item changes for downstream programmes), ``record.deregistered`` (health
record sealed or re-opened) and ``alerts.clinical`` (clinical reminders for the ordering institution). docs/topics.md explains the scheme. A deployment may prefix every name (``topic_prefix``)
to share a cluster; code always asks this module for names, never spells them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from avro_schemas.pipeline import dead_letter_stages, stage
from avro_schemas.schema_set import current_schemas

DAY_MS = 24 * 3600 * 1000


class KeyScheme(str, enum.Enum):
    """What a topic's message key is (what keeps related events in order on one partition)."""

    SOURCE_PATIENT = "source-patient"  # "<org_code>:<local_patient_id>": one patient of one institution in order
    SOURCE_RECORD = "source-record"  # the key of the message that failed (dead letters keep it)
    PERSON = "person"  # the (survivor) platform person id: one person's identity changes in order
    INSTITUTION = "institution"  # the institution's GB 32100 code: one institution's alerts in order
    SERIES = "series"  # a surveillance series id (syndrome:county[:group]): one series' alerts in order


@dataclass(frozen=True)
class TopicSpec:
    name: str
    layer: str
    key: KeyScheme
    value_schema: str  # event type whose schema the values follow
    partitions: int
    retention_ms: int
    cleanup_policy: str
    doc: str

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


# Raw events are kept a week (adapters can re-publish from the exchange DB); processed layers 3 days.
RAW_RETENTION_MS = 7 * DAY_MS
PIPELINE_RETENTION_MS = 3 * DAY_MS
DLQ_RETENTION_MS = 30 * DAY_MS
EVENT_PARTITIONS = 6
DLQ_PARTITIONS = 1
IDENTITY_CHANGE_PARTITIONS = 1  # a few thousand a day; one partition keeps every change in order
IDENTITY_CHANGE_RETENTION_MS = 30 * DAY_MS
QUALITY_RESULTS_RETENTION_MS = 7 * DAY_MS  # ClickHouse keeps them; the topic only feeds it
ALERT_PARTITIONS = 1  # a handful a day; one partition keeps open → close in order
ALERT_RETENTION_MS = 90 * DAY_MS

# Event types the adapters publish (everything in events/; identity changes and dead letters are not).
PIPELINE_EVENT_TYPES: tuple[str, ...] = tuple(
    t
    for t in current_schemas()
    if not t.startswith(("ops.", "empi.", "quality.", "alerts.", "collab.", "record.", "surveillance."))
)
# Identity changes the master patient index publishes (identity/): merges, relinks.
IDENTITY_CHANGE_TYPES: tuple[str, ...] = tuple(t for t in current_schemas() if t.startswith("empi."))
QUALITY_RESULTS = "quality.results"
QUALITY_ALERTS = "alerts.quality"
# Collaboration routes (issue #6): each has its topic collab.<route> and its work-queue table routing.<route>.
COLLAB_ROUTES: tuple[str, ...] = (
    "chronic_disease",
    "tumor_registry",
    "death_registration",
    "infectious_disease",
    "vaccination",
    "resident_update",
)
RECORD_DEREGISTERED = "record.deregistered"
CLINICAL_ALERTS = "alerts.clinical"
COLLAB_RETENTION_MS = 30 * DAY_MS
SURVEILLANCE_CASES = "surveillance.cases"
SURVEILLANCE_ALERTS = "alerts.surveillance"  # a county system offline for a holiday week still catches up


def collab_topic_name(route: str) -> str:
    if route not in COLLAB_ROUTES:
        raise KeyError(f"{route!r} is not a collaboration route; routes: {', '.join(COLLAB_ROUTES)}")
    return f"collab.{route}"


def _catalogue() -> dict[str, TopicSpec]:
    specs: list[TopicSpec] = []
    for event_type in PIPELINE_EVENT_TYPES:
        specs.append(
            TopicSpec(
                f"raw.{event_type}",
                "raw",
                KeyScheme.SOURCE_PATIENT,
                event_type,
                EVENT_PARTITIONS,
                RAW_RETENTION_MS,
                "delete",
                f"{event_type} as the source adapter published it",
            )
        )
        specs.append(
            TopicSpec(
                f"identified.{event_type}",
                "identified",
                KeyScheme.SOURCE_PATIENT,
                event_type,
                EVENT_PARTITIONS,
                PIPELINE_RETENTION_MS,
                "delete",
                f"{event_type} after the identify stage",
            )
        )
        specs.append(
            TopicSpec(
                f"validated.{event_type}",
                "validated",
                KeyScheme.SOURCE_PATIENT,
                event_type,
                EVENT_PARTITIONS,
                PIPELINE_RETENTION_MS,
                "delete",
                f"{event_type} that passed the quality rules (warnings as a header)",
            )
        )
    for change_type in IDENTITY_CHANGE_TYPES:
        specs.append(
            TopicSpec(
                change_type,
                "empi",
                KeyScheme.PERSON,
                change_type,
                IDENTITY_CHANGE_PARTITIONS,
                IDENTITY_CHANGE_RETENTION_MS,
                "delete",
                f"master patient index changes: {change_type}",
            )
        )
    specs.append(
        TopicSpec(
            QUALITY_RESULTS,
            "quality",
            KeyScheme.SOURCE_PATIENT,
            "quality.result",
            EVENT_PARTITIONS,
            QUALITY_RESULTS_RETENTION_MS,
            "delete",
            "the quality stage's verdict on every event (no personal data)",
        )
    )
    specs.append(
        TopicSpec(
            QUALITY_ALERTS,
            "alerts",
            KeyScheme.INSTITUTION,
            "alerts.quality_feed",
            ALERT_PARTITIONS,
            ALERT_RETENTION_MS,
            "delete",
            "daily upload monitoring: a feed went quiet or low, and when it recovered",
        )
    )
    for route in COLLAB_ROUTES:
        specs.append(
            TopicSpec(
                collab_topic_name(route),
                "collab",
                KeyScheme.PERSON,
                "collab.work_item_change",
                EVENT_PARTITIONS,
                COLLAB_RETENTION_MS,
                "delete",
                f"{route} work items: registered, evidence, amended, withdrawn, reassigned",
            )
        )
    specs.append(
        TopicSpec(
            RECORD_DEREGISTERED,
            "record",
            KeyScheme.PERSON,
            "record.lifecycle_change",
            IDENTITY_CHANGE_PARTITIONS,
            IDENTITY_CHANGE_RETENTION_MS,
            "delete",
            "health records sealed on a registered death, and re-opened",
        )
    )
    specs.append(
        TopicSpec(
            CLINICAL_ALERTS,
            "alerts",
            KeyScheme.INSTITUTION,
            "alerts.clinical_reminder",
            ALERT_PARTITIONS,
            ALERT_RETENTION_MS,
            "delete",
            "clinical reminders (智能提示): repeated drug class or test, for the ordering institution",
        )
    )
    specs.append(
        TopicSpec(
            SURVEILLANCE_CASES,
            "surveillance",
            KeyScheme.SOURCE_PATIENT,
            "surveillance.case",
            EVENT_PARTITIONS,
            COLLAB_RETENTION_MS,
            "delete",
            "outpatient visits classified into syndromes (pseudonymised, matched terms only)",
        )
    )
    specs.append(
        TopicSpec(
            SURVEILLANCE_ALERTS,
            "alerts",
            KeyScheme.SERIES,
            "alerts.surveillance_alert",
            ALERT_PARTITIONS,
            ALERT_RETENTION_MS,
            "delete",
            "syndromic early warning: a series above its threshold (open, updated, closed)",
        )
    )
    for dlq_stage in dead_letter_stages():  # the pipeline declaration says which stages dead-letter
        specs.append(
            TopicSpec(
                f"dlq.{dlq_stage}",
                "dlq",
                KeyScheme.SOURCE_RECORD,
                "ops.dead_letter",
                DLQ_PARTITIONS,
                DLQ_RETENTION_MS,
                "delete",
                f"messages the {dlq_stage} stage could not process, with the reason",
            )
        )
    return {spec.name: spec for spec in specs}


CATALOGUE: dict[str, TopicSpec] = _catalogue()


def topic(name: str) -> TopicSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the topic catalogue") from None


def expand(patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Catalogue names for topic names and layer patterns ("validated.*": every topic of that layer, in
    catalogue order), as the pipeline declaration writes them."""
    names: list[str] = []
    for pattern in patterns:
        if pattern.endswith(".*"):
            layer = pattern[:-2]
            matched = [n for n, spec in CATALOGUE.items() if spec.layer == layer or n.startswith(layer + ".")]
        else:
            matched = [topic(pattern).name]
        if not matched:
            raise KeyError(f"{pattern!r} matches no topic of the catalogue")
        names += [n for n in matched if n not in names]
    return names


def declared_inputs(stage_name: str, prefix: str = "", event_types: list[str] | None = None) -> dict[str, str]:
    """The topics a stage subscribes to, as the pipeline declaration says (event-layer topics narrowed to
    ``event_types`` when given), each with the event type it carries."""
    inputs = {}
    for name in expand(stage(stage_name).reads):
        spec = CATALOGUE[name]
        if (
            event_types is None
            or spec.layer not in ("raw", "identified", "validated")
            or spec.value_schema in event_types
        ):
            inputs[prefix + name] = spec.value_schema
    return inputs


def raw_topic(event_type: str) -> TopicSpec:
    return topic(f"raw.{event_type}")


def identified_topic(event_type: str) -> TopicSpec:
    return topic(f"identified.{event_type}")


def validated_topic(event_type: str) -> TopicSpec:
    return topic(f"validated.{event_type}")


def dead_letter_topic(stage: str) -> TopicSpec:
    return topic(f"dlq.{stage}")


def source_patient_key(org_code: str, local_patient_id: str) -> bytes:
    """Key of raw and pipeline topics: one patient of one institution stays on one partition, in order."""
    return f"{org_code}:{local_patient_id}".encode()

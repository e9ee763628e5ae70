"""The identify stage, raw.<type> → identified.<type>: every event leaves carrying its resident's person id.

Per batch: the intake checks each raw event (known type, the institution it claims: streams/inbound.py)
and dead-letters what fails; the patient block of each envelope becomes a `SourceRecord`; the resolver
answers known patients from Redis/PostgreSQL and matches the rest (`resolution.decide`, the same core
as `healthbus empi link`); the payload goes on with `person_id` and the match decision stamped into its
envelope (spliced into the bytes: the body is copied as it is). Events that can't be resolved safely still flow on, with a
new person id and a review item: never blocked. Identity changes (merges) wait in the index's outbox
and are published to empi.* after each batch that made one, and every few seconds in any case.

`IdentifyStage.handle_batch` is the core (Kafka-free); `run_worker` is the Faust edge.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from avro_schemas.serde import EventCodec, codec_for
from avro_schemas.topics import PIPELINE_EVENT_TYPES, declared_inputs, identified_topic
from foundation.settings import Settings
from streams.faust_runtime.batch_agent import OutRecord
from streams.identity import metrics
from streams.identity.master_index.resolver import IdentityResolver
from streams.identity.record import SourceRecord
from streams.inbound import AcceptedEvent, InboundCheck

STAGE = "identify"
MISSING_LOCAL_PATIENT_ID = "missing_local_patient_id"
OUTBOX_INTERVAL_SECONDS = 5.0
_EPOCH = dt.date(1970, 1, 1)

log = logging.getLogger(__name__)


def source_record(envelope: dict[str, Any]) -> SourceRecord:
    """The identity part of an envelope (as `peek_envelope` reads it: dates are epoch days)."""
    source, patient = envelope["source"], envelope["patient"]
    birth_days = patient.get("birth_date")
    org, local = source["org_code"], patient["local_patient_id"]
    return SourceRecord(
        record_id=f"{org}:{local}",
        org_code=org,
        local_id=local,
        name=patient.get("name") or "",
        sex=patient.get("sex") or "",
        birth_date=(_EPOCH + dt.timedelta(days=birth_days)).isoformat() if birth_days is not None else "",
        id_type=patient.get("id_type") or "",
        id_number=patient.get("id_number") or "",
        health_card=patient.get("health_card") or "",
        insurance_card=patient.get("insurance_card") or "",
        phone=patient.get("phone") or "",
        address=patient.get("address") or "",
    )


class IdentifyStage:
    def __init__(
        self,
        codec: EventCodec,
        topic_prefix: str,
        master_key: bytes | None,
        resolver: IdentityResolver,
        event_types: list[str] | None = None,
        publish_outbox: Callable[[], int] | None = None,
        key_generations: dict[str, int] | None = None,
    ) -> None:
        types = event_types or list(PIPELINE_EVENT_TYPES)
        self.codec = codec
        self.resolver = resolver
        inputs = declared_inputs(STAGE, topic_prefix, types)
        self.intake = InboundCheck(codec, STAGE, topic_prefix, inputs, master_key, key_generations)
        self.outputs = {t: topic_prefix + identified_topic(t).name for t in types}
        self.publish_outbox = publish_outbox  # () -> int, or None (tests of the core alone)
        self._outbox_due = 0.0

    @property
    def inputs(self) -> list[str]:
        return list(self.intake.inputs)

    def close(self) -> None:
        self.resolver.close()

    def handle_batch(self, messages: list[Any]) -> list[OutRecord]:
        checked: list[AcceptedEvent | OutRecord] = []
        for m in messages:
            result = self.intake.accept(m)
            if isinstance(result, AcceptedEvent) and not result.envelope["patient"]["local_patient_id"]:
                result = self.intake.dead_letter(
                    m, MISSING_LOCAL_PATIENT_ID, "the patient block has no local patient id: nothing to link"
                )
            checked.append(result)
        accepted = [c for c in checked if isinstance(c, AcceptedEvent)]
        with metrics.BATCH_SECONDS.time():
            resolutions = iter(self.resolver.resolve([source_record(a.envelope) for a in accepted]))
        out: list[OutRecord] = []
        merged = False
        for item in checked:
            if isinstance(item, OutRecord):
                out.append(item)
                continue
            resolution = next(resolutions)
            merged = merged or bool(resolution.moved_records)
            metrics.EVENTS_IDENTIFIED.labels(item.event_type, resolution.rule).inc()
            if resolution.review:
                metrics.REVIEWS_RAISED.inc()
            if resolution.moved_records:
                metrics.RECORDS_MOVED.inc(len(resolution.moved_records))
            payload = self.codec.stamp_identity(
                item.message.value,
                item.peeked,
                resolution.person_id,
                resolution.rule,
                resolution.weight,
                resolution.review,
            )
            out.append(
                OutRecord(
                    self.outputs[item.event_type], item.message.key, payload, item.headers, item.message.timestamp
                )
            )
        if self.publish_outbox is not None and (merged or time.monotonic() >= self._outbox_due):
            self.publish_outbox()
            self._outbox_due = time.monotonic() + OUTBOX_INTERVAL_SECONDS
        return out


def build_stage(settings: Settings, event_types: list[str] | None = None) -> IdentifyStage:
    from confluent_kafka import Producer

    from foundation.kafka_config import producer_config
    from streams.identity.fellegi_sunter import MatchModel
    from streams.identity.master_index.cache import PersonCache
    from streams.identity.master_index.outbox import publish_pending

    codec = codec_for(settings.schema_registry_config())
    cache = PersonCache.for_settings(settings)
    resolver = IdentityResolver.connect(settings.postgres_url, cache, MatchModel.load(settings.empi_model_path))
    master = settings.adapter_master_key.get_secret_value().encode() if settings.require_signed_sources else None
    outbox_producer = Producer(producer_config(settings.confluent_config()))

    def publish() -> int:
        return publish_pending(resolver.conn, outbox_producer, codec, settings.topic_prefix)

    return IdentifyStage(
        codec, settings.topic_prefix, master, resolver, event_types, publish, settings.adapter_key_generations
    )


def run_worker(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> None:
    from streams.faust_runtime.app import run_batch_stage

    run_batch_stage(settings, STAGE, lambda: build_stage(settings, event_types), group_suffix)

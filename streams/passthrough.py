"""The pass-through stage, raw.<type> → identified.<type> with the intake checks only (no identity).

It is the benchmark subject of `healthbus bench passthrough` (what the Faust runtime itself costs next to
plain client loops, docs/faust-throughput.md) and a fallback for a deployment that runs without the master
patient index. The identify stage (streams/identity/stage.py) is the production path.
"""

from __future__ import annotations

import logging
from typing import Any

from avro_schemas.serde import EventCodec, codec_for
from avro_schemas.topics import PIPELINE_EVENT_TYPES, declared_inputs, identified_topic
from foundation.settings import Settings
from streams.faust_runtime.batch_agent import OutRecord
from streams.inbound import InboundCheck, message_headers

STAGE = "identify"  # it stands in for the identify stage: same consumer group, same dead-letter topic


class PassthroughRouter:
    def __init__(
        self,
        codec: EventCodec,
        topic_prefix: str,
        master_key: bytes | None,
        event_types: list[str] | None = None,
        key_generations: dict[str, int] | None = None,
    ) -> None:
        types = event_types or list(PIPELINE_EVENT_TYPES)
        inputs = declared_inputs("passthrough", topic_prefix, types)
        self.intake = InboundCheck(codec, STAGE, topic_prefix, inputs, master_key, key_generations)
        self.inputs = self.intake.inputs
        self.outputs = {t: topic_prefix + identified_topic(t).name for t in types}

    def route_batch(self, messages: list[Any]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for m in messages:
            rejected = self.intake.check_source_only(m)
            out.append(
                rejected
                or OutRecord(
                    self.outputs[self.inputs[m.topic]], m.key, m.value, message_headers(m.headers), m.timestamp
                )
            )
        return out


def build_app(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> Any:
    import mode

    from foundation.kafka_config import producer_config
    from streams.faust_runtime.app import RawBytesSchema, make_app
    from streams.faust_runtime.batch_agent import BatchAgent

    app = make_app(settings, STAGE + group_suffix)
    master = settings.adapter_master_key.get_secret_value().encode() if settings.require_signed_sources else None
    router = PassthroughRouter(
        codec_for(settings.schema_registry_config()),
        settings.topic_prefix,
        master,
        event_types,
        settings.adapter_key_generations,
    )
    topic = app.topic(*router.inputs, schema=RawBytesSchema())
    agent = BatchAgent(
        app,
        router.route_batch,
        producer_config(settings.confluent_config()),
        stage_name=STAGE,
        topic_prefix=settings.topic_prefix,
    )
    app.agent(topic, name="passthrough", supervisor_strategy=mode.CrashingSupervisor)(agent.__call__)
    return app


def run_worker(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> None:
    from streams.faust_runtime.app import run_worker as run_faust_worker

    run_faust_worker(build_app(settings, event_types, group_suffix), logging.WARNING)

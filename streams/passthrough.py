"""The pass-through stage, raw.<type> → identified.<type>: until identity resolution (#4) replaces it, it
only makes sure each payload is a known event of the topic's type from the institution it claims, and
dead-letters what is not.

It reads the envelope only (no body decoding): a malformed body is caught by the sinks' full decode and
dead-lettered there. ``route_batch`` is the pure core; ``run_worker`` is the Faust edge.
"""

from __future__ import annotations

import logging
from typing import Any

from avro_schemas.serde import DecodeError, EventCodec, codec_for
from avro_schemas.topics import PIPELINE_EVENT_TYPES, dead_letter_topic, identified_topic, raw_topic
from ops.settings import Settings
from streams.dead_letters import dead_letter
from streams.faust_runtime.batch_agent import OutRecord
from streams.source_authentication import SIGNATURE_HEADER, adapter_key, org_from_message_key, signature_valid

STAGE = "identify"
WRONG_EVENT_TYPE = "wrong_event_type"
SOURCE_MISMATCH = "source_mismatch"
UNAUTHENTICATED_SOURCE = "unauthenticated_source"


class PassthroughRouter:
    """Maps each raw topic to its identified topic; checks each payload is a known event of the topic's type,
    from the institution it claims (signature, Kafka key and envelope agree)."""

    def __init__(self, codec: EventCodec, topic_prefix: str, master_key: bytes | None,
                 event_types: list[str] | None = None) -> None:
        self.codec = codec
        self.master_key = master_key  # None: signatures are not required
        self._keys: dict[str, bytes] = {}
        types = event_types or list(PIPELINE_EVENT_TYPES)
        self.inputs = {topic_prefix + raw_topic(t).name: t for t in types}
        self.outputs = {t: topic_prefix + identified_topic(t).name for t in types}
        self.dlq_topic = topic_prefix + dead_letter_topic(STAGE).name

    def route_batch(self, messages: list[Any]) -> list[OutRecord]:
        out: list[OutRecord] = []
        for m in messages:
            expected = self.inputs[m.topic]
            headers = _headers(m.headers)
            try:
                actual, claimed = self.codec.peek_source_org(m.value)
            except DecodeError as exc:
                out.append(self._dead_letter(m, exc.code.value, exc.message))
                continue
            if actual != expected:
                out.append(self._dead_letter(m, WRONG_EVENT_TYPE, f"a {actual} event on the {expected} topic"))
                continue
            problem = self._source_problem(m, claimed, headers)
            if problem is not None:
                out.append(self._dead_letter(m, *problem))
                continue
            out.append(OutRecord(self.outputs[expected], m.key, m.value, headers))
        return out

    def _source_problem(self, m: Any, claimed: str, headers: list[tuple[str, bytes]] | None) -> tuple[str, str] | None:
        if org_from_message_key(m.key) != claimed:
            return SOURCE_MISMATCH, "the message key names another institution than the envelope"
        if self.master_key is None:
            return None
        key = self._keys.get(claimed) or self._keys.setdefault(claimed, adapter_key(self.master_key, claimed))
        signature = next((v for k, v in headers or () if k == SIGNATURE_HEADER), None)
        if not signature_valid(key, m.key, m.value, signature):
            return UNAUTHENTICATED_SOURCE, f"no valid signature of {claimed}"
        return None

    def _dead_letter(self, m: Any, code: str, message: str) -> OutRecord:
        value = dead_letter(STAGE, code, message, m.topic, m.partition, m.offset, m.key, m.value, _headers(m.headers))
        return OutRecord(self.dlq_topic, m.key, self.codec.encode("ops.dead_letter", value, topic=self.dlq_topic))


def _headers(headers: Any) -> list[tuple[str, bytes]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


def build_app(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> Any:
    import mode

    from producers.publisher import producer_config
    from streams.faust_runtime.app import RawBytesSchema, make_app
    from streams.faust_runtime.batch_agent import BatchAgent

    app = make_app(settings, STAGE + group_suffix)
    master = settings.adapter_master_key.get_secret_value().encode() if settings.require_signed_sources else None
    router = PassthroughRouter(codec_for(settings.schema_registry_config()), settings.topic_prefix, master, event_types)
    topic = app.topic(*router.inputs, schema=RawBytesSchema())
    agent = BatchAgent(app, router.route_batch, producer_config(settings.confluent_config()))
    app.agent(topic, name="passthrough", supervisor_strategy=mode.CrashingSupervisor)(agent.__call__)
    return app


def run_worker(settings: Settings, event_types: list[str] | None = None, group_suffix: str = "") -> None:
    from streams.faust_runtime.app import run_worker as run_faust_worker

    run_faust_worker(build_app(settings, event_types, group_suffix), logging.WARNING)

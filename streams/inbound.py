"""What every raw event must prove before a stage trusts it, and the dead letter when it can't.

A raw payload must decode as a known event of its topic's type, and come from the institution it claims:
the Kafka key, the envelope's source and (when signatures are required) the adapter's HMAC signature
must agree (foundation/source_authentication.py). Only the envelope is read here; the sinks' full decode
dead-letters a malformed body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avro_schemas.serde import DecodedEvent, DecodeError, EventCodec, PeekedEnvelope
from avro_schemas.topics import dead_letter_topic
from foundation.dead_letters import DEAD_LETTERS, dead_letter
from foundation.source_authentication import SIGNATURE_HEADER, adapter_key, org_from_message_key, signature_valid
from streams.faust_runtime.batch_agent import OutRecord

WRONG_EVENT_TYPE = "wrong_event_type"
SOURCE_MISMATCH = "source_mismatch"
UNAUTHENTICATED_SOURCE = "unauthenticated_source"


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    message: Any  # the Faust/confluent message (topic, partition, offset, key, value, headers)
    peeked: PeekedEnvelope  # the envelope (logical types raw: epoch ms, epoch days) and where it ends
    headers: list[tuple[str, bytes]] | None  # without the source signature (it signs the raw payload only)

    @property
    def event_type(self) -> str:
        return self.peeked.event_type

    @property
    def envelope(self) -> dict[str, Any]:
        return self.peeked.envelope


class InboundCheck:
    def __init__(
        self, codec: EventCodec, stage: str, topic_prefix: str, inputs: dict[str, str], master_key: bytes | None
    ) -> None:
        self.codec = codec
        self.stage = stage
        self.inputs = inputs  # input topic → the event type it carries
        self.master_key = master_key  # None: signatures are not required
        self.dlq_topic = topic_prefix + dead_letter_topic(stage).name
        self._keys: dict[str, bytes] = {}

    def accept(self, m: Any) -> AcceptedEvent | OutRecord:
        """The checked event, or the dead letter that replaces it."""
        expected = self.inputs[m.topic]
        headers = message_headers(m.headers)
        try:
            peeked = self.codec.peek_envelope_at(m.value)
        except DecodeError as exc:
            return self.dead_letter(m, exc.code.value, exc.message)
        if peeked.event_type != expected:
            return self.dead_letter(m, WRONG_EVENT_TYPE, f"a {peeked.event_type} event on the {expected} topic")
        problem = self._source_problem(m, peeked.envelope["source"]["org_code"], headers)
        if problem is not None:
            return self.dead_letter(m, *problem)
        kept = [(k, v) for k, v in headers or () if k != SIGNATURE_HEADER] or None
        return AcceptedEvent(m, peeked, kept)

    def decode(self, m: Any) -> DecodedEvent | OutRecord:
        """The whole decoded event of a later stage's input (authenticated upstream), or the dead letter that
        replaces it: a body that does not decode, or an event of another type than its topic carries."""
        try:
            event = self.codec.decode(m.value)
        except DecodeError as exc:
            return self.dead_letter(m, exc.code.value, exc.message)
        expected = self.inputs[m.topic]
        if event.event_type != expected:
            return self.dead_letter(m, WRONG_EVENT_TYPE, f"a {event.event_type} event on the {expected} topic")
        return event

    def check_source_only(self, m: Any) -> OutRecord | None:
        """The same checks reading only the type and the org code (header speed); None when it passes."""
        expected = self.inputs[m.topic]
        try:
            actual, claimed = self.codec.peek_source_org(m.value)
        except DecodeError as exc:
            return self.dead_letter(m, exc.code.value, exc.message)
        if actual != expected:
            return self.dead_letter(m, WRONG_EVENT_TYPE, f"a {actual} event on the {expected} topic")
        problem = self._source_problem(m, claimed, message_headers(m.headers))
        return self.dead_letter(m, *problem) if problem is not None else None

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

    def dead_letter(self, m: Any, code: str, message: str, details: dict[str, str] | None = None) -> OutRecord:
        DEAD_LETTERS.labels(self.stage, code).inc()
        value = dead_letter(
            self.stage,
            code,
            message,
            m.topic,
            m.partition,
            m.offset,
            m.key,
            m.value,
            message_headers(m.headers),
            details,
        )
        return OutRecord(
            self.dlq_topic,
            m.key,
            self.codec.encode("ops.dead_letter", value, topic=self.dlq_topic),
            timestamp=m.timestamp,
            rejects=m.topic,
        )


def message_headers(headers: Any) -> list[tuple[str, bytes]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in items]

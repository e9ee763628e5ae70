"""What every incoming event must prove before a stage trusts it, and the dead letter when it can't.

A raw payload must decode as a known event of its topic's type, come from the institution it claims (the
Kafka key, the envelope's source and, when signatures are required, the adapter's HMAC signature must agree:
foundation/source_authentication.py), and carry an envelope every later stage and sink can store
(``envelope_problem``): an event id that is a UUID, times and a record version in the ranges the stores
hold, a size that still fits on the bus once the identify stage has stamped it. Only the envelope is read
here; the sinks' full decode dead-letters a malformed body, and a record that still fails a stage or a sink
is isolated there (streams/faust_runtime/batch_agent.py, sinks/batch_consumer.py).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avro_schemas.envelope import make_event_id
from avro_schemas.serde import DecodedEvent, DecodeError, EventCodec, PeekedEnvelope
from avro_schemas.topics import dead_letter_topic
from foundation.dead_letters import DEAD_LETTERS, dead_letter
from foundation.source_authentication import SIGNATURE_HEADER, adapter_key, org_from_message_key, signature_valid
from streams.faust_runtime.batch_agent import OutRecord

WRONG_EVENT_TYPE = "wrong_event_type"
SOURCE_MISMATCH = "source_mismatch"
UNAUTHENTICATED_SOURCE = "unauthenticated_source"
INVALID_EVENT_ID = "invalid_event_id"
EVENT_ID_MISMATCH = "event_id_mismatch"
OUT_OF_RANGE = "out_of_range"
TOO_LARGE = "too_large"

# Times the stores hold: ClickHouse's Date starts at 1970-01-01 and its DateTime ends in 2106; 2100 keeps a
# margin and no health record is dated later. An event from before 1970 is real history, but not an event
# of this platform (records, not birth dates, carry occurred_at).
EARLIEST_MS = 0
LATEST_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_RECORD_VERSION = 2**31 - 1  # Avro int; ClickHouse keeps it as UInt32, so it must not be negative
# The producer refuses messages over 1,000,000 bytes (librdkafka's message.max.bytes); the identify stage adds a
# person id and the match to the envelope, so a raw event must leave room for that.
MAX_EVENT_BYTES = 900_000
KEY_CACHE_SIZE = 4096  # institutions' signing keys kept derived; bounded whatever keys claim


def envelope_problem(envelope: dict[str, Any], size: int) -> tuple[str, str] | None:
    """Why this envelope cannot travel on (code, reason naming the field, never its value), or None."""
    if size > MAX_EVENT_BYTES:
        return TOO_LARGE, f"{size} bytes; at most {MAX_EVENT_BYTES} fit once identified"
    event_id = envelope.get("event_id")
    try:
        canonical = isinstance(event_id, str) and str(uuid.UUID(event_id)) == event_id
    except ValueError:
        canonical = False
    if not canonical:
        return INVALID_EVENT_ID, "envelope.event_id is not a UUID in canonical form"
    for name in ("occurred_at", "emitted_at"):
        at = envelope.get(name)
        if not isinstance(at, int) or not EARLIEST_MS <= at < LATEST_MS:
            return OUT_OF_RANGE, f"envelope.{name} is outside 1970-01-01 .. 2100-01-01"
    version = envelope.get("record_version")
    if not isinstance(version, int) or not 0 <= version <= MAX_RECORD_VERSION:
        return OUT_OF_RANGE, f"envelope.record_version is outside 0 .. {MAX_RECORD_VERSION}"
    # The id is derived from the institution, the record key and the version (avro_schemas/envelope.py), and
    # the institution is proven by the signature: an id that does not derive is another's id taken, which
    # would make every sink drop the real event as a duplicate.
    source = envelope.get("source") or {}
    expected = make_event_id(
        source.get("org_code", ""), source.get("record_key", ""), version, bool(envelope.get("cancelled"))
    )
    if event_id != expected:
        return EVENT_ID_MISMATCH, "envelope.event_id does not derive from the source, record key and version"
    return None


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
        self,
        codec: EventCodec,
        stage: str,
        topic_prefix: str,
        inputs: dict[str, str],
        master_key: bytes | None,
        key_generations: Mapping[str, int] | None = None,
    ) -> None:
        self.codec = codec
        self.stage = stage
        self.inputs = inputs  # input topic → the event type it carries
        self.master_key = master_key  # None: signatures are not required
        self.dlq_topic = topic_prefix + dead_letter_topic(stage).name
        generations = dict(key_generations or {})  # institutions whose key was revoked and re-issued

        def key_of(org: str) -> bytes:
            return adapter_key(master_key or b"", org, generations.get(org, 1))

        self._key_of = functools.lru_cache(maxsize=KEY_CACHE_SIZE)(key_of)

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
        problem = self._source_problem(m, peeked.envelope["source"]["org_code"], headers) or envelope_problem(
            peeked.envelope, len(m.value)
        )
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
        key = self._key_of(claimed)
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

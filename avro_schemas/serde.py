"""Events on the wire: Avro single-object encoding (default) and the Confluent wire format.

One ``EventCodec`` writes in the configured format and reads both: the first bytes say which
(``C3 01`` + 8-byte fingerprint, or ``00`` + 4-byte registry id). Readers always resolve the writer's
schema to this checkout's schema of the same event type (Avro schema resolution), so older writers stay
readable. Anything undecodable raises ``DecodeError`` with a machine-readable code; stages dead-letter it.
"""

from __future__ import annotations

import enum
import io
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import fastavro

from avro_schemas.schema_set import EventSchema, current_schemas, parse_standalone

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class WireFormat(str, enum.Enum):
    SINGLE_OBJECT = "single-object"
    CONFLUENT = "confluent"


class DecodeFailure(str, enum.Enum):
    """Why a payload could not be decoded (the dead-letter ``error_code``)."""

    EMPTY_PAYLOAD = "empty_payload"
    UNKNOWN_MAGIC = "unknown_magic"
    TRUNCATED_HEADER = "truncated_header"
    UNKNOWN_FINGERPRINT = "unknown_fingerprint"
    REGISTRY_NOT_CONFIGURED = "registry_not_configured"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INCOMPATIBLE_SCHEMA = "incompatible_schema"
    MALFORMED_BODY = "malformed_body"
    TRAILING_BYTES = "trailing_bytes"


class RegistryUnavailable(RuntimeError):
    """The schema registry could not be asked (down, refusing, timing out): a transient outage, not a bad
    payload. Stages and sinks keep the message and retry; they never dead-letter it for this."""


def _registry_says_unknown(exc: Exception) -> bool:
    """The registry answered that the id does not exist (HTTP 404), as opposed to not answering."""
    return getattr(exc, "http_status_code", None) == 404


def _unreadable(exc: BaseException, position: int) -> str:
    """What went wrong reading a body, without the library's message: fastavro's and the UTF-8 decoder's
    quote the bytes they choked on, which may be an ID number."""
    return f"{type(exc).__name__} reading the body at byte {position}"


class DecodeError(Exception):
    """A payload that is not a decodable event. ``code`` is stable and machine-readable."""

    def __init__(self, code: DecodeFailure, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class DecodedEvent:
    event_type: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PeekedEnvelope:
    event_type: str
    envelope: dict[str, Any]  # logical types raw (epoch ms, epoch days)
    envelope_end: int  # offset in the payload just after the envelope
    current_writer: bool  # written with this checkout's schema of its type


class EventCodec:
    """Encode events in one wire format; decode either format.

    ``registry`` is a ``confluent_kafka.schema_registry.SchemaRegistryClient`` (``mock://`` works in
    tests); without one, Confluent-framed payloads fail with ``REGISTRY_NOT_CONFIGURED``.
    ``known_writers`` are schemas of earlier releases whose single-object payloads stay readable (default:
    every snapshot under avro_schemas/released).
    """

    def __init__(
        self,
        wire_format: WireFormat = WireFormat.SINGLE_OBJECT,
        registry: Any | None = None,
        schemas: dict[str, EventSchema] | None = None,
        known_writers: Iterable[EventSchema] | None = None,
    ) -> None:
        if wire_format is WireFormat.CONFLUENT and registry is None:
            raise ValueError("the Confluent wire format needs a schema registry client")
        self.wire_format = wire_format
        self.registry = registry
        self.schemas = schemas if schemas is not None else current_schemas()
        self._by_full_name = {s.full_name: s for s in self.schemas.values()}
        self._writers_by_fingerprint: dict[bytes, EventSchema] = {}
        if known_writers is None:
            from avro_schemas.evolution import released_writers

            known_writers = released_writers()
        for writer in (*known_writers, *self.schemas.values()):
            self._writers_by_fingerprint[writer.fingerprint] = writer
        self._fixed_prefix: dict[str, bool] = {}  # writer canonical form -> envelope has the 1.0.0 prefix
        self._envelope_readers: dict[str, Any] = {}  # writer canonical form -> parsed envelope-only schema
        self._registry_ids: dict[tuple[str, str], int] = {}  # (subject, event type) -> schema id
        self._writers_by_id: dict[int, EventSchema] = {}

    # -- encoding --------------------------------------------------------------------------------
    def encode(self, event_type: str, value: dict[str, Any], topic: str | None = None) -> bytes:
        schema = self.schemas.get(event_type)
        if schema is None:
            raise KeyError(f"no schema for event type {event_type!r}")
        buf = io.BytesIO()
        if self.wire_format is WireFormat.SINGLE_OBJECT:
            buf.write(SINGLE_OBJECT_MAGIC)
            buf.write(schema.fingerprint)
        else:
            if topic is None:
                raise ValueError("the Confluent wire format needs the topic (subject = '<topic>-value')")
            buf.write(CONFLUENT_MAGIC)
            buf.write(struct.pack(">I", self._registry_id(f"{topic}-value", schema)))
        fastavro.schemaless_writer(buf, schema.parsed, value, strict_allow_default=True)
        return buf.getvalue()

    def _registry_id(self, subject: str, schema: EventSchema) -> int:
        key = (subject, schema.event_type)
        schema_id = self._registry_ids.get(key)
        if schema_id is None:
            from confluent_kafka.schema_registry import Schema

            assert self.registry is not None  # the constructor demands one for this wire format
            schema_id = self.registry.register_schema(subject, Schema(schema.standalone_json, "AVRO"))
            self._registry_ids[key] = schema_id
            self._writers_by_id[schema_id] = schema
        return schema_id

    # -- decoding --------------------------------------------------------------------------------
    def _writer_and_reader(self, payload: bytes | None) -> tuple[EventSchema, EventSchema, int]:
        """Read the header: (writer schema, reader schema, where the body starts)."""
        if not payload:
            raise DecodeError(DecodeFailure.EMPTY_PAYLOAD, "the message has no value")
        if payload[:2] == SINGLE_OBJECT_MAGIC:
            if len(payload) < 10:
                raise DecodeError(DecodeFailure.TRUNCATED_HEADER, "single-object header shorter than 10 bytes")
            writer = self._writers_by_fingerprint.get(payload[2:10])
            if writer is None:
                raise DecodeError(
                    DecodeFailure.UNKNOWN_FINGERPRINT, f"no known schema has fingerprint {payload[2:10].hex()}"
                )
            body_start = 10
        elif payload[:1] == CONFLUENT_MAGIC:
            if len(payload) < 5:
                raise DecodeError(DecodeFailure.TRUNCATED_HEADER, "Confluent header shorter than 5 bytes")
            writer = self._writer_for_registry_id(struct.unpack(">I", payload[1:5])[0])
            body_start = 5
        else:
            raise DecodeError(DecodeFailure.UNKNOWN_MAGIC, f"payload starts with {payload[:2].hex()}")
        reader = self._by_full_name.get(writer.full_name)
        if reader is None:
            raise DecodeError(DecodeFailure.UNKNOWN_EVENT_TYPE, f"no reader schema for {writer.full_name}")
        return writer, reader, body_start

    def peek_event_type(self, payload: bytes | None) -> str:
        """The event type from the header alone (no body decoding): cheap routing and sanity checks."""
        return self._writer_and_reader(payload)[1].event_type

    def _envelope_reader(self, writer: EventSchema) -> Any:
        """A parsed schema of the writer's first field alone (the envelope), logical types left raw."""
        envelope_schema = self._envelope_readers.get(writer.canonical_form)
        if envelope_schema is None:
            raw = json.loads(writer.standalone_json)
            prefix = {
                "type": "record",
                "name": raw["name"],
                "namespace": raw.get("namespace", ""),
                "fields": raw["fields"][:1],
            }
            envelope_schema = fastavro.parse_schema(_without_logical_types(prefix))
            self._envelope_readers[writer.canonical_form] = envelope_schema
        return envelope_schema

    def peek_envelope(self, payload: bytes | None) -> tuple[str, dict[str, Any]]:
        """(event type, envelope) without decoding the body: ~4x faster than ``decode``.

        Every event schema has the envelope as its first field (tests/test_schemas.py checks), and Avro
        binary is sequential, so reading the payload with a schema holding only that first field reads
        exactly the envelope. Logical types are left raw: timestamps are epoch milliseconds, dates days."""
        peeked = self.peek_envelope_at(payload)
        return peeked.event_type, peeked.envelope

    def peek_envelope_at(self, payload: bytes | None) -> PeekedEnvelope:
        """``peek_envelope`` plus where the envelope ends, for ``stamp_identity``."""
        writer, reader, body_start = self._writer_and_reader(payload)
        assert payload is not None
        envelope_schema = self._envelope_reader(writer)
        buf = io.BytesIO(payload)
        buf.seek(body_start)
        try:
            envelope = _read_record(buf, envelope_schema, None)["envelope"]
        except Exception as exc:
            raise DecodeError(DecodeFailure.MALFORMED_BODY, _unreadable(exc, buf.tell())) from None
        return PeekedEnvelope(reader.event_type, envelope, buf.tell(), writer.fingerprint == reader.fingerprint)

    def stamp_identity(
        self, payload: bytes, peeked: PeekedEnvelope, person_id: str, rule: str, weight: float | None, review: bool
    ) -> bytes:
        """The event with ``envelope.person_id`` and ``envelope.identity`` set: the identify stage's output.

        The envelope ends with these two optional fields (schemas 1.1.0), which a raw event carries as
        nulls: two 0x00 union branch bytes just before the envelope's end. When the payload was written
        with the current schema and has them null, the two values are Avro-encoded by hand and spliced in
        (a few microseconds: no second decode, no fastavro writer); otherwise ``restamp_envelope``."""
        end = peeked.envelope_end
        if (
            peeked.current_writer
            and payload[end - 2 : end] == b"\x00\x00"
            and peeked.envelope.get("person_id") is None
            and peeked.envelope.get("identity") is None
        ):
            tail = bytearray(b"\x02")
            _write_string(tail, person_id)
            tail += b"\x02"
            _write_string(tail, rule)
            if weight is None:
                tail += b"\x00"
            else:
                tail += b"\x02" + struct.pack("<d", weight)
            tail += b"\x01" if review else b"\x00"
            return b"".join((payload[: end - 2], tail, payload[end:]))
        return self.restamp_envelope(
            payload, {"person_id": person_id, "identity": {"rule": rule, "weight": weight, "review": review}}
        )

    def restamp_envelope(self, payload: bytes | None, updates: dict[str, Any]) -> bytes:
        """The same event with some envelope fields replaced (the identify stage adds ``person_id``).

        When the payload was written with this checkout's schema, only the envelope is re-encoded and the
        rest of the body is copied byte for byte (Avro is sequential and the envelope comes first); an
        older writer's payload is decoded and re-encoded whole, in the current schema."""
        writer, reader, body_start = self._writer_and_reader(payload)
        assert payload is not None
        if writer.fingerprint != reader.fingerprint:
            decoded = self.decode(payload)
            decoded.value["envelope"].update(updates)
            return self.encode(decoded.event_type, decoded.value)
        envelope_schema = self._envelope_reader(writer)
        buf = io.BytesIO(payload)
        buf.seek(body_start)
        try:
            record = _read_record(buf, envelope_schema, None)
        except Exception as exc:
            raise DecodeError(DecodeFailure.MALFORMED_BODY, _unreadable(exc, buf.tell())) from None
        record["envelope"].update(updates)
        out = io.BytesIO()
        out.write(payload[:body_start])
        fastavro.schemaless_writer(out, envelope_schema, record)
        out.write(payload[buf.tell() :])
        return out.getvalue()

    def peek_source_org(self, payload: bytes | None) -> tuple[str, str]:
        """(event type, envelope.source.org_code) at header speed: the hot path of the identify stage's source
        check. When the writer's envelope starts with the layout 1.0.0 fixed (event_id, event_type,
        occurred_at, emitted_at, record_version, cancelled, source.org_code), the org code is read straight
        off the bytes; any other layout falls back to ``peek_envelope``."""
        writer, reader, body_start = self._writer_and_reader(payload)
        assert payload is not None
        fast = self._fixed_prefix.get(writer.canonical_form)
        if fast is None:
            fast = self._fixed_prefix[writer.canonical_form] = _has_fixed_envelope_prefix(writer)
        if not fast:
            event_type, envelope = self.peek_envelope(payload)
            return event_type, envelope["source"]["org_code"]
        try:
            pos = body_start
            for kind in _PREFIX_BEFORE_ORG:
                if kind == "string":
                    length, pos = _read_long(payload, pos)
                    pos += length
                elif kind == "boolean":
                    pos += 1
                else:
                    _, pos = _read_long(payload, pos)
            length, pos = _read_long(payload, pos)
            if length < 0 or pos + length > len(payload):
                raise ValueError("string runs past the payload")
            return reader.event_type, payload[pos : pos + length].decode("utf-8")
        except (IndexError, ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(DecodeFailure.MALFORMED_BODY, f"envelope: {_unreadable(exc, pos)}") from None

    def decode(self, payload: bytes | None) -> DecodedEvent:
        """The whole event in this checkout's schema of its type."""
        writer, reader, body_start = self._writer_and_reader(payload)
        assert payload is not None
        writer_schema, reader_schema = writer.parsed, reader.parsed
        buf = io.BytesIO(payload)
        buf.seek(body_start)
        try:
            if reader.fingerprint == writer.fingerprint:
                value = _read_record(buf, writer_schema, None)
            else:
                value = _read_record(buf, writer_schema, reader_schema)
        except fastavro.read.SchemaResolutionError as exc:
            raise DecodeError(DecodeFailure.INCOMPATIBLE_SCHEMA, str(exc)) from None
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, UnicodeDecodeError …
            raise DecodeError(DecodeFailure.MALFORMED_BODY, _unreadable(exc, buf.tell())) from None
        if buf.tell() != len(payload):
            raise DecodeError(DecodeFailure.TRAILING_BYTES, f"{len(payload) - buf.tell()} bytes after the record")
        return DecodedEvent(reader.event_type, value)

    def _writer_for_registry_id(self, schema_id: int) -> EventSchema:
        writer = self._writers_by_id.get(schema_id)
        if writer is not None:
            return writer
        if self.registry is None:
            raise DecodeError(DecodeFailure.REGISTRY_NOT_CONFIGURED, "Confluent-framed payload but no registry URL set")
        try:
            registered = self.registry.get_schema(schema_id)
        except Exception as exc:
            if _registry_says_unknown(exc):
                raise DecodeError(DecodeFailure.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered") from None
            # down, refusing, slow: the payload may be fine; callers wait this out like a database outage
            raise RegistryUnavailable(f"schema registry: {type(exc).__name__} looking up id {schema_id}") from exc
        try:
            writer = parse_standalone(registered.schema_str)
        except Exception as exc:
            raise DecodeError(
                DecodeFailure.UNKNOWN_EVENT_TYPE, f"schema id {schema_id} is no healthbus event: {exc}"
            ) from None
        self._writers_by_id[schema_id] = writer
        return writer


# Envelope fields before source.org_code, in their Avro binary kinds (1.0.0 layout).
_PREFIX_FIELDS = (
    ("event_id", "string"),
    ("event_type", "string"),
    ("occurred_at", "long"),
    ("emitted_at", "long"),
    ("record_version", "int"),
    ("cancelled", "boolean"),
)
_PREFIX_BEFORE_ORG = tuple(kind for _, kind in _PREFIX_FIELDS)


def _has_fixed_envelope_prefix(writer: EventSchema) -> bool:
    fields = json.loads(writer.standalone_json)["fields"]
    if not fields or fields[0]["name"] != "envelope" or not isinstance(fields[0]["type"], dict):
        return False
    envelope = fields[0]["type"].get("fields", [])
    if len(envelope) <= len(_PREFIX_FIELDS):
        return False
    for (name, kind), field in zip(_PREFIX_FIELDS, envelope):
        field_type = field["type"]["type"] if isinstance(field["type"], dict) else field["type"]
        if field["name"] != name or field_type != kind:
            return False
    source = envelope[len(_PREFIX_FIELDS)]
    return (
        source["name"] == "source"
        and isinstance(source["type"], dict)
        and source["type"]["fields"][0]["name"] == "org_code"
        and source["type"]["fields"][0]["type"] == "string"
    )


def _write_string(out: bytearray, text: str) -> None:
    """Avro string: zig-zag varint length, then UTF-8 bytes."""
    data = text.encode()
    n = len(data) << 1  # zig-zag of a non-negative length
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    out += data


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Avro zig-zag varint at ``pos``: (value, next position)."""
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_without_logical_types(v) for v in node]
    return node


def codec_for(registry_config: dict[str, Any] | None) -> EventCodec:
    """The codec a process should use: Confluent framing when a registry is configured, else single-object."""
    if not registry_config:
        return EventCodec(WireFormat.SINGLE_OBJECT)
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return EventCodec(WireFormat.CONFLUENT, registry=SchemaRegistryClient.new_client(registry_config))


def _read_record(buf: io.BytesIO, writer: Any, reader: Any) -> dict[str, Any]:
    """fastavro types what it reads as any Avro value; every schema read here is a record."""
    return cast(dict[str, Any], fastavro.schemaless_reader(buf, writer, reader))

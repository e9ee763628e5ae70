"""Contracts: every schema round-trips in both wire formats; bad payloads give typed errors."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from avro_schemas.evolution import _variants, sample_value
from avro_schemas.schema_set import current_schemas
from avro_schemas.serde import DecodeError, DecodeFailure, EventCodec, WireFormat
from avro_schemas.topics import PIPELINE_EVENT_TYPES

SCHEMAS = current_schemas()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's reference CRC-64-AVRO, written independently of the code under test."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("event_type", sorted(SCHEMAS))
def test_fingerprint_is_crc64_avro_of_canonical_form(event_type: str) -> None:
    schema = SCHEMAS[event_type]
    assert schema.fingerprint == crc64_avro(schema.canonical_form.encode()).to_bytes(8, "little")


@pytest.mark.parametrize("event_type", sorted(SCHEMAS))
@pytest.mark.parametrize("wire", list(WireFormat))
def test_round_trip_every_schema(event_type: str, wire: WireFormat) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://roundtrip"})
    writer = EventCodec(wire, registry=registry if wire is WireFormat.CONFLUENT else None)
    reader = EventCodec(registry=registry)  # one reader for both formats
    raw = json.loads(SCHEMAS[event_type].standalone_json)
    for variant in range(_variants(raw)):  # every union branch and enum symbol
        value = sample_value(raw, variant)
        payload = writer.encode(event_type, value, topic=f"raw.{event_type}")
        assert payload[:2] == b"\xc3\x01" if wire is WireFormat.SINGLE_OBJECT else payload[:1] == b"\x00"
        decoded = reader.decode(payload)
        assert decoded.event_type == event_type
        assert decoded.value == value


def _visit_payload() -> bytes:
    raw = json.loads(SCHEMAS["outpatient.visit"].standalone_json)
    return EventCodec().encode("outpatient.visit", sample_value(raw, 1))


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", DecodeFailure.EMPTY_PAYLOAD),
        (None, DecodeFailure.EMPTY_PAYLOAD),
        (b'{"json": "not avro"}', DecodeFailure.UNKNOWN_MAGIC),
        (b"\xc3\x01\x00\x01", DecodeFailure.TRUNCATED_HEADER),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", DecodeFailure.UNKNOWN_FINGERPRINT),
        (b"\x00\x00\x00\x00\x07\x02", DecodeFailure.REGISTRY_NOT_CONFIGURED),
    ],
)
def test_undecodable_payloads_raise_typed_errors(payload: bytes | None, code: DecodeFailure) -> None:
    with pytest.raises(DecodeError) as info:
        EventCodec().decode(payload)
    assert info.value.code is code


def test_truncated_body_is_malformed() -> None:
    payload = _visit_payload()
    with pytest.raises(DecodeError) as info:
        EventCodec().decode(payload[: len(payload) // 2])
    assert info.value.code is DecodeFailure.MALFORMED_BODY


def test_trailing_garbage_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        EventCodec().decode(_visit_payload() + b"\x00\x00")
    assert info.value.code is DecodeFailure.TRAILING_BYTES


def test_unknown_registry_id_is_typed() -> None:
    codec = EventCodec(registry=SchemaRegistryClient.new_client({"url": "mock://empty"}))
    with pytest.raises(DecodeError) as info:
        codec.decode(b"\x00\x00\x00\x03\xe7\x02")
    assert info.value.code is DecodeFailure.UNKNOWN_SCHEMA_ID


def test_every_schema_field_has_bilingual_doc() -> None:
    def walk(node: object, path: str) -> list[str]:
        missing = []
        if isinstance(node, dict):
            for field in node.get("fields", []):
                if not field.get("doc"):
                    missing.append(f"{path}.{field['name']}")
                missing += walk(field["type"], f"{path}.{field['name']}")
            for key in ("items", "values"):
                missing += walk(node.get(key), path)
        elif isinstance(node, list):
            for branch in node:
                missing += walk(branch, path)
        return missing

    for event_type, schema in SCHEMAS.items():
        assert walk(json.loads(schema.standalone_json), event_type) == []


def test_envelope_is_the_first_field_of_every_event() -> None:
    """peek_envelope relies on it."""
    for event_type in PIPELINE_EVENT_TYPES:
        first = json.loads(SCHEMAS[event_type].standalone_json)["fields"][0]
        assert first["name"] == "envelope" and first["type"]["name"] == "Envelope", event_type


@pytest.mark.parametrize("event_type", sorted(PIPELINE_EVENT_TYPES))
def test_peek_envelope_matches_full_decode(event_type: str) -> None:
    codec = EventCodec()
    raw = json.loads(SCHEMAS[event_type].standalone_json)
    value = sample_value(raw, 1)
    payload = codec.encode(event_type, value)
    peeked_type, envelope = codec.peek_envelope(payload)
    full = codec.decode(payload).value["envelope"]
    assert peeked_type == event_type
    assert envelope["event_id"] == full["event_id"] and envelope["source"] == full["source"]
    assert envelope["occurred_at"] == int(full["occurred_at"].timestamp() * 1000)  # raw epoch millis


@pytest.mark.parametrize("event_type", sorted(PIPELINE_EVENT_TYPES))
def test_restamp_envelope_equals_decode_change_encode(event_type: str) -> None:
    """The identify stage re-encodes only the envelope and copies the body bytes: the result must be the
    event a full decode, change and encode would give, for the current writer and a 1.0.0 one."""
    from avro_schemas.evolution import released_writers

    codec = EventCodec()
    value = sample_value(json.loads(SCHEMAS[event_type].standalone_json), 2)
    stamp = {"person_id": "p-1", "identity": {"rule": "probabilistic", "weight": 9.5, "review": True}}
    expected = codec.decode(codec.encode(event_type, value)).value
    expected["envelope"].update(stamp)
    assert codec.decode(codec.restamp_envelope(codec.encode(event_type, value), stamp)).value == expected
    fresh = codec.encode(event_type, {**value, "envelope": {**value["envelope"], "person_id": None, "identity": None}})
    spliced = codec.stamp_identity(fresh, codec.peek_envelope_at(fresh), "p-1", "probabilistic", 9.5, True)
    assert spliced == codec.restamp_envelope(fresh, stamp)  # the hand-encoded splice is the Avro encoding
    unweighted = codec.stamp_identity(fresh, codec.peek_envelope_at(fresh), "人-2", "record_key", None, False)
    assert codec.decode(unweighted).value["envelope"]["identity"] == {
        "rule": "record_key",
        "weight": None,
        "review": False,
    }
    old = next(w for w in released_writers() if w.event_type == event_type)
    old_value = sample_value(json.loads(old.standalone_json), 2)
    old_payload = b"\xc3\x01" + old.fingerprint + fastavro_bytes(old.parsed, old_value)
    restamped = codec.decode(codec.restamp_envelope(old_payload, stamp)).value
    assert restamped["envelope"]["person_id"] == "p-1" and restamped["envelope"]["identity"]["weight"] == 9.5


def fastavro_bytes(parsed: object, value: dict) -> bytes:
    import io

    import fastavro

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, value)
    return buf.getvalue()


@pytest.mark.parametrize("event_type", sorted(PIPELINE_EVENT_TYPES))
def test_peek_source_org_reads_the_org_off_the_bytes(event_type: str) -> None:
    codec = EventCodec()
    raw = json.loads(SCHEMAS[event_type].standalone_json)
    for variant in range(3):
        value = sample_value(raw, variant)
        value["envelope"]["source"]["org_code"] = f"1241150{variant}MB000000{variant}X"
        payload = codec.encode(event_type, value)
        assert codec.peek_source_org(payload) == (event_type, value["envelope"]["source"]["org_code"])
    with pytest.raises(DecodeError):
        codec.peek_source_org(payload[:14])

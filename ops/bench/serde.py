"""``healthbus bench serde``: outpatient.visit encode/decode rate per wire format, next to plain fastavro."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient

from avro_schemas.serde import EventCodec, WireFormat
from ops.bench.table import BenchRow
from synthetic.outpatient_visits import outpatient_visits


def _rate(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def run(events: int = 20000, seed: int = 7) -> list[BenchRow]:
    values = list(outpatient_visits(events, seed=seed))
    topic = "raw.outpatient.visit"
    single = EventCodec(WireFormat.SINGLE_OBJECT)
    confluent = EventCodec(WireFormat.CONFLUENT, registry=SchemaRegistryClient.new_client({"url": "mock://bench"}))
    parsed = single.schemas["outpatient.visit"].parsed
    single.encode("outpatient.visit", values[0])
    confluent.encode("outpatient.visit", values[0], topic=topic)  # registers the schema once

    def plain_encode() -> list[bytes]:
        out = []
        for v in values:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, v)
            out.append(buf.getvalue())
        return out

    plain_payloads = plain_encode()
    single_payloads = [single.encode("outpatient.visit", v) for v in values]
    confluent_payloads = [confluent.encode("outpatient.visit", v, topic=topic) for v in values]

    rows = [
        BenchRow("plain fastavro encode events/s", _rate(plain_encode, events), "baseline: schemaless_writer"),
        BenchRow(
            "single-object encode events/s",
            _rate(lambda: [single.encode("outpatient.visit", v) for v in values], events),
        ),
        BenchRow(
            "confluent encode events/s",
            _rate(lambda: [confluent.encode("outpatient.visit", v, topic=topic) for v in values], events),
        ),
        BenchRow(
            "plain fastavro decode events/s",
            _rate(lambda: [fastavro.schemaless_reader(io.BytesIO(p), parsed, None) for p in plain_payloads], events),
            "baseline: schemaless_reader",
        ),
        BenchRow("single-object decode events/s", _rate(lambda: [single.decode(p) for p in single_payloads], events)),
        BenchRow("confluent decode events/s", _rate(lambda: [confluent.decode(p) for p in confluent_payloads], events)),
        BenchRow(
            "single-object peek envelope events/s",
            _rate(lambda: [single.peek_envelope(p) for p in single_payloads], events),
            "envelope only",
        ),
        BenchRow("mean payload bytes", sum(map(len, single_payloads)) / events, "single-object"),
    ]
    return rows

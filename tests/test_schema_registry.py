"""The Confluent wire format end to end against a real schema registry: Apicurio Registry (its Confluent-
compatible API), started the way `healthbus stack up` starts it when HEALTHBUS_SCHEMA_REGISTRY_URL points at
a local address. An adapter publishes, the identify stage (a Faust worker process) reads and writes
through the registry, and a reader with no schema of its own decodes the result."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from avro_schemas.serde import codec_for
from avro_schemas.topics import identified_topic, raw_topic
from foundation.settings import Settings
from ops.stack.processes import free_port, stop_pid
from ops.stack.registry import CCOMPAT_PATH, start_registry
from producers.publisher import EventPublisher
from synthetic.outpatient_visits import outpatient_visits
from tests.pipeline_harness import read_until_ids, stage_worker


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    url = f"http://127.0.0.1:{free_port()}{CCOMPAT_PATH}"
    log = Path(tempfile.mkdtemp(prefix="hb-registry-")) / "registry.log"
    pid = start_registry(url, log)
    try:
        yield url
    finally:
        stop_pid(pid)


def test_events_travel_in_the_confluent_wire_format_through_a_stage(
    empi_settings: Settings, registry_url: str, tmp_path: Path
) -> None:
    s = empi_settings.model_copy(update={"schema_registry_url": registry_url})
    codec = codec_for(s.schema_registry_config())
    visits = list(outpatient_visits(30, seed=8))
    publisher = EventPublisher(s.confluent_config(), codec, s.signing_key_for, s.topic_prefix)
    for visit in visits:
        publisher.publish("outpatient.visit", visit)
    publisher.flush()
    wanted = {v["envelope"]["event_id"] for v in visits}

    reader = codec_for(s.schema_registry_config())  # a fresh client: it learns every schema from the registry

    def event_id(value: bytes) -> str:
        return str(reader.decode(value).value["envelope"]["event_id"])

    with stage_worker(s, tmp_path / "identify.log", "identify") as worker:
        got = read_until_ids(s, s.topic_name(identified_topic("outpatient.visit").name), wanted, event_id, timeout=90)
        assert worker.poll() is None, (tmp_path / "identify.log").read_text()[-3000:]
    assert wanted <= {event_id(m.value()) for m in got}
    assert all(m.value()[0] == 0 for m in got)  # Confluent framing: magic byte 0, then the schema id

    # The adapter registered the schema under its topic's subject; every output names a schema id the
    # registry serves (the stage keeps the event's schema, so it refers to the same id).
    client = SchemaRegistryClient({"url": registry_url})
    assert f"{s.topic_name(raw_topic('outpatient.visit').name)}-value" in client.get_subjects()
    for schema_id in {int.from_bytes(m.value()[1:5], "big") for m in got}:
        assert "outpatient" in client.get_schema(schema_id).schema_str.lower()

"""The pass-through stage: pure routing, dead letters, and a real Faust worker killed mid-stream."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic, identified_topic, raw_topic
from foundation.settings import Settings
from foundation.source_authentication import SIGNATURE_HEADER, adapter_key, sign
from producers.publisher import EventPublisher, ForeignSourceError
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer
from streams.passthrough import STAGE, PassthroughRouter
from synthetic.outpatient_visits import outpatient_visits
from tests.pipeline_harness import RawMessage, read_topic, read_until_ids, stage_worker, start_stage_worker

CODEC = EventCodec()


def event_id(payload: bytes) -> str:
    return CODEC.decode(payload).value["envelope"]["event_id"]


MASTER = b"test-master-key"


def _signed(org: str, value: bytes, as_org: str | None = None) -> tuple[bytes, list]:
    """Message key and headers as an adapter of ``as_org`` (default: ``org``) would produce them."""
    message_key = f"{org}:P1".encode()
    return message_key, [(SIGNATURE_HEADER, sign(adapter_key(MASTER, as_org or org), message_key, value))]


def _with_value(signed: tuple[bytes, list], value: bytes) -> tuple[bytes, bytes, list]:
    return signed[0], value, signed[1]


def test_router_routes_known_events_and_dead_letters_the_rest() -> None:
    router = PassthroughRouter(CODEC, "p-", MASTER)
    visit = next(outpatient_visits(1))
    org = visit["envelope"]["source"]["org_code"]
    good = CODEC.encode("outpatient.visit", visit)
    key, headers = _signed(org, good)
    raw_visits = "p-" + raw_topic("outpatient.visit").name
    other_org = "12411503MB0000001X"
    batch = [
        RawMessage(raw_visits, 0, 0, key, good, headers),
        RawMessage(raw_visits, 0, 1, key, b"not avro"),
        RawMessage("p-" + raw_topic("lab.report").name, 2, 7, key, good, headers),  # a visit on the lab topic
        RawMessage(raw_visits, 1, 3, None, None),
        RawMessage(raw_visits, 1, 4, key, good),  # unsigned
        RawMessage(raw_visits, 1, 5, key, good, _signed(org, good, as_org=other_org)[1]),  # another's signature
        RawMessage(raw_visits, 1, 6, *_with_value(_signed(other_org, good), good)),  # key says B, envelope A
    ]
    out = router.route_batch(batch)
    assert [o.topic for o in out] == ["p-identified.outpatient.visit"] + ["p-dlq.identify"] * 6
    assert out[0].value == good and out[0].key == key and out[0].headers == headers
    letters = [CODEC.decode(o.value).value for o in out[1:]]
    assert [d["error_code"] for d in letters] == [
        "unknown_magic",
        "wrong_event_type",
        "empty_payload",
        "unauthenticated_source",
        "unauthenticated_source",
        "source_mismatch",
    ]
    assert letters[0]["payload"] == b"not avro" and letters[0]["source_offset"] == 1
    assert letters[1]["source_topic"] == "p-raw.lab.report" and letters[1]["payload"] == good
    assert all(d["stage"] == STAGE for d in letters)


def test_publisher_refuses_another_institutions_events(settings: Settings) -> None:
    visit = next(outpatient_visits(1))
    publisher = EventPublisher(
        settings.confluent_config(),
        CODEC,
        settings.signing_key_for,
        settings.topic_prefix,
        own_org_code="12411503MB0000001X",
    )
    with pytest.raises(ForeignSourceError):
        publisher.publish("outpatient.visit", visit)


def test_worker_passes_events_on_and_dead_letters_garbage(settings: Settings, tmp_path: Path) -> None:
    visits = list(outpatient_visits(300, seed=21))
    publisher = EventPublisher(settings.confluent_config(), CODEC, settings.signing_key_for, settings.topic_prefix)
    for v in visits:
        publisher.publish("outpatient.visit", v)
    publisher.flush()
    from confluent_kafka import Producer

    raw = Producer(settings.confluent_config())
    raw.produce(settings.topic_name(raw_topic("outpatient.visit").name), b"\xc3\x01garbage!", b"bad-1")
    raw.produce(
        settings.topic_name(raw_topic("death.record").name), CODEC.encode("outpatient.visit", visits[0]), b"bad-2"
    )
    assert raw.flush(10) == 0

    with stage_worker(settings, tmp_path / "worker.log"):
        passed = read_topic(settings, settings.topic_name(identified_topic("outpatient.visit").name), 300)
        dead = read_topic(settings, settings.topic_name(dead_letter_topic(STAGE).name), 2)
    ids = {CODEC.decode(m.value()).value["envelope"]["event_id"] for m in passed}
    assert ids == {v["envelope"]["event_id"] for v in visits}
    letters = sorted((CODEC.decode(m.value()).value for m in dead), key=lambda d: d["key"])
    assert [(d["key"], d["error_code"]) for d in letters] == [
        (b"bad-1", "unknown_fingerprint"),
        (b"bad-2", "wrong_event_type"),
    ]


def test_kill_9_mid_stream_loses_nothing_and_sinks_hold_each_event_once(settings: Settings, tmp_path: Path) -> None:
    events = 20000  # at the transport's full speed: the guard of streams/faust_runtime/fast_consumer.py
    visits = list(outpatient_visits(events, seed=33))
    publisher = EventPublisher(settings.confluent_config(), CODEC, settings.signing_key_for, settings.topic_prefix)
    for v in visits:
        publisher.publish("outpatient.visit", v)
    publisher.flush()
    out_topic = settings.topic_name(identified_topic("outpatient.visit").name)

    # One consumer watching the output from before the worker starts: a fresh reader per check took longer
    # than the worker needs for all 20,000 events, and the kill landed after the end.
    watch = Consumer({**settings.confluent_config(), "group.id": "unused", "enable.auto.commit": False, "log_level": 3})
    partitions = watch.list_topics(out_topic, timeout=10).topics[out_topic].partitions
    watch.assign([TopicPartition(out_topic, p, OFFSET_BEGINNING) for p in partitions])
    worker = start_stage_worker(settings, tmp_path / "worker-1.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = watch.poll(0.01)
            if m is not None and m.error() is None:
                break  # kill as soon as the first output appears: mid-stream
        os.killpg(worker.pid, signal.SIGKILL)  # no shutdown, no final commit
        worker.wait(10)
    finally:
        watch.close()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    copied_before_restart = len(read_topic(settings, out_topic, idle=1.0))
    assert 0 < copied_before_restart < events, "the kill must land mid-stream"

    with stage_worker(settings, tmp_path / "worker-2.log"):
        passed = read_until_ids(settings, out_topic, {v["envelope"]["event_id"] for v in visits}, event_id)
        ids = [event_id(m.value()) for m in passed]
    assert set(ids) == {v["envelope"]["event_id"] for v in visits}  # nothing lost
    assert len(ids) >= events  # re-processing after the kill may repeat some; the sink absorbs them

    on_topic = len(read_topic(settings, out_topic, idle=1.0))  # the worker has stopped
    store = PostgresEventStore(settings.postgres_url)
    before = store.count()
    consumer = build_consumer(settings, store, ["outpatient.visit"], layer="identified")  # no quality stage here
    consumer.run(until=lambda p: p.consumed >= on_topic)
    assert store.count_event_ids([v["envelope"]["event_id"] for v in visits]) == events
    assert store.count() - before == events  # each exactly once
    store.close()


def test_a_revoked_institution_key_is_refused_and_no_other_institution_is_touched() -> None:
    visit = next(outpatient_visits(1))
    org = visit["envelope"]["source"]["org_code"]
    other = next(v for v in outpatient_visits(50) if v["envelope"]["source"]["org_code"] != org)
    raw_visits = "p-" + raw_topic("outpatient.visit").name
    router = PassthroughRouter(CODEC, "p-", MASTER, key_generations={org: 2})  # org's key was revoked once

    def message(value: dict, key: bytes, offset: int) -> RawMessage:
        payload = CODEC.encode("outpatient.visit", value)
        message_key = f"{value['envelope']['source']['org_code']}:P1".encode()
        return RawMessage(
            raw_visits, 0, offset, message_key, payload, [(SIGNATURE_HEADER, sign(key, message_key, payload))]
        )

    other_org = other["envelope"]["source"]["org_code"]
    out = router.route_batch(
        [
            message(visit, adapter_key(MASTER, org), 0),  # the revoked key
            message(visit, adapter_key(MASTER, org, 2), 1),  # the re-issued one
            message(other, adapter_key(MASTER, other_org), 2),  # another institution, unchanged
        ]
    )
    letters = [CODEC.decode(o.value).value for o in out if o.rejects is not None]
    assert [(d["source_offset"], d["error_code"]) for d in letters] == [(0, "unauthenticated_source")]
    assert len([o for o in out if o.rejects is None]) == 2

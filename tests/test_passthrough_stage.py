"""The pass-through stage: pure routing, dead letters, and a real Faust worker killed mid-stream."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic, identified_topic, raw_topic
from ops.settings import Settings
from producers.publisher import EventPublisher
from producers.synthetic.outpatient_visits import outpatient_visits
from sinks.postgres.event_store import PostgresEventStore
from sinks.runner import build_consumer
from streams.passthrough import STAGE, PassthroughRouter
from tests.pipeline_harness import passthrough_worker, read_topic, read_until_ids, start_passthrough_worker

CODEC = EventCodec()


def event_id(payload: bytes) -> str:
    return CODEC.decode(payload).value["envelope"]["event_id"]


@dataclass
class RawMessage:  # the fields a Faust Message carries that the router reads
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None = None


def test_router_routes_known_events_and_dead_letters_the_rest() -> None:
    router = PassthroughRouter(CODEC, "p-")
    visit = next(outpatient_visits(1))
    good = CODEC.encode("outpatient.visit", visit)
    raw_visits = "p-" + raw_topic("outpatient.visit").name
    batch = [
        RawMessage(raw_visits, 0, 0, b"k", good, [("trace", b"1")]),
        RawMessage(raw_visits, 0, 1, b"k", b"not avro"),
        RawMessage("p-" + raw_topic("lab.report").name, 2, 7, b"k2", good),  # a visit on the lab topic
        RawMessage(raw_visits, 1, 3, None, None),
    ]
    out = router.route_batch(batch)
    assert [o.topic for o in out] == ["p-identified.outpatient.visit"] + ["p-dlq.identify"] * 3
    assert out[0].value == good and out[0].key == b"k" and out[0].headers == [("trace", b"1")]
    letters = [CODEC.decode(o.value).value for o in out[1:]]
    assert [d["error_code"] for d in letters] == ["unknown_magic", "wrong_event_type", "empty_payload"]
    assert letters[0]["payload"] == b"not avro" and letters[0]["source_offset"] == 1
    assert letters[1]["source_topic"] == "p-raw.lab.report" and letters[1]["payload"] == good
    assert all(d["stage"] == STAGE for d in letters)


def test_worker_passes_events_on_and_dead_letters_garbage(settings: Settings, tmp_path: Path) -> None:
    visits = list(outpatient_visits(300, seed=21))
    publisher = EventPublisher(settings.confluent_config(), CODEC, settings.topic_prefix)
    for v in visits:
        publisher.publish("outpatient.visit", v)
    publisher.flush()
    from confluent_kafka import Producer

    raw = Producer(settings.confluent_config())
    raw.produce(settings.topic_name(raw_topic("outpatient.visit").name), b"\xc3\x01garbage!", b"bad-1")
    raw.produce(settings.topic_name(raw_topic("death.record").name), CODEC.encode("outpatient.visit", visits[0]), b"bad-2")
    assert raw.flush(10) == 0

    with passthrough_worker(settings, tmp_path / "worker.log"):
        passed = read_topic(settings, settings.topic_name(identified_topic("outpatient.visit").name), 300)
        dead = read_topic(settings, settings.topic_name(dead_letter_topic(STAGE).name), 2)
    ids = {CODEC.decode(m.value()).value["envelope"]["event_id"] for m in passed}
    assert ids == {v["envelope"]["event_id"] for v in visits}
    letters = sorted((CODEC.decode(m.value()).value for m in dead), key=lambda d: d["key"])
    assert [(d["key"], d["error_code"]) for d in letters] == [(b"bad-1", "unknown_fingerprint"),
                                                             (b"bad-2", "wrong_event_type")]


def test_kill_9_mid_stream_loses_nothing_and_sinks_hold_each_event_once(settings: Settings, tmp_path: Path) -> None:
    events = 60000
    visits = list(outpatient_visits(events, seed=33))
    publisher = EventPublisher(settings.confluent_config(), CODEC, settings.topic_prefix)
    for v in visits:
        publisher.publish("outpatient.visit", v)
    publisher.flush()
    out_topic = settings.topic_name(identified_topic("outpatient.visit").name)

    worker = start_passthrough_worker(settings, tmp_path / "worker-1.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not read_topic(settings, out_topic, 1, timeout=0.05):
            pass  # kill as soon as the first outputs appear: mid-stream
        os.killpg(worker.pid, signal.SIGKILL)  # no shutdown, no final commit
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    copied_before_restart = len(read_topic(settings, out_topic, events, timeout=3))
    assert 0 < copied_before_restart < events, "the kill must land mid-stream"

    with passthrough_worker(settings, tmp_path / "worker-2.log"):
        passed = read_until_ids(settings, out_topic, {v["envelope"]["event_id"] for v in visits}, event_id)
        ids = [event_id(m.value()) for m in passed]
    assert set(ids) == {v["envelope"]["event_id"] for v in visits}  # nothing lost
    assert len(ids) >= events  # re-processing after the kill may repeat some; the sink absorbs them

    on_topic = len(read_topic(settings, out_topic, 10 * events, timeout=3))  # the worker has stopped
    store = PostgresEventStore(settings.postgres_url)
    before = store.count()
    consumer = build_consumer(settings, store, ["outpatient.visit"])
    consumer.run(until=lambda p: p.consumed >= on_topic)
    assert store.count_event_ids([v["envelope"]["event_id"] for v in visits]) == events
    assert store.count() - before == events  # each exactly once
    store.close()

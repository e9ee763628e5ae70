"""`healthbus dlq stuck` finds a stage's group that stopped committing while its input waits, and `healthbus dlq
skip` moves it past exactly one message, which becomes a replayable dead letter with who and why audited."""

from __future__ import annotations

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic, raw_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from synthetic.outpatient_visits import outpatient_visits
from tests.conftest import healthbus, settings_env
from tests.pipeline_harness import read_topic

pytestmark = pytest.mark.integration
CODEC = EventCodec()


def _group_at(s: Settings, topic: str, offset: int) -> None:
    """The identify stage's group, committed at ``offset`` of partition 0 and then gone (a stopped worker)."""
    consumer = Consumer({**s.confluent_config(), "group.id": s.group_id("identify"), "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    consumer.close()


def test_a_stopped_stage_is_listed_as_stuck_and_skipped_past_one_message(settings: Settings) -> None:
    s, env = settings, settings_env(settings)
    topic = s.topic_name(raw_topic("outpatient.visit").name)
    visits = list(outpatient_visits(3, seed=8))
    producer = Producer(producer_config(s.confluent_config()))
    for v in visits:
        producer.produce(topic, CODEC.encode("outpatient.visit", v), b"k", partition=0)
    assert producer.flush(10) == 0
    _group_at(s, topic, 1)

    stuck = healthbus("dlq", "stuck", "--for", "1", env=env)
    assert stuck.returncode == 0, stuck.stderr
    line = next(x for x in stuck.stdout.splitlines() if x.startswith("identify"))
    assert "raw.outpatient.visit[0]@1" in line and "lag      2" in line, stuck.stdout
    assert f"event_id={visits[1]['envelope']['event_id']}" in line  # codes only: no name, no ID number
    assert visits[1]["envelope"]["patient"]["name"] not in stuck.stdout

    args = ["dlq", "skip", "--stage", "identify", "--topic", "raw.outpatient.visit", "--partition", "0"]
    wrong = healthbus(*args, "--offset", "2", "--why", "test", "--actor", "ops.qian", env=env)
    assert wrong.returncode == 1 and "not 2" in wrong.stderr  # only the committed position can be skipped
    done = healthbus(*args, "--offset", "1", "--why", "crashes every build", "--actor", "ops.qian", env=env)
    assert done.returncode == 0, done.stderr

    consumer = Consumer({**s.confluent_config(), "group.id": s.group_id("identify")})
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    consumer.close()
    assert committed == 2  # past exactly one message
    letters = [
        CODEC.decode(m.value()).value for m in read_topic(s, s.topic_name(dead_letter_topic("identify").name), expect=1)
    ]
    assert [(d["error_code"], d["source_offset"], d["details"]["actor"]) for d in letters] == [
        ("skipped_by_operator", 1, "ops.qian")
    ]
    assert letters[0]["payload"] == CODEC.encode("outpatient.visit", visits[1])  # kept byte for byte: replayable
    with psycopg.connect(s.postgres_url) as conn:
        assert conn.execute("SELECT actor, reason, source_offset FROM dlq_skips").fetchall() == [
            ("ops.qian", "crashes every build", 1)
        ]

"""The local stack's lifecycle and the first end-to-end slice, through the real CLI."""

from __future__ import annotations

import json

from foundation.settings import Settings
from ops.stack.broker import broker_answers
from ops.stack.processes import free_port
from tests.conftest import healthbus, settings_env


def test_stack_up_starts_only_what_is_missing_and_down_stops_only_that(settings: Settings) -> None:
    port = free_port()
    env = settings_env(settings) | {"HEALTHBUS_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"}
    up = healthbus("stack", "up", env=env)
    try:
        assert up.returncode == 0, up.stderr
        lines = {line.split()[0]: line.split() for line in up.stdout.splitlines()[1:]}
        assert lines["broker"][1:3] == ["up", "yes"]  # started by us
        assert lines["postgres"][1:3] == ["up", "no"]  # already running: used, not owned
        assert broker_answers(f"127.0.0.1:{port}")
        status = healthbus("stack", "status", env=env)
        assert status.returncode == 0
    finally:
        down = healthbus("stack", "down", env=env)
    assert down.returncode == 0 and "broker" in down.stdout and "postgres" not in down.stdout
    assert not broker_answers(f"127.0.0.1:{port}")
    assert healthbus("stack", "status", env=env).returncode == 1  # the broker is gone: status says so


def test_a_stack_restart_keeps_every_acknowledged_message(settings: Settings) -> None:
    """stack down is a controlled shutdown and the log directory stays: the next stack up serves the same
    cluster with every message a producer had acknowledged, and a group's committed offsets."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from avro_schemas.topics import raw_topic
    from foundation.kafka_config import producer_config
    from ops.consumer_lag import committed_offsets, watermarks
    from ops.topic_admin import create_topics

    port = free_port()
    s = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    env = settings_env(s)
    topic = s.topic_name(raw_topic("outpatient.visit").name)
    up = healthbus("stack", "up", env=env)
    try:
        assert up.returncode == 0, up.stderr
        cluster_before = up.stdout.split("cluster ")[1].split(")")[0]
        create_topics(s.confluent_config(), s.topic_prefix, specs=[raw_topic("outpatient.visit")])
        acknowledged: list[int] = []
        producer = Producer(producer_config(s.confluent_config()))
        for i in range(5000):
            producer.produce(
                topic,
                f"v{i}".encode(),
                f"k{i % 97}".encode(),
                on_delivery=lambda err, m: acknowledged.append(m.offset()) if err is None else None,
            )
        assert producer.flush(30) == 0 and len(acknowledged) == 5000
        group = s.group_id("restart-check")
        committer = Consumer({**s.confluent_config(), "group.id": group, "log_level": 3})
        committer.commit(offsets=[TopicPartition(topic, 0, 17)], asynchronous=False)
        committer.close()
        before = watermarks(s.confluent_config(), [topic])

        down = healthbus("stack", "down", env=env)
        assert down.returncode == 0 and "broker" in down.stdout
        assert not broker_answers(s.kafka_bootstrap)
        again = healthbus("stack", "up", env=env)
        assert again.returncode == 0, again.stderr
        assert f"cluster {cluster_before})" in again.stdout  # the same cluster, from the same log directory
        assert watermarks(s.confluent_config(), [topic]) == before
        assert sum(high - low for low, high in before.values()) == 5000
        assert committed_offsets(s.confluent_config(), group, [(topic, 0)]) == {(topic, 0): 17}
    finally:
        healthbus("stack", "down", env=env)


def test_demo_counts_agree(settings: Settings) -> None:
    result = healthbus(
        "demo",
        "--hospitals",
        "1",
        "--counties",
        "1",
        "--days",
        "1",
        "--seed",
        "5",
        "--json",
        env=settings_env(settings),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["produced"] > 500
    # every event judged; what passed is in both sinks once; what failed is in dlq.quality
    assert figures["accepted"] + figures["rejected"] == figures["produced"] == figures["verdicts_in_clickhouse"]
    assert figures["accepted"] == figures["consumed"] == figures["postgres_rows"] == figures["clickhouse_rows"]
    assert 0 < figures["rejected"] < figures["produced"] * 0.05
    assert figures["produced"] + figures["quarantined"] == figures["exchange_rows"]  # every row accounted for
    assert figures["defects_caught"] > 0.9 * figures["defects_injected"] > 0
    assert figures["false_rejections"] == 0
    # the routing stage consumed every validated event; the synthetic world feeds the main routes
    assert figures["routed"] == figures["accepted"]
    assert figures["items_chronic_disease"] > 0 and figures["items_vaccination"] > 0
    assert figures["items_resident_update"] > 0
    # every accepted visit classified; each case once in ClickHouse; the synthetic world has respiratory cases
    assert figures["visits_classified"] == figures["visits_accepted"] > 0
    assert figures["syndrome_cases_in_clickhouse"] == figures["syndrome_cases"] > 0
    assert figures["cases_fever_resp"] > 0
    assert "counts agree" in result.stdout


def test_synth_fills_exchange_databases_and_writes_the_adapter_config(settings: Settings, tmp_path) -> None:
    from producers.adapters.config import load_config

    config = tmp_path / "adapters.yaml"
    result = healthbus(
        "synth",
        "--hospitals",
        "1",
        "--counties",
        "1",
        "--days",
        "1",
        "--config-out",
        str(config),
        env=settings_env(settings),
    )
    assert result.returncode == 0, result.stderr
    kinds = sorted(s.kind for s in load_config(config).sources)
    assert kinds == ["county", "hospital"]


def test_topics_create_is_idempotent(settings: Settings) -> None:
    env = settings_env(settings)
    first = healthbus("topics", "create", env=env)  # the fixture created them already
    assert first.returncode == 0 and first.stdout.startswith("0 created")
    listing = healthbus("topics", "list", env=env)
    assert f"{settings.topic_prefix}raw.outpatient.visit" in listing.stdout
    assert " no\n" not in listing.stdout + "\n"  # every catalogue topic exists


def test_topics_create_sets_the_event_layer_partitions_and_keeps_single_partition_topics(settings: Settings) -> None:
    import uuid

    from ops.topic_admin import delete_topics, existing_topics

    s = settings.model_copy(update={"topic_prefix": f"p{uuid.uuid4().hex[:6]}-"})
    try:
        result = healthbus("topics", "create", "--event-partitions", "3", env=settings_env(s))
        assert result.returncode == 0, result.stderr
        created = existing_topics(s.confluent_config(), s.topic_prefix)
        assert created[f"{s.topic_prefix}raw.outpatient.visit"] == 3
        assert created[f"{s.topic_prefix}collab.chronic_disease"] == 3
        assert created[f"{s.topic_prefix}empi.person_merged"] == 1 and created[f"{s.topic_prefix}alerts.quality"] == 1
    finally:
        delete_topics(s.confluent_config(), list(existing_topics(s.confluent_config(), s.topic_prefix)))

"""Broker failures under load (``pytest -m chaos``): the pipeline (identify, quality, both sinks as processes)
on Apache Kafka clusters of its own, one synthetic hospital's day per fault.

- A three-node KRaft cluster (each node broker and controller), replication factor 3, ``min.insync.replicas``
  2, producers with ``acks=all``: kill -9 the node leading most of the busiest partitions, let the pipeline
  go on with two, bring it back; then kill -9 two nodes: the remaining one must refuse writes (no quorum, no
  in-sync pair) rather than acknowledge what it could lose, and the pipeline resumes when one returns.
- One node, as the local stack runs it: stopped (SIGTERM) and restarted mid-stream.

Each row of the table: nothing lost in PostgreSQL or ClickHouse, no duplicate a reader sees, and how long
from the fault's end until the sinks held everything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, Producer

from avro_schemas.topics import identified_topic, raw_topic, validated_topic
from foundation.kafka_config import producer_config
from ops.stack.broker import KraftCluster, private_cluster
from tests.chaos_harness import (
    ChaosRun,
    Flow,
    chaos_run,
    check_report,
    expected_ids,
    judged,
    publish_in_process,
    write_report,
)

pytestmark = pytest.mark.chaos

BUSIEST = ("outpatient.visit",)  # most of a hospital's day is visits


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KraftCluster, ChaosRun]]:
    with private_cluster(tmp_path_factory.mktemp("kafka3"), size=3, heap="512m") as cluster:
        with chaos_run(cluster.bootstrap, tmp_path_factory.mktemp("chaos3"), hospitals=2, replication_factor=3) as run:
            yield cluster, run


def _busiest_leader(cluster: KraftCluster, run: ChaosRun) -> int:
    """The node that leads most partitions of the visit topics on every layer."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    topics = [run.s.topic_name(t(e).name) for e in BUSIEST for t in (raw_topic, identified_topic, validated_topic)]
    metadata = admin.list_topics(timeout=10).topics
    leaders = [p.leader for t in topics for p in metadata[t].partitions.values()]
    return max(set(leaders), key=leaders.count)


def _acknowledged_within(bootstrap: str, topic: str, seconds: float) -> bool:
    """Whether one acks=all message is acknowledged within ``seconds`` (its delivery times out otherwise)."""
    outcome: list[KafkaError | None] = []
    producer = Producer(
        {**producer_config({"bootstrap.servers": bootstrap}), "message.timeout.ms": int(seconds * 1000), "log_level": 0}
    )
    producer.produce(topic, b"probe", b"probe", on_delivery=lambda err, _m: outcome.append(err))
    producer.flush(seconds + 5)
    return bool(outcome) and outcome[0] is None


def test_kill_9_the_busiest_leader_then_bring_it_back(replicated: tuple[KraftCluster, ChaosRun]) -> None:
    cluster, run = replicated
    source, p = run.source(0), run.pipeline
    publish_in_process(run.s, source)
    flow = Flow(p, run.verdicts, expected_ids(run.s, source))
    flow.wait_until(lambda: judged(flow) > 0, 90, "the first verdicts")
    victim = _busiest_leader(cluster, run)
    cluster.kill(victim)
    killed_at = time.monotonic()
    at_kill = judged(flow)
    assert at_kill < len(flow.sent), "the kill must land mid-stream"
    caught_up = flow.wait_caught_up(120)  # on the two nodes left: leaders moved, min.insync.replicas still met
    cluster.restart(victim)
    report = flow.report(
        f"kill -9 leader node {victim} of 3", killed_at, caught_up, f"{at_kill} judged at the kill; node back after"
    )
    run.reports.append(report)
    check_report(report)


def test_kill_9_a_second_node_while_the_first_is_down(replicated: tuple[KraftCluster, ChaosRun]) -> None:
    cluster, run = replicated
    source, p = run.source(1), run.pipeline
    first, second = 3, 2
    cluster.kill(first)
    publish_in_process(run.s, source)  # two of three in sync: acks=all writes are still taken
    flow = Flow(p, run.verdicts, expected_ids(run.s, source))
    flow.wait_until(lambda: judged(flow) > 0, 90, "the first verdicts with one node down")
    cluster.kill(second)
    at_kill = judged(flow)
    assert at_kill < len(flow.sent), "the second kill must land mid-stream"
    probe_topic = run.s.topic_name(raw_topic("outpatient.visit").name)
    # One node of three: no controller quorum, no in-sync pair. A write must not be acknowledged.
    assert not _acknowledged_within(f"127.0.0.1:{cluster.node(1).port}", probe_topic, 8.0)
    time.sleep(7)  # the pipeline rides the outage out (15 s in all)
    p.check_alive()
    stalled = judged(flow)
    cluster.restart(second)
    back = time.monotonic()
    assert _acknowledged_within(cluster.bootstrap, probe_topic, 30.0)
    report = flow.report(
        "kill -9 2nd node while 1st down",
        back,
        flow.wait_caught_up(120),
        f"{at_kill} judged at the kill, {stalled} 15 s later",
    )
    cluster.restart(first)
    run.reports.append(report)
    check_report(report)


def test_replicated_cluster_report(
    replicated: tuple[KraftCluster, ChaosRun], capsys: pytest.CaptureFixture[str]
) -> None:
    write_report(replicated[1], "chaos-broker-report.txt", capsys)


def test_stop_and_restart_the_single_node_broker_mid_stream(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    with private_cluster(tmp_path_factory.mktemp("kafka1"), size=1) as cluster:
        with chaos_run(cluster.bootstrap, tmp_path_factory.mktemp("chaos1"), hospitals=1) as run:
            source, p = run.source(0), run.pipeline
            publish_in_process(run.s, source)
            flow = Flow(p, run.verdicts, expected_ids(run.s, source))
            flow.wait_until(lambda: judged(flow) > 0, 90, "the first verdicts")
            cluster.stop_node(1)  # SIGTERM: the broker flushes and leaves; clients keep retrying
            at_stop = judged(flow)
            assert at_stop < len(flow.sent), "the stop must land mid-stream"
            time.sleep(5)
            p.check_alive()
            cluster.restart(1)
            back = time.monotonic()
            report = flow.report(
                "stop + restart the one-node broker",
                back,
                flow.wait_caught_up(120),
                f"{at_stop} judged at the stop, down 5 s",
            )
            run.reports.append(report)
            write_report(run, "chaos-single-broker-report.txt", capsys)

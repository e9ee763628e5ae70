"""Create, list and delete the catalogue's topics on a broker (``healthbus topics …``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from avro_schemas.topics import CATALOGUE, EVENT_PARTITIONS, TopicSpec


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    created: bool  # False: it already existed
    grown_from: int | None = None  # it existed with this many partitions and was grown (CreatePartitions)


def admin_client(kafka_config: dict[str, Any]) -> AdminClient:
    return AdminClient({**kafka_config, "log_level": 3})


def create_topics(
    kafka_config: dict[str, Any],
    prefix: str = "",
    replication_factor: int = -1,
    specs: list[TopicSpec] | None = None,
    event_partitions: int | None = None,
    extra_config: dict[str, str] | None = None,
) -> list[TopicOutcome]:
    """Idempotent: topics that exist keep their settings. Replication -1 is the broker's default.
    ``event_partitions`` sets the partition count of the event-layer topics (those the catalogue gives
    ``EVENT_PARTITIONS``): new ones are created with it, existing ones with fewer are grown to it
    (CreatePartitions; Kafka cannot shrink a topic). The single-partition topics keep theirs, since their
    order is their contract. Growing moves keys to other partitions: do it with the adapters stopped and
    the stages drained (docs/scaling.md). ``extra_config`` is added to every new topic's configuration
    (benchmarks: LogAppendTime)."""
    admin = admin_client(kafka_config)
    wanted = specs or list(CATALOGUE.values())
    existing = {name: len(t.partitions) for name, t in admin.list_topics(timeout=10).topics.items()}

    def partitions(s: TopicSpec) -> int:
        return event_partitions if event_partitions and s.partitions == EVENT_PARTITIONS else s.partitions

    new = [
        NewTopic(
            s.full_name(prefix),
            num_partitions=partitions(s),
            replication_factor=replication_factor,
            config={**s.config(), **(extra_config or {})},
        )
        for s in wanted
        if s.full_name(prefix) not in existing
    ]
    outcomes = {s.full_name(prefix): TopicOutcome(s.full_name(prefix), False) for s in wanted}
    for name, future in (admin.create_topics(new, operation_timeout=30) if new else {}).items():
        try:
            future.result()
            outcomes[name] = TopicOutcome(name, True)
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:  # a racing creator is fine
                raise
    _wait_until_listed(admin, [o.name for o in outcomes.values() if o.created])
    if event_partitions:
        grow = {
            s.full_name(prefix): existing[s.full_name(prefix)]
            for s in wanted
            if s.full_name(prefix) in existing and existing[s.full_name(prefix)] < partitions(s)
        }
        futures = (
            admin.create_partitions([NewPartitions(name, event_partitions) for name in grow], operation_timeout=30)
            if grow
            else {}
        )
        for name, future in futures.items():
            future.result()
            outcomes[name] = TopicOutcome(name, False, grown_from=grow[name])
    return list(outcomes.values())


def _wait_until_listed(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Until the broker's metadata lists every new topic with leaders: CreateTopics answers once the
    controller committed them, a moment before brokers serve them, and a client that asks at once would be
    told the topic is unknown."""
    import time

    deadline = time.monotonic() + timeout
    while names:
        topics = admin.list_topics(timeout=10).topics
        names = [
            n
            for n in names
            if n not in topics
            or topics[n].error is not None
            or any(p.leader < 0 for p in topics[n].partitions.values())
        ]
        if names and time.monotonic() > deadline:
            raise TimeoutError(f"{len(names)} new topics not served after {timeout:.0f} s, e.g. {names[0]}")
        if names:
            time.sleep(0.05)


def existing_topics(kafka_config: dict[str, Any], prefix: str = "") -> dict[str, int]:
    """Topic name → partition count, for the names starting with ``prefix``."""
    metadata = admin_client(kafka_config).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in metadata.topics.items() if name.startswith(prefix)}


def topics_of_run(kafka_config: dict[str, Any], topic_prefix: str, group_prefix: str) -> list[str]:
    """What a run with these prefixes leaves on the broker: its catalogue topics, and the topic Faust creates
    per worker app, named after the app id (the group id), not the topic prefix: ``<group>-__assignor-__leader``."""
    return [
        name
        for name in existing_topics(kafka_config)
        if name.startswith(topic_prefix)
        or (name.startswith(group_prefix + ".") and name.endswith("-__assignor-__leader"))
    ]


def delete_topics(kafka_config: dict[str, Any], names: list[str]) -> None:
    if not names:
        return
    admin = admin_client(kafka_config)
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].UNKNOWN_TOPIC_OR_PART:
                raise


def committed_total(kafka_config: dict[str, Any], group: str, topics: list[str]) -> int:
    """How many messages of ``topics`` the consumer group has committed (the sum of its committed offsets
    over every partition; a partition it never committed counts 0): how far a stage that publishes no
    output per input has come."""
    from confluent_kafka import Consumer, TopicPartition

    metadata = admin_client(kafka_config).list_topics(timeout=10)
    partitions = [TopicPartition(t, p) for t in topics if t in metadata.topics for p in metadata.topics[t].partitions]
    if not partitions:
        return 0
    consumer = Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False, "log_level": 3})
    try:
        return sum(tp.offset for tp in consumer.committed(partitions, timeout=10) if tp.offset > 0)
    finally:
        consumer.close()


def count_messages(kafka_config: dict[str, Any], topics: list[str], timeout: float = 120) -> int:
    """How many messages ``topics`` hold now: read from the beginning until every partition reports its end
    (partition EOF). Reading rather than subtracting offsets stays right for compacted topics and for
    transaction markers, which take offsets but are no messages. Partitions are assigned, not subscribed: a
    counter needs no group."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    metadata = admin_client(kafka_config).list_topics(timeout=10).topics
    partitions = {(t, p) for t in topics if t in metadata for p in metadata[t].partitions}
    if not partitions:
        return 0
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": "healthbus-count",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 3,
        }
    )
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
    seen, deadline = 0, time.monotonic() + timeout
    try:
        while partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(partitions)} partitions did not reach their end in {timeout:.0f} s")
            for m in consumer.consume(10000, timeout=0.5):
                error = m.error()
                if error is None:
                    seen += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    partitions.discard((m.topic(), m.partition()))
    finally:
        consumer.close()
    return seen

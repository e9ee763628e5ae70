"""Kafka security on a real broker: an Apache Kafka node that serves only SASL_SSL (SCRAM-SHA-512) with a
throwaway CA, and ACLs enforced by KRaft's StandardAuthorizer as `healthbus topics acls --apply` sets them.

Clients connect with the settings users already have (HEALTHBUS_KAFKA_SECURITY_PROTOCOL, …): an adapter
publishes, the identify stage runs as a Faust worker process, a county system consumes; each forbidden
produce or consume fails with an authorization error, plaintext and a wrong CA are refused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from pydantic import SecretStr

from avro_schemas.serde import EventCodec
from avro_schemas.topics import (
    COLLAB_ROUTES,
    collab_topic_name,
    identified_topic,
    raw_topic,
    validated_topic,
)
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.stack.broker import (
    KraftCluster,
    SaslSslSecurity,
    broker_answers,
    private_cluster,
)
from ops.stack.postgres import private_database
from ops.topic_acls import upsert_scram_user
from ops.topic_admin import create_topics
from ops.worker_process import worker_env
from synthetic.outpatient_visits import outpatient_visits
from tests.conftest import healthbus
from tests.pipeline_harness import read_topic, read_until_ids, start_stage_worker
from tests.tls_certificates import Certificates, make_certificates

USERS = ("hb-adapter-411500", "hb-identify", "hb-county-411502", "hb-sink-postgres")


@dataclass
class SecureKafka:
    cluster: KraftCluster
    security: SaslSslSecurity
    certificates: Certificates
    passwords: dict[str, str]
    admin: Settings  # a super user's settings, with this module's topic prefix

    def as_user(self, user: str, **changes: object) -> Settings:
        return self.admin.model_copy(
            update={"kafka_sasl_username": user, "kafka_sasl_password": SecretStr(self.passwords[user]), **changes}
        )


@pytest.fixture(scope="module")
def secure_kafka(postgres_url: str) -> Iterator[SecureKafka]:
    root = Path(tempfile.mkdtemp(prefix="hb-kafka-tls-"))
    try:
        certificates = make_certificates(root)
        keystore = root / "keystore.pem"  # Kafka's PEM keystore: the key, then the certificate chain
        keystore.write_text(
            certificates.server_key.read_text() + certificates.server_cert.read_text() + certificates.ca.read_text()
        )
        security = SaslSslSecurity(
            keystore, certificates.ca, admin_password=secrets.token_hex(12), controller_password=secrets.token_hex(12)
        )
        with (
            private_cluster(root / "kafka", security=security) as cluster,
            private_database(postgres_url, f"hb_test_sasl_{uuid.uuid4().hex[:8]}") as database,
        ):
            admin = Settings(
                kafka_bootstrap=cluster.bootstrap,
                kafka_security_protocol="SASL_SSL",
                kafka_sasl_mechanism="SCRAM-SHA-512",
                kafka_sasl_username=security.admin_user,
                kafka_sasl_password=security.admin_password,
                kafka_ssl_cafile=certificates.ca,
                topic_prefix=f"s{uuid.uuid4().hex[:6]}-",
                group_prefix=f"gs{uuid.uuid4().hex[:6]}",
                postgres_url=database,
                state_dir=root / "state",
                chdb_path=root / "chdb",
                schema_registry_url=None,
            )
            create_topics(admin.confluent_config(), admin.topic_prefix)
            passwords = {user: secrets.token_hex(12) for user in USERS}
            for user, password in passwords.items():
                upsert_scram_user(admin.confluent_config(), user, password)
            applied = healthbus(
                "topics", "acls", "--adapter", USERS[0], "--county", USERS[2], "--apply", env=worker_env(admin)
            )
            assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
            assert "applied" in applied.stdout
            try:
                yield SecureKafka(cluster, security, certificates, passwords, admin)
            finally:
                cache = redis.Redis.from_url(admin.redis_url)
                keys = list(cache.scan_iter(match=f"hb:{admin.topic_prefix}*", count=1000))
                if keys:
                    cache.delete(*keys)
                cache.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _event_id(value: bytes) -> str:
    return str(EventCodec().decode(value).value["envelope"]["event_id"])


def _delivery_errors(conf: dict, topic: str, count: int = 1) -> list[KafkaError | None]:
    """Each message's delivery error (None: acknowledged). A principal that may write no topic at all cannot
    even get an idempotent producer id: the producer fails fatally, and that error stands for every message.
    (confluent-kafka raises it from inside a callback, where Python wraps it in a SystemError.)"""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**producer_config(conf), "message.timeout.ms": 15000})
    try:
        for i in range(count):
            producer.produce(topic, b"v", f"k{i}".encode(), on_delivery=lambda err, _m: outcomes.append(err))
        producer.flush(20)
    except (KafkaException, SystemError) as exc:
        cause = exc if isinstance(exc, KafkaException) else exc.__cause__ or exc.__context__
        if not isinstance(cause, KafkaException):
            raise
        return [cause.args[0]] * count
    return outcomes


def _first_consumer_error(conf: dict, topic: str, group: str, seconds: float = 15) -> KafkaError | None:
    """Subscribe (a group, as a real consumer does) and return the first error, or None if none came."""
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "log_level": 0})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is not None:
                return m.error()
            if m is not None:
                return None
        return None
    finally:
        consumer.close()


def test_an_adapter_publishes_its_raw_events_and_nothing_else(secure_kafka: SecureKafka) -> None:
    from producers.publisher import EventPublisher

    s = secure_kafka.as_user(USERS[0])
    visits = list(outpatient_visits(5, seed=3))
    publisher = EventPublisher(s.confluent_config(), EventCodec(), s.signing_key_for, s.topic_prefix)
    for visit in visits:
        publisher.publish("outpatient.visit", visit)
    publisher.flush()
    assert publisher.tally.acknowledged == 5 and not publisher.tally.failed
    raw = s.topic_name(raw_topic("outpatient.visit").name)
    assert len(read_topic(secure_kafka.admin, raw, expect=5, timeout=30)) == 5

    forbidden = s.topic_name(validated_topic("outpatient.visit").name)
    errors = _delivery_errors(s.confluent_config(), forbidden)
    assert [e.code() if e else None for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # An adapter reads nothing, not even what it wrote.
    error = _first_consumer_error(s.confluent_config(), raw, s.group_id("adapter-peek"))
    assert error is not None and error.code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    )


def test_the_identify_stage_runs_as_its_own_principal(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """A real Faust worker over SASL_SSL: reads raw.*, writes identified.* (and its own internal topics)."""
    from producers.publisher import EventPublisher

    adapter = secure_kafka.as_user(USERS[0])
    publisher = EventPublisher(adapter.confluent_config(), EventCodec(), adapter.signing_key_for, adapter.topic_prefix)
    visits = list(outpatient_visits(20, seed=5))
    for visit in visits:
        publisher.publish("outpatient.visit", visit)
    publisher.flush()
    wanted = {v["envelope"]["event_id"] for v in visits}

    stage = secure_kafka.as_user(USERS[1], state_dir=tmp_path / "state")
    log = tmp_path / "identify.log"
    worker = start_stage_worker(stage, log, "identify")
    try:
        identified = stage.topic_name(identified_topic("outpatient.visit").name)
        got = read_until_ids(secure_kafka.admin, identified, wanted, _event_id, timeout=90)
        assert wanted <= {_event_id(m.value()) for m in got}, log.read_text()[-3000:]
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
    forbidden = stage.topic_name(validated_topic("outpatient.visit").name)  # the quality stage's to write
    assert [e.code() if e else None for e in _delivery_errors(stage.confluent_config(), forbidden)] == [
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    ]
    error = _first_consumer_error(stage.confluent_config(), forbidden, stage.group_id("identify"))
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_the_postgres_sink_runs_as_its_own_principal(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """`healthbus sink postgres` over SASL_SSL as hb-sink-postgres: reads validated.*, lands every event once."""
    import psycopg

    admin, sink = secure_kafka.admin, secure_kafka.as_user(USERS[3], state_dir=tmp_path / "state")
    topic = admin.topic_name(validated_topic("outpatient.visit").name)
    codec, visits = EventCodec(), list(outpatient_visits(15, seed=9))
    producer = Producer(producer_config(admin.confluent_config()))
    for visit in visits:
        producer.produce(topic, codec.encode("outpatient.visit", visit, topic=topic), b"k")
    assert producer.flush(30) == 0
    wanted = [v["envelope"]["event_id"] for v in visits]
    log = tmp_path / "sink.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "sink", "postgres"],
            env=worker_env(sink),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline, stored = time.monotonic() + 60, 0
        while stored < len(wanted) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
            try:
                with psycopg.connect(sink.postgres_url) as conn:
                    row = conn.execute(
                        "SELECT count(DISTINCT event_id) FROM event_store WHERE event_id = ANY(%s::uuid[])", (wanted,)
                    ).fetchone()
                    stored = row[0] if row else 0
            except psycopg.errors.UndefinedTable:
                stored = 0
        assert stored == len(wanted), log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
    # Its principal may not write what a stage writes.
    refused = _delivery_errors(sink.confluent_config(), topic)
    assert refused[0] is not None and refused[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_county_reads_collaboration_topics_and_nothing_else(secure_kafka: SecureKafka) -> None:
    admin, county = secure_kafka.admin, secure_kafka.as_user(USERS[2])
    collab = admin.topic_name(collab_topic_name(COLLAB_ROUTES[0]))
    assert _delivery_errors(admin.confluent_config(), collab) == [None]
    group = f"{county.group_prefix}.county.{USERS[2]}.followups"
    consumer = Consumer(
        {**county.confluent_config(), "group.id": group, "auto.offset.reset": "earliest", "log_level": 0}
    )
    consumer.subscribe([collab])
    try:
        deadline, message = time.monotonic() + 30, None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None and message.value() == b"v"
        consumer.commit(message, asynchronous=False)  # its own group: commits are allowed
    finally:
        consumer.close()

    validated = county.topic_name(validated_topic("outpatient.visit").name)
    error = _first_consumer_error(county.confluent_config(), validated, group)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    error = _first_consumer_error(county.confluent_config(), collab, county.group_id("routing"))  # a stage's group
    assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    refused = _delivery_errors(county.confluent_config(), collab)[0]
    assert refused is not None and refused.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, refused


def _connection_error(conf: dict, seconds: float = 10) -> KafkaError | None:
    """The first error librdkafka reports while connecting (error_cb), or None if it connected."""
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    admin = AdminClient({**conf, "error_cb": errors.append, "log_level": 0})
    deadline = time.monotonic() + seconds
    while not errors and time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return None
        except Exception:
            admin.poll(0.1)
    return errors[0] if errors else None


def test_plaintext_a_wrong_ca_and_a_wrong_password_are_refused(secure_kafka: SecureKafka) -> None:
    admin = secure_kafka.admin
    assert _connection_error(admin.confluent_config()) is None
    assert not broker_answers(admin.kafka_bootstrap)  # plaintext: the listener closes the connection
    plaintext = _connection_error({"bootstrap.servers": admin.kafka_bootstrap})
    assert plaintext is not None and plaintext.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)
    wrong_ca = _connection_error(
        {**admin.confluent_config(), "ssl.ca.location": str(secure_kafka.certificates.other_ca)}
    )
    assert wrong_ca is not None and wrong_ca.code() == KafkaError._SSL
    assert "certificate verify failed" in wrong_ca.str()
    wrong_password = _connection_error({**admin.confluent_config(), "sasl.password": "not-the-password"})
    assert wrong_password is not None and wrong_password.code() == KafkaError._AUTHENTICATION


def test_topic_reads_through_the_cli_need_a_principal_with_rights(secure_kafka: SecureKafka) -> None:
    """The CLI uses the same settings: as the admin it lists the catalogue; as a county it sees only its topics."""
    listed = healthbus("topics", "list", env=worker_env(secure_kafka.admin))
    assert listed.returncode == 0 and " no\n" not in listed.stdout + "\n", listed.stdout[-2000:] + listed.stderr[-2000:]
    county = healthbus("topics", "list", env=worker_env(secure_kafka.as_user(USERS[2])))
    assert " no\n" in county.stdout  # topics it may not describe look absent to it

"""Transport security: PostgreSQL over verified TLS, exercised on a private cluster that refuses anything
else; the Kafka SASL_SSL/SCRAM settings as every client library receives them (the broker side is
exercised in test_kafka_security.py).

Throwaway certificates come from the ``openssl`` CLI (Debian's postgresql package depends on it)."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import KafkaException, Producer
from psycopg.conninfo import make_conninfo

from foundation.settings import Settings
from ops.stack.postgres import (
    ensure_database,
    postgres_bindir,
    start_private_cluster,
    stop_private_cluster,
)
from ops.stack.processes import free_port
from sinks.event_sink import SinkRecord
from sinks.postgres.event_store import PostgresEventStore
from synthetic.outpatient_visits import outpatient_visits
from tests.tls_certificates import Certificates, make_certificates


@pytest.fixture(scope="module")
def certificates() -> Iterator[Certificates]:
    if not shutil.which("openssl"):
        pytest.fail("the openssl CLI is missing (apt-get install openssl)")
    # World-traversable, because the server runs as the postgres user when we are root.
    root = Path(tempfile.mkdtemp(prefix="hb-tls-"))
    os.chmod(root, 0o755)
    try:
        yield make_certificates(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_postgres_url(certificates: Certificates) -> Iterator[str]:
    """A private cluster that accepts TLS only (hostssl), and a URL that verifies its certificate and name."""
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL server binaries are missing (apt-get install postgresql)")
    key = certificates.server_key
    os.chmod(key, 0o600)  # the server refuses a key others can read
    if os.geteuid() == 0:
        shutil.chown(key, "postgres", "postgres")
    data_dir = certificates.ca.parent / "data"
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/healthbus?sslmode=verify-full&sslrootcert={certificates.ca}"
    try:
        start_private_cluster(
            url,
            data_dir,
            certificates.ca.parent / "postgres.log",
            server_settings={"ssl": "on", "ssl_cert_file": str(certificates.server_cert), "ssl_key_file": str(key)},
            hba_rules=["hostssl all all 127.0.0.1/32 trust"],
        )
        ensure_database(url)  # the stack's own helper, through a conninfo derived from the URL
        yield url
    finally:
        stop_private_cluster(data_dir)


def test_event_store_writes_over_verified_tls(tls_postgres_url: str) -> None:
    s = Settings(postgres_url=tls_postgres_url)
    store = PostgresEventStore(s.postgres_url)  # the PostgreSQL sink, configured as in production
    records = [
        SinkRecord("outpatient.visit", v, "validated.outpatient.visit", 0, i)
        for i, v in enumerate(outpatient_visits(20, seed=8))
    ]
    try:
        assert store.write(records) == 20
        with psycopg.connect(s.postgres_url) as conn:
            own = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            backends = conn.execute(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.datname = current_database() AND a.backend_type = 'client backend'"
            ).fetchone()
            stored = conn.execute("SELECT count(*) FROM event_store").fetchone()[0]
    finally:
        store.close()
    assert own[0] is True and own[1].startswith("TLSv1.")
    assert backends == (2, 2)  # this connection and the sink's: both encrypted
    assert stored == 20


def test_a_client_without_tls_is_refused(tls_postgres_url: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(make_conninfo(tls_postgres_url, sslmode="disable"), connect_timeout=5)


def test_a_server_certificate_from_another_ca_fails_verification(
    tls_postgres_url: str, certificates: Certificates
) -> None:
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(make_conninfo(tls_postgres_url, sslrootcert=str(certificates.other_ca)), connect_timeout=5)


def test_kafka_sasl_ssl_settings_reach_librdkafka_and_faust_alike(certificates: Certificates, tmp_path: Path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.faust_runtime.app import make_app

    s = Settings(
        kafka_bootstrap="127.0.0.1:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="adapter-411500",
        kafka_sasl_password="not-a-real-password",
        kafka_ssl_cafile=certificates.ca,
        state_dir=tmp_path,
    )
    conf = s.confluent_config()
    assert {
        k: conf[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location")
    } == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "adapter-411500",
        "sasl.password": "not-a-real-password",
        "ssl.ca.location": str(certificates.ca),
    }
    Producer(conf).flush(0)  # librdkafka accepts it: SCRAM support built in, the CA file loads
    with pytest.raises(KafkaException):  # ... and really reads the CA: a missing one is refused at once
        Producer({**conf, "ssl.ca.location": str(tmp_path / "missing.pem")})

    # Faust's consumers and producers (aiokafka) get the same identity and trust the same CA.
    auth = credentials_to_aiokafka_auth(make_app(s, "security-check").conf.broker_credentials)
    assert (
        auth["security_protocol"],
        auth["sasl_mechanism"],
        auth["sasl_plain_username"],
        auth["sasl_plain_password"],
    ) == ("SASL_SSL", "SCRAM-SHA-512", "adapter-411500", "not-a-real-password")
    ca_der = ssl.PEM_cert_to_DER_cert(certificates.ca.read_text())
    assert auth["ssl_context"].get_ca_certs(binary_form=True) == [ca_der]
    assert auth["ssl_context"].verify_mode is ssl.CERT_REQUIRED and auth["ssl_context"].check_hostname
    direct = s.aiokafka_config()  # the plain aiokafka clients (status, lag)
    assert (direct["security_protocol"], direct["sasl_mechanism"], direct["sasl_plain_username"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "adapter-411500",
    )
    assert direct["ssl_context"].get_ca_certs(binary_form=True) == [ca_der]

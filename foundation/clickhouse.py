"""ClickHouse: a server over HTTP when ``clickhouse_url`` is set, else the chDB directory ``chdb_path``.

chDB admits one process per data directory, so the local stack runs one process that owns it and serves
ClickHouse's HTTP interface on 127.0.0.1 (ops/stack/clickhouse_server.py), announcing itself in a file
beside the directory; every other process that asks for that directory is sent there, over the same HTTP
client as with a production server, so sinks, reports and monitors run side by side. Without such a server
(a test's private directory, a benchmark's run) the directory is opened in-process. Either way the caller
gets a clickhouse-connect client and cannot tell which (docs/operations.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse (server or chDB) could not be opened; the message says how to fix it."""


def server_file(chdb_path: Path) -> Path:
    """Where the process serving ``chdb_path`` says which port it listens on (beside the directory, not in it)."""
    return chdb_path.parent / f"{chdb_path.name}.server.json"


def announce_server(chdb_path: Path, port: int) -> None:
    server_file(chdb_path).write_text(json.dumps({"pid": os.getpid(), "port": port}))


def withdraw_server(chdb_path: Path) -> None:
    path = server_file(chdb_path)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def served_at(chdb_path: Path) -> str | None:
    """``http://127.0.0.1:PORT`` of the live process that serves ``chdb_path``, if there is one."""
    try:
        found = json.loads(server_file(chdb_path).read_text())
        os.kill(int(found["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://127.0.0.1:{int(found['port'])}"


def open_clickhouse(clickhouse_url: str | None, chdb_path: Path, database: str) -> Any:
    """A clickhouse-connect client with ``database`` created and selected."""
    import clickhouse_connect

    clickhouse_url = clickhouse_url or served_at(chdb_path)

    if clickhouse_url:
        parts = urlsplit(clickhouse_url)
        try:
            client = clickhouse_connect.get_client(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 8123,
                username=parts.username or "default",
                password=parts.password or "",
                secure=parts.scheme == "https",
                connect_timeout=5,
            )
        except Exception as exc:
            raise ClickHouseUnavailable(
                f"clickhouse: {parts.hostname}:{parts.port} does not answer ({exc}). "
                "Fix: start it, or unset HEALTHBUS_CLICKHOUSE_URL to use embedded chDB."
            ) from exc
    else:
        chdb_path.mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(interface="chdb", path=str(chdb_path))
        except Exception as exc:
            raise ClickHouseUnavailable(
                f"clickhouse (chDB at {chdb_path}): {exc}. Fix: pip install 'clickhouse-connect[chdb]'; "
                "only one process may open a chDB path at a time."
            ) from exc
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    return client


def chdb_available() -> bool:
    try:
        import chdb  # noqa: F401
    except ImportError:
        return False
    return True

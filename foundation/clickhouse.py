"""ClickHouse: a server over HTTP when ``clickhouse_url`` is set, else embedded chDB (docs/operations.md).

Both are driven through clickhouse-connect's client API, so sinks and reports don't care which.
chDB allows one process per data directory: the process that writes analytics owns it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse (server or chDB) could not be opened; the message says how to fix it."""


def open_clickhouse(clickhouse_url: str | None, chdb_path: Path, database: str) -> Any:
    """A clickhouse-connect client with ``database`` created and selected."""
    import clickhouse_connect

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

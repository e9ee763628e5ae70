"""Apply the exchange-database DDL (for synthetic sources, tests, and hospitals setting one up)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

SourceKind = Literal["hospital", "county"]
DDL_DIR = Path(__file__).parent


def ddl_text(kind: SourceKind) -> str:
    return (DDL_DIR / f"{kind}.sql").read_text("utf-8")


def create_exchange_schema(conn: psycopg.Connection, kind: SourceKind, schema: str | None = None) -> None:
    """Create the tables (in ``schema`` when given: several institutions can share one test database)."""
    with conn.transaction():
        if schema:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(ddl_text(kind))

"""ClickHouse's HTTP interface in front of embedded chDB, so several processes can share one chDB directory.

chDB locks its data directory (``<path>/status``): only one process may open it. This server is that one
process. Every other process (sinks, reports, monitors) talks to it with the ordinary HTTP client of
clickhouse-connect, exactly as it talks to a production ClickHouse server::

    python -m ops.stack.clickhouse_server --path state/chdb --port 8123
    clickhouse_connect.get_client(host="127.0.0.1", port=8123)

What it implements is the part of the HTTP interface clickhouse-connect's HTTP client uses
(clickhouse_connect/driver/_backend/httpcommon.py and http_sync.py):

* ``GET /ping`` (and ``GET /``, ``GET /replicas_status``) answer ``Ok.``;
* a query in the ``query`` URL parameter, the request body, or both (then the body continues the query
  after a newline, as ClickHouse joins them), or in a ``multipart/form-data`` / urlencoded form field;
* ``database``, ``default_format``, ``query_id``, ``session_id``, ``session_timeout``, ``session_check``,
  ``close_session``; ``param_<name>`` values for ``{name:Type}`` placeholders; every other parameter is a
  ClickHouse setting for this one query;
* request bodies sent with ``Transfer-Encoding: chunked`` and ``Content-Encoding`` lz4, zstd, gzip, deflate
  (and br when the brotli package is installed). Answers are never compressed (127.0.0.1 only);
* ``INSERT ... FORMAT <fmt>`` followed by data (how ``client.insert`` sends a Native block): the data goes
  to a temporary file and runs as ``INSERT ... FROM INFILE``, as chDB's own clickhouse-connect backend
  (chdb/cc_backend.py) does it;
* the answer headers the client reads: X-ClickHouse-Query-Id, X-ClickHouse-Format (only for statements
  with a result set: ``command()`` tells "empty result" from "no result" by it), X-ClickHouse-Timezone,
  X-ClickHouse-Summary (read/written rows and bytes from chDB), and on failure HTTP 500 with
  X-ClickHouse-Exception-Code and the body ``Code: N. DB::Exception: ... (NAME) (version V)``, which
  clickhouse-connect raises as a DatabaseError carrying that text.

Sessions. clickhouse-connect sends a ``session_id`` per client by default, and our code relies on what a
ClickHouse session gives: ``CREATE TEMPORARY TABLE`` (sinks/clickhouse/event_log.py) is private to the
session. chDB opens several connections on one data directory inside one process, each with its own query
context (temporary tables, SET, USE) over the same tables (checked with chdb 4.4.0 / chdb-core 26.9; the
comments in chdb/cc_backend.py say older releases deadlock on a second connection). So every HTTP session
gets its own chDB connection, dropped after ``session_timeout`` seconds idle (default 60, as ClickHouse); a
request without a session runs on a fresh connection closed right after it. Every chDB call of every connection
runs under one lock: one statement at a time, whoever sends it.

Settings never leak: the URL settings of a request are SET on its connection before the statement and set
back to the connection's own value before the next request on that connection that doesn't ask for them
(so a client sending the same settings every time costs no SET at all). A ``SET`` statement in a session
persists in that session, as in ClickHouse; a ``USE`` too. ``readonly`` cannot be set back once set, so a
request asking for it runs on a fresh connection (without the session's temporary tables).

Not implemented: external data (``multipart`` file parts), ClickHouse's own block compression
(``compress=1`` / ``decompress=1``), ``client_protocol_version`` (ignored: chDB's Native output has no block
info, so the client keeps protocol 0), progress headers and ``wait_end_of_query`` (answers are always
complete; the whole result is held in memory), authentication (the server only binds to a loopback
address), GET-means-readonly, ``KILL QUERY``/cancel on disconnect, and TLS.

Privacy: queries and data may carry medical data. Nothing here logs query text, parameters or ClickHouse
error messages (they quote values); a failed query is logged with its query id and error code only. The
standard access log is off, since its request line holds the URL and so the SQL.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import gzip
import ipaddress
import json
import logging
import os
import re
import signal
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from foundation.clickhouse import announce_server, withdraw_server

log = logging.getLogger("ops.stack.clickhouse_server")  # also under `python -m`

# ClickHouse error codes used for errors raised here rather than by chDB (src/Common/ErrorCodes.cpp).
SYNTAX_ERROR = 62
NOT_IMPLEMENTED = 48
UNKNOWN_SETTING = 115
ABORTED = 236
CANNOT_DECOMPRESS = 271
SESSION_NOT_FOUND = 372
INVALID_SESSION_TIMEOUT = 374
UNKNOWN_EXCEPTION = 1002

_ERROR_NAMES = {
    SYNTAX_ERROR: "SYNTAX_ERROR",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    ABORTED: "ABORTED",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}

# URL parameters that are about the HTTP request, not ClickHouse settings of the query.
_REQUEST_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "user",
        "password",
        "quota_key",
        "role",
        "stacktrace",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "compress",
        "decompress",
    }
)
# Settings only the HTTP layer of a ClickHouse server reads; here they mean nothing (answers are complete and
# uncompressed), so they are not SET. clickhouse-connect sends the first three with every request.
_HTTP_ONLY_SETTINGS = frozenset(
    {
        "enable_http_compression",
        "send_progress_in_http_headers",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
    }
)
# A setting that cannot be set back in the same connection once on.
_IRREVERSIBLE_SETTINGS = frozenset({"readonly"})

MAX_URI_SIZE = 1 << 20  # ClickHouse's http_max_uri_size
DEFAULT_SESSION_TIMEOUT = 60.0  # ClickHouse's default_session_timeout
MAX_SESSION_TIMEOUT = 3600.0  # ClickHouse's max_session_timeout

_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_CHDB_ERROR = re.compile(r"Code: (\d+)\.")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]*)\)\s*$")
# The FORMAT clause closing a statement (ClickHouse also accepts SETTINGS after it).
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*(?:SETTINGS\b.*)?;?\s*\Z", re.IGNORECASE | re.DOTALL)
# Statements that produce a result set, by their first keyword: the answer then names its format.
_RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "VALUES"})
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8",
}


class ClickHouseError(Exception):
    """A failed request, answered the way a ClickHouse server answers it."""

    def __init__(self, code: int, text: str, http_status: int = 500) -> None:
        super().__init__(text)
        self.code = code
        self.text = text  # "Code: N. DB::Exception: ... (NAME)"; may quote data, so it is never logged
        self.http_status = http_status

    @property
    def name(self) -> str:
        """The symbolic error name (UNKNOWN_TABLE, ...): safe to log, unlike the message."""
        found = _ERROR_NAME.search(self.text)
        return found.group(1) if found else _ERROR_NAMES.get(self.code, "UNKNOWN")

    @classmethod
    def of(cls, code: int, message: str, http_status: int = 500) -> ClickHouseError:
        name = _ERROR_NAMES.get(code, "UNKNOWN_EXCEPTION")
        return cls(code, f"Code: {code}. DB::Exception: {message}. ({name})", http_status)

    @classmethod
    def from_chdb(cls, exc: Exception) -> ClickHouseError:
        """chDB raises its errors as ``Code: N. DB::Exception: ... (NAME)``, the text a server would send."""
        message = str(exc)
        found = _CHDB_ERROR.search(message)
        if found is None:
            return cls.of(UNKNOWN_EXCEPTION, message.strip() or type(exc).__name__)
        return cls(int(found.group(1)), message[found.start() :].strip())


# --- SQL text: just enough lexing to find where an INSERT's data begins ---------------------------------------


def _skip_blanks(buf: bytes, i: int) -> int:
    """Past whitespace and ``--`` / ``/* */`` comments."""
    n = len(buf)
    while i < n:
        if buf[i] in b" \t\r\n\f\v":
            i += 1
        elif buf.startswith(b"--", i):
            end = buf.find(b"\n", i)
            i = n if end < 0 else end + 1
        elif buf.startswith(b"/*", i):
            end = buf.find(b"*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            break
    return i


def _skip_quoted(buf: bytes, i: int) -> int:
    """Past the quoted literal or identifier starting at ``buf[i]`` (backslash escapes, doubled quotes)."""
    quote, n = buf[i], len(buf)
    i += 1
    while i < n:
        if buf[i] == 0x5C:  # backslash
            i += 2
        elif buf[i] == quote:
            if i + 1 < n and buf[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def statement_kind(buf: bytes) -> str:
    """The statement's first keyword, upper case ("SELECT", "INSERT", "SET", ...); "" if none."""
    i = _skip_blanks(buf, 0)
    while i < len(buf) and buf[i] == ord("("):
        i = _skip_blanks(buf, i + 1)
    word = _WORD.match(buf, i)
    return word.group().decode().upper() if word else ""


@dataclass(frozen=True)
class InlineInsert:
    """``INSERT INTO t [(cols)] [SETTINGS ...] FORMAT fmt`` followed by the data, split apart."""

    head: bytes  # the statement before FORMAT
    settings_at: int | None  # where its SETTINGS clause starts, if it has one
    fmt: str
    data_start: int  # offset of the first data byte in the request text


def find_inline_data(buf: bytes, scan_limit: int = 1 << 20) -> InlineInsert | None:
    """Where the data of an ``INSERT ... FORMAT`` starts, following ClickHouse's rule: after the format name,
    skip spaces and tabs, then one line break. None for any other statement (``INSERT ... VALUES``,
    ``INSERT ... SELECT``, ``FROM INFILE``), which chDB runs as it is."""
    i = _skip_blanks(buf, 0)
    word = _WORD.match(buf, i)
    if word is None or word.group().upper() != b"INSERT":
        return None
    i, depth, settings_at = word.end(), 0, None
    limit = min(len(buf), scan_limit)
    while i < limit:
        i = _skip_blanks(buf, i)
        if i >= limit:
            break
        char = buf[i]
        if char in b"'\"`":
            i = _skip_quoted(buf, i)
            continue
        if char == ord("("):
            depth, i = depth + 1, i + 1
            continue
        if char == ord(")"):
            depth, i = depth - 1, i + 1
            continue
        word = _WORD.match(buf, i)
        if word is None:
            i += 1
            continue
        start, i, keyword = i, word.end(), word.group().upper()
        if depth:
            continue  # a column name in the column list, whatever it is called
        if keyword == b"FORMAT":
            name = _WORD.match(buf, _skip_blanks(buf, i))
            if name is None:
                return None
            end = name.end()
            while end < len(buf) and buf[end] in b" \t\f":
                end += 1
            if end < len(buf) and buf[end] == 0x0D:
                end += 1
            if end < len(buf) and buf[end] == 0x0A:
                end += 1
            return InlineInsert(buf[:start], settings_at, name.group().decode(), end)
        if keyword in (b"VALUES", b"SELECT", b"WITH", b"FROM"):
            return None
        if keyword == b"SETTINGS":
            settings_at = start
    return None


def sql_string(text: str) -> str:
    """A single-quoted ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def infile_insert(insert: InlineInsert, path: str) -> str:
    """The INSERT rewritten to read its data from ``path``: FROM INFILE goes before any SETTINGS clause. Line
    breaks around it, so a ``--`` comment in the statement cannot swallow it."""
    infile = f"\nFROM INFILE {sql_string(path)} COMPRESSION 'none'\n"
    at = len(insert.head) if insert.settings_at is None else insert.settings_at
    before, after = insert.head[:at].decode("utf-8"), insert.head[at:].decode("utf-8")
    settings = f"{after}\n" if after else ""
    return f"{before}{infile}{settings}FORMAT {insert.fmt}"


# --- request bodies ---------------------------------------------------------------------------------------------


def _lz4_decompress(data: bytes) -> bytes:
    """lz4 frames, one after another (clickhouse-connect compresses each Native block as its own frame)."""
    import lz4.frame

    out: list[bytes] = []
    rest = data
    while rest:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out.append(decompressor.decompress(rest))
        if not decompressor.eof:
            raise ValueError("truncated lz4 frame")
        rest = decompressor.unused_data
    return b"".join(out)


def _zstd_decompress(data: bytes) -> bytes:
    """zstd frames, one after another: clickhouse-connect's zstd is PEP 784's API (backports.zstd before 3.14)."""
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef,unused-ignore]
    result: bytes = zstd.decompress(data)
    return result


def decompress(data: bytes, encoding: str) -> bytes:
    """A request body as sent with ``Content-Encoding: encoding``."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return data
        if encoding == "lz4":
            return _lz4_decompress(data)
        if encoding == "zstd":
            return _zstd_decompress(data)
        if encoding in ("gzip", "x-gzip"):
            return gzip.decompress(data)
        if encoding == "deflate":
            return zlib.decompress(data)
        if encoding == "br":
            try:
                import brotli  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise ClickHouseError.of(NOT_IMPLEMENTED, "br request bodies need the brotli package") from None
            result: bytes = brotli.decompress(data)
            return result
    except ClickHouseError:
        raise
    except Exception as exc:
        raise ClickHouseError.of(CANNOT_DECOMPRESS, f"Cannot decompress the {encoding} request body") from exc
    raise ClickHouseError.of(NOT_IMPLEMENTED, f"Unknown Content-Encoding {encoding!r}")


def form_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a form body (clickhouse-connect sends ``query`` and ``param_*`` this way when the bound
    parameters are too long for a URL). File parts would be external tables, which are not implemented."""
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: list[tuple[str, str]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_filename() is not None:
            raise ClickHouseError.of(NOT_IMPLEMENTED, "External data (form file parts) is not supported")
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields.append((name, payload.decode("utf-8")))
    return fields


# --- the engine: chDB connections on one data directory ---------------------------------------------------------


@dataclass
class QueryRequest:
    """One HTTP request, parsed: what to run, and in which context."""

    sql: str | bytes  # bytes when the client bound binary values that are not UTF-8
    kind: str
    query_id: str
    params: dict[str, str] = field(default_factory=dict)  # {name:Type} placeholder values, ClickHouse-escaped
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    default_format: str = "TabSeparated"
    session_id: str | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    session_check: bool = False
    close_session: bool = False


@dataclass
class QueryAnswer:
    body: bytes
    fmt: str | None  # the output format, when the statement has a result set
    timezone: str
    summary: dict[str, str]


@dataclass
class _Connection:
    """A chDB connection and what this server changed in its context."""

    session: Any  # chdb.session.Session
    ephemeral: bool  # closed after one request: nothing to set back
    own_database: str = "default"  # its database, as USE statements left it
    current_database: str | None = None  # what chDB has selected now (None: not known)
    url_settings: dict[str, str] = field(default_factory=dict)  # settings SET for a request's URL parameters
    restore: dict[str, str | None] = field(default_factory=dict)  # their values before that (None: DEFAULT)
    timeout: float = DEFAULT_SESSION_TIMEOUT
    last_used: float = 0.0
    broken: bool = False

    def run(self, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self.session.query(sql, fmt, params=params or {})
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from exc


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class ChdbEngine:
    """One chDB data directory for one process; each HTTP session gets its own chDB connection on it, and one
    lock runs the statements of all of them one at a time."""

    def __init__(self, path: Path) -> None:
        from chdb.session import Session

        self._session_class = Session
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # The first connection starts the embedded engine and takes the directory's lock; it stays open
        # (and unused by clients) so the engine lives as long as the server, whatever clients come and go.
        self._anchor = _Connection(Session(str(path)), ephemeral=False)
        version_tz = self._anchor.run("SELECT version(), timezone()").bytes().decode().rstrip("\n")
        self.version, self.timezone = version_tz.split("\t")
        self._sessions: dict[str, _Connection] = {}
        self._closed = False

    def execute(self, request: QueryRequest) -> QueryAnswer:
        with self._lock:
            if self._closed:
                raise ClickHouseError.of(ABORTED, "Server is shutting down", http_status=503)
            now = time.monotonic()
            self._expire_sessions(now)
            conn = self._connection_for(request)
            try:
                return self._run(conn, request)
            finally:
                conn.last_used = time.monotonic()
                if conn.ephemeral:
                    self._close(conn)
                elif conn.broken or request.close_session:
                    self._sessions.pop(request.session_id or "", None)
                    self._close(conn)

    def close(self) -> None:
        """Waits for the statement running now, then closes every connection (the engine shuts down last)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._sessions.values():
                self._close(conn)
            self._sessions.clear()
            self._close(self._anchor)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # -- connections --

    def _new_connection(self, ephemeral: bool) -> _Connection:
        try:
            return _Connection(self._session_class(str(self.path)), ephemeral=ephemeral)
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from exc

    def _connection_for(self, request: QueryRequest) -> _Connection:
        if request.session_id is None or _IRREVERSIBLE_SETTINGS & request.settings.keys():
            return self._new_connection(ephemeral=True)
        conn = self._sessions.get(request.session_id)
        if conn is None:
            if request.session_check:
                raise ClickHouseError.of(SESSION_NOT_FOUND, "Session not found")
            conn = self._sessions[request.session_id] = self._new_connection(ephemeral=False)
        conn.timeout = request.session_timeout
        return conn

    def _expire_sessions(self, now: float) -> None:
        """ClickHouse closes a session idle for its timeout; so its temporary tables go."""
        for session_id, conn in list(self._sessions.items()):
            if now - conn.last_used > conn.timeout:
                del self._sessions[session_id]
                self._close(conn)

    @staticmethod
    def _close(conn: _Connection) -> None:
        try:
            conn.session.close()
        except Exception:
            log.warning("closing a chDB connection failed", exc_info=True)

    # -- one statement --

    def _run(self, conn: _Connection, request: QueryRequest) -> QueryAnswer:
        self._select_database(conn, request.database or conn.own_database)
        # A SET statement changes the session's own settings: run it with none of the request's applied.
        self._apply_settings(conn, {} if request.kind == "SET" else request.settings)
        result = conn.run(request.sql, request.default_format, request.params)
        body: bytes = result.bytes()
        if request.kind == "USE" and not conn.ephemeral:
            conn.own_database = conn.run("SELECT currentDatabase()").bytes().decode().rstrip("\n")
            conn.current_database = conn.own_database
        fmt = None
        if body or request.kind in _RESULT_KINDS:
            sql = request.sql if isinstance(request.sql, str) else request.sql.decode("utf-8", "replace")
            trailing = _TRAILING_FORMAT.search(sql[-2000:])
            fmt = trailing.group(1) if trailing else request.default_format
        rows_read, bytes_read = result.rows_read(), result.bytes_read()
        summary = {
            "read_rows": str(rows_read),
            "read_bytes": str(bytes_read),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "total_rows_to_read": str(rows_read),
            "result_bytes": str(len(body)),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        timezone = request.settings.get("session_timezone") or self.timezone
        return QueryAnswer(body, fmt, timezone, summary)

    @staticmethod
    def _select_database(conn: _Connection, database: str) -> None:
        if conn.current_database != database:
            conn.run(f"USE {sql_identifier(database)}")
            conn.current_database = database

    def _apply_settings(self, conn: _Connection, wanted: dict[str, str]) -> None:
        """Make the connection's settings its own plus exactly ``wanted``: SET what differs, set back what a
        previous request set and this one doesn't ask for."""
        for name in [n for n in conn.url_settings if n not in wanted]:
            before = conn.restore.pop(name, None)
            del conn.url_settings[name]
            try:
                conn.run(f"SET {name} = {'DEFAULT' if before is None else sql_string(before)}")
            except ClickHouseError:
                conn.broken = True  # its settings are no longer known: it is closed after this request
                raise
        changes = {n: v for n, v in wanted.items() if conn.url_settings.get(n) != v}
        if not changes:
            return
        if not conn.ephemeral:
            self._remember_settings(conn, [n for n in changes if n not in conn.restore])
        for name, value in changes.items():
            conn.run(f"SET {name} = {sql_string(value)}")
            conn.url_settings[name] = value

    @staticmethod
    def _remember_settings(conn: _Connection, names: Sequence[str]) -> None:
        """The connection's current values of these settings, to set them back later."""
        if not names:
            return
        listed = ", ".join(sql_string(n) for n in names)
        rows = conn.run(
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})", "JSONCompactEachRow"
        )
        values: dict[str, str | None] = {}
        for line in rows.bytes().decode().splitlines():
            name, value, changed = json.loads(line)
            values[name] = value if changed else None
        for name in names:
            conn.restore[name] = values.get(name)  # an unknown name: its SET fails, nothing to set back


# --- HTTP ----------------------------------------------------------------------------------------------------


def build_request(params: dict[str, str], body: bytes, query_id: str) -> tuple[QueryRequest, Path | None]:
    """The statement and its context from the URL parameters and the (decompressed) body. An INSERT's inline
    data goes to a temporary file, returned for the caller to delete."""
    if _truthy(params.get("compress")) or _truthy(params.get("decompress")):
        raise ClickHouseError.of(NOT_IMPLEMENTED, "ClickHouse block compression (compress/decompress) is not supported")
    query = params.get("query", "")
    if query and body:
        text = query.encode("utf-8") + b"\n" + body  # ClickHouse reads the body as the query's continuation
    else:
        text = query.encode("utf-8") if query else body
    if not text.strip():
        raise ClickHouseError.of(SYNTAX_ERROR, "Empty query")
    kind = statement_kind(text)
    spool: Path | None = None
    sql: str | bytes
    insert = find_inline_data(text) if kind == "INSERT" else None
    if insert is not None:
        fd, name = tempfile.mkstemp(prefix="chdb-http-insert-", suffix=".data")
        spool = Path(name)
        with os.fdopen(fd, "wb") as out:
            out.write(memoryview(text)[insert.data_start :])
        try:
            sql = infile_insert(insert, name)
        except UnicodeDecodeError:
            spool.unlink()
            raise ClickHouseError.of(SYNTAX_ERROR, "The INSERT statement is not UTF-8") from None
    else:
        try:
            sql = text.decode("utf-8")
        except UnicodeDecodeError:
            sql = text  # bound binary values: chDB takes the bytes as they are
    request = QueryRequest(sql=sql, kind=kind, query_id=query_id)
    for key, value in params.items():
        if key.startswith("param_"):
            request.params[key[len("param_") :]] = value
        elif key in _REQUEST_PARAMS or key in _HTTP_ONLY_SETTINGS or key.startswith("http_"):
            continue
        elif not _SETTING_NAME.match(key):
            if spool is not None:
                spool.unlink()
            raise ClickHouseError.of(UNKNOWN_SETTING, f"Unknown setting {key!r}")
        else:
            request.settings[key] = value
    request.database = params.get("database") or None
    request.default_format = params.get("default_format") or "TabSeparated"
    request.session_id = params.get("session_id") or None
    request.session_check = _truthy(params.get("session_check"))
    request.close_session = _truthy(params.get("close_session"))
    if params.get("session_timeout"):
        try:
            timeout = float(params["session_timeout"])
        except ValueError:
            timeout = -1.0
        if not 0 <= timeout <= MAX_SESSION_TIMEOUT:
            if spool is not None:
                spool.unlink()
            raise ClickHouseError.of(
                INVALID_SESSION_TIMEOUT, f"Session timeout must be in [0, {MAX_SESSION_TIMEOUT:.0f}]"
            )
        request.session_timeout = timeout
    return request, spool


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """A thread per connection; the engine's lock runs one statement at a time. Threads are daemons so idle
    keep-alive connections don't hold up shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, engine: ChdbEngine, host: str, port: int) -> None:
        self.engine = engine
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: ClickHouseHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools its connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait for an ACK between
    server_version = "healthbus-chdb-http"
    sys_version = ""

    def handle_one_request(self) -> None:
        """http.server's, with ClickHouse's URL limit (http_max_uri_size, 1 MiB) instead of 64 KiB: a command's
        bound parameters always travel in the URL."""
        try:
            self.raw_requestline = self.rfile.readline(MAX_URI_SIZE + 1)
            if len(self.raw_requestline) > MAX_URI_SIZE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            handler = getattr(self, "do_" + self.command, None)
            if handler is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            handler()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Off: http.server's access log prints the request line, whose URL holds the query."""

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, ConnectionError, OSError):
            self.close_connection = True
            self._send(400, b"Cannot read the request body\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        self._handle(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("request body cut short")
        return body

    def _read_chunked(self) -> bytes:
        """urllib3 streams a generator body (clickhouse-connect's inserts) in chunks."""
        chunks: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537)
            if not size_line:
                raise ConnectionError("request body cut short")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ConnectionError("request body cut short")
            chunks.append(chunk)
            self.rfile.readline(3)  # the CRLF closing the chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields
        return b"".join(chunks)

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path in ("/ping", "/replicas_status") or (url.path == "/" and not params and not body):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if url.path != "/":
            self._send(404, b"There is no handle " + url.path.encode() + b"\n", {"Content-Type": "text/plain"})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        engine = self.server.engine
        spool: Path | None = None
        started = time.perf_counter()
        try:
            body = decompress(body, self.headers.get("Content-Encoding", ""))
            content_type = self.headers.get("Content-Type", "")
            if content_type.lower().startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
                params.update(form_fields(content_type, body))
                body = b""
            request, spool = build_request(params, body, query_id)
            answer = engine.execute(request)
        except ClickHouseError as exc:
            log.warning("query %s failed: code %d (%s)", query_id, exc.code, exc.name)
            self._send(
                exc.http_status,
                f"{exc.text} (version {engine.version})\n".encode(),
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(exc.code),
                    "X-ClickHouse-Query-Id": query_id,
                    "X-ClickHouse-Timezone": engine.timezone,
                },
            )
            return
        except Exception:
            log.exception("query %s: unexpected server error", query_id)
            self.close_connection = True
            self._send(
                500,
                f"Code: {UNKNOWN_EXCEPTION}. DB::Exception: Internal server error. (UNKNOWN_EXCEPTION)\n".encode(),
                {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(UNKNOWN_EXCEPTION)},
            )
            return
        finally:
            if spool is not None:
                spool.unlink(missing_ok=True)
        headers = {
            "Content-Type": _CONTENT_TYPES.get(answer.fmt or "", "application/octet-stream")
            if answer.fmt
            else "text/plain; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": answer.timezone,
            "X-ClickHouse-Summary": json.dumps(answer.summary, separators=(",", ":")),
        }
        if answer.fmt:
            headers["X-ClickHouse-Format"] = answer.fmt
        self._send(200, answer.body, headers)
        log.debug("query %s: %d bytes in %.1f ms", query_id, len(answer.body), (time.perf_counter() - started) * 1e3)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


# --- entry points ---------------------------------------------------------------------------------------------


def _check_loopback(host: str) -> None:
    """No authentication, so no address other machines could reach."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or ":" in host:
        raise ValueError(f"clickhouse_server binds to an IPv4 loopback address only, not {host!r}")


def serve(path: Path, port: int, host: str = "127.0.0.1") -> None:
    """Serve the chDB directory ``path`` over ClickHouse's HTTP interface on ``host:port`` until SIGTERM or
    SIGINT, then finish the statement running, close chDB and return. Call it from the main thread."""
    _check_loopback(host)
    engine = ChdbEngine(Path(path))
    try:
        server = ClickHouseHTTPServer(engine, host, port)
    except BaseException:
        engine.close()
        raise
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="clickhouse-http")
    worker.start()
    announce_server(Path(path), server.server_address[1])  # other processes asking for this directory come here
    log.info(
        "ClickHouse HTTP on http://%s:%d for chDB %s at %s",
        host,
        server.server_address[1],
        engine.version,
        path,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        withdraw_server(Path(path))
        server.shutdown()
        worker.join()
        server.server_close()
        engine.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("ClickHouse HTTP on %s:%d stopped; chDB closed", host, port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.stack.clickhouse_server",
        description="Serve an embedded chDB directory over ClickHouse's HTTP interface on 127.0.0.1.",
    )
    parser.add_argument("--path", type=Path, required=True, help="chDB data directory (created if missing)")
    parser.add_argument("--port", type=int, default=8123, help="TCP port (default 8123)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG logs one line per query: id, size, time")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(args.path, args.port, args.host)
    except Exception as exc:  # chDB could not open the directory (another process has it), port taken, ...
        log.error("cannot serve %s on %s:%d: %s", args.path, args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

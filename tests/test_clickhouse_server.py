"""ops/stack/clickhouse_server.py: one process owns the chDB directory and serves ClickHouse's HTTP interface;
every other process uses clickhouse-connect's ordinary HTTP client, as against a production server.

Each test starts the server as a subprocess on a free port with its own data directory and stops it (SIGTERM)
before it ends; the clients are the real ``clickhouse_connect.get_client(host=..., port=...)``.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.summary import QuerySummary

from ops.stack.clickhouse_server import find_inline_data, infile_insert

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
UTC = dt.UTC


# --- the server process -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def client(self, **options: Any) -> Any:
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, **options)

    def stop(self) -> int:
        """SIGTERM, as the stack stops it; the exit code (0: chDB closed cleanly)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("clickhouse_server did not stop on SIGTERM") from None
        return int(self.proc.returncode)


def _pings(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as answer:
            return bool(answer.read() == b"Ok.\n")
    except OSError:
        return False


def start_server(data_dir: Path, log: Path) -> Server:
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops.stack.clickhouse_server", "--path", str(data_dir), "--port", str(port)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log)
    deadline = time.monotonic() + 60
    while not _pings(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"clickhouse_server did not answer /ping:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return server


@contextmanager
def running_server(data_dir: Path, log: Path) -> Iterator[Server]:
    server = start_server(data_dir, log)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path / "chdb", tmp_path / "server.log") as s:
        yield s
    assert s.proc.returncode == 0, s.log.read_text()[-3000:]


# --- data -----------------------------------------------------------------------------------------------------

MIXED_DDL = """
CREATE TABLE {table} (
    id UInt64,
    event_id UUID,
    name String,
    note Nullable(String),
    at DateTime64(3, 'UTC'),
    source LowCardinality(String),
    codes Array(String)
) ENGINE = MergeTree ORDER BY id
"""
MIXED_COLUMNS = ["id", "event_id", "name", "note", "at", "source", "codes"]


def mixed_rows(n: int, start: int = 0) -> list[list[Any]]:
    t0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    return [
        [
            2**64 - 1 - i if i % 97 == 0 else i,  # UInt64 beyond Int64 too
            uuid.UUID(int=i + 1),
            f"患者{i}\t'quoted' \\ {i}",  # tabs, quotes, backslashes and CJK survive Native both ways
            None if i % 3 else f"note {i}",
            t0 + dt.timedelta(milliseconds=1001 * i),
            ("his", "lis", "pacs")[i % 3],
            [f"J{i % 10}", "A01"][: i % 3],
        ]
        for i in range(start, start + n)
    ]


def as_utc(row: tuple[Any, ...] | list[Any]) -> list[Any]:
    """clickhouse-connect returns naive UTC datetimes by default (tz_mode="naive_utc")."""
    return [v.replace(tzinfo=UTC) if isinstance(v, dt.datetime) and v.tzinfo is None else v for v in row]


# --- the INSERT splitting, on its own ---------------------------------------------------------------------------


def test_the_data_of_an_insert_starts_after_its_format_line() -> None:
    text = b"INSERT INTO db.t (`format`, x) FORMAT Native\n\x00\x01FORMAT binary"
    insert = find_inline_data(text)
    assert insert is not None and insert.fmt == "Native"
    assert text[insert.data_start :] == b"\x00\x01FORMAT binary"
    assert infile_insert(insert, "/tmp/it's") == (
        "INSERT INTO db.t (`format`, x) \nFROM INFILE '/tmp/it\\'s' COMPRESSION 'none'\nFORMAT Native"
    )
    with_settings = find_inline_data(b"-- c\nINSERT INTO t SETTINGS async_insert = 0 FORMAT CSV \r\n1,2\n")
    assert with_settings is not None and with_settings.fmt == "CSV"
    assert infile_insert(with_settings, "/f") == (
        "-- c\nINSERT INTO t \nFROM INFILE '/f' COMPRESSION 'none'\nSETTINGS async_insert = 0 \nFORMAT CSV"
    )
    # chDB runs these as they are
    assert find_inline_data(b"INSERT INTO t VALUES (1, 'FORMAT x')") is None
    assert find_inline_data(b"INSERT INTO t SELECT * FROM s FORMAT Native") is None
    assert find_inline_data(b"SELECT 1 FORMAT Native") is None


# --- through the HTTP interface ---------------------------------------------------------------------------------


def test_ping_and_what_the_client_learns_on_connect(server: Server) -> None:
    client = server.client()
    assert client.ping()
    assert client.server_version.startswith("26.")  # chDB's ClickHouse
    assert client.command("SELECT 1") == 1
    assert client.command("SELECT timezone()") == "Etc/UTC"


def test_tables_inserts_and_queries_of_mixed_types(server: Server) -> None:
    client = server.client()
    client.command("CREATE DATABASE IF NOT EXISTS hb")
    client.command(MIXED_DDL.format(table="hb.mixed"))
    rows = mixed_rows(300)
    summary = client.insert("hb.mixed", rows, column_names=MIXED_COLUMNS)
    assert summary.written_rows == 300
    got = client.query(f"SELECT {', '.join(MIXED_COLUMNS)} FROM hb.mixed ORDER BY id").result_rows
    assert [as_utc(r) for r in got] == sorted(rows, key=lambda r: r[0])
    # a client whose database is hb, unqualified names; a LIMIT 0 probe gives the columns only
    in_db = server.client(database="hb")
    assert in_db.query("SELECT * FROM mixed LIMIT 0").column_names == tuple(MIXED_COLUMNS)
    assert in_db.query("SELECT source, count() FROM mixed GROUP BY source ORDER BY source").result_rows == [
        ("his", 100),
        ("lis", 100),
        ("pacs", 100),
    ]


def test_server_side_parameters(server: Server) -> None:
    client = server.client()
    client.command("CREATE DATABASE hb")
    client.command(MIXED_DDL.format(table="hb.mixed"))
    client.insert("hb.mixed", mixed_rows(50), column_names=MIXED_COLUMNS)
    name = "患者7\t'quoted' \\ 7"
    assert client.query("SELECT id FROM hb.mixed WHERE name = {n:String}", parameters={"n": name}).result_rows == [(7,)]
    found = client.query(
        "SELECT count() FROM hb.mixed WHERE id IN {ids:Array(UInt64)} AND at >= {t:DateTime64(3)} AND source = {s:String}",
        parameters={"ids": [1, 4, 7, 10], "t": dt.datetime(2026, 3, 1, 8, 0, 4), "s": "lis"},
    ).result_rows
    assert found == [(3,)]  # 4, 7 and 10 come from lis, 1 is before t
    glued = client.query("SELECT {a:String} || {b:String}", parameters={"a": "x'", "b": "\\y"}).result_rows
    assert glued == [("x'\\y",)]
    # parameters of one query are not there for the next
    with pytest.raises(DatabaseError, match="UNKNOWN_QUERY_PARAMETER"):
        client.query("SELECT {n:String}")
    # long parameters: a query sends them in a multipart form, a command in a long URL
    long_value = "长" * 20_000
    assert client.query("SELECT length({v:String})", parameters={"v": long_value}).result_rows == [(60_000,)]
    assert client.command("SELECT char_length({v:String})", parameters={"v": long_value}) == 20_000


def test_commands_answer_like_a_server(server: Server) -> None:
    client = server.client()
    assert isinstance(client.command("CREATE DATABASE hb"), QuerySummary)  # no result set
    assert isinstance(client.command("CREATE TABLE hb.t (x UInt8) ENGINE = MergeTree ORDER BY x"), QuerySummary)
    client.command("INSERT INTO hb.t VALUES", data="(1), (2), (3)")
    client.command("INSERT INTO hb.t FORMAT JSONEachRow", data='{"x": 4}\n{"x": 5}\n')
    client.raw_insert("hb.t", ["x"], "6\n7\n", fmt="TSV")
    assert client.command("SELECT count() FROM hb.t") == 7
    assert client.command("SELECT min(x), max(x) FROM hb.t") == ["1", "7"]
    assert client.command("SELECT x FROM hb.t WHERE x > 100") == ""  # an empty result set, not a summary
    assert client.command("EXISTS TABLE hb.t") == 1
    assert client.raw_query("SELECT x FROM hb.t WHERE x < 3 ORDER BY x FORMAT JSONEachRow") == b'{"x":1}\n{"x":2}\n'


def test_an_error_is_a_database_error_with_the_clickhouse_message(server: Server) -> None:
    client = server.client()
    with pytest.raises(DatabaseError) as unknown:
        client.query("SELECT * FROM default.no_such_table")
    assert "Code: 60" in str(unknown.value) and "UNKNOWN_TABLE" in str(unknown.value)
    with pytest.raises(DatabaseError, match="SYNTAX_ERROR"):
        client.command("SELEC 1")
    with pytest.raises(DatabaseError, match="UNKNOWN_SETTING"):
        client.command("SELECT 1", settings={"no_such_setting": 1})
    with pytest.raises(DatabaseError, match="UNKNOWN_DATABASE"):
        server.client(database="no_such_database")
    assert client.command("SELECT 2") == 2  # the server and the session go on
    # the log says which error, never the query or its message (they may carry patient data)
    log = server.log.read_text()
    assert "code 60 (UNKNOWN_TABLE)" in log and "no_such_table" not in log


def test_settings_stay_with_their_query_and_sessions_are_private(server: Server) -> None:
    a, b = server.client(), server.client()
    max_threads = "SELECT getSetting('max_threads')"
    default = a.command(max_threads)
    assert a.command(max_threads, settings={"max_threads": 1}) == 1
    assert a.command(max_threads) == default  # a query's settings end with it
    assert a.command("SELECT getSetting('date_time_input_format')") == "best_effort"  # what the client asks on connect
    # SET and USE last for the session, as on a server, and no other session sees them
    a.command("CREATE DATABASE hb")
    a.command("SET max_threads = 3")
    a.command("USE hb")
    assert a.command(max_threads) == 3 and a.command("SELECT currentDatabase()") == "hb"
    assert b.command(max_threads) == default and b.command("SELECT currentDatabase()") == "default"
    # temporary tables (sinks/clickhouse/event_log.py filters through one) belong to their session
    for client, values in ((a, [[1], [2]]), (b, [[7]])):
        client.command("CREATE TEMPORARY TABLE wanted (x UInt8) ENGINE = Memory")
        client.insert("wanted", values, column_names=["x"])
    assert a.query("SELECT groupArray(x) FROM wanted").result_rows == [([1, 2],)]
    assert b.query("SELECT groupArray(x) FROM wanted").result_rows == [([7],)]
    # without a session each request is on its own
    sessionless = server.client(autogenerate_session_id=False)
    sessionless.command("CREATE TEMPORARY TABLE wanted (x UInt8) ENGINE = Memory")
    assert sessionless.command("EXISTS TEMPORARY TABLE wanted") == 0
    sessionless.command("SET max_threads = 1")
    assert sessionless.command(max_threads) == default


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_inserts_in_every_compression_the_client_sends(server: Server, compress: str | bool) -> None:
    client = server.client(compress=compress)
    client.command("CREATE DATABASE hb")
    client.command(MIXED_DDL.format(table="hb.mixed"))
    rows = mixed_rows(5000)
    client.insert("hb.mixed", rows, column_names=MIXED_COLUMNS, settings={"insert_deduplicate": 0})
    got = client.query("SELECT * FROM hb.mixed ORDER BY id").result_rows
    assert [as_utc(r) for r in got] == sorted(rows, key=lambda r: r[0])


CONCURRENT_WRITER = """
import sys, clickhouse_connect
port, writer, batches, size = (int(a) for a in sys.argv[1:])
client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
for b in range(batches):
    client.insert("hb.events", [[writer, b, f"w{writer}-{b}-{i}"] for i in range(size)], column_names=["writer", "batch", "payload"])
"""


def test_writers_and_readers_in_several_processes_side_by_side(server: Server) -> None:
    setup = server.client()
    setup.command("CREATE DATABASE hb")
    setup.command("CREATE TABLE hb.events (writer UInt8, batch UInt32, payload String) ENGINE = MergeTree ORDER BY ()")
    batches, size = 20, 500
    # two writer processes (like two sinks) and a writer thread here, while two threads here read
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(server.port), str(w), str(batches), str(size)])
        for w in (1, 2)
    ]
    errors: list[BaseException] = []
    done = threading.Event()

    def write_here() -> None:
        try:
            client = server.client()
            for b in range(batches):
                client.insert(
                    "hb.events",
                    [[3, b, f"w3-{b}-{i}"] for i in range(size)],
                    column_names=["writer", "batch", "payload"],
                )
        except BaseException as exc:
            errors.append(exc)

    seen: list[int] = []

    def read_here() -> None:
        try:
            client = server.client()
            while not done.is_set():
                count = client.query("SELECT count() FROM hb.events").result_rows[0][0]
                assert not seen or count >= seen[-1]
                seen.append(count)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write_here)] + [threading.Thread(target=read_here) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        assert all(p.wait(timeout=120) == 0 for p in procs)
        threads[0].join(timeout=120)
    finally:
        done.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    assert len(seen) > 2
    by_writer = setup.query("SELECT writer, count(), uniqExact(payload) FROM hb.events GROUP BY writer ORDER BY writer")
    assert by_writer.result_rows == [(w, batches * size, batches * size) for w in (1, 2, 3)]


def test_data_survives_a_restart_and_a_second_server_cannot_take_the_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "chdb"
    with running_server(data_dir, tmp_path / "first.log") as first:
        client = first.client()
        client.command("CREATE DATABASE hb")
        client.command(MIXED_DDL.format(table="hb.mixed"))
        client.insert("hb.mixed", mixed_rows(1000), column_names=MIXED_COLUMNS)
        # chDB locks the directory: a second server on it fails at once, the first serves on
        port = free_port()
        second = subprocess.run(
            [sys.executable, "-m", "ops.stack.clickhouse_server", "--path", str(data_dir), "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert client.command("SELECT count() FROM hb.mixed") == 1000
        assert first.stop() == 0
    with running_server(data_dir, tmp_path / "second.log") as again:
        client = again.client()
        assert client.command("SELECT count() FROM hb.mixed") == 1000
        got = client.query(f"SELECT {', '.join(MIXED_COLUMNS)} FROM hb.mixed ORDER BY id").result_rows
        assert [as_utc(r) for r in got] == sorted(mixed_rows(1000), key=lambda r: r[0])
        assert again.stop() == 0


def test_the_bench_command_prints_the_server_next_to_its_baseline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench", "clickhouse", "--rows", "4000", "--batches", "2", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["in_process_chdb_baseline_rows_per_s"] > 0 and figures["chdb_server_over_http_rows_per_s"] > 0
    assert "in-process chDB (baseline)" in done.stdout

"""``healthbus bench clickhouse``: the local chDB server (ops/stack/clickhouse_server.py) next to chDB opened
in-process, the baseline, in the same run: insert rate of mixed-type rows and the median latency of a
point query and of ``SELECT 1`` (what HTTP adds per request)."""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from foundation.clickhouse import open_clickhouse
from ops.bench.table import BenchRow
from ops.stack.lifecycle import start_chdb_server
from ops.stack.processes import stop_pid

log = logging.getLogger(__name__)
DDL = """CREATE TABLE IF NOT EXISTS hb.bench (id UInt64, event_id UUID, name String, note Nullable(String),
at DateTime64(3, 'UTC'), source LowCardinality(String), codes Array(String)) ENGINE = MergeTree ORDER BY id"""
COLUMNS = ["id", "event_id", "name", "note", "at", "source", "codes"]
LATENCY_RUNS = 300


def _rows(n: int, start: int) -> list[list[Any]]:
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return [
        [i, uuid.UUID(int=i + 1), f"患者{i}", None if i % 3 else f"note {i}", t0 + dt.timedelta(seconds=i),
         ("his", "lis", "pacs")[i % 3], ["J1", "A01"][: i % 3]]
        for i in range(start, start + n)
    ]  # fmt: skip


def _measure(client: Any, rows: int, batches: int) -> dict[str, float]:
    client.command(DDL)
    size = rows // batches
    prepared = [_rows(size, b * size) for b in range(batches)]
    # warm up (the engine's first insert and query pay for loading), then start afresh
    client.insert("hb.bench", _rows(1000, 0), column_names=COLUMNS)
    client.command("TRUNCATE TABLE hb.bench")
    started = time.perf_counter()
    for batch in prepared:
        client.insert("hb.bench", batch, column_names=COLUMNS)
    insert_s = time.perf_counter() - started
    if int(client.command("SELECT count() FROM hb.bench")) != size * batches:
        raise RuntimeError("rows went missing")

    def median_ms(run: Any) -> float:
        times = []
        for i in range(LATENCY_RUNS):
            t = time.perf_counter()
            run(i)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    point = "SELECT name, codes FROM hb.bench WHERE id = {id:UInt64}"
    return {
        "rows_per_s": size * batches / insert_s,
        "point_ms": median_ms(lambda i: client.query(point, parameters={"id": i * 601 % (size * batches)})),
        "select_1_ms": median_ms(lambda i: client.command("SELECT 1")),
    }


def run(rows: int = 200_000, batches: int = 10) -> list[BenchRow]:
    with tempfile.TemporaryDirectory(prefix="hb-bench-ch-") as tmp:
        root = Path(tmp)
        log.info("in-process chDB")
        embedded_client = open_clickhouse(None, root / "embedded", "hb")
        try:
            embedded = _measure(embedded_client, rows, batches)
        finally:
            embedded_client.close()
        log.info("starting the chDB server")
        pid = start_chdb_server(root / "served", 0, root / "server.log")
        try:
            log.info("over the chDB server")
            served_client = open_clickhouse(None, root / "served", "hb")
            try:
                served = _measure(served_client, rows, batches)
            finally:
                served_client.close()
        finally:
            stop_pid(pid, timeout=60)
    note = f"{rows:,} rows in {batches} inserts; latencies: median of {LATENCY_RUNS}"
    return [
        BenchRow("in-process chDB (baseline) rows/s", embedded["rows_per_s"], note),
        BenchRow(
            "chDB server over HTTP rows/s",
            served["rows_per_s"],
            f"{served['rows_per_s'] / embedded['rows_per_s']:.2f}x the baseline",
        ),
        BenchRow("in-process point query ms", embedded["point_ms"]),
        BenchRow("chDB server point query ms", served["point_ms"]),
        BenchRow("in-process SELECT 1 ms", embedded["select_1_ms"]),
        BenchRow("chDB server SELECT 1 ms", served["select_1_ms"], "what HTTP adds per request"),
    ]

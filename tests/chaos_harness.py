"""The chaos suite's pipeline: a private PostgreSQL cluster (stoppable without touching the shared server),
the stages and sinks as real processes, synthetic institutions as load, and the accounting of one fault.

Accounting: the truth of what an institution's adapter must publish is read from its exchange database
(one event id per row and version, docs/adapters.md), not from what was published. Every sent event must get
a verdict on quality.results (no stage lost it); every one that passed must be in PostgreSQL and in ClickHouse
once. ClickHouse is read after its sink is stopped (chDB admits one process per data directory), in a
subprocess (this pytest process may already hold another test's chDB directory).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from psycopg import sql

from avro_schemas.envelope import make_event_id
from avro_schemas.pipeline import deployed
from avro_schemas.serde import DecodeError, EventCodec
from avro_schemas.topics import QUALITY_RESULTS, dead_letter_topic, raw_topic
from foundation.settings import Settings
from ops.consumer_lag import lag
from ops.stack.postgres import (
    ensure_database,
    start_private_cluster,
    stop_private_cluster,
)
from ops.stack.processes import free_port
from ops.status import stage_inputs
from ops.topic_admin import create_topics, delete_topics, topics_of_run
from ops.worker_process import worker_env
from producers.adapters.config import SourceConfig, load_config
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import AdapterState
from producers.adapters.tables import TABLES
from synthetic.exchange_data import generate_exchange_data
from tests.pipeline_harness import read_topic

CODEC = EventCodec()
RECOVERY_BOUND = 60.0  # seconds from a fault's end until the sinks hold everything (a Faust restart is ~10 s)
HEALTHBUS = Path(sys.executable).parent / "healthbus"
SINKS = deployed("sink")
STAGES = ("identify", "quality")  # the stages whose outputs the sinks land (routing and surveillance branch off)


class PrivatePostgres:
    """A throwaway cluster on a free 127.0.0.1 port; its directory is world-traversable so that the
    ``postgres`` user can run it when we are root (pytest's own tmp dirs are private to root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hb-chaos-pg-"))
        os.chmod(self.root, 0o755)
        self.data_dir = self.root / "data"
        self.log = self.root / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{free_port()}/healthbus"

    def start(self) -> None:
        start_private_cluster(self.url, self.data_dir, self.log)

    def stop(self) -> None:
        stop_private_cluster(self.data_dir)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


class Pipeline:
    """identify → quality → both sinks, each its own process group (killpg reaches every child)."""

    def __init__(self, s: Settings, log_dir: Path) -> None:
        self.s = s
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = {}

    def argv(self, name: str) -> list[str]:
        if name in SINKS:
            return [str(HEALTHBUS), "sink", name.removeprefix("sink-")]
        return [sys.executable, "-m", "ops.cli", "worker", name]

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts[name] = self.starts.get(name, 0) + 1
        with open(self.log(name), "ab") as out:
            out.write(f"\n--- start {self.starts[name]} ---\n".encode())
            out.flush()
            self.procs[name] = subprocess.Popen(
                self.argv(name), env=worker_env(self.s), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start_all(self) -> None:
        for name in (*STAGES, *SINKS):
            self.start(name)

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM (a sink finishes and commits its batch), SIGKILL after ``timeout``."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{_log_tail(self.log(name))}")

    def revive(self) -> None:
        """Restart what a previous, failed fault left dead, so one failure does not cascade."""
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.start(name)

    def close(self) -> None:
        """SIGTERM to every process at once (the test is over: no order matters), SIGKILL to stragglers."""
        alive = [(name, p) for name, p in self.procs.items() if p.poll() is None]
        for _, proc in alive:
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in alive:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


class TcpProxy:
    """127.0.0.1:<port> → ``target``: an exchange database that can die and come back without touching the
    PostgreSQL cluster behind it. Down: open connections are cut and new ones closed on accept (the client
    sees the server go away); up: connections pass again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def down(self) -> None:
        self._up.clear()
        with self._lock:
            cut, self._open = self._open, []
        for conn in cut:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self.down()
        self._listener.close()


def expected_ids(s: Settings, source: SourceConfig) -> set[str]:
    """Every event the institution's adapter must publish, from its exchange database (one per polled row at
    its current version and cancel flag), less the rows it quarantined (a dead letter on dlq.adapter each:
    a legitimate outcome, not a loss). Call after the adapter has been through every row."""
    state = AdapterState(s.postgres_url)
    try:
        quarantined = {(q.table_name, q.pk, q.record_version) for q in state.quarantine(source.source_id)}
    finally:
        state.close()
    ids: set[str] = set()
    with psycopg.connect(source.dsn) as conn:
        for spec in TABLES[source.kind]:
            query = sql.SQL("SELECT {pk}::text, record_version, cancelled FROM {table}").format(
                pk=sql.Identifier(spec.pk), table=sql.Identifier(source.schema_name, spec.name)
            )
            for pk, version, cancelled in conn.execute(query):
                if (spec.name, pk, version) not in quarantined:
                    ids.add(make_event_id(source.org_code, f"{spec.name}:{pk}", version, cancelled))
    return ids


def publish_in_process(s: Settings, source: SourceConfig) -> None:
    adapter = build_adapter(s, source, settle_seconds=0)
    try:
        adapter.run_once()
    finally:
        adapter.close()


class Verdicts:
    """Every verdict on quality.results so far (event id → passed), read incrementally by one assigned
    consumer (no group join)."""

    def __init__(self, s: Settings) -> None:
        topic = s.topic_name(QUALITY_RESULTS)
        self._consumer = Consumer(
            {
                **s.confluent_config(),
                "group.id": f"{s.group_prefix}.chaos-verdicts",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.passed: dict[str, bool] = {}

    def poll(self, seconds: float = 0.2) -> None:
        for m in self._consumer.consume(5000, timeout=seconds):
            if m.error() is None:
                value = CODEC.decode(m.value()).value
                self.passed[value["event_id"]] = value["passed"]

    def close(self) -> None:
        self._consumer.close()


def postgres_rows(s: Settings, ids: list[str]) -> tuple[int, int]:
    """(rows, distinct event ids) of these events in the event store."""
    with psycopg.connect(s.postgres_url, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM event_store WHERE event_id = ANY(%s::uuid[])", (ids,)
        ).fetchone()
    return row[0], row[1]


def clickhouse_lag(s: Settings) -> int:
    topics = stage_inputs(s)["sink-clickhouse"]  # the same inputs `healthbus status` measures
    return sum(p.lag for p in lag(s.confluent_config(), s.group_id("sink-clickhouse"), topics))


_CLICKHOUSE_COUNT = """
import json, sys
from foundation.settings import Settings
from foundation.clickhouse import open_clickhouse
s = Settings()
client = open_clickhouse(s.clickhouse_url, s.resolved_chdb_path, s.clickhouse_database)
ids = json.load(sys.stdin)
client.command("CREATE TEMPORARY TABLE wanted (event_id UUID) ENGINE = Memory")
client.insert("wanted", [[e] for e in ids], column_names=["event_id"])
where = "WHERE event_id IN (SELECT event_id FROM wanted)"
db = s.clickhouse_database
raw = int(client.command(f"SELECT count() FROM {db}.event_log {where}"))
final = int(client.command(f"SELECT count() FROM {db}.event_log FINAL {where}"))
distinct = int(client.command(f"SELECT uniqExact(event_id) FROM {db}.event_log {where}"))
print(json.dumps({"raw": raw, "final": final, "distinct": distinct}))
"""


def clickhouse_rows(s: Settings, ids: list[str]) -> dict[str, int]:
    """raw rows (a replayed insert shows here until a merge), FINAL rows (what readers see) and distinct
    event ids of these events in event_log. The ClickHouse sink must be stopped."""
    done = subprocess.run(
        [sys.executable, "-c", _CLICKHOUSE_COUNT],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        env=worker_env(s),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class FaultReport:
    fault: str
    sent: int  # events the adapter had to publish (exchange rows less quarantined ones)
    passed: int  # of which the quality rules passed (the rest are in dlq.quality, by design)
    in_postgres: int  # distinct event ids
    in_clickhouse: int  # distinct event ids
    duplicates: int  # rows a reader sees beyond one per event: PostgreSQL rows + ClickHouse FINAL rows
    replayed_inserts: int  # ClickHouse raw rows beyond one per event (collapsed by FINAL and merges)
    recovery_seconds: float
    note: str = ""

    @property
    def lost(self) -> int:
        return (self.passed - self.in_postgres) + (self.passed - self.in_clickhouse)


@dataclass
class Flow:
    """One fault's events through the pipeline: sent ids, their verdicts, their rows in the sinks."""

    pipeline: Pipeline
    verdicts: Verdicts
    sent: set[str]

    def passed(self) -> list[str]:
        return sorted(e for e in self.sent if self.verdicts.passed.get(e))

    def progress(self) -> int:
        """How many of this fault's events PostgreSQL holds (0 while it is down)."""
        try:
            return postgres_rows(self.pipeline.s, sorted(self.sent))[1]
        except psycopg.OperationalError:
            return 0

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.pipeline.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            self.verdicts.poll(0.1)

    def wait_caught_up(self, timeout: float = 90.0) -> float:
        """Until every sent event has a verdict, PostgreSQL holds every passed one and the ClickHouse sink has
        committed everything on its topics; returns the monotonic time it happened."""
        s = self.pipeline.s
        deadline = time.monotonic() + timeout
        while True:
            self.pipeline.check_alive()
            self.verdicts.poll(0.2)
            missing = len(self.sent - self.verdicts.passed.keys())
            stored = -1
            if not missing:
                passed = self.passed()
                try:
                    stored = postgres_rows(s, passed)[1]
                except psycopg.OperationalError:
                    stored = -1
                if stored == len(passed) and clickhouse_lag(s) == 0:
                    return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not caught up after {timeout:.0f} s: {missing} of {len(self.sent)} events "
                    f"without a verdict, {stored} of the passed ones in PostgreSQL, "
                    f"ClickHouse sink lag {clickhouse_lag(s)}"
                )
            time.sleep(0.3)

    def report(self, fault: str, recovered_from: float, recovered_at: float, note: str = "") -> FaultReport:
        """Counts in both sinks; stops the ClickHouse sink to read ClickHouse, then starts it again."""
        s = self.pipeline.s
        passed = self.passed()
        pg_rows, pg_distinct = postgres_rows(s, passed)
        self.pipeline.stop("sink-clickhouse")
        try:
            ch = clickhouse_rows(s, passed)
        finally:
            self.pipeline.start("sink-clickhouse")
        return FaultReport(
            fault,
            len(self.sent),
            len(passed),
            pg_distinct,
            ch["distinct"],
            (pg_rows - pg_distinct) + (ch["final"] - ch["distinct"]),
            ch["raw"] - ch["distinct"],
            round(recovered_at - recovered_from, 1),
            note,
        )


def judged(flow: Flow) -> int:
    return len(flow.sent & flow.verdicts.passed.keys())


def check_report(report: FaultReport) -> None:
    """Nothing lost, nothing a reader sees twice, caught up within RECOVERY_BOUND."""
    assert report.passed > 0.9 * report.sent, report  # the rules reject only a few clean synthetic rows
    assert report.in_postgres == report.passed and report.in_clickhouse == report.passed, report  # none lost
    assert report.duplicates == 0, report
    assert report.recovery_seconds <= RECOVERY_BOUND, report


def format_table(rows: list[FaultReport]) -> str:
    head = (
        f"{'fault':<34} {'events sent':>11} {'passed':>7} {'in PostgreSQL':>13} {'in ClickHouse':>13} "
        f"{'duplicates':>10} {'CH replays*':>11} {'recovery s':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.fault:<34} {r.sent:>11} {r.passed:>7} {r.in_postgres:>13} {r.in_clickhouse:>13} "
            f"{r.duplicates:>10} {r.replayed_inserts:>11} {r.recovery_seconds:>10.1f}"
            + (f"  {r.note}" if r.note else "")
        )
    lines.append(
        "passed: judged by the quality rules (rejections go to dlq.quality by design). duplicates: rows a "
        "reader sees beyond one per event (PostgreSQL; ClickHouse FINAL). *raw ClickHouse rows re-inserted "
        "by an at-least-once replay, collapsed by ReplacingMergeTree on read (FINAL) and merge."
    )
    return "\n".join(lines)


def chaos_settings(bootstrap: str, postgres_url: str, state_dir: Path) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap=bootstrap,
        postgres_url=postgres_url,
        topic_prefix=f"chaos{run}-",
        group_prefix=f"gchaos{run}",
        state_dir=state_dir,
        chdb_path=state_dir / "chdb",
        schema_registry_url=None,
        sink_batch_seconds=0.2,
    )


@dataclass
class ChaosRun:
    """One running pipeline under test: its settings, private PostgreSQL, processes, verdict reader, one
    synthetic hospital per fault, and the rows of the fault table so far."""

    s: Settings
    postgres: PrivatePostgres
    pipeline: Pipeline
    verdicts: Verdicts
    sources: list[SourceConfig]
    reports: list[FaultReport] = field(default_factory=list)

    def source(self, i: int) -> SourceConfig:
        self.pipeline.revive()  # a failed fault before this one must not fail this one too
        return self.sources[i]


@contextmanager
def chaos_run(bootstrap: str, state: Path, hospitals: int, replication_factor: int = -1) -> Iterator[ChaosRun]:
    """Topics, a private PostgreSQL, ``hospitals`` synthetic hospitals' exchange data and the whole pipeline
    on ``bootstrap``; everything removed afterwards (topics, Redis keys, processes, the cluster's folder)."""
    postgres = PrivatePostgres()
    s: Settings | None = None
    pipeline: Pipeline | None = None
    verdicts: Verdicts | None = None
    try:
        postgres.start()
        s = chaos_settings(bootstrap, postgres.url, state)
        ensure_database(postgres.url)
        create_topics(s.confluent_config(), s.topic_prefix, replication_factor)
        generate_exchange_data(
            exchange_dsn(postgres.url),
            hospitals=hospitals,
            counties=1,
            days=1,
            seed=41,
            config_out=state / "adapters.yaml",
            bad_share=0.0,
        )
        sources = [src for src in load_config(state / "adapters.yaml").sources if src.kind == "hospital"]
        pipeline = Pipeline(s, state / "logs")
        pipeline.start_all()
        verdicts = Verdicts(s)
        yield ChaosRun(s, postgres, pipeline, verdicts, sources)
    finally:
        if verdicts is not None:
            verdicts.close()
        if pipeline is not None:
            pipeline.close()
        if s is not None:
            delete_topics(s.confluent_config(), topics_of_run(s.confluent_config(), s.topic_prefix, s.group_prefix))
            client = redis.Redis.from_url(s.redis_url)
            keys = list(client.scan_iter(match=f"hb:{s.topic_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        postgres.remove()


def write_report(run: ChaosRun, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The fault table: printed (also without ``-s``, so CI's log has it) and written to the state folder."""
    table = format_table(run.reports)
    out = run.s.state_dir / name
    out.write_text(table + "\n", "utf-8")
    with capsys.disabled():
        print(f"\n{table}\n(written to {out})")
    assert run.reports, "no fault ran"
    for report in run.reports:
        check_report(report)


def exchange_dsn(postgres_url: str) -> str:
    dsn = psycopg.conninfo.make_conninfo(postgres_url, dbname="hb_chaos_exchange")
    ensure_database(dsn)
    return dsn


def raw_topic_name(s: Settings, event_type: str) -> str:
    return s.topic_name(raw_topic(event_type).name)


def dead_letter_reasons(s: Settings, stage: str, timeout: float = 30.0, by_event: bool = False) -> dict[Any, str]:
    """Error code of every dead letter of ``stage`` so far, by (source topic, partition, offset), or with
    ``by_event`` by the event id of the payload it keeps (a sink's letter names its position on validated.*,
    not where a test injected the event upstream)."""
    topic = s.topic_name(dead_letter_topic(stage).name)
    out: dict[Any, str] = {}
    for m in read_topic(s, topic, idle=1.0, timeout=timeout):
        v = CODEC.decode(m.value()).value
        if by_event:
            try:
                key: Any = CODEC.peek_envelope(v["payload"])[1]["event_id"]
            except DecodeError:  # an undecodable payload has no event: another fault's letter
                continue
        else:
            key = (v["source_topic"], v["source_partition"], v["source_offset"])
        out[key] = v["error_code"]
    return out

"""Adapters under trouble (issue #17 §2), on real PostgreSQL and the real broker: an exchange database that
does not answer is supervised on its own (backoff, health in metrics and in `healthbus status`), rows
committed late behind the watermark are still published once, reconciliation counts each table's rows per
day against what was published, and every dead letter of a table has its own id."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from psycopg.conninfo import make_conninfo

from avro_schemas.envelope import make_event_id
from avro_schemas.serde import EventCodec
from avro_schemas.topics import dead_letter_topic, raw_topic
from foundation.settings import Settings
from foundation.standards.credit_code import make_credit_code
from ops.stack.postgres import ensure_database, server_conninfo
from ops.stack.processes import free_port
from ops.status import gather, render, report_json
from producers.adapters.config import AdapterConfig, SourceConfig, dump_config
from producers.adapters.runner import build_adapter
from producers.adapters.state_store import BEGINNING
from producers.adapters.supervision import Backoff
from producers.exchange_db.ddl import create_exchange_schema
from tests.conftest import settings_env
from tests.exchange_fixtures import HOSPITAL_ROWS, execute_in, make_exchange
from tests.pipeline_harness import read_topic

CODEC = EventCodec()


def _decoded(s: Settings, topic: str) -> list[dict]:
    """Every message on the topic so far (repeats kept), decoded."""
    return [CODEC.decode(m.value()).value for m in read_topic(s, topic, idle=1.5, timeout=30)]


def _raw(s: Settings, event_type: str) -> list[dict]:
    return _decoded(s, s.topic_name(raw_topic(event_type).name))


def _eventually(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the adapter process exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# -- backoff (unit) ------------------------------------------------------------------------------------------
def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial_seconds=1.0, max_seconds=60.0)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (40, 60.0)]:
        delays = [backoff.delay(failures, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, min(delays), max(delays))
        assert len(set(delays)) > 100  # jittered: sources failing together do not retry in step
    assert backoff.delay(10**6, rng) <= 60.0  # no overflow on a source that has been down for weeks


# -- (1) one exchange database down: the other goes on; the bad one backs off, shows down, recovers ---------
def test_an_unreachable_exchange_database_is_supervised_alone_and_recovers(
    own_db_settings: Settings, tmp_path: Path
) -> None:
    s = own_db_settings
    good = make_exchange(s.postgres_url, "county")
    gone_db = f"hb_test_gone_{uuid.uuid4().hex[:10]}"
    bad = SourceConfig(
        kind="hospital",
        org_code=make_credit_code("12", "411502", f"MB{uuid.uuid4().int % 10**6:06d}"),
        name="断线医院",
        region_code="411502",
        dsn=make_conninfo(s.postgres_url, dbname=gone_db),  # a database that does not exist (yet)
        schema="exchange",
    )
    config = tmp_path / "adapters.yaml"
    dump_config(AdapterConfig(sources=[good, bad]), config)
    port = free_port()
    argv = [sys.executable, "-m", "ops.cli", "adapter", "run", "--config", str(config), "--settle", "0"]
    argv += ["--metrics-port", str(port)]
    log_path = tmp_path / "adapter.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=settings_env(s), stdout=log, stderr=subprocess.STDOUT)
    try:
        # The good institution is published although the other one's database does not answer.
        def good_followups() -> list[dict]:
            return [e for e in _raw(s, "ph.chronic_followup") if e["envelope"]["source"]["org_code"] == good.org_code]

        _eventually(lambda: len(good_followups()) == 1, 60, "the reachable institution's follow-up", proc)

        def failures() -> float:
            try:
                value = _sample(
                    _scrape(port),
                    "healthbus_adapter_source_consecutive_failures",
                    org_code=bad.org_code,
                    kind="hospital",
                )
            except OSError:
                return 0.0
            return value or 0.0

        _eventually(lambda: failures() >= 3, 30, "three failed attempts on the missing database", proc)
        samples = _scrape(port)
        assert _sample(samples, "healthbus_adapter_source_up", org_code=bad.org_code, kind="hospital") == 0
        assert _sample(samples, "healthbus_adapter_source_up", org_code=good.org_code, kind="county") == 1
        assert (
            _sample(samples, "healthbus_adapter_source_consecutive_failures", org_code=good.org_code, kind="county")
            == 0
        )
        assert (
            _sample(
                samples,
                "healthbus_adapter_source_last_success_timestamp_seconds",
                org_code=good.org_code,
                kind="county",
            )
            or 0
        ) > time.time() - 120
        # Backoff: after three failures the next attempt is 2-4 s away, not one poll interval.
        at_three = failures()
        time.sleep(1.0)
        assert failures() <= at_three + 1

        # `healthbus status` is another process: it reads the health the adapter wrote to PostgreSQL.
        report = gather(s)
        rows = {r["org_code"]: r for r in report.section("adapters").rows}
        assert rows[bad.org_code]["state"] == "DOWN" and rows[bad.org_code]["consecutive_failures"] >= 3
        assert rows[bad.org_code]["last_success_at"] is None and rows[bad.org_code]["last_error"]
        assert rows[good.org_code]["state"] == "up" and rows[good.org_code]["consecutive_failures"] == 0
        text = render(report)
        print(text)
        assert bad.org_code in text and "DOWN" in text
        assert gone_db not in text and gone_db not in str(report_json(report))  # no DSN in the health

        # The database comes back: the source recovers by itself, without a restart.
        ensure_database(bad.dsn)
        with psycopg.connect(bad.dsn, autocommit=True) as conn:
            create_exchange_schema(conn, "hospital", "exchange")
            conn.execute("SET search_path TO exchange")
            conn.execute(HOSPITAL_ROWS)
        _eventually(
            lambda: _sample(_scrape(port), "healthbus_adapter_source_up", org_code=bad.org_code, kind="hospital") == 1,
            60,
            "the source to come back up",
            proc,
        )
        visits = [e for e in _raw(s, "outpatient.visit") if e["envelope"]["source"]["org_code"] == bad.org_code]
        assert sorted(v["visit_no"] for v in visits) == ["MZ001", "MZ004"]
        assert (
            _sample(
                _scrape(port), "healthbus_adapter_source_consecutive_failures", org_code=bad.org_code, kind="hospital"
            )
            == 0
        )
        rows = {r["org_code"]: r for r in gather(s).section("adapters").rows}
        assert rows[bad.org_code]["state"] == "up" and rows[bad.org_code]["last_success_at"] is not None
        assert proc.poll() is None  # the process never stopped
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        with psycopg.connect(server_conninfo(s.postgres_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(gone_db)))
    assert code == 0, log_path.read_text()[-3000:]
    assert bad.dsn not in log_path.read_text()


# -- (2) a row committed late, behind the watermark -----------------------------------------------------------
def test_rows_committed_late_behind_the_watermark_are_published_once(settings: Settings) -> None:
    source = make_exchange(settings.postgres_url, "county")
    adapter = build_adapter(settings, source, settle_seconds=0)
    adapter.run_once()
    insert = (
        "INSERT INTO chronic_followup (followup_id, resident_id, followup_no, disease_code, followup_at,"
        " followup_class{extra}) VALUES ('{id}', 'R1', '{no}', 'I10', now(), '1'{value})"
    )
    # A long source transaction: it stamps updated_at = now() (its start) and commits after a later row.
    late = psycopg.connect(source.dsn)
    late.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(source.schema_name)))
    late.execute(insert.format(extra="", id="F2", no="SF002", value=""))
    time.sleep(0.05)
    execute_in(source, insert.format(extra="", id="F3", no="SF003", value=""))
    assert adapter.run_once().published == 1  # F3; the watermark is now past F2's updated_at
    late.commit()
    late.close()
    # A source whose clock is a minute behind: its row is older than the watermark when it is committed.
    execute_in(source, insert.format(extra=", updated_at", id="F4", no="SF004", value=", now() - interval '1 minute'"))
    second = adapter.run_once()
    third = adapter.run_once()
    adapter.close()
    assert second.published == 2 and third.published == 0
    followups = _raw(settings, "ph.chronic_followup")
    ids = [f["envelope"]["event_id"] for f in followups]
    assert sorted(f["followup_no"] for f in followups) == ["SF001", "SF002", "SF003", "SF004"]
    assert len(ids) == len(set(ids)) == 4  # each once by event id: the overlap re-read repeats nothing
    assert make_event_id(source.org_code, "chronic_followup:F2", 1) in ids


# -- (3) reconciliation per institution, table and day --------------------------------------------------------
def test_reconciliation_reports_rows_missing_downstream(settings: Settings) -> None:
    from prometheus_client import REGISTRY

    source = make_exchange(settings.postgres_url, "hospital")
    adapter = build_adapter(settings, source, settle_seconds=0)
    adapter.run_once()
    clean = adapter.reconcile()
    assert clean.mismatches == [] and clean.days  # every row published or quarantined (V2, V3)
    visits = {"org_code": source.org_code, "table": "outpatient_visit"}
    assert REGISTRY.get_sample_value("healthbus_adapter_reconciliation_difference_rows", visits) == 0
    # Stamped two hours ago, committed now: far behind the watermark and its overlap window, never published.
    execute_in(
        source,
        "INSERT INTO outpatient_visit (visit_id, patient_id, visit_no, visit_type, visit_at, updated_at) "
        "VALUES ('V9', 'P1', 'MZ009', '1', now() - interval '3 hours', now() - interval '2 hours')",
    )
    assert adapter.run_once().published == 0
    result = adapter.reconcile()
    adapter.close()
    assert [(m.table, m.exchange_rows - m.published_rows - m.quarantined_rows) for m in result.mismatches] == [
        ("outpatient_visit", 1)
    ]
    assert REGISTRY.get_sample_value("healthbus_adapter_reconciliation_difference_rows", visits) == 1
    assert (
        REGISTRY.get_sample_value(
            "healthbus_adapter_reconciliation_difference_rows", {"org_code": source.org_code, "table": "patient"}
        )
        == 0
    )


# -- (4) dead letters of one table ----------------------------------------------------------------------------
def test_each_dead_lettered_row_has_its_own_id(settings: Settings) -> None:
    source = make_exchange(settings.postgres_url, "hospital")
    adapter = build_adapter(settings, source, settle_seconds=0)
    assert adapter.run_once().quarantined == 2  # V2 and V3, both outpatient_visit
    adapter.state.advance(source.source_id, "outpatient_visit", *BEGINNING, [])  # read the table again
    assert adapter.run_once().quarantined == 2
    quarantine = {q.pk: q.dead_letter_id for q in adapter.state.quarantine(source.source_id)}
    adapter.close()
    letters = _decoded(settings, settings.topic_name(dead_letter_topic("adapter").name))
    assert len(letters) == 4
    by_row: dict[str, set[str]] = {}
    for letter in letters:
        by_row.setdefault(letter["details"]["pk"], set()).add(letter["dead_letter_id"])
    assert set(by_row) == {"V2", "V3"}
    assert all(len(ids) == 1 for ids in by_row.values())  # the same row version again: the same id
    assert by_row["V2"] != by_row["V3"]
    assert {pk: {i} for pk, i in quarantine.items()} == by_row

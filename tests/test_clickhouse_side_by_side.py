"""On the local stack the ClickHouse sink, the reports and the monitors share one chDB directory at once:
`stack up` serves it over ClickHouse's HTTP interface and every process asking for it is sent there.

A chDB directory admits one process: before the server, a report run while the sink consumed failed with
"Cannot lock file …/status"."""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka import Producer

from avro_schemas.serde import EventCodec
from avro_schemas.topics import validated_topic
from foundation.clickhouse import open_clickhouse, served_at
from foundation.settings import Settings
from ops.stack.lifecycle import start_chdb_server
from ops.stack.processes import pid_alive, stop_pid
from synthetic.outpatient_visits import outpatient_visits
from tests.conftest import HEALTHBUS, REPO, settings_env

pytestmark = pytest.mark.integration
BATCHES, PER_BATCH = 8, 400


def _landed(settings: Settings) -> int:
    client = open_clickhouse(None, settings.resolved_chdb_path, settings.clickhouse_database)
    try:
        return int(client.command(f"SELECT count() FROM {settings.clickhouse_database}.event_log FINAL"))
    except Exception:  # the sink has not created its tables yet
        return 0
    finally:
        client.close()


def test_a_report_runs_while_the_clickhouse_sink_consumes(settings: Settings, tmp_path) -> None:
    server = start_chdb_server(settings.resolved_chdb_path, 0, tmp_path / "clickhouse.log")
    sink = None
    try:
        assert served_at(settings.resolved_chdb_path)
        sink = subprocess.Popen(
            [str(HEALTHBUS), "sink", "clickhouse"],
            env=settings_env(settings),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "sink.log", "wb"),  # noqa: SIM115 (closed with the process)
        )
        codec, producer = EventCodec(), Producer(settings.confluent_config())
        topic = settings.topic_name(validated_topic("outpatient.visit").name)
        visits = list(outpatient_visits(BATCHES * PER_BATCH, seed=21))
        seen_while_consuming: list[int] = []
        reports: list[subprocess.CompletedProcess[str]] = []
        for batch in range(BATCHES):
            for v in visits[batch * PER_BATCH : (batch + 1) * PER_BATCH]:
                producer.produce(
                    topic, codec.encode("outpatient.visit", v), v["envelope"]["patient"]["local_patient_id"]
                )
            assert producer.flush(10) == 0
            if batch in (2, 5):  # a report, as its own process, while the sink is landing the stream
                reports.append(
                    subprocess.run(
                        [str(HEALTHBUS), "quality", "ranking", "--from", "2026-11-01", "--to", "2026-11-30", "--json"],
                        env=settings_env(settings),
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                )
            seen_while_consuming.append(_landed(settings))
            time.sleep(0.3)
        deadline = time.monotonic() + 90
        while _landed(settings) < len(visits) and time.monotonic() < deadline:
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-2000:]
            time.sleep(0.5)
        assert _landed(settings) == len(visits)
        for report in reports:
            assert report.returncode == 0, report.stderr[-2000:]
        assert sink.poll() is None, "the sink stopped while the reports ran"
        # the test process read the growing table while the sink wrote it
        assert seen_while_consuming[-1] > 0 and len(set(seen_while_consuming)) > 1, seen_while_consuming
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(30)
        stop_pid(server, timeout=60)
    assert not pid_alive(server)
    assert served_at(settings.resolved_chdb_path) is None  # the server withdrew its announcement

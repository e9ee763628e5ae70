"""The Prometheus configuration as Prometheus itself reads it (Debian's `prometheus` package, installed by
`ops/dev.sh test`): `promtool check` on the scrape config and the alert rules, `promtool test rules` on the
key alerts (a stalled stage, lag growing, a silent institution, dead letters) with synthetic series, and a
real Prometheus scraping a running stage worker."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from avro_schemas.serde import EventCodec
from avro_schemas.topics import identified_topic
from foundation.kafka_config import producer_config
from foundation.settings import Settings
from ops.stack.processes import free_port
from synthetic.outpatient_visits import outpatient_visits
from tests.pipeline_harness import start_stage_worker

RULES = Path(__file__).resolve().parent.parent / "ops" / "prometheus" / "alerts.yml"
CONFIG = RULES.with_name("prometheus.yml")


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing (Debian: apt-get install prometheus; ops/dev.sh test installs it)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_promtool_accepts_the_scrape_config_and_the_rules() -> None:
    rules = _promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert re.search(r"SUCCESS: \d+ rules found", rules.stdout)
    config = _promtool("check", "config", CONFIG.name, cwd=CONFIG.parent)  # rule_files is relative to it
    assert config.returncode == 0, config.stdout + config.stderr


def _rule(name: str) -> dict[str, Any]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return dict(rule)
    raise KeyError(name)


def _annotations(name: str, labels: dict[str, str], value: float) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for these labels and value (the templates used here:
    $labels.x, $value, and $value | printf "%.1f")."""

    def render(text: str) -> str:
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        text = text.replace('{{ $value | printf "%.1f" }}', f"{value:.1f}")
        return text.replace("{{ $value }}", f"{value:g}")

    return {key: render(text) for key, text in _rule(name)["annotations"].items()}


def _case(
    name: str, series: list[dict[str, str]], quiet_at: str, firing_at: str, labels: dict[str, str], value: float = 0.0
) -> dict[str, Any]:
    """One promtool test: the alert is silent at ``quiet_at`` and fires with ``labels`` at ``firing_at``."""
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": quiet_at, "alertname": name, "exp_alerts": []},
            {
                "eval_time": firing_at,
                "alertname": name,
                "exp_alerts": [{"exp_labels": labels, "exp_annotations": _annotations(name, labels, value)}],
            },
        ],
    }


def test_the_key_alerts_fire_when_they_should_and_not_before(tmp_path: Path) -> None:
    tests = [
        # Adapters publish all along; identify handles batches for 5 minutes, then none: after its 10-minute
        # window empties and the rule's 10 minutes pass, the stage is reported stalled.
        _case(
            "HealthbusIdentifyStalled",
            [
                {
                    "series": 'healthbus_adapter_events_published_total{org_code="12411500MB0000001X"}',
                    "values": "0+100x60",
                },
                {"series": "healthbus_identify_batch_seconds_count", "values": "0+1x5 5x55"},
            ],
            "12m",
            "30m",
            {"severity": "critical", "stage": "identify"},
        ),
        # A backlog above 5,000 that keeps growing for 30 minutes; before that, none.
        _case(
            "HealthbusConsumerLagGrowing",
            [
                {
                    "series": 'healthbus_consumer_lag_messages{stage="quality",group="g",topic="t",partition="0"}',
                    "values": "6000+200x60",
                },
            ],
            "20m",
            "50m",
            {"severity": "warning", "stage": "quality"},
        ),
        # Upload monitoring holds two open no-upload alerts for more than 10 minutes.
        _case(
            "HealthbusInstitutionSilent",
            [
                {"series": 'healthbus_quality_feed_alerts_open{kind="NO_UPLOAD"}', "values": "0x5 2x30"},
            ],
            "5m",
            "20m",
            {"severity": "warning", "kind": "NO_UPLOAD"},
            value=2,
        ),
        # 20 dead letters a minute for longer than the rule's 10 minutes; 1 a minute before that.
        _case(
            "HealthbusDeadLetterRate",
            [
                {
                    "series": 'healthbus_dead_letters_total{stage="identify",error_code="bad_signature"}',
                    "values": "0+1x20 20+20x30",
                },
            ],
            "15m",
            "40m",
            {"severity": "warning", "stage": "identify", "error_code": "bad_signature"},
            value=20,
        ),
    ]
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}, allow_unicode=True)
    )
    result = _promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_adapter_alerts_fire_when_they_should_and_not_before(tmp_path: Path) -> None:
    one, other = "12411502MB0000001X", "12411502MB0000002X"
    tests = [
        # One exchange database stops answering at minute 11 while another stays up: after the rule's 5
        # minutes, only the first is reported.
        _case(
            "HealthbusAdapterSourceDown",
            [
                {"series": f'healthbus_adapter_source_up{{org_code="{one}",kind="hospital"}}', "values": "1x10 0x30"},
                {"series": f'healthbus_adapter_source_up{{org_code="{other}",kind="county"}}', "values": "1x40"},
            ],
            "14m",
            "20m",
            {"severity": "warning", "stage": "adapter", "org_code": one, "kind": "hospital"},
        ),
        # One reconciliation run (10 minutes) finds a row differing, the next none: no alert. From minute 19 on
        # 3 rows differ run after run: after the rule's 20 minutes it fires.
        _case(
            "HealthbusAdapterReconciliationMismatch",
            [
                {
                    "series": f'healthbus_adapter_reconciliation_difference_rows{{org_code="{one}",table="outpatient_visit"}}',
                    "values": "0x2 1x9 0x5 3x40",
                },
                {
                    "series": f'healthbus_adapter_reconciliation_difference_rows{{org_code="{one}",table="patient"}}',
                    "values": "0x50",
                },
            ],
            "30m",
            "45m",
            {"severity": "warning", "stage": "adapter", "org_code": one, "table": "outpatient_visit"},
            value=3,
        ),
    ]
    spec = tmp_path / "adapter_alerts_test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}, allow_unicode=True)
    )
    result = _promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_a_real_prometheus_scrapes_a_running_stage(settings: Settings, tmp_path: Path) -> None:
    """The quality worker serves /metrics on 127.0.0.1; Prometheus (127.0.0.1 only) scrapes it and the
    stage's own metrics appear in its queries."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing (Debian: apt-get install prometheus; ops/dev.sh test installs it)")
    metrics_port, web_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "worker-quality", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
                ],
            }
        )
    )
    worker = start_stage_worker(settings, tmp_path / "worker.log", "quality", "--metrics-port", str(metrics_port))
    with open(tmp_path / "prometheus.log", "wb") as log:  # the child keeps its own copy of the handle
        server = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{web_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    # A few events through the stage, so that its labelled counters have series to expose.
    codec, topic = EventCodec(), settings.topic_name(identified_topic("outpatient.visit").name)
    producer = Producer(producer_config(settings.confluent_config()))
    for visit in outpatient_visits(20, seed=4):
        producer.produce(topic, codec.encode("outpatient.visit", visit, topic=topic), b"k")
    assert producer.flush(30) == 0
    try:
        deadline, found = time.monotonic() + 60, []
        while time.monotonic() < deadline and not found:
            time.sleep(1)
            try:
                found = _query(web_port, 'healthbus_stage_events_in_total{job="worker-quality"}')
            except OSError:
                found = []
        assert found, (tmp_path / "worker.log").read_text()[-2000:] + (tmp_path / "prometheus.log").read_text()[-2000:]
        assert sum(float(series["value"][1]) for series in found) == 20, found
        assert {series["metric"]["stage"] for series in found} == {"quality"}
    finally:
        server.terminate()
        server.wait(20)
        worker.terminate()
        worker.wait(30)


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.load(response)["data"]["result"])

"""ops/prometheus and ops/grafana cannot run here (no Docker engine); check they parse, use only metrics the
code defines, scrape every service that serves /metrics, and are mounted by compose.yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.project_layout import PACKAGES as SOURCES

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "ops" / "prometheus"
GRAFANA = ROOT / "ops" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

DATASOURCE_UID = "prometheus"

METRIC_TOKEN = re.compile(r"\bhealthbus_[a-z0-9_]+")
DEFINITION = re.compile(r"\b(PromCounter|Counter|Gauge|Histogram|Summary)\(\s*\"(healthbus_[a-z0-9_]+)\"")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _defined_metrics() -> set[str]:
    """Every series name the code's prometheus_client metrics expose (what a PromQL expression may use)."""
    names: set[str] = set()
    for top in SOURCES:
        for path in (ROOT / top).rglob("*.py"):
            for kind, name in DEFINITION.findall(path.read_text("utf-8")):
                if kind in ("PromCounter", "Counter"):  # prometheus_client appends _total when it is missing
                    names.add(name if name.endswith("_total") else name + "_total")
                elif kind == "Histogram":
                    names.update(name + suffix for suffix in ("_bucket", "_count", "_sum"))
                elif kind == "Summary":
                    names.update((name, name + "_count", name + "_sum"))
                else:
                    names.add(name)
    return names


DEFINED = _defined_metrics()


def _unknown_metrics(expr: str) -> set[str]:
    return set(METRIC_TOKEN.findall(expr)) - DEFINED


def _balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"[^"]*"', '""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def _prometheus() -> dict:
    return yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text("utf-8"))


def _rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text("utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboards() -> list[dict]:
    return [json.loads(p.read_text("utf-8")) for p in DASHBOARDS]


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _dashboard_exprs() -> list[tuple[str, str]]:
    exprs = []
    for d in _dashboards():
        for panel in _panels(d):
            exprs += [(f"{d['uid']}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
        for variable in d.get("templating", {}).get("list", []):
            exprs.append((f"{d['uid']}: ${variable['name']}", variable["definition"]))
    return exprs


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))["services"]


def _metrics_ports() -> dict[str, int]:
    ports = {}
    for name, service in _compose().items():
        command = service.get("command") or []
        if "--metrics-port" in command:
            ports[name] = int(command[command.index("--metrics-port") + 1])
    return ports


def test_metric_definitions_are_found() -> None:
    assert {
        "healthbus_dead_letters_total",
        "healthbus_stage_batch_processing_seconds_bucket",
        "healthbus_quality_feed_alerts_open",
        "healthbus_surveillance_alerts_open",
    } <= DEFINED


def test_the_checker_catches_misspelt_and_misused_metrics() -> None:
    assert _unknown_metrics("rate(healthbus_identfy_events_total[5m])") == {"healthbus_identfy_events_total"}
    assert _unknown_metrics("healthbus_stage_batch_processing_seconds_total") == {
        "healthbus_stage_batch_processing_seconds_total"
    }
    assert _unknown_metrics("healthbus_surveillance_alerts_open_total") == {"healthbus_surveillance_alerts_open_total"}
    assert not _unknown_metrics('sum(rate(healthbus_quality_events_total{outcome="rejected"}[5m]))')
    assert not _balanced("sum(rate(healthbus_dead_letters_total[5m])")


def test_every_config_file_parses() -> None:
    for path in [*PROMETHEUS.glob("*.yml"), *GRAFANA.rglob("*.yml")]:
        assert yaml.safe_load(path.read_text("utf-8")), path
    assert len(DASHBOARDS) >= 3
    for path in DASHBOARDS:
        assert json.loads(path.read_text("utf-8")), path


def test_every_metric_service_is_scraped() -> None:
    ports = _metrics_ports()
    assert {
        "adapters",
        "worker-identify",
        "worker-quality",
        "worker-routing",
        "worker-surveillance",
        "quality-monitor",
        "surveillance-monitor",
    } <= set(ports)
    config = _prometheus()
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml"]
    targets: set[tuple[str, int]] = set()
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert len(jobs) == len(set(jobs))
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets |= {(name, sd["port"]) for name in sd["names"]}
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
    for service, port in ports.items():
        assert (service, port) in targets, f"{service}:{port} is not scraped"
        assert service in jobs, f"no job named after {service}"


def test_alert_rules_are_complete() -> None:
    rules = _rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        notes = rule["annotations"]
        for key in ("summary", "description"):
            assert CJK.search(notes[f"{key}_zh"]), f"{rule['alert']}: {key}_zh"
            assert notes[f"{key}_en"] and not CJK.search(notes[f"{key}_en"]), f"{rule['alert']}: {key}_en"
    covered = " ".join(r["expr"] for r in rules)
    for needed in (
        "up",
        "healthbus_dead_letters_total",
        'healthbus_quality_events_total{outcome="rejected"',
        'healthbus_quality_feed_alerts_open{kind="NO_UPLOAD"}',
        "healthbus_surveillance_alerts_open",
        "healthbus_routing_reminders_total",
        "healthbus_adapter_seconds_behind",
    ):
        assert needed in covered, needed


@pytest.mark.parametrize("where, expr", [(r["alert"], r["expr"]) for r in _rules()] + _dashboard_exprs())
def test_expressions_use_defined_metrics_only(where: str, expr: str) -> None:
    assert METRIC_TOKEN.search(expr) or re.search(r"\bup\b", expr), f"{where}: no metric"
    assert not _unknown_metrics(expr), f"{where}: unknown {sorted(_unknown_metrics(expr))}"
    assert _balanced(expr), f"{where}: unbalanced brackets"


def test_dashboards_are_well_formed() -> None:
    dashboards = _dashboards()
    uids = [d["uid"] for d in dashboards]
    titles = [d["title"] for d in dashboards]
    assert len(uids) == len(set(uids)) and len(titles) == len(set(titles))
    for d in dashboards:
        assert d["schemaVersion"] >= 39
        panels = _panels(d)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), d["uid"]
        for panel in panels:
            assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{d['uid']}: {panel['title']}"
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text("utf-8"))
    assert [ds["uid"] for ds in datasources["datasources"]] == [DATASOURCE_UID]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    out = {}
    for volume in _compose()[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        out[container] = host
    return out


def test_compose_mounts_the_configs() -> None:
    prometheus = _mounts("prometheus")
    assert (ROOT / prometheus["/etc/prometheus"] / "prometheus.yml").is_file()
    assert (ROOT / prometheus["/etc/prometheus"] / "alerts.yml").is_file()
    grafana = _mounts("grafana")
    for host in grafana.values():
        assert host.startswith("./") and (ROOT / host).exists(), host
    assert any(c.startswith("/etc/grafana/provisioning/datasources/") for c in grafana)
    provider_files = [ROOT / h for c, h in grafana.items() if c.startswith("/etc/grafana/provisioning/dashboards/")]
    assert provider_files
    for provider_file in provider_files:
        for provider in yaml.safe_load(provider_file.read_text("utf-8"))["providers"]:
            host = grafana[provider["options"]["path"]]  # the provider's folder is a mount of the dashboards
            assert (ROOT / host).resolve() == (GRAFANA / "dashboards").resolve()

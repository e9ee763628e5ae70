"""The pipeline declaration (avro_schemas/pipeline.py) against the topic catalogue, the code that runs each
stage, compose.yaml, the Prometheus configuration and alert rules, and the picture in docs/architecture.md."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from avro_schemas.pipeline import PIPELINE, STAGES, deployed
from avro_schemas.topics import CATALOGUE, PIPELINE_EVENT_TYPES, declared_inputs, expand
from ops.pipeline_map import mermaid

REPO = Path(__file__).resolve().parent.parent
DOWNSTREAM_LAYERS = ("collab", "record", "alerts")  # read by the systems that subscribe, not by a stage


def _compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())["services"]


def test_every_declared_topic_is_in_the_catalogue():
    for s in PIPELINE:
        assert expand(s.reads) or not s.reads
        assert expand(s.writes) or not s.writes


def test_every_catalogue_topic_has_one_writer_and_a_reader():
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    for s in PIPELINE:
        if not s.deployed:
            continue
        for name in expand(s.writes):
            writers.setdefault(name, []).append(s.name)
        for name in expand(s.reads):
            readers.setdefault(name, []).append(s.name)
        if s.dead_letters:
            writers.setdefault(f"dlq.{s.name}", []).append(s.name)
    for name, spec in CATALOGUE.items():
        assert len(writers.get(name, [])) == 1, f"{name} is written by {writers.get(name)}"
        if spec.layer not in (*DOWNSTREAM_LAYERS, "dlq", "surveillance", "quality", "empi"):
            assert readers.get(name), f"nobody reads {name}"


def test_dead_letter_topics_follow_the_declaration():
    assert {n for n, s in CATALOGUE.items() if s.layer == "dlq"} == {
        f"dlq.{s.name}" for s in PIPELINE if s.dead_letters
    }


def test_each_entry_names_a_function():
    for s in PIPELINE:
        module, _, function = s.entry.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), s.entry


def test_stages_subscribe_to_what_they_declare():
    assert list(declared_inputs("identify", "p.")) == [f"p.raw.{t}" for t in PIPELINE_EVENT_TYPES]
    assert declared_inputs("surveillance") == {"validated.outpatient.visit": "outpatient.visit"}
    routing = declared_inputs("routing", "", ["death.record"])
    assert routing == {
        "validated.death.record": "death.record",
        "empi.person_merged": "empi.person_merged",
        "empi.record_relinked": "empi.record_relinked",
    }  # identity changes are never narrowed


def test_compose_runs_each_deployed_stage_as_declared():
    services = _compose()
    for s in PIPELINE:
        found = [n for n, svc in services.items() if svc.get("command", [])[1 : 1 + len(s.command)] == list(s.command)]
        if not s.deployed:
            assert not found, f"{s.name} is not deployed but compose.yaml runs it"
            continue
        assert len(found) == 1, f"compose.yaml runs {s.name} as {found}"
        svc = services[found[0]]
        assert svc["command"][0] == "healthbus"
        assert svc["command"][-2:] == ["--metrics-port", str(s.metrics_port)], found[0]
        assert svc.get("deploy", {}).get("replicas", 1) == s.replicas, found[0]


def test_prometheus_scrapes_each_deployed_stage_on_its_port():
    services = _compose()
    config = yaml.safe_load((REPO / "ops/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for s in PIPELINE:
        if not s.deployed:
            continue
        service = next(
            n for n, svc in services.items() if svc.get("command", [])[1 : 1 + len(s.command)] == list(s.command)
        )
        assert jobs[service]["dns_sd_configs"][0]["port"] == s.metrics_port, service


def test_alert_rules_watch_every_stream_stage_and_name_only_declared_ones():
    rules = [r for g in yaml.safe_load((REPO / "ops/prometheus/alerts.yml").read_text())["groups"] for r in g["rules"]]
    named = {r["labels"]["stage"] for r in rules if "stage" in r.get("labels", {})}
    assert named <= set(STAGES) | {"ops"}, named - set(STAGES)  # ops: the consumer-lag service, not a stage
    stalled = {
        r["labels"]["stage"] for r in rules if "stalled" in r["alert"].lower() and "stage" in r.get("labels", {})
    }
    assert stalled == set(deployed("stream"))


def test_architecture_document_holds_todays_picture():
    text = (REPO / "docs/architecture.md").read_text()
    start = text.index("<!-- pipeline:begin")
    block = text[
        text.index("```mermaid\n", start) + len("```mermaid\n") : text.index(
            "```", text.index("```mermaid\n", start) + 3
        )
    ]
    assert block == mermaid(), "regenerate: healthbus pipeline show --as mermaid"


@pytest.mark.parametrize("name", [s.name for s in PIPELINE if s.deployed])
def test_architecture_document_names_every_stage(name):
    assert f"`{name}`" in (REPO / "docs/architecture.md").read_text()

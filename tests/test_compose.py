"""compose.yaml cannot run here (no Docker engine); check it only runs real commands with real settings."""

from __future__ import annotations

from pathlib import Path

import typer.main
import yaml

from foundation.settings import Settings
from ops.cli.app import app

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
INFRASTRUCTURE = {
    "kafka-1",
    "kafka-2",
    "kafka-3",
    "schema-registry",
    "postgres",
    "redis",
    "clickhouse",
    "prometheus",
    "grafana",
}


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]


def _is_group(node: object) -> bool:
    return hasattr(node, "commands")  # typer vendors its own click: duck-type the group


def _resolve(command: list[str]) -> object | None:
    """Walk the CLI's command tree; None if a word is not a subcommand."""
    node = typer.main.get_command(app)
    for word in command[1:]:
        if word.startswith("-") or not _is_group(node):
            break
        node = node.commands.get(word)
        if node is None:
            return None
    return node


def test_infrastructure_is_there() -> None:
    assert INFRASTRUCTURE <= set(_services())


def test_project_services_run_real_subcommands_with_real_options() -> None:
    project = {n: s for n, s in _services().items() if n not in INFRASTRUCTURE}
    assert {
        "topics",
        "worker-identify",
        "worker-quality",
        "worker-routing",
        "worker-surveillance",
        "surveillance-monitor",
        "quality-monitor",
        "sink-postgres",
        "sink-clickhouse",
    } <= set(project)
    for name, service in project.items():
        command = service["command"]
        assert command[0] == "healthbus", name
        resolved = _resolve(command)
        assert resolved is not None and not _is_group(resolved), f"{name}: {command} is no subcommand"
        known = {opt for p in resolved.params for opt in getattr(p, "opts", [])}
        for word in command[1:]:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"{name}: unknown option {word}"


def test_project_services_set_only_real_settings() -> None:
    fields = {f"HEALTHBUS_{name.upper()}" for name in Settings.model_fields}
    for name, service in _services().items():
        if name in INFRASTRUCTURE:
            continue
        env = service.get("environment", {})
        for var in env:
            if var.startswith("HEALTHBUS_"):
                assert var in fields, f"{name}: {var} is not a setting"
        assert env.get("HEALTHBUS_PROFILE") == "production"


def test_published_ports_are_loopback_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_example_adapter_config_is_valid() -> None:
    from foundation.standards.credit_code import is_valid_credit_code
    from producers.adapters.config import load_config

    config = load_config(COMPOSE.parent / "ops" / "adapters.example.yaml")
    assert config.sources and all(is_valid_credit_code(s.org_code) for s in config.sources)

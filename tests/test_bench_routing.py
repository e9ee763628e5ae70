"""`healthbus bench routing` end to end on a small run, as a user runs it: every figure is there and positive
and the bench drops its private databases (no timing thresholds: a benchmark is not a timed test)."""

from __future__ import annotations

import json

import psycopg

from foundation.settings import Settings
from ops.stack.postgres import server_conninfo
from tests.conftest import healthbus, settings_env

KEYS = {
    "decode_only_events_per_s",
    "routing_decisions_events_per_s",
    "routing_decisions_vs_target",
    "stage_core_events_per_s",
    "stage_core_replay_events_per_s",
    "routed_share",
    "work_item_changes_per_1000_events",
}


def _bench_databases(settings: Settings) -> list[str]:
    with psycopg.connect(server_conninfo(settings.postgres_url)) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'hb_bench_routing_%'")]


def test_bench_routing_reports_every_figure_and_leaves_no_database(settings: Settings) -> None:
    before = set(_bench_databases(settings))
    result = healthbus("bench", "routing", "--events", "2000", "--json", env=settings_env(settings), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("routing: 2000 validated events"), result.stdout
    figures = json.loads(lines[-1])
    assert set(figures) == KEYS, figures
    assert all(v > 0 for v in figures.values()), figures
    assert 0 < figures["routed_share"] < 1
    assert set(_bench_databases(settings)) <= before

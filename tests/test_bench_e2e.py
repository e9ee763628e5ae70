"""`healthbus bench e2e` on the smallest synthetic world, as a user runs it: the table, the targets with met /
not met, every figure in the JSON object and sane, and nothing left behind (databases, topics, ClickHouse
directory, Faust data directories, EMPI cache keys). No timing thresholds: a benchmark is not a timed test."""

from __future__ import annotations

import json

import psycopg
import redis

from foundation.settings import Settings
from ops.stack.postgres import server_conninfo
from ops.topic_admin import existing_topics
from tests.conftest import healthbus, settings_env

STAGES = ("identify_stage", "quality_stage", "routing_stage", "surveillance_stage", "postgres_sink", "clickhouse_sink")
PROCESSES = (
    "identify_worker",
    "quality_worker",
    "routing_worker",
    "surveillance_worker",
    "postgres_sink",
    "clickhouse_sink",
    "bench_process_adapters_publisher",
)
KEYS = {
    "adapters_events_per_s",
    *(f"{s}_events_per_s" for s in STAGES),
    "end_to_end_events_per_s",
    "aiokafka_consume_produce_events_per_s",
    "end_to_end_per_aiokafka",
    "events_published",
    "events_in_both_sinks",
    "seconds_end_to_end",
    "offered_events_per_s",
    "latency_p50_s",
    "latency_p99_s",
    "latency_max_s",
    "latency_samples",
    "latency_resolution_s",
    *(f"peak_memory_mib_{p}" for p in PROCESSES),
    *(f"cpu_ms_per_event_{p}" for p in PROCESSES),
    "cpu_ms_per_event_all_our_processes",
    "cpu_ms_per_event_kafka_broker",  # the broker runs on this machine in tests
    "events_per_s_this_cpu_cost_allows_on_this_machine",
    "end_to_end_target_met",
    "p99_target_met",
}


def _bench_databases(settings: Settings) -> set[str]:
    with psycopg.connect(server_conninfo(settings.postgres_url)) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'hb_bench_e2e_%'")}


def test_bench_e2e_reports_every_figure_and_leaves_nothing_behind(settings: Settings) -> None:
    databases = _bench_databases(settings)
    result = healthbus(
        "bench",
        "e2e",
        "--events",
        "300",
        "--offered-rate",
        "100",
        "--offered-seconds",
        "2",
        "--json",
        env=settings_env(settings),
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("e2e: ") and "events through the pipeline" in lines[0], result.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("target") and "measured" in line)
    targets = lines[header + 1 : header + 3]  # each names its target and says met or NOT met
    assert targets[0].startswith("end-to-end events/s") and "≥ 5,000" in targets[0], result.stdout
    assert targets[1].startswith("p99 latency s at 100 events/s") and "< 2" in targets[1], result.stdout
    assert all(t.endswith(" met") for t in targets), result.stdout

    figures = json.loads(lines[-1])
    assert set(figures) == KEYS, set(figures) ^ KEYS
    rates = [k for k in figures if k.endswith("_events_per_s")]
    assert all(figures[k] > 0 for k in rates), figures
    assert all(figures[f"peak_memory_mib_{p}"] > 0 for p in PROCESSES), figures
    assert 0 < figures["events_in_both_sinks"] <= figures["events_published"]
    assert 0 < figures["latency_p50_s"] <= figures["latency_p99_s"] <= figures["latency_max_s"]
    assert 0 < figures["latency_samples"] <= 200  # 100 events/s for 2 s, less what the quality rules rejected
    assert figures["end_to_end_target_met"] is (figures["end_to_end_events_per_s"] >= 5000)
    assert figures["p99_target_met"] is False  # offered 100/s: the target is set at 1,000/s
    assert figures["cpu_ms_per_event_all_our_processes"] > 0 and figures["cpu_ms_per_event_identify_worker"] > 0
    assert figures["cpu_ms_per_event_kafka_broker"] > 0

    assert _bench_databases(settings) <= databases
    for prefix in (f"{settings.topic_prefix}bench-e2e-", f"{settings.group_prefix}.bench-e2e-"):  # Faust's own too
        assert not existing_topics(settings.confluent_config(), prefix)
    assert not list(settings.state_dir.glob("bench-e2e-*")) and not list(settings.state_dir.glob("faust/*bench-e2e-*"))
    client = redis.Redis.from_url(settings.redis_url)
    try:
        assert not list(client.scan_iter(match=f"hb:{settings.topic_prefix}bench-e2e-*", count=1000))
    finally:
        client.close()

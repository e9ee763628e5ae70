"""The pipeline, declared once: every stage, what it reads, what it writes, how it runs.

Each ``Stage`` names the catalogue topics it reads and writes (``layer.*`` stands for every event type of a
layer, ``empi.*`` for every identity change), the ``healthbus`` command that runs it, the function that
command calls (``module:function``; the CLI resolves it, so this module imports no stage), its Prometheus
port and how many replicas compose.yaml runs. What reads it: ``healthbus worker NAME``, ``healthbus status``
and ``lag`` (consumer groups and their inputs), ``healthbus topics acls`` (what each may write), the demo,
``bench e2e``, the chaos harness, the topic catalogue (one dead-letter topic per stage) and
``healthbus pipeline show``. tests/test_pipeline.py holds compose.yaml, the Prometheus configuration and
docs/architecture.md to it, and checks that every stage subscribes to exactly what it declares.

Contracts only: plain data, no Kafka and no stage code here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StageKind = Literal["adapter", "stream", "sink", "monitor"]


@dataclass(frozen=True)
class Stage:
    name: str  # its consumer group is <group_prefix>.<name>, its dead letters dlq.<name>, its metrics label
    kind: StageKind
    reads: tuple[str, ...]  # catalogue topic names or layer patterns ("validated.*")
    writes: tuple[str, ...]  # dead letters (dlq.<name>) are implied by dead_letters
    command: tuple[str, ...]  # healthbus arguments that run it (compose.yaml, the demo)
    entry: str  # "module:function" the command calls
    metrics_port: int
    doc: str
    stores: tuple[str, ...] = ()  # databases it reads or writes besides Kafka (for the map)
    replicas: int = 1  # in compose.yaml
    dead_letters: bool = True
    options: tuple[str, ...] = ()  # stage-specific `healthbus worker` options it takes
    deployed: bool = True  # False: a bench subject or fallback, not part of compose.yaml

    @property
    def consumer_group(self) -> bool:
        return bool(self.reads)


PIPELINE: tuple[Stage, ...] = (
    Stage(
        "adapter",
        "adapter",
        reads=(),
        writes=("raw.*",),
        command=("adapter", "run", "--config", "/etc/healthbus/adapters.yaml"),
        entry="producers.adapters.runner:run_adapters",
        metrics_port=9301,
        stores=("exchange databases",),
        doc="what hospitals and county systems write to their exchange databases, as raw events",
    ),
    Stage(
        "identify",
        "stream",
        reads=("raw.*",),
        writes=("identified.*", "empi.*"),
        command=("worker", "identify"),
        entry="streams.identity.stage:run_worker",
        metrics_port=9302,
        replicas=2,
        stores=("PostgreSQL empi", "Redis"),
        doc="checks each event's institution and attaches the resident's person id (EMPI)",
    ),
    Stage(
        "quality",
        "stream",
        reads=("identified.*",),
        writes=("validated.*", "quality.results"),
        command=("worker", "quality"),
        entry="streams.quality.stage:run_worker",
        metrics_port=9303,
        replicas=2,
        stores=("PostgreSQL",),
        doc="judges every event by the quality rule set; errors are dead-lettered, every verdict published",
    ),
    Stage(
        "routing",
        "stream",
        reads=("validated.*", "empi.*"),
        writes=("collab.*", "record.deregistered", "alerts.clinical"),
        command=("worker", "routing"),
        entry="streams.routing.stage:run_worker",
        metrics_port=9305,
        replicas=2,
        options=("route",),
        stores=("PostgreSQL routing",),
        doc="collaboration work queues, the health-record seal on a registered death, clinical reminders",
    ),
    Stage(
        "surveillance",
        "stream",
        reads=("validated.outpatient.visit",),
        writes=("surveillance.cases",),
        command=("worker", "surveillance"),
        entry="streams.surveillance.stage:run_worker",
        metrics_port=9306,
        replicas=2,
        stores=("PostgreSQL surveillance",),
        doc="classifies outpatient visits into syndromes and keeps daily counts",
    ),
    Stage(
        "passthrough",
        "stream",
        reads=("raw.*",),
        writes=("identified.*",),
        command=("worker", "passthrough"),
        entry="streams.passthrough:run_worker",
        metrics_port=9311,
        deployed=False,
        dead_letters=False,  # it shares dlq.identify: it stands in for the identify stage
        doc="raw → identified with the institution checks only (benchmark baseline, fallback without EMPI)",
    ),
    Stage(
        "quality-monitor",
        "monitor",
        reads=(),
        writes=("alerts.quality",),
        command=("quality", "monitor", "--every", "300"),
        entry="read_side.quality_upload_monitor:run_monitor",
        metrics_port=9304,
        dead_letters=False,
        stores=("ClickHouse", "PostgreSQL"),
        doc="daily upload monitoring per institution and feed: quiet or low feeds, and their recovery",
    ),
    Stage(
        "surveillance-monitor",
        "monitor",
        reads=(),
        writes=("alerts.surveillance",),
        command=("surveillance", "monitor", "--every", "300"),
        entry="streams.surveillance.monitor:run_once",
        metrics_port=9307,
        dead_letters=False,
        stores=("PostgreSQL surveillance",),
        doc="syndromic early warning: judges each day's counts, opens, updates and closes alerts",
    ),
    Stage(
        "sink-postgres",
        "sink",
        reads=("validated.*",),
        writes=(),
        command=("sink", "postgres"),
        entry="sinks.runner:run_sink",
        metrics_port=9309,
        stores=("PostgreSQL event store",),
        doc="the event store, idempotent by event id",
    ),
    Stage(
        "sink-clickhouse",
        "sink",
        reads=("validated.*", "quality.results", "surveillance.cases", "collab.infectious_disease"),
        writes=(),
        command=("sink", "clickhouse"),
        entry="sinks.runner:run_sink",
        metrics_port=9310,
        stores=("ClickHouse",),
        doc="analytics tables without personal identifiers (pseudonyms only)",
    ),
)

STAGES: dict[str, Stage] = {s.name: s for s in PIPELINE}


def stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a stage of the pipeline; stages: {', '.join(STAGES)}") from None


def dead_letter_stages() -> tuple[str, ...]:
    """Stages with a dead-letter topic of their own (dlq.<stage>)."""
    return tuple(s.name for s in PIPELINE if s.dead_letters)


def deployed(kind: StageKind) -> tuple[str, ...]:
    """Names of the deployed stages of one kind, in pipeline order (what the demo and benchmarks start)."""
    return tuple(s.name for s in PIPELINE if s.kind == kind and s.deployed)

"""Build a Faust app and worker from healthbus settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import faust
from yarl import URL

from foundation.settings import Settings
from streams.faust_runtime.fast_consumer import TRANSPORT_SCHEME
from streams.faust_runtime.lean_monitor import LeanMonitor

if TYPE_CHECKING:
    from streams.faust_runtime.batch_agent import BatchStage


class RawBytesSchema(faust.Schema):
    """Keys and values stay bytes: stages decode them themselves (with the project's serde)."""

    def loads_key(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value


def _credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=settings.ssl_context() if settings.kafka_security_protocol == "SASL_SSL" else None,
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


def make_app(settings: Settings, stage: str) -> faust.App:
    """A Faust app whose consumer group is ``<group_prefix>.<stage>``."""
    hosts = [h.strip() for h in settings.kafka_bootstrap.split(",") if h.strip()]
    app_id = settings.group_id(stage)
    datadir = settings.state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = dict(
        broker=[URL(f"kafka://{h}") for h in hosts],
        broker_consumer=[URL(f"{TRANSPORT_SCHEME}://{h}") for h in hosts],
        broker_credentials=_credentials(settings),
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_ms / 5000),
        broker_max_poll_records=2000,
        stream_buffer_maxsize=30000,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,  # the catalogue creates topics (healthbus topics create), not workers
        topic_partitions=6,
        web_enabled=False,  # metrics are served by prometheus-client on 127.0.0.1, not Faust's web server
        datadir=str(datadir),
        Monitor=LeanMonitor,
    )
    return faust.App(app_id, **conf)


class StageWorker(faust.Worker):
    """A worker without the terminal spinner: at log levels ≥ WARNING the spinner sets the *root* logger
    to DEBUG, so every ``log.debug`` on the hot path builds a record (measured: ~20% of a stage's time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


def run_worker(app: faust.App, loglevel: int = logging.WARNING) -> None:
    StageWorker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


def batch_stage_app(
    settings: Settings, stage_name: str, build: Callable[[], BatchStage], group_suffix: str = ""
) -> faust.App:
    """The Faust app of a batch stage: one agent over the stage's inputs running its ``handle_batch``
    (messages → OutRecords) off the event loop, because stages wait on PostgreSQL and Redis and the loop must
    keep heartbeats going. A database outage is waited out on a stage rebuilt by ``build`` (BatchAgent);
    any other crash stops the worker (CrashingSupervisor) rather than skipping a batch."""
    import mode

    from foundation.kafka_config import producer_config
    from streams.faust_runtime.batch_agent import BatchAgent

    stage = build()
    app = make_app(settings, stage_name + group_suffix)
    topic = app.topic(*stage.inputs, schema=RawBytesSchema())
    agent = BatchAgent(
        app,
        stage.handle_batch,
        producer_config(settings.confluent_config()),
        blocking=True,
        stage_name=stage_name,
        topic_prefix=settings.topic_prefix,
        stage=stage,
        rebuild=build,
        # a record the stage fails on alone becomes a dead letter of this stage, built by its intake
        dead_letter=lambda m, code, reason, details: agent.stage.intake.dead_letter(m, code, reason, details),  # type: ignore[union-attr]
    )
    app.agent(topic, name=stage_name, supervisor_strategy=mode.CrashingSupervisor)(agent.__call__)
    return app


def run_batch_stage(
    settings: Settings, stage_name: str, build: Callable[[], BatchStage], group_suffix: str = ""
) -> None:
    """Run a batch stage (built by ``build``: ``inputs``, ``handle_batch``, ``close``) as a Faust worker until
    it is stopped."""
    run_worker(batch_stage_app(settings, stage_name, build, group_suffix))

"""``healthbus status`` and ``healthbus lag``: what the operator on call looks at."""

from __future__ import annotations

from typing import Annotated

import typer

from foundation.metrics_server import serve_metrics
from foundation.settings import get_settings
from ops.cli.options import JsonFlag, MetricsPort


def status(as_json: JsonFlag = False) -> None:
    """One screen for the operator on call: services, workers and their lag (end offsets less commits),
    dead letters by reason, the newest event per institution, open alerts. No personal data."""
    from ops.status import status_command

    print(status_command(get_settings(), as_json), end="")


def lag(
    metrics_port: MetricsPort = None,
    every: Annotated[float, typer.Option(help="Seconds between measurements when serving metrics")] = 15.0,
) -> None:
    """Consumer lag of every stage and sink per input partition (end offsets less commits). With
    --metrics-port: keep measuring and serve it as healthbus_consumer_lag_messages."""
    import signal
    import threading

    from ops.lag_exporter import LagExporter

    exporter = LagExporter(get_settings())
    if not metrics_port:
        prefix = get_settings().topic_prefix
        print(f"{'stage':<16} {'topic[partition]':<44} {'committed':>10} {'high':>10} {'lag':>8}")
        for stage, _group, row in exporter.measure():
            where = f"{row.topic.removeprefix(prefix)}[{row.partition}]"
            committed = "-" if row.committed is None else str(row.committed)
            print(f"{stage:<16} {where:<44} {committed:>10} {row.high:>10} {row.lag:>8}")
        return
    serve_metrics(metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    exporter.run(every, stop)

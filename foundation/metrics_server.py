"""Serve a process's Prometheus metrics: ``/metrics`` on ``HEALTHBUS_METRICS_HOST`` (127.0.0.1 unless a
deployment sets it, as compose does inside its private network) and the port the command was given."""

from __future__ import annotations


def serve_metrics(port: int | None) -> None:
    if not port:
        return
    from prometheus_client import start_http_server

    from foundation.settings import get_settings

    start_http_server(port, addr=get_settings().metrics_host)

"""Prometheus metrics of the adapters (labels: institution code and table — never personal data)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROWS_READ = Counter("healthbus_adapter_rows_read_total", "Exchange-database rows read", ["org_code", "table"])
EVENTS_PUBLISHED = Counter(
    "healthbus_adapter_events_published_total", "Events acknowledged by the broker", ["org_code", "table"]
)
FAILURES = Counter("healthbus_adapter_failures_total", "Rows quarantined, by reason", ["org_code", "table", "reason"])
SECONDS_BEHIND = Gauge(
    "healthbus_adapter_seconds_behind", "Now minus the update time of the newest captured row", ["org_code", "table"]
)

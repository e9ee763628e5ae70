"""Prometheus metrics of the adapters (labels: institution code, table and source kind — never personal data)."""

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
LATE_ROWS = Counter(
    "healthbus_adapter_late_rows_total",
    "Rows found behind the watermark by the overlap re-read (committed late, or stamped by a clock behind)",
    ["org_code", "table"],
)

# -- each source's health, kept by its supervisor (producers/adapters/supervision.py) ------------------------
SOURCE_UP = Gauge(
    "healthbus_adapter_source_up",
    "1 while the source's polls succeed, 0 while they fail and the source backs off",
    ["org_code", "kind"],
)
CONSECUTIVE_FAILURES = Gauge(
    "healthbus_adapter_source_consecutive_failures",
    "Failed polls of the source since its last success",
    ["org_code", "kind"],
)
LAST_SUCCESS = Gauge(
    "healthbus_adapter_source_last_success_timestamp_seconds",
    "When the source last completed a round (Unix time)",
    ["org_code", "kind"],
)

# -- reconciliation: the exchange database's rows per table and day against what was published ---------------
RECONCILIATION_DIFFERENCE = Gauge(
    "healthbus_adapter_reconciliation_difference_rows",
    "Rows by which the exchange table and what was published (or quarantined) differ, summed over the days checked",
    ["org_code", "table"],
)
RECONCILIATION_LAST_RUN = Gauge(
    "healthbus_adapter_reconciliation_last_run_timestamp_seconds",
    "When the source was last reconciled (Unix time)",
    ["org_code", "kind"],
)

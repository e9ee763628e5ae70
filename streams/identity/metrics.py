"""Prometheus metrics of the identify stage (labels: event type, match rule — never personal data).

Dead letters are counted for every stage in foundation/dead_letters.py."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_IDENTIFIED = Counter(
    "healthbus_identify_events_total", "Events given a person id, by the rule that decided", ["event_type", "rule"]
)
REVIEWS_RAISED = Counter("healthbus_identify_reviews_total", "Events whose resolution raised a review item")
RECORDS_MOVED = Counter("healthbus_identify_records_moved_total", "Records moved to another person by automatic merges")
BATCH_SECONDS = Histogram(
    "healthbus_identify_batch_seconds",
    "Time to resolve one batch (cache, index, match)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

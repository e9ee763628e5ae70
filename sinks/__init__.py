"""Sinks: land pipeline events in PostgreSQL (event store, registries, work queues) and ClickHouse
(analytics). Every write is idempotent by event id; offsets are committed only after the write."""

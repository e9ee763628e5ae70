"""The local stack: a Kafka-compatible broker, PostgreSQL, Redis and ClickHouse (chDB) on 127.0.0.1.

Each service module knows how to check that its service answers and, when it doesn't and the address is
local, how to start a private instance. ``lifecycle`` records what it started so ``down`` stops only that.
"""

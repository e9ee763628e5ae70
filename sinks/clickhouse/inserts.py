"""Inserts a backfill can't break: ClickHouse refuses one insert that touches more than 100 partitions
(``max_partitions_per_insert_block``, a guard worth keeping), and every analytics table is partitioned by
month. A batch of a real backfill (a county uploading ten years of history) spans more, so rows are written
in chunks of at most ``MONTHS_PER_INSERT`` months, each chunk ordered by month."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import Any

# Under the server's limit of 100 with room for a month boundary seen in UTC here and in Asia/Shanghai by
# the table's partition expression.
MONTHS_PER_INSERT = 90


def _month(value: Any) -> tuple[int, int]:
    if isinstance(value, dt.date):  # datetime too
        return value.year, value.month
    return (0, 0)  # no date: one chunk of its own


def insert_by_month(client: Any, table: str, rows: list[list[Any]], columns: list[str], month_column: str) -> None:
    """Insert ``rows`` into ``table`` in as few inserts as the partition limit allows (one when the batch
    spans at most MONTHS_PER_INSERT months, as live traffic does)."""
    if not rows:
        return
    at = columns.index(month_column)
    months = {_month(r[at]) for r in rows}
    if len(months) <= MONTHS_PER_INSERT:
        client.insert(table, rows, column_names=columns)
        return
    ordered = sorted(rows, key=lambda r: _month(r[at]))
    chunk: list[list[Any]] = []
    seen = 0
    for _, group in groupby(ordered, key=lambda r: _month(r[at])):
        if seen == MONTHS_PER_INSERT:
            client.insert(table, chunk, column_names=columns)
            chunk, seen = [], 0
        chunk.extend(group)
        seen += 1
    client.insert(table, chunk, column_names=columns)

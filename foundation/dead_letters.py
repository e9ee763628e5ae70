"""Dead letters: a message a stage cannot process becomes a replayable ``ops.dead_letter`` record.

The record keeps the original key, payload and headers byte for byte plus a machine-readable reason, so
``healthbus dlq replay`` (or a corrected re-send) can bring it back. The id is deterministic from the
source position: dead-lettering the same message twice (after a restart) yields the same record.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prometheus_client import Counter

DEAD_LETTER_NAMESPACE = uuid.UUID("0c9a2b7e-2f61-4e0b-8d8c-6b1f3f2d9a55")


DEAD_LETTERS = Counter(
    "healthbus_dead_letters_total",
    "Messages a stage dead-lettered, by machine-readable reason",
    ["stage", "error_code"],
)


def dead_letter(
    stage: str,
    error_code: str,
    error_message: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
    details: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The ``ops.dead_letter`` value for one failed message. ``error_message`` must hold no personal data."""
    return {
        "dead_letter_id": str(uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{stage}\x1f{topic}\x1f{partition}\x1f{offset}")),
        "failed_at": now or dt.datetime.now(dt.UTC),
        "stage": stage,
        "error_code": error_code,
        "error_message": error_message,
        "details": details or {},
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "key": key,
        "payload": payload,
        "headers": {k: (v or b"") for k, v in (headers or [])},
    }

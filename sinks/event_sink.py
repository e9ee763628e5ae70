"""What a sink is: something that writes a batch of decoded events idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """A decoded event with where it was read from."""

    event_type: str
    value: dict[str, Any]
    topic: str
    partition: int
    offset: int


class EventSink(Protocol):
    name: str

    def write(self, records: list[SinkRecord]) -> int:
        """Write the batch; a record already written (same event id) is skipped. Returns rows added.
        Must raise on failure (the batch is then retried: offsets are not committed)."""
        ...

    def close(self) -> None: ...

"""The contracts' JSON form of an event: what the event store keeps and what CLIs print and read.

Avro values become plain JSON: timestamps as ISO 8601 UTC with milliseconds (``2026-11-01T08:00:00.000Z``),
dates as ``YYYY-MM-DD``, decimals as strings (no float rounding of money), bytes as base64, enums as their
symbol, nullable fields as the value or ``null`` (no Avro union wrapping).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} has no JSON form")


def to_json(value: dict[str, Any]) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))

"""Rules of the envelope every event carries (avro_schemas/common/envelope.avsc)."""

from __future__ import annotations

import uuid

# Fixed namespace so every adapter, anywhere, derives the same id for the same source row version.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a40-5b1e-4d7a-9a43-7d0f3c9e2b11")


def make_event_id(org_code: str, record_key: str, record_version: int, cancelled: bool = False) -> str:
    """Deterministic event id: a re-sent row (same institution, record key and version) gets the same id,
    which is what makes every sink's write idempotent. A cancellation is its own event even when the
    source did not bump the version, so it is never mistaken for a re-send of the record it withdraws."""
    name = f"{org_code}\x1f{record_key}\x1f{record_version}" + ("\x1fcancelled" if cancelled else "")
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))

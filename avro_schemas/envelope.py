"""Rules of the envelope every event carries (avro_schemas/common/envelope.avsc)."""

from __future__ import annotations

import hashlib
import uuid

# Fixed namespace so every adapter, anywhere, derives the same id for the same source row version.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a40-5b1e-4d7a-9a43-7d0f3c9e2b11")


def make_event_id(org_code: str, record_key: str, record_version: int, cancelled: bool = False) -> str:
    """Deterministic event id: a re-sent row (same institution, record key and version) gets the same id,
    which is what makes every sink's write idempotent. A cancellation is its own event even when the
    source did not bump the version, so it is never mistaken for a re-send of the record it withdraws."""
    name = f"{org_code}\x1f{record_key}\x1f{record_version}" + ("\x1fcancelled" if cancelled else "")
    return _uuid5(name)


_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(EVENT_ID_NAMESPACE, name))`` without building UUID objects (on every event's path)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

"""Which institution really sent a raw event: per-institution signing keys and the check of them.

Each adapter holds one key, derived from the platform's master key for its institution
(``adapter_key(master, org_code)``; `healthbus adapter key --org …` prints it for the hospital's config).
It signs every message (key bytes + value bytes) into the ``hb-sig`` header. The first stream stage derives
the key of the institution the message claims (in its Kafka key and in the envelope) and checks the
signature: an adapter of institution A cannot produce anything that passes as institution B, even if it
bypasses the publisher library's own refusal. Broker ACLs (docs/adapters.md) are the first line; this is
the second, and it holds on brokers without ACLs.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "hb-sig"


def adapter_key(master_key: bytes, org_code: str, generation: int = 1) -> bytes:
    """An institution's signing key. ``generation`` > 1 after its key was revoked (``adapter_key_generations``):
    a new key for that institution alone, the old one refused, every other institution's unchanged."""
    label = f"healthbus-adapter\x1f{org_code}" + (f"\x1f{generation}" if generation > 1 else "")
    return hmac.new(master_key, label.encode(), hashlib.sha256).digest()


def sign(key: bytes, message_key: bytes | None, value: bytes) -> bytes:
    mac = hmac.new(key, message_key or b"", hashlib.sha256)
    mac.update(b"\x00")
    mac.update(value)
    return mac.hexdigest().encode("ascii")


def signature_valid(key: bytes, message_key: bytes | None, value: bytes, signature: bytes | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(key, message_key, value), signature)


def org_from_message_key(message_key: bytes | None) -> str | None:
    """Raw topics are keyed '<org_code>:<local_patient_id>'."""
    if not message_key:
        return None
    org, sep, _ = message_key.partition(b":")
    return org.decode("ascii", "replace") if sep else None

"""Pseudonyms and masking: what lets analytics and alerts name a person without personal data."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, *parts: str) -> str:
    """Keyed HMAC-SHA256 pseudonym (hex, 32 chars): stable for a key, unlinkable without it. Rotating the
    key gives every person a new pseudonym."""
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def mask_name(name: str | None) -> str:
    """张三 → 张*, 张三丰 → 张*丰, 欧阳娜娜 → 欧**娜; Latin names keep the first letter."""
    if not name:
        return ""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]

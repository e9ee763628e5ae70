"""Pseudonyms and masking: what lets analytics and alerts name a person without personal data."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, *parts: str) -> str:
    """Keyed HMAC-SHA256 pseudonym (hex, 32 chars): stable for a key, unlinkable without it. Rotating the
    key gives every person a new pseudonym; sinks/clickhouse/pseudonym_rotation.py re-keys what ClickHouse already holds,
    from the parts PostgreSQL knows (docs/security.md)."""
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def person_pseudonym(key: bytes, person_id: str | None, org_code: str, local_patient_id: str) -> str:
    """The one analytics key of a resident: the platform person id's pseudonym; an event without one (not yet
    resolved by the identify stage) counts as that institution's patient. Every analytics table and topic uses
    this, so cases, visits and reports of one patient join."""
    if person_id:
        return pseudonym(key, "person", person_id)
    return pseudonym(key, org_code, local_patient_id)


def mask_name(name: str | None) -> str:
    """张三 → 张*, 张三丰 → 张*丰, 欧阳娜娜 → 欧**娜; Latin names keep the first letter."""
    if not name:
        return ""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def _mask_middle(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def mask_id_number(value: str) -> str:
    """411502199001011234 → 411502********1234 (area code and check digits only); short documents keep 2+2."""
    value = value.strip()
    if len(value) >= 15:
        return _mask_middle(value, 6, 4)
    return _mask_middle(value, 2, 2) if len(value) >= 8 else "*" * len(value)


def mask_phone(value: str) -> str:
    """13812341111 → 138****1111."""
    value = value.strip()
    return _mask_middle(value, 3, 4) if len(value) >= 8 else "*" * len(value)


def mask_card(value: str) -> str:
    """Health and insurance cards (and document identifiers): the last 4 characters."""
    value = value.strip()
    return _mask_middle(value, 0, 4) if len(value) >= 8 else "*" * len(value)


def mask_address(value: str) -> str:
    """The first 6 characters (province/city/district at most), never the length of the rest."""
    value = value.strip()
    if not value:
        return ""
    return (value[:6] if len(value) > 8 else value[:2]) + "***"


def mask_birth_date(value: str) -> str:
    return f"{value[:4]}-**-**" if len(value) >= 4 else ("*" * len(value))


# The personal fields of an event (envelope.patient and the mother on a birth record), with their masks.
_PATIENT_MASKS = {
    "name": mask_name,
    "id_number": mask_id_number,
    "phone": mask_phone,
    "address": mask_address,
    "health_card": mask_card,
    "insurance_card": mask_card,
}
_EVENT_MASKS = {"mother_name": mask_name, "mother_id_number": mask_id_number}


def masked_event(event: dict) -> dict:
    """A copy of an event (JSON form or decoded) with every personal field masked (张*丰, 411502********1234):
    what an operator may see of a dead letter's payload outside the EMPI."""
    out = dict(event)
    envelope = dict(out.get("envelope") or {})
    patient = dict(envelope.get("patient") or {})
    for field, mask in _PATIENT_MASKS.items():
        if patient.get(field):
            patient[field] = mask(str(patient[field]))
    if patient.get("birth_date"):
        patient["birth_date"] = mask_birth_date(str(patient["birth_date"]))
    if envelope:
        envelope["patient"] = patient
        out["envelope"] = envelope
    for field, mask in _EVENT_MASKS.items():
        if out.get(field):
            out[field] = mask(str(out[field]))
    return out

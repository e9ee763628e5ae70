"""A source record turned into match features: normalised keys and the evidence the comparisons read.

Deterministic keys (`identifier_keys`) link on their own; everything else feeds the Fellegi-Sunter
comparisons. An ID number with a bad check character is not a key, but its area code, birth date and
sex digit are still evidence (docs/domain.md §2): they fill a missing birth date or sex and take part in the
partial-ID comparison.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from opencc import OpenCC

from foundation.standards.citizen_id import CITIZEN_ID_TYPES, parse_citizen_id
from streams.identity.normalise import NormalisedName, normalise_card, normalise_name, normalise_phone
from streams.identity.record import SourceRecord

KNOWN_SEXES = frozenset({"1", "2"})  # 0 unknown and 9 unstated are no evidence

# Identifier kinds, strongest first: when two keys of one record point at different persons, the
# stronger one wins and the conflict goes to review.
CITIZEN_ID = "citizen_id"
HEALTH_CARD = "health_card"
INSURANCE_CARD = "insurance_card"
DOCUMENT = "document"  # passport, permits: (type, number)
IDENTIFIER_KINDS = (CITIZEN_ID, HEALTH_CARD, INSURANCE_CARD, DOCUMENT)

_T2S = OpenCC("t2s")
_ADDRESS_NOISE = re.compile(r"[\s,，。.·、\-()（）#]")
# The city prefix every local address shares carries no evidence; dropping it keeps similarity honest.
_CITY_PREFIXES = ("河南省", "信阳市")


@dataclass(frozen=True, slots=True)
class MatchFeatures:
    record_id: str
    org_code: str
    local_id: str
    name: NormalisedName | None
    sex: str | None  # "1"/"2", from the record or else from the ID's sex digit
    birth_date: dt.date | None  # from the record or else from the ID's birth digits
    citizen_id: str | None  # a valid 18-character number: a key
    id_evidence: str | None  # an ID-shaped number that failed its check: evidence only
    health_card: str | None
    insurance_card: str | None
    document: str | None  # "03:E12345678"
    phone: str | None
    address: str | None

    @property
    def record_key(self) -> tuple[str, str] | None:
        return (self.org_code, self.local_id) if self.org_code and self.local_id else None

    def identifier_keys(self) -> list[tuple[str, str]]:
        """(kind, value) pairs that link deterministically, strongest first."""
        keys = []
        for kind, value in (
            (CITIZEN_ID, self.citizen_id),
            (HEALTH_CARD, self.health_card),
            (INSURANCE_CARD, self.insurance_card),
            (DOCUMENT, self.document),
        ):
            if value:
                keys.append((kind, value))
        return keys


@lru_cache(maxsize=100_000)
def normalise_address(raw: str) -> str | None:
    text = _T2S.convert(_ADDRESS_NOISE.sub("", unicodedata.normalize("NFKC", raw))).upper()
    for prefix in _CITY_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text or None


def _parse_date(text: str) -> dt.date | None:
    if len(text) < 8:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def extract_features(record: SourceRecord) -> MatchFeatures:
    citizen_id = id_evidence = document = None
    id_birth = id_sex = None
    id_type = record.id_type.strip()  # a CHAR(2) column left empty arrives as spaces: no type
    if record.id_number:
        if id_type in CITIZEN_ID_TYPES:
            parsed = parse_citizen_id(record.id_number)
            if parsed is not None:
                id_birth, id_sex = parsed.birth_date, parsed.sex
                if parsed.valid:
                    citizen_id = parsed.number
                else:
                    id_evidence = parsed.number
        else:
            number = normalise_card(record.id_number)
            document = f"{id_type}:{number}" if number else None
    # A valid ID's sex digit is vouched for by its check character: it beats the sex field (a clerk's
    # slip must not veto the ID). A failed check may sit in the sex digit itself: then the field decides.
    sex = id_sex if citizen_id else (record.sex if record.sex in KNOWN_SEXES else None)
    birth = _parse_date(record.birth_date) if record.birth_date else None
    return MatchFeatures(
        record_id=record.record_id,
        org_code=record.org_code,
        local_id=record.local_id,
        name=normalise_name(record.name) if record.name else None,
        sex=sex,
        birth_date=birth or id_birth,
        citizen_id=citizen_id,
        id_evidence=id_evidence,
        health_card=normalise_card(record.health_card),
        insurance_card=normalise_card(record.insurance_card),
        document=document,
        phone=normalise_phone(record.phone),
        address=normalise_address(record.address) if record.address else None,
    )

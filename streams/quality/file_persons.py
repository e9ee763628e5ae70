"""Who is who in a file of events checked offline: `healthbus quality check` has no master patient index.

The stream stage knows an event's person by the platform person id the identify stage attached. A file
checked offline may carry none (raw events, an export from an exchange database), so the file's own
records are linked by the identifiers that link deterministically (docs/identity.md): a valid GB 11643
citizen ID (ID type 01 or 02, or none) and the institution + local patient id. Records without a person id
that share either are one person. Nothing probabilistic, and a citizen ID whose check character fails
links nothing: a wrong link would judge one resident's records against another's death.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from foundation.standards.blank import is_blank
from foundation.standards.citizen_id import CITIZEN_ID_TYPES, parse_citizen_id
from streams.quality.checks import platform_person

Key = tuple[str, str]


@lru_cache(maxsize=100_000)
def _valid_number(raw: str) -> str | None:
    parsed = parse_citizen_id(raw)
    return parsed.number if parsed is not None and parsed.valid else None


def citizen_id_key(id_type: Any, number: Any) -> str | None:
    """The normalised number when it is a valid citizen ID given as one (a blank type counts as none)."""
    if not isinstance(number, str) or (id_type is not None and not isinstance(id_type, str)):
        return None
    if (id_type.strip() if id_type is not None and not is_blank(id_type) else "") not in CITIZEN_ID_TYPES:
        return None
    return _valid_number(number)


def link_keys(envelope: Mapping[str, Any]) -> list[Key]:
    """The identifiers of an envelope (decoded, or still its JSON form) that link records of one person,
    the platform person id aside: a valid citizen ID, the institution + local patient id."""
    keys: list[Key] = []
    patient, source = envelope.get("patient"), envelope.get("source")
    if isinstance(patient, Mapping):
        number = citizen_id_key(patient.get("id_type"), patient.get("id_number"))
        if number is not None:
            keys.append(("citizen_id", number))
        org = source.get("org_code") if isinstance(source, Mapping) else None
        local = patient.get("local_patient_id")
        if isinstance(org, str) and isinstance(local, str) and not is_blank(org) and not is_blank(local):
            keys.append(("record", f"{org}\x1f{local}"))
    return keys


class FilePersons:
    """The persons of one file (``add`` every record, then ask ``person_of``).

    A record with a platform person id is that person: the identify stage decided, and the stream stage
    reads no more (so the file gets the stage's verdicts). Records without one are linked to each other
    by their identifiers (union-find), and a group of them is the platform person whose records in the
    file share its identifiers, when there is exactly one such person; otherwise a person of the file.
    """

    def __init__(self) -> None:
        self._parent: dict[Key, Key] = {}
        self._persons: dict[Key, set[str]] = {}  # group root → platform person ids its identifiers carry

    def _root(self, key: Key) -> Key:
        parent = self._parent.setdefault(key, key)
        if parent == key:
            return key
        root = parent
        while self._parent[root] != root:
            root = self._parent[root]
        while key != root:  # path compression
            self._parent[key], key = root, self._parent[key]
        return root

    def _union(self, a: Key, b: Key) -> Key:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            self._parent[rb] = ra
            moved = self._persons.pop(rb, None)
            if moved:
                self._persons.setdefault(ra, set()).update(moved)
        return ra

    def add(self, envelope: Mapping[str, Any]) -> None:
        keys = link_keys(envelope)
        person = platform_person(envelope)
        if person is not None:
            for key in keys:  # the platform's person claims its identifiers, and links none of them itself
                self._persons.setdefault(self._root(key), set()).add(person)
            return
        for key in keys[1:]:
            self._union(keys[0], key)

    def person_of(self, envelope: Mapping[str, Any]) -> str | None:
        """The person of this record: its platform person id, or the one its group of records carries, or
        a name of the group (the same for every record linked to it). None: nothing to link it by."""
        person = platform_person(envelope)
        if person is not None:
            return person
        keys = link_keys(envelope)
        if not keys:
            return None
        root = self._root(keys[0])
        claimed = self._persons.get(root, ())
        if len(claimed) == 1:
            return next(iter(claimed))
        kind, value = root
        return f"file:{kind}:{value}"

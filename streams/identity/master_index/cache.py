"""Redis in front of the index: record key → person id and fingerprint, so a known resident costs one MGET.

Only a cache: every miss falls through to PostgreSQL and refills, and a flushed Redis changes no answer
(tests/test_identity_stage.py flushes it mid-run). Entries expire (a day by default).

Every entry carries the record's mapping version (``empi.records.mapping_version``, which PostgreSQL raises
whenever the record's person or fingerprint changes), and every write is conditional, in one Lua script:
an entry replaces the cached one only if its version is newer (a mapping also at an equal version). A move
(merge, unmerge, review decision) leaves a *tombstone* at the record's new version rather than deleting the
entry, so a worker that read the old mapping from PostgreSQL before the move and writes it back afterwards
loses: the old person cannot come back for the TTL. A tombstone reads as a miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import redis

from foundation.settings import Settings
from streams.identity.record import RecordKey

# KEYS: the entries' keys; ARGV[1]: the TTL in seconds; ARGV[1 + i]: KEYS[i]'s value "version|person|fingerprint"
# (a tombstone: "version||"). A value without a version (written before versions existed) is always replaced.
_CONDITIONAL_SET = """
local written = 0
for i, key in ipairs(KEYS) do
    local value = ARGV[i + 1]
    local version = tonumber(string.match(value, '^(%d+)|'))
    local current = redis.call('GET', key)
    local held = current and tonumber(string.match(current, '^(%d+)|'))
    local tombstone = string.match(value, '^%d+||$') ~= nil
    if not held or version > held or (version == held and not tombstone) then
        redis.call('SET', key, value, 'EX', ARGV[1])
        written = written + 1
    end
end
return written
"""


_SCRIPT_KEYS = 1000  # keys per script call


class CacheEntry(NamedTuple):
    """What the cache holds for a record; ``person_id`` is empty for a tombstone."""

    person_id: str
    fingerprint: str
    version: int


def _parse(value: bytes) -> CacheEntry | None:
    version, _, rest = value.decode().partition("|")
    person, sep, fp = rest.partition("|")
    if not version.isdigit() or not sep:
        return None  # no version (an entry from before versions): read as a miss, replaced by the refill
    return CacheEntry(person, fp, int(version))


class PersonCache:
    def __init__(self, client: redis.Redis, prefix: str = "hb:empi:", ttl_seconds: int = 86_400) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self._conditional_set = client.register_script(_CONDITIONAL_SET)

    @classmethod
    def from_url(cls, url: str, prefix: str = "hb:empi:", ttl_seconds: int = 86_400) -> PersonCache:
        return cls(redis.Redis.from_url(url), prefix, ttl_seconds)

    @classmethod
    def for_settings(cls, settings: Settings) -> PersonCache:
        """Keys carry the topic prefix, so environments (and tests) sharing one Redis never mix."""
        return cls.from_url(settings.redis_url, f"hb:{settings.topic_prefix}empi:", settings.empi_cache_ttl_seconds)

    def _key(self, record: RecordKey) -> str:
        return f"{self.prefix}r:{record[0]}:{record[1]}"

    def entries(self, records: Sequence[RecordKey]) -> dict[RecordKey, CacheEntry]:
        """record → what is cached for it, tombstones included (one MGET)."""
        if not records:
            return {}
        found: dict[RecordKey, CacheEntry] = {}
        for record, value in zip(records, self.client.mget([self._key(r) for r in records]), strict=True):
            entry = _parse(value) if value else None
            if entry is not None:
                found[record] = entry
        return found

    def get_many(self, records: Sequence[RecordKey]) -> dict[RecordKey, tuple[str, str]]:
        """record → (person id, fingerprint) for the records cached; a tombstone is a miss."""
        return {r: (e.person_id, e.fingerprint) for r, e in self.entries(records).items() if e.person_id}

    def put_many(self, entries: Iterable[tuple[RecordKey, str, str, int]]) -> int:
        """Cache (record, person, fingerprint, mapping version) where nothing newer is cached; returns how
        many were written (an older version loses to what is there)."""
        return self._write([(self._key(r), f"{v}|{p}|{fp}") for r, p, fp, v in entries])

    def tombstone_many(self, entries: Iterable[tuple[RecordKey, int]]) -> int:
        """The records moved: at (record, version after the move), every cached mapping of an older version
        reads as a miss from now on, and no such mapping can be written back. Returns how many were written."""
        return self._write([(self._key(r), f"{v}||") for r, v in entries])

    def _write(self, values: list[tuple[str, str]]) -> int:
        """One script call per thousand keys: each value is judged against what is cached when its turn
        comes (so a key given twice keeps the newer of the two, whatever their order)."""
        written = 0
        for start in range(0, len(values), _SCRIPT_KEYS):  # a long replay must not hold Redis up for long
            chunk = values[start : start + _SCRIPT_KEYS]
            keys, args = [k for k, _ in chunk], [v for _, v in chunk]
            written += int(self._conditional_set(keys=keys, args=[self.ttl_seconds, *args]))
        return written

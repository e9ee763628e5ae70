"""Redis in front of the index: record key → person id and fingerprint, so a known resident costs one MGET.

Only a cache: every miss falls through to PostgreSQL and refills, and a flushed Redis changes no answer
(tests/test_identity_stage.py flushes it mid-run). Entries expire (a day by default) and are deleted
when a merge, unmerge or review moves their record, so a stale person id cannot outlive a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from foundation.settings import Settings
from streams.identity.record import RecordKey


class PersonCache:
    def __init__(self, client: redis.Redis, prefix: str = "hb:empi:", ttl_seconds: int = 86_400) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_url(cls, url: str, prefix: str = "hb:empi:", ttl_seconds: int = 86_400) -> PersonCache:
        return cls(redis.Redis.from_url(url), prefix, ttl_seconds)

    @classmethod
    def for_settings(cls, settings: Settings) -> PersonCache:
        """Keys carry the topic prefix, so environments (and tests) sharing one Redis never mix."""
        return cls.from_url(settings.redis_url, f"hb:{settings.topic_prefix}empi:", settings.empi_cache_ttl_seconds)

    def _key(self, record: RecordKey) -> str:
        return f"{self.prefix}r:{record[0]}:{record[1]}"

    def get_many(self, records: Sequence[RecordKey]) -> dict[RecordKey, tuple[str, str]]:
        """record → (person id, fingerprint) for the records cached."""
        if not records:
            return {}
        found: dict[RecordKey, tuple[str, str]] = {}
        for record, value in zip(records, self.client.mget([self._key(r) for r in records]), strict=True):
            if value:
                person, _, fingerprint = value.decode().partition("|")
                found[record] = (person, fingerprint)
        return found

    def put_many(self, entries: Iterable[tuple[RecordKey, str, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for record, person, fingerprint in entries:
            pipe.set(self._key(record), f"{person}|{fingerprint}", ex=self.ttl_seconds)
        pipe.execute()

    def forget(self, records: Iterable[RecordKey]) -> None:
        keys = [self._key(r) for r in records]
        if keys:
            self.client.delete(*keys)

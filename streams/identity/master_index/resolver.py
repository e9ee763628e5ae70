"""Resolve a batch of records the fast way: Redis, then one PostgreSQL lookup, then the full match.

A record already in the index with the same identity fields (the common case: a known patient's next
visit) is answered from Redis, or from one batched PostgreSQL query on a cache miss. Only new or changed
records take `store.resolve_records` (locks, `resolution.decide`, writes), and all of them in one
transaction per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.schema import ensure_master_index
from streams.identity.master_index.store import Resolution, fingerprint, known_records, resolve_records
from streams.identity.record import SourceRecord
from streams.identity.resolution import MatchRule


class IdentityResolver:
    def __init__(self, conn: psycopg.Connection, cache: PersonCache | None, model: MatchModel) -> None:
        self.conn = conn
        self.cache = cache
        self.model = model
        ensure_master_index(conn)

    @classmethod
    def connect(cls, postgres_url: str, cache: PersonCache | None, model: MatchModel) -> IdentityResolver:
        return cls(psycopg.connect(postgres_url, autocommit=True), cache, model)

    def resolve(self, records: Sequence[SourceRecord]) -> list[Resolution]:
        """One resolution per record, in order. Records of one key later in the batch reuse the first's."""
        fingerprints = [fingerprint(r) for r in records]
        keys = [(r.org_code, r.local_id) for r in records]
        unique_keys = list(dict.fromkeys(keys))
        known = self.cache.get_many(unique_keys) if self.cache else {}
        misses = [k for k in unique_keys if k not in known]
        from_db = known_records(self.conn, misses)
        if self.cache and from_db:
            self.cache.put_many((k, person, fp) for k, (person, fp) in from_db.items())
        known.update(from_db)

        results: list[Resolution | None] = [None] * len(records)
        slow: list[int] = []
        for i, (key, fp) in enumerate(zip(keys, fingerprints, strict=True)):
            hit = known.get(key)
            if hit is not None and hit[1] == fp:
                results[i] = Resolution(hit[0], MatchRule.RECORD_KEY.value)
            else:
                slow.append(i)
        if slow:
            resolved = resolve_records(self.conn, [records[i] for i in slow], self.model)
            for i, resolution in zip(slow, resolved, strict=True):
                results[i] = resolution
            if self.cache:
                moved = {k for r in resolved for k in r.moved_records}
                self.cache.forget(moved)
                latest = {keys[i]: (resolution.person_id, fingerprints[i]) for i, resolution in zip(slow, resolved)}
                # A record moved by a later merge in this batch keeps its old person in `latest`: skip it.
                self.cache.put_many((k, p, fp) for k, (p, fp) in latest.items() if k not in moved)
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.conn.close()

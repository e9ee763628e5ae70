"""Resolve a batch of records the fast way: Redis, then one PostgreSQL lookup, then the full match.

A record already in the index with the same identity fields (the common case: a known patient's next
visit) is answered from Redis, or from one batched PostgreSQL query on a cache miss. Only new or changed
records take `store.resolve_records` (locks, `resolution.decide`, writes), and all of them in one
transaction per batch.

The cache never answers with a mapping older than a move the index has committed: before each batch's
MGET the resolver turns the moves filed since its last batch (`empi.cache_invalidations`, one small indexed
query) into tombstones, whoever made them and whether or not Redis answered them at the time; and every
entry it writes carries the record's mapping version, so a write of what it read before a move loses to the
move's tombstone (cache.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import psycopg

from streams.identity.fellegi_sunter import MatchModel
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.schema import ensure_master_index
from streams.identity.master_index.store import (
    InvalidationCursor,
    Resolution,
    cache_invalidations,
    fingerprint,
    known_records,
    prune_cache_invalidations,
    resolve_records,
)
from streams.identity.record import RecordKey, SourceRecord
from streams.identity.resolution import MatchRule

PRUNE_INTERVAL_SECONDS = 600.0
PRUNE_MARGIN_SECONDS = 3600.0  # invalidations outlive the cache's TTL by this much (a stale write in flight)


class IdentityResolver:
    def __init__(self, conn: psycopg.Connection, cache: PersonCache | None, model: MatchModel) -> None:
        self.conn = conn
        self.cache = cache
        self.model = model
        ensure_master_index(conn)
        # From the start: a new resolver applies every invalidation still kept (a stale entry may predate it).
        self._invalidations = InvalidationCursor()
        self._prune_due = 0.0

    @classmethod
    def connect(cls, postgres_url: str, cache: PersonCache | None, model: MatchModel) -> IdentityResolver:
        return cls(psycopg.connect(postgres_url, autocommit=True), cache, model)

    def apply_invalidations(self) -> int:
        """Tombstone the records moved since the last call (once Redis took them); returns how many."""
        if self.cache is None:
            return 0
        if time.monotonic() >= self._prune_due:
            prune_cache_invalidations(self.conn, self.cache.ttl_seconds + PRUNE_MARGIN_SECONDS)
            self._prune_due = time.monotonic() + PRUNE_INTERVAL_SECONDS
        after, moved = cache_invalidations(self.conn, self._invalidations)
        self.cache.tombstone_many(moved)  # raises while Redis is down: the cursor stays, they come again
        self._invalidations = after
        return len(moved)

    def resolve(self, records: Sequence[SourceRecord]) -> list[Resolution]:
        """One resolution per record, in order. Records of one key later in the batch reuse the first's."""
        fingerprints = [fingerprint(r) for r in records]
        keys = [(r.org_code, r.local_id) for r in records]
        unique_keys = list(dict.fromkeys(keys))
        known: dict[RecordKey, tuple[str, str]] = {}
        if self.cache:
            self.apply_invalidations()
            known = self.cache.get_many(unique_keys)
        misses = [k for k in unique_keys if k not in known]
        from_db = known_records(self.conn, misses)
        if self.cache and from_db:
            # With the version read: if a move committed since, its tombstone (newer) wins over this write.
            self.cache.put_many((k, m.person_id, m.fingerprint, m.version) for k, m in from_db.items())
        known.update((k, (m.person_id, m.fingerprint)) for k, m in from_db.items())

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
                # A record moved by a later merge of this batch was filed with its old person: the move's
                # tombstone has the newer version, so that entry loses whatever the order.
                self.cache.tombstone_many(
                    (k, v) for r in resolved for k, v in zip(r.moved_records, r.moved_versions, strict=True)
                )
                self.cache.put_many(
                    (keys[i], r.person_id, fingerprints[i], r.version)
                    for i, r in zip(slow, resolved, strict=True)
                    if r.version
                )
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.conn.close()

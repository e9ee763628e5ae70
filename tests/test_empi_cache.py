"""The Redis cache of the master index never answers with a mapping older than a committed move.

On real PostgreSQL and Redis. The races of #17 §3, made deterministic: a worker that read a record's old
mapping writes it back after a merge or unmerge committed (it must lose to the move), and a move made while
Redis was unreachable (the next resolve must not answer from the entry the move could not reach). Mapping
versions only rise, and the resolvers' reading of `empi.cache_invalidations` misses no row, whatever order
the transactions commit in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import psycopg
import pytest

from foundation.standards.citizen_id import make_citizen_id
from streams.identity.master_index.cache import PersonCache
from streams.identity.master_index.operator_actions import merge, unmerge
from streams.identity.master_index.resolver import IdentityResolver
from streams.identity.master_index.schema import ensure_master_index
from streams.identity.master_index.store import fingerprint, known_records
from streams.identity.record import RecordKey, SourceRecord
from tests.test_empi_operator_actions import ACTOR, MODEL, two_persons, two_persons_records

pytestmark = pytest.mark.integration  # its fixtures open their own PostgreSQL and Redis connections

REDIS_URL = os.environ.get("HEALTHBUS_REDIS_URL", "redis://127.0.0.1:6379/0")
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every command fails


@pytest.fixture(scope="module")
def db_url(module_db_url: str) -> str:
    return module_db_url


@pytest.fixture
def conn(empi_conn: psycopg.Connection) -> psycopg.Connection:
    return empi_conn


@pytest.fixture
def cache(person_cache: PersonCache) -> PersonCache:
    return person_cache


def cached_persons(cache: PersonCache, records: list[RecordKey]) -> dict[RecordKey, str]:
    return {k: person for k, (person, _fp) in cache.get_many(records).items()}


def mapping_version(conn: psycopg.Connection, record: RecordKey) -> int:
    row = conn.execute(
        "SELECT mapping_version FROM empi.records WHERE org_code = %s AND local_id = %s", record
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_worker_writing_back_what_it_read_before_a_move_loses_to_the_move(
    conn: psycopg.Connection, cache: PersonCache
) -> None:
    p = two_persons(conn)
    # A worker's cache miss reads the old mapping; the operator's merge commits and invalidates; the worker's
    # write of what it read lands last.
    read = known_records(conn, p.b_records)
    assert {m[0] for m in read.values()} == {p.b}
    merged = merge(conn, p.a, p.b, ACTOR, "same resident", cache=cache)
    assert merged.cache_error == ""
    cache.put_many((k, *m) for k, m in read.items())
    assert p.b not in cached_persons(cache, p.b_records).values()  # the old person does not come back

    # The same race around an unmerge: the record must not go back to the person it left.
    moved = p.b_records[0]
    read = known_records(conn, [moved])
    assert read[moved][0] == p.a
    back = unmerge(conn, *moved, ACTOR, "not the same resident", cache=cache)
    assert back.cache_error == "" and back.to_person_id == p.b
    cache.put_many((k, *m) for k, m in read.items())
    assert cached_persons(cache, [moved]).get(moved, p.b) == p.b

    # What the index says now is cached as usual: a fresh read wins over the tombstone.
    fresh = known_records(conn, p.b_records)
    cache.put_many((k, *m) for k, m in fresh.items())
    assert cached_persons(cache, p.b_records) == {moved: p.b, p.b_records[1]: p.a}


def test_a_merge_while_redis_is_down_is_not_answered_from_the_stale_entry(
    conn: psycopg.Connection, db_url: str, cache: PersonCache
) -> None:
    p = two_persons(conn)
    b_sources = two_persons_records()[2:]
    worker = IdentityResolver(conn, cache, MODEL)
    assert {r.person_id for r in worker.resolve(b_sources)} == {p.b}  # a miss: read from the index and cached
    assert set(cached_persons(cache, p.b_records).values()) == {p.b}

    down = PersonCache.from_url(UNREACHABLE_REDIS, prefix=cache.prefix)
    merged = merge(conn, p.a, p.b, ACTOR, "same resident", cache=down)
    assert merged.cache_error.startswith("2 cache entries not")  # committed; reported
    assert set(cached_persons(cache, p.b_records).values()) == {p.b}  # Redis still holds the old person

    again = worker.resolve(b_sources)
    assert [(r.person_id, r.rule) for r in again] == [(p.a, "record_key")] * 2
    assert set(cached_persons(cache, p.b_records).values()) == {p.a}  # refilled with the survivor
    assert "the identify stage invalidates them" in merged.cache_error

    # A worker started after the action (the stage restarted meanwhile) does not trust the old entry either.
    moved = p.b_records[0]
    unmerged = unmerge(conn, *moved, ACTOR, "not the same resident", cache=down)
    assert unmerged.cache_error and unmerged.to_person_id == p.b
    with psycopg.connect(db_url, autocommit=True) as other:
        restarted = IdentityResolver(other, cache, MODEL)
        assert restarted.resolve(b_sources[:1])[0].person_id == p.b


def test_mapping_versions_only_rise_across_merge_unmerge_and_a_fingerprint_update(
    conn: psycopg.Connection, cache: PersonCache
) -> None:
    p = two_persons(conn)
    record = two_persons_records()[2]
    key = (record.org_code, record.local_id)
    worker = IdentityResolver(conn, cache, MODEL)
    seen: list[tuple[str, str, int]] = []  # (person, fingerprint, version) after each step, as the index says

    def step() -> None:
        m = known_records(conn, [key])[key]
        seen.append((m.person_id, m.fingerprint, m.version))
        worker.resolve([record])  # cached (or refilled) from what the index says now
        entry = cache.entries([key])[key]
        assert (entry.person_id, entry.version) == (m.person_id, m.version)
        for old_person, old_fp, old_version in seen[:-1]:  # nothing older can be written back
            assert cache.put_many([(key, old_person, old_fp, old_version)]) == 0
        assert cache.entries([key])[key] == entry

    step()
    merge(conn, p.a, p.b, ACTOR, "same resident", cache=cache)
    step()
    unmerge(conn, *key, ACTOR, "not the same resident", cache=cache)
    step()
    record = dataclasses.replace(record, phone="13900003333")
    assert fingerprint(record) != seen[-1][1]
    assert worker.resolve([record])[0].person_id == p.b  # a worker files the record's new fields
    step()
    # An UPDATE that names a version cannot take it back either (the mapping itself is unchanged: the cached
    # entry stands).
    conn.execute("UPDATE empi.records SET mapping_version = 1 WHERE org_code = %s AND local_id = %s", key)
    m = known_records(conn, [key])[key]
    seen.append((m.person_id, m.fingerprint, m.version))

    versions = [v for _, _, v in seen]
    assert versions == sorted(set(versions)), versions  # strictly rising
    assert [person for person, _, _ in seen] == [p.b, p.a, p.b, p.b, p.b]
    assert mapping_version(conn, p.a_records[0]) == 1  # records that never moved or changed keep theirs


def test_an_automatic_merge_by_a_worker_without_redis_is_invalidated_for_the_others(
    conn: psycopg.Connection, db_url: str, cache: PersonCache
) -> None:
    citizen_id = make_citizen_id("411502", dt.date(1980, 5, 17), 231)
    first = SourceRecord(
        "a",
        "12411502MB0000001X",
        "P1",
        name="李建军",
        sex="1",
        birth_date="1980-05-17",
        id_type="01",
        id_number=citizen_id,
    )
    second = SourceRecord("b", "12411503MB0000002X", "H9", insurance_card="411500198005170007")
    proof = SourceRecord(
        "c",
        "11411525MB1500007X",
        "C3",
        name="李建军",
        sex="1",
        id_type="01",
        id_number=citizen_id,
        insurance_card="411500198005170007",
    )
    worker = IdentityResolver(conn, cache, MODEL)
    p_first, p_second = (r.person_id for r in worker.resolve([first, second]))
    assert p_first != p_second
    assert worker.resolve([second])[0].person_id == p_second  # cached
    with psycopg.connect(db_url, autocommit=True) as other_conn:
        # Another worker whose cache writes never happened (Redis failed after its commit): it merges.
        other = IdentityResolver(other_conn, None, MODEL)
        assert other.resolve([proof])[0].person_id == p_first
    assert worker.resolve([second])[0].person_id == p_first


def test_invalidations_are_read_in_commit_order_not_id_order(
    conn: psycopg.Connection, db_url: str, cache: PersonCache
) -> None:
    """A row whose id was drawn first but whose transaction commits last is still applied, once."""
    p = two_persons(conn)
    worker = IdentityResolver(conn, cache, MODEL)
    worker.apply_invalidations()
    early, late = p.a_records
    insert = "INSERT INTO empi.cache_invalidations (org_code, local_id, mapping_version) VALUES (%s, %s, %s)"
    with psycopg.connect(db_url) as slow, psycopg.connect(db_url) as quick:
        slow.execute(insert, (*early, 7))  # the lower id, its transaction still open
        quick.execute(insert, (*late, 7))
        quick.commit()
        assert worker.apply_invalidations() == 1
        assert cache.entries([early, late]) == {late: ("", "", 7)}
        slow.commit()
    assert worker.apply_invalidations() == 1  # the late commit's row, not the other again
    assert cache.entries([early, late]) == {early: ("", "", 7), late: ("", "", 7)}
    assert worker.apply_invalidations() == 0


def test_invalidations_older_than_the_cache_ttl_are_pruned(conn: psycopg.Connection, cache: PersonCache) -> None:
    p = two_persons(conn)
    merge(conn, p.a, p.b, ACTOR, "same resident", cache=cache)
    conn.execute(
        "UPDATE empi.cache_invalidations SET created_at = now() - make_interval(secs => %s) WHERE local_id = %s",
        (cache.ttl_seconds + 2 * 3600, p.b_records[0][1]),
    )
    IdentityResolver(conn, cache, MODEL).apply_invalidations()
    left = conn.execute("SELECT org_code, local_id FROM empi.cache_invalidations ORDER BY invalidation_id").fetchall()
    assert [tuple(r) for r in left] == [p.b_records[1]]


def test_the_schema_upgrades_an_index_made_before_mapping_versions(conn: psycopg.Connection) -> None:
    p = two_persons(conn)
    conn.execute("DROP TRIGGER records_mapping_version ON empi.records")
    conn.execute("ALTER TABLE empi.records DROP COLUMN mapping_version")
    conn.execute("DROP TABLE empi.cache_invalidations")
    ensure_master_index(conn)
    ensure_master_index(conn)  # idempotent
    assert {m.version for m in known_records(conn, p.a_records + p.b_records).values()} == {1}
    merge(conn, p.a, p.b, ACTOR, "same resident")
    assert {m.version for m in known_records(conn, p.b_records).values()} == {2}
    assert conn.execute("SELECT count(*) FROM empi.cache_invalidations").fetchone() == (2,)


def test_entries_written_before_versions_are_read_as_misses_and_replaced(
    conn: psycopg.Connection, cache: PersonCache
) -> None:
    p = two_persons(conn)
    record = two_persons_records()[2]
    key = (record.org_code, record.local_id)
    cache.client.set(cache._key(key), f"{p.a}|{fingerprint(record)}")  # the earlier format: person|fingerprint
    assert cache.get_many([key]) == {}
    assert IdentityResolver(conn, cache, MODEL).resolve([record])[0].person_id == p.b
    assert cache.entries([key])[key] == (p.b, fingerprint(record), 1)

"""Records that decode but cannot be handled (issue #17 §1): the intake refuses envelopes the stores cannot
hold, a stage isolates the record it fails on and dead-letters it, ClickHouse inserts survive a backfill."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from avro_schemas.envelope import make_event_id
from avro_schemas.serde import EventCodec
from foundation.clickhouse import open_clickhouse
from sinks.clickhouse.inserts import insert_by_month
from streams.faust_runtime.batch_agent import SYSTEMIC_BATCH, UNPROCESSABLE, BatchAgent, OutRecord, PlainMessage
from streams.inbound import (
    EVENT_ID_MISMATCH,
    INVALID_EVENT_ID,
    MAX_EVENT_BYTES,
    OUT_OF_RANGE,
    TOO_LARGE,
    InboundCheck,
    envelope_problem,
)

ORG = "12411502MB0000001X"
GOOD = {
    "event_id": make_event_id(ORG, "visits:V-1", 1),
    "occurred_at": 1_793_520_000_000,  # 2026-11-01, epoch ms as the intake peeks it
    "emitted_at": 1_793_524_500_000,
    "record_version": 1,
    "cancelled": False,
    "source": {"org_code": ORG, "record_key": "visits:V-1"},
}


@pytest.mark.parametrize(
    ("change", "size", "code"),
    [
        ({}, 2_000, None),
        ({"event_id": "not-a-uuid"}, 2_000, INVALID_EVENT_ID),
        ({"event_id": GOOD["event_id"].upper()}, 2_000, INVALID_EVENT_ID),  # not canonical
        ({"event_id": make_event_id("12411503MB0000002X", "visits:V-1", 1)}, 2_000, EVENT_ID_MISMATCH),  # another's
        ({"cancelled": True}, 2_000, EVENT_ID_MISMATCH),  # a cancellation has an id of its own
        ({"occurred_at": -86_400_000}, 2_000, OUT_OF_RANGE),  # 1969-12-31: ClickHouse's Date starts in 1970
        ({"emitted_at": 4_200_000_000_000}, 2_000, OUT_OF_RANGE),  # 2103
        ({"record_version": -1}, 2_000, OUT_OF_RANGE),  # ClickHouse keeps it as UInt32
        ({}, MAX_EVENT_BYTES + 1, TOO_LARGE),
    ],
)
def test_the_intake_refuses_what_the_stores_cannot_hold(change: dict[str, Any], size: int, code: str | None) -> None:
    problem = envelope_problem({**GOOD, **change}, size)
    assert (problem[0] if problem else None) == code
    if problem:  # the reason names the field, never the value
        for value in change.values():
            assert str(value) not in problem[1] or isinstance(value, bool)


def _agent(handler: Any, letters: list[Any]) -> BatchAgent:
    intake = InboundCheck(EventCodec(), "identify", "", {"t": "outpatient.visit"}, None)

    def dead_letter(m: Any, code: str, reason: str, details: dict[str, str]) -> OutRecord:
        letters.append((m.offset, code, details["error_class"]))
        return intake.dead_letter(m, code, reason, details)

    return BatchAgent(None, handler, {"bootstrap.servers": "127.0.0.1:1"}, stage_name="test", dead_letter=dead_letter)


def _batch(n: int) -> list[PlainMessage]:
    return [PlainMessage("t", 0, i, f"k{i}".encode(), f"v{i}".encode()) for i in range(n)]


def _echo_unless(bad: set[int]) -> Any:
    """A stage that fails on its whole batch when any record in it is bad (as a failed transaction does)."""

    def handle(messages: list[PlainMessage]) -> list[OutRecord]:
        for m in messages:
            if m.offset in bad:
                raise ValueError("a value the store refuses")
        return [OutRecord("out", m.key, m.value or b"") for m in messages]

    return handle


def test_a_stage_dead_letters_the_records_it_fails_on_and_passes_the_rest_in_order() -> None:
    letters: list[Any] = []
    agent = _agent(_echo_unless({3, 700, 701}), letters)
    outputs = asyncio.run(agent._handle(asyncio.new_event_loop(), _batch(1000), 0))
    assert [(o, code, kind) for o, code, kind in letters] == [
        (3, UNPROCESSABLE, "ValueError"),
        (700, UNPROCESSABLE, "ValueError"),
        (701, UNPROCESSABLE, "ValueError"),
    ]
    kept = [o.value for o in outputs if o.rejects is None]
    assert kept == [f"v{i}".encode() for i in range(1000) if i not in {3, 700, 701}]  # order kept
    assert [o.rejects for o in outputs if o.rejects is not None] == ["t", "t", "t"]


def test_a_stage_that_fails_on_every_record_stops_instead_of_dead_lettering_everything() -> None:
    letters: list[Any] = []
    agent = _agent(_echo_unless(set(range(SYSTEMIC_BATCH))), letters)
    with pytest.raises(ValueError):
        asyncio.run(agent._handle(asyncio.new_event_loop(), _batch(SYSTEMIC_BATCH), 0))


def test_a_backfill_spanning_more_than_100_months_is_written_in_chunks(tmp_path: Path) -> None:
    """Against chDB (ClickHouse's engine, in-process), whose partition guard is the server's."""
    client = open_clickhouse(None, tmp_path / "chdb", "hb")
    client.command("CREATE TABLE hb.t (event_id String, occurred_at DateTime64(3, 'UTC')) ENGINE = MergeTree "
                   "PARTITION BY toYYYYMM(occurred_at) ORDER BY event_id")  # fmt: skip
    start = dt.datetime(2010, 1, 15, tzinfo=dt.UTC)
    rows = [[f"e{i}", start + dt.timedelta(days=30.5 * i)] for i in range(150)]  # 150 months
    with pytest.raises(DatabaseError, match="TOO_MANY_PARTS"):  # what the sink hit before
        client.insert("hb.t", rows, column_names=["event_id", "occurred_at"])
    insert_by_month(client, "hb.t", rows, ["event_id", "occurred_at"], "occurred_at")
    assert int(client.command("SELECT count() FROM hb.t")) == 150
    assert int(client.command("SELECT uniqExact(toYYYYMM(occurred_at)) FROM hb.t")) == 150
    client.close()

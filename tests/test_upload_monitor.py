"""Daily upload monitoring (上传监测): the pure judgement (which feeds fail at a moment, which alerts open and
close), and `healthbus quality monitor` end to end over chDB, PostgreSQL and the broker."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg

from avro_schemas.serde import EventCodec
from avro_schemas.topics import QUALITY_ALERTS
from foundation.clickhouse import open_clickhouse
from foundation.settings import Settings
from foundation.standards.credit_code import make_credit_code
from sinks.clickhouse.event_log import ClickHouseEventLog
from sinks.event_sink import SinkRecord
from streams.quality.upload_monitor import (
    LOW_VOLUME,
    NO_UPLOAD,
    FeedKey,
    FeedProblem,
    OpenAlert,
    alert_id,
    judge_feeds,
    median_before,
    parse_cutoff,
    transitions,
)
from tests.conftest import healthbus, settings_env
from tests.pipeline_harness import read_topic

CST = dt.timezone(dt.timedelta(hours=8))
UTC = dt.UTC
CUTOFF = dt.time(10, 0)
TODAY = dt.date(2026, 11, 27)
FEED = FeedKey("12411502MA0000011X", "outpatient.visit")
OTHER = FeedKey("12411503MB0000022Y", "outpatient.visit")


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """A moment on an Asia/Shanghai day."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST)


def history(
    today: dt.date, per_day: int | list[int], days: int = 28, today_count: int = 0, yesterday: int | None = None
) -> dict[dt.date, int]:
    """Counts for the ``days`` days before today (offset 1 = yesterday), plus today's."""
    values = per_day if isinstance(per_day, list) else [per_day] * days
    counts = {today - dt.timedelta(days=k): v for k, v in enumerate(values, start=1) if v}
    if yesterday is not None:
        counts[today - dt.timedelta(days=1)] = yesterday
    if today_count:
        counts[today] = today_count
    return counts


def kinds(problems: list[FeedProblem]) -> list[tuple[FeedKey, str, dt.date]]:
    return [(p.key, p.kind, p.day) for p in problems]


# --- pure: judge_feeds ---------------------------------------------------------------------------------


def test_no_upload_only_after_the_cutoff() -> None:
    uploads = {FEED: history(TODAY, 5)}
    assert judge_feeds(uploads, at(TODAY, 9, 59), CUTOFF, 0.5) == []
    problems = judge_feeds(uploads, at(TODAY, 10, 0), CUTOFF, 0.5)
    assert problems == [FeedProblem(FEED, NO_UPLOAD, TODAY, 0, 5.0)]
    assert judge_feeds(uploads, at(TODAY, 23, 59), CUTOFF, 0.5) == problems
    # one upload today is enough, however few
    assert judge_feeds({FEED: history(TODAY, 5, today_count=1)}, at(TODAY, 11), CUTOFF, 0.5) == []
    # a later cutoff moves the moment
    assert judge_feeds(uploads, at(TODAY, 11), dt.time(12, 30), 0.5) == []


def test_no_upload_only_for_feeds_with_a_positive_median() -> None:
    # 13 of the 28 days had uploads, 15 were silent: the median is 0, so a silent day is not news
    sparse = [7] * 13 + [0] * 15
    assert median_before(history(TODAY, sparse), TODAY) == 0.0
    assert judge_feeds({FEED: history(TODAY, sparse)}, at(TODAY, 15), CUTOFF, 0.5) == []
    # 14 of 28: the median is halfway between 0 and 7
    half = [7] * 14 + [0] * 14
    assert median_before(history(TODAY, half), TODAY) == 3.5
    assert kinds(judge_feeds({FEED: history(TODAY, half)}, at(TODAY, 15), CUTOFF, 0.5)) == [(FEED, NO_UPLOAD, TODAY)]
    # a feed that never uploaded is not judged at all
    assert judge_feeds({FEED: {}}, at(TODAY, 15), CUTOFF, 0.5) == []


def test_zero_days_count_in_the_median_and_the_window_is_28_days() -> None:
    counts = {TODAY - dt.timedelta(days=k): 10 for k in range(1, 15)}  # 14 days of 10, 14 days without any
    assert median_before(counts, TODAY) == 5.0  # not 10: missing days are zeros
    counts[TODAY - dt.timedelta(days=29)] = 1000  # outside the window
    counts[TODAY] = 1000  # the judged day itself is not part of its baseline
    assert median_before(counts, TODAY) == 5.0
    assert median_before({}, TODAY) == 0.0
    assert median_before({TODAY - dt.timedelta(days=k): k for k in range(1, 29)}, TODAY) == 14.5


def test_low_volume_against_the_median_of_the_28_days_before_yesterday() -> None:
    yesterday = TODAY - dt.timedelta(days=1)
    # the 28 days before yesterday are offsets 2..29 from today; offset 1 is yesterday itself
    counts = {TODAY - dt.timedelta(days=k): 10 for k in range(2, 30)}
    counts[TODAY] = 10
    for seen, low in ((4, True), (5, False), (0, True), (30, False)):
        counts[yesterday] = seen
        problems = judge_feeds({FEED: counts}, at(TODAY, 8), CUTOFF, 0.5)  # before the cutoff: LOW_VOLUME only
        expected = [FeedProblem(FEED, LOW_VOLUME, yesterday, seen, 10.0)] if low else []
        assert problems == expected, seen
    counts[yesterday] = 7
    assert kinds(judge_feeds({FEED: counts}, at(TODAY, 8), CUTOFF, 0.8)) == [(FEED, LOW_VOLUME, yesterday)]
    assert judge_feeds({FEED: counts}, at(TODAY, 8), CUTOFF, 0.7) == []


def test_low_volume_baseline_counts_zero_days_too() -> None:
    yesterday = TODAY - dt.timedelta(days=1)
    # 15 busy days and 13 silent ones before yesterday: median 10 → 3 yesterday is low
    counts = {TODAY - dt.timedelta(days=k): 10 for k in range(2, 17)}
    counts[yesterday] = 3
    assert kinds(judge_feeds({FEED: counts}, at(TODAY, 8), CUTOFF, 0.5)) == [(FEED, LOW_VOLUME, yesterday)]
    # 13 busy days and 15 silent ones: median 0 → nothing is low, not even a silent yesterday
    counts = {TODAY - dt.timedelta(days=k): 10 for k in range(2, 15)}
    assert judge_feeds({FEED: counts}, at(TODAY, 8), CUTOFF, 0.5) == []


def test_both_kinds_and_several_feeds_sorted() -> None:
    yesterday = TODAY - dt.timedelta(days=1)
    uploads = {
        OTHER: history(TODAY, 6, yesterday=1),
        FEED: history(TODAY, 5),
        FeedKey(FEED.org_code, "lab.report"): history(TODAY, 5, today_count=3),
    }
    problems = judge_feeds(uploads, at(TODAY, 12), CUTOFF, 0.5)
    assert kinds(problems) == [(FEED, NO_UPLOAD, TODAY), (OTHER, NO_UPLOAD, TODAY), (OTHER, LOW_VOLUME, yesterday)]
    assert (problems[2].observed, problems[2].baseline_median) == (1, 6.0)


def test_the_day_is_asia_shanghai() -> None:
    uploads = {FEED: history(TODAY, 5)}
    # 18:00 UTC on the 26th is 02:00 on the 27th in Xinyang: the 27th has begun, but its cutoff is far off,
    # and yesterday (the 26th) is judged for volume — in UTC it would still be the 26th, past 10:00
    late_evening_utc = dt.datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
    assert judge_feeds(uploads, late_evening_utc, CUTOFF, 0.5) == []
    thin = {FEED: history(TODAY, 5, yesterday=1)}
    assert kinds(judge_feeds(thin, late_evening_utc, CUTOFF, 0.5)) == [(FEED, LOW_VOLUME, dt.date(2026, 11, 26))]
    # 02:30 UTC on the 27th is 10:30 in Xinyang: past the cutoff of the 27th
    assert kinds(judge_feeds(uploads, dt.datetime(2026, 11, 27, 2, 30, tzinfo=UTC), CUTOFF, 0.5)) == [
        (FEED, NO_UPLOAD, TODAY)
    ]
    # the same instant seen from another zone judges the same day
    new_york = dt.timezone(dt.timedelta(hours=-5))
    assert kinds(judge_feeds(uploads, dt.datetime(2026, 11, 26, 21, 30, tzinfo=new_york), CUTOFF, 0.5)) == [
        (FEED, NO_UPLOAD, TODAY)
    ]
    # uploads counted under the UTC date would not count for today
    utc_dated = {FEED: {**history(TODAY, 5), TODAY - dt.timedelta(days=1): 5}}
    assert kinds(judge_feeds(utc_dated, at(TODAY, 10, 30), CUTOFF, 0.5)) == [(FEED, NO_UPLOAD, TODAY)]


# --- pure: transitions ---------------------------------------------------------------------------------


def test_transitions_open_once_and_close_recovered_feeds() -> None:
    silent = {FEED: history(TODAY, 5), OTHER: history(TODAY, 8, today_count=2)}
    problems = judge_feeds(silent, at(TODAY, 11), CUTOFF, 0.5)
    to_open, to_close = transitions([], problems, silent, at(TODAY, 11))
    assert kinds(to_open) == [(FEED, NO_UPLOAD, TODAY)] and to_close == []
    opened = [OpenAlert(alert_id(p), p.key, p.kind, p.day) for p in to_open]
    assert opened[0].alert_id == f"{FEED.org_code}:outpatient.visit:NO_UPLOAD:{TODAY.isoformat()}"

    # the next run, still silent: nothing new, nothing closed
    assert transitions(opened, judge_feeds(silent, at(TODAY, 11, 5), CUTOFF, 0.5), silent, at(TODAY, 11, 5)) == ([], [])
    # past midnight, before the cutoff, still nothing: not a recovery, the alert stays open
    tomorrow = TODAY + dt.timedelta(days=1)
    assert transitions(opened, judge_feeds(silent, at(tomorrow, 8), CUTOFF, 0.5), silent, at(tomorrow, 8))[1] == []
    # the feed uploads: its alert closes, and only it
    recovered = {**silent, FEED: history(TODAY, 5, today_count=1)}
    to_open, to_close = transitions(
        opened, judge_feeds(recovered, at(TODAY, 13), CUTOFF, 0.5), recovered, at(TODAY, 13)
    )
    assert to_open == [] and to_close == opened
    # a recovered feed with nothing open: no transition
    assert transitions([], judge_feeds(recovered, at(TODAY, 13), CUTOFF, 0.5), recovered, at(TODAY, 13)) == ([], [])


def test_transitions_keep_kinds_apart() -> None:
    yesterday = TODAY - dt.timedelta(days=1)
    low = OpenAlert("low", FEED, LOW_VOLUME, yesterday)
    uploads = {FEED: history(TODAY, 5, yesterday=1), OTHER: history(TODAY, 8, today_count=2)}
    problems = judge_feeds(uploads, at(TODAY, 11), CUTOFF, 0.5)
    assert kinds(problems) == [(FEED, NO_UPLOAD, TODAY), (FEED, LOW_VOLUME, yesterday)]
    to_open, to_close = transitions([low], problems, uploads, at(TODAY, 11))
    assert kinds(to_open) == [(FEED, NO_UPLOAD, TODAY)] and to_close == []  # the open LOW_VOLUME is not re-opened
    # an open NO_UPLOAD of another feed closes when that feed no longer fails
    other = OpenAlert("other", OTHER, NO_UPLOAD, TODAY)
    assert transitions([low, other], problems, uploads, at(TODAY, 11))[1] == [other]


def test_alert_id_is_deterministic_and_cutoff_parses() -> None:
    p = FeedProblem(FEED, LOW_VOLUME, dt.date(2026, 11, 3), 2, 9.0)
    assert alert_id(p) == alert_id(FeedProblem(FEED, LOW_VOLUME, dt.date(2026, 11, 3), 4, 10.0))
    assert alert_id(p) != alert_id(FeedProblem(FEED, NO_UPLOAD, dt.date(2026, 11, 3), 2, 9.0))
    assert alert_id(p) != alert_id(FeedProblem(FEED, LOW_VOLUME, dt.date(2026, 11, 4), 2, 9.0))
    assert parse_cutoff("10:00") == dt.time(10, 0) and parse_cutoff("7:05") == dt.time(7, 5)


# --- end to end: chDB → `healthbus quality monitor` → alerts.quality + PostgreSQL ------------------------

ORG_BUSY = make_credit_code("12", "411502", "MA000101")  # uploads every day, today before 10:00
ORG_QUIET = make_credit_code("12", "411503", "MB000202")  # silent today
EVENT_TYPE = "outpatient.visit"
PER_DAY = 6
CODEC = EventCodec()


def quality_result(org: str, region: str, emitted: dt.datetime, failed: bool = False) -> dict:
    """A quality.result value as the ClickHouse sink receives it (through the Avro schema and back)."""
    violations = (
        [
            {
                "rule_id": "COR-CITIZEN-ID",
                "category": "CORRECTNESS",
                "severity": "WARNING",
                "field": "envelope.patient.id_number",
            }
        ]
        if failed
        else []
    )
    value = {
        "event_id": str(uuid.uuid4()),
        "event_type": EVENT_TYPE,
        "org_code": org,
        "org_name": f"{org} 医院",
        "org_region_code": region,
        "occurred_at": emitted - dt.timedelta(minutes=40),
        "emitted_at": emitted,
        "judged_at": emitted + dt.timedelta(seconds=5),
        "record_version": 1,
        "cancelled": False,
        "rule_set_version": "2026.11.1",
        "passed": True,
        "late": False,
        "score": 0.9 if failed else 1.0,
        "weight_applied": 20.0,
        "weight_failed": 2.0 if failed else 0.0,
        "violations": violations,
    }
    return CODEC.decode(CODEC.encode("quality.result", value)).value


def uploads_on(org: str, region: str, day: dt.date, hours: range) -> list[SinkRecord]:
    """PER_DAY results emitted on ``day`` (Asia/Shanghai) at the given local hours (cycled)."""
    hours_list = list(hours)
    values = [
        quality_result(org, region, at(day, hours_list[i % len(hours_list)], 7 * i), failed=i == 0)
        for i in range(PER_DAY)
    ]
    return [SinkRecord("quality.result", v, "quality.results", 0, i) for i, v in enumerate(values)]


def write_results(s: Settings, records: list[SinkRecord]) -> None:
    """Write through the ClickHouse sink, then let go of the chDB directory (one process at a time)."""
    sink = ClickHouseEventLog(
        open_clickhouse(None, s.resolved_chdb_path, s.clickhouse_database), s.clickhouse_database, b"test-key"
    )
    try:
        assert sink.write(records) == len(records)
    finally:
        sink.close()


def monitor(s: Settings, moment: str) -> str:
    result = healthbus("quality", "monitor", "--at", moment, env=settings_env(s), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def alerts(s: Settings, expect: int | None = None) -> list[dict]:
    messages = read_topic(s, s.topic_name(QUALITY_ALERTS), expect=expect, timeout=20)
    out = []
    for m in messages:
        event = CODEC.decode(m.value())
        assert event.event_type == "alerts.quality_feed"
        out.append({**event.value, "_key": m.key()})
    return out


def test_monitor_opens_one_no_upload_alert_and_closes_it_when_the_feed_recovers(own_db_settings: Settings) -> None:
    s = own_db_settings
    records: list[SinkRecord] = []
    for k in range(1, 29):  # the 28 days before today, both institutions; some uploads after midnight local
        day = TODAY - dt.timedelta(days=k)  # (00:00-07:59 in Xinyang is the day before in UTC)
        records += uploads_on(ORG_BUSY, "411502", day, range(1, 20, 3))
        records += uploads_on(ORG_QUIET, "411503", day, range(0, 24, 4))
    records += uploads_on(ORG_BUSY, "411502", TODAY, range(0, 8))  # today, all before 08:00 (UTC: yesterday)
    write_results(s, records)

    eleven = f"{TODAY.isoformat()}T11:00+08:00"
    out = monitor(s, eleven)
    assert "2 feeds, opened 1, closed 0, open now 1" in out, out
    opened = alerts(s, expect=1)
    assert len(opened) == 1
    alert = opened[0]
    the_id = f"{ORG_QUIET}:{EVENT_TYPE}:NO_UPLOAD:{TODAY.isoformat()}"
    assert alert["alert_id"] == the_id and alert["_key"] == ORG_QUIET.encode()
    assert (alert["state"], alert["kind"], alert["org_code"], alert["org_region_code"], alert["event_type"]) == (
        "OPEN",
        "NO_UPLOAD",
        ORG_QUIET,
        "411503",
        EVENT_TYPE,
    )
    assert alert["day"] == TODAY and alert["observed"] == 0 and alert["baseline_median"] == PER_DAY
    assert alert["cutoff"] == "10:00" and alert["min_share"] == 0.5
    assert alert["changed_at"] == dt.datetime.fromisoformat(eleven)
    assert ORG_QUIET in alert["message_zh"] and "10:00" in alert["message_en"]

    # the same moment again: nothing new on the topic
    out = monitor(s, eleven)
    assert "opened 0, closed 0, open now 1" in out, out
    assert len(alerts(s)) == 1

    # today's uploads arrive: the alert closes under the same id
    write_results(s, uploads_on(ORG_QUIET, "411503", TODAY, range(11, 12)))
    out = monitor(s, f"{TODAY.isoformat()}T11:30+08:00")
    assert "opened 0, closed 1, open now 0" in out, out
    both = alerts(s, expect=2)
    assert [a["state"] for a in both] == ["OPEN", "CLOSED"]
    closed = both[1]
    assert closed["alert_id"] == the_id and closed["kind"] == "NO_UPLOAD" and closed["day"] == TODAY
    assert closed["observed"] == PER_DAY and closed["message_en"].startswith(f"{ORG_QUIET} {EVENT_TYPE}")
    assert "recovered" in closed["message_en"] and "已恢复" in closed["message_zh"]
    assert closed["changed_at"] == dt.datetime.fromisoformat(f"{TODAY.isoformat()}T11:30+08:00")

    with psycopg.connect(s.postgres_url) as conn:
        rows = conn.execute(
            "SELECT alert_id, org_code, org_region_code, event_type, kind, day, observed, "
            "baseline_median, opened_at, closed_at FROM quality_feed_alerts"
        ).fetchall()
    assert len(rows) == 1
    alert_row = rows[0]
    assert alert_row[:8] == (the_id, ORG_QUIET, "411503", EVENT_TYPE, "NO_UPLOAD", TODAY, 0, float(PER_DAY))
    assert alert_row[8] == dt.datetime.fromisoformat(eleven)
    assert alert_row[9] == dt.datetime.fromisoformat(f"{TODAY.isoformat()}T11:30+08:00")

"""质量考核排名: ranking institutions by weighted quality score (pure), and `healthbus quality ranking` /
`healthbus quality report` end to end over chDB and PostgreSQL, the report rendered by headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import psycopg
import pytest

from avro_schemas.serde import EventCodec
from foundation.clickhouse import open_clickhouse
from foundation.settings import Settings
from foundation.standards.citizen_id import make_citizen_id
from foundation.standards.credit_code import make_credit_code
from sinks.clickhouse.event_log import ClickHouseEventLog
from sinks.event_sink import SinkRecord
from streams.privacy import mask_id_number, mask_name
from streams.quality.engine import RuleEngine, Verdict
from streams.quality.issue_store import QualityIssue, ensure_issue_store, write_issues
from streams.quality.ranking import DailyFigures, rank_institutions
from streams.quality.rule_set import default_rule_set
from streams.quality.stage import verdict_value
from synthetic.outpatient_visits import outpatient_visits
from tests.conftest import healthbus, settings_env
from tests.test_quality_report_html import ChartCensus, processes_using, run_chromium

CST = dt.timezone(dt.timedelta(hours=8))
DAY = dt.date(2026, 11, 20)


def fig(
    org: str,
    county: str = "411502",
    received: int = 10,
    rejected: int = 0,
    late: int = 0,
    applied: float = 100.0,
    failed: float = 0.0,
    day: dt.date = DAY,
    name: str = "",
) -> DailyFigures:
    return DailyFigures(
        org,
        name or f"{org}医院",
        county,
        day,
        "outpatient.visit",
        received,
        received - rejected,
        rejected,
        late,
        applied,
        failed,
    )


def ranks(rows) -> list[tuple[str, int | None, int | None]]:
    return [(r.org_code, r.city_rank, r.county_rank) for r in rows]


# --- pure ----------------------------------------------------------------------------------------------


def test_score_is_weighted_by_rule_weights_not_by_days() -> None:
    day2 = DAY + dt.timedelta(days=1)
    figures = [
        # busy: a perfect busy day and a bad quiet one — weighted 1 - 5/110 ≈ 0.955; the mean of days would be 0.75
        fig("BUSY", received=100, applied=100, failed=0),
        fig("BUSY", received=10, applied=10, failed=5, day=day2),
        # steady: 0.92 on both days (mean of days 0.92)
        fig("STEADY", received=50, applied=50, failed=4),
        fig("STEADY", received=50, applied=50, failed=4, day=day2),
    ]
    rows = rank_institutions(figures)
    assert [r.org_code for r in rows] == ["BUSY", "STEADY"]
    busy = rows[0]
    assert busy.score == pytest.approx(1 - 5 / 110) and rows[1].score == pytest.approx(0.92)
    assert (busy.received, busy.accepted, busy.rejected) == (110, 110, 0)
    # weights, not event counts: 10 events carrying weight 200 outweigh 100 events carrying weight 20
    rows = rank_institutions(
        [
            fig("A", received=100, applied=20, failed=0),
            fig("A", received=10, applied=200, failed=100, day=day2),
            fig("B", received=10, applied=100, failed=30),
        ]
    )
    assert [(r.org_code, round(r.score, 4)) for r in rows] == [("B", 0.7), ("A", round(1 - 100 / 220, 4))]


def test_ties_share_a_rank() -> None:
    rows = rank_institutions(
        [
            fig("D", applied=100, failed=20),
            fig("A", applied=100, failed=0),
            fig("C", received=20, applied=200, failed=20),
            fig("B", applied=10, failed=1),  # B and C both 0.9
            fig("E", applied=1000, failed=200.0000001),  # equal to D to 6 decimals
        ]
    )
    assert [(r.org_code, r.city_rank) for r in rows] == [("A", 1), ("C", 2), ("B", 2), ("D", 4), ("E", 4)]
    assert rows[1].score == pytest.approx(rows[2].score)


def test_county_ranks() -> None:
    rows = rank_institutions(
        [
            fig("X1", county="411502", failed=1),
            fig("X2", county="411502", failed=5),
            fig("X3", county="411502", failed=5),
            fig("Y1", county="411503", failed=2),
            fig("Y2", county="411503", failed=9),
        ]
    )
    assert ranks(rows) == [("X1", 1, 1), ("Y1", 2, 1), ("X2", 3, 2), ("X3", 3, 2), ("Y2", 5, 2)]
    assert {r.county_code for r in rows if r.org_code.startswith("Y")} == {"411503"}


def test_too_few_events_are_listed_unranked() -> None:
    rows = rank_institutions(
        [
            fig("BIG", received=50, failed=10),
            fig("TINY", received=3, failed=0),
            fig("MID", received=20, failed=20),
            fig("ALSO-TINY", county="411503", received=1),
        ],
        min_received=5,
    )
    assert ranks(rows) == [("BIG", 1, 1), ("MID", 2, 2), ("ALSO-TINY", None, None), ("TINY", None, None)]
    assert rows[3].score == 1.0  # a perfect score does not lift an unranked institution
    assert rank_institutions([]) == []
    # nothing applied: a score of 1, ranked
    assert ranks(rank_institutions([fig("NONE", applied=0, failed=0)])) == [("NONE", 1, 1)]


# --- end to end ----------------------------------------------------------------------------------------

RUN = uuid.uuid4().int % 10**6
ORG_A = make_credit_code("12", "411502", f"PA{RUN:06d}")  # clean
ORG_B = make_credit_code("12", "411502", f"PB{RUN:06d}")  # a few warnings (invalid citizen IDs)
ORG_C = make_credit_code("12", "411503", f"PC{RUN:06d}")  # errors (invalid diagnosis codes), warnings, late
NAMES = {ORG_A: "浉河区甲医院", ORG_B: "浉河区乙医院", ORG_C: "平桥区丙医院"}
REGIONS = {ORG_A: "411502", ORG_B: "411502", ORG_C: "411503"}
PER_ORG = 12
NAME, PHONE = "张三丰", "13912345678"
VALID_ID = make_citizen_id("411502", dt.date(1990, 1, 1), 123)


def wrong_check(citizen_id: str) -> str:
    """The number with a wrong check character: COR-CITIZEN-ID fails (a warning)."""
    return citizen_id[:-1] + ("0" if citizen_id[-1] != "0" else "1")


BAD_ID = wrong_check(VALID_ID)


def day_events() -> list[dict]:
    """PER_ORG outpatient visits per institution on DAY, from 00:30 Asia/Shanghai (the UTC date before) on."""
    start = dt.datetime(DAY.year, DAY.month, DAY.day, 0, 30, tzinfo=CST).astimezone(dt.UTC)
    events = list(outpatient_visits(3 * PER_ORG, seed=4242, hospitals=3, start=start))
    orgs = [ORG_A, ORG_B, ORG_C]
    for i, event in enumerate(events):
        org = orgs[i % 3]
        source = event["envelope"]["source"]
        source.update(org_code=org, org_name=NAMES[org], region_code=REGIONS[org])
        n = i // 3  # the institution's n-th event
        patient = event["envelope"]["patient"]
        if org == ORG_B and n < 3:
            patient["id_number"] = BAD_ID if n == 0 else wrong_check(patient["id_number"])
        if org == ORG_B and n == 0:
            patient.update(name=NAME, phone=PHONE, birth_date=dt.date(1990, 1, 1))
        if org == ORG_C and n < 4:
            event["diagnoses"][0]["code"] = "ZZZ.999"
        if org == ORG_C and 4 <= n < 6:
            patient["id_number"] = wrong_check(patient["id_number"])
        if org == ORG_C and n in (0, 6):  # uploaded 30 h late: the rejected one counts as rejected only
            event["envelope"]["emitted_at"] = event["envelope"]["occurred_at"] + dt.timedelta(hours=30)
    return events


def load(s: Settings) -> tuple[list[tuple[dict, Verdict]], dict[str, float]]:
    """Judge the day's events with the shipped rules, as the quality stage does: results into chDB (through the
    ClickHouse sink), failed events with their record into quality_issues. Returns the verdicts and each
    institution's expected score."""
    engine = RuleEngine(default_rule_set())
    codec = EventCodec()
    judged_at = dt.datetime(DAY.year, DAY.month, DAY.day, 23, 0, tzinfo=CST)
    judged = [(e, engine.judge("outpatient.visit", e)) for e in day_events()]
    records = []
    for i, (event, verdict) in enumerate(judged):
        value = verdict_value(verdict, event["envelope"], judged_at)
        records.append(
            SinkRecord(
                "quality.result", codec.decode(codec.encode("quality.result", value)).value, "quality.results", 0, i
            )
        )
    sink = ClickHouseEventLog(
        open_clickhouse(None, s.resolved_chdb_path, s.clickhouse_database), s.clickhouse_database, b"test-key"
    )
    try:
        sink.write(records)
    finally:
        sink.close()  # chDB: one process per directory, and the CLI comes next
    with psycopg.connect(s.postgres_url, autocommit=True) as conn:
        ensure_issue_store(conn)
        write_issues(
            conn,
            [
                QualityIssue(v, e["envelope"]["occurred_at"], e["envelope"]["source"]["org_code"], e)
                for e, v in judged
                if v.violations
            ],
        )
    scores = {}
    for org in NAMES:
        mine = [v for e, v in judged if e["envelope"]["source"]["org_code"] == org]
        scores[org] = 1 - sum(v.weight_failed for v in mine) / sum(v.weight_applied for v in mine)
    return judged, scores


def test_ranking_and_report_end_to_end(own_db_settings: Settings, tmp_path: Path) -> None:
    s = own_db_settings
    judged, scores = load(s)
    verdicts = {org: [v for e, v in judged if e["envelope"]["source"]["org_code"] == org] for org in NAMES}
    assert not any(v.violations for v in verdicts[ORG_A])
    assert sum(1 for v in verdicts[ORG_B] if v.violations) == 3 and all(v.passed for v in verdicts[ORG_B])
    assert sum(1 for v in verdicts[ORG_C] if not v.passed) == 4
    assert [v.passed for v in verdicts[ORG_C] if v.late] == [False, True]
    assert scores[ORG_A] == 1.0 > scores[ORG_B] > scores[ORG_C]
    env = settings_env(s)
    d = DAY.isoformat()

    table = healthbus("quality", "ranking", "--from", d, "--to", d, env=env, timeout=60)
    assert table.returncode == 0, table.stdout + table.stderr
    lines = [line for line in table.stdout.splitlines() if any(org in line for org in NAMES)]
    assert [next(org for org in NAMES if org in line) for line in lines] == [ORG_A, ORG_B, ORG_C], table.stdout
    assert [line.split()[:2] for line in lines] == [["1", "1"], ["2", "2"], ["3", "1"]], table.stdout
    assert NAMES[ORG_A] in lines[0] and "100.00%" in lines[0]

    as_json = healthbus("quality", "ranking", "--from", d, "--to", d, "--json", env=env, timeout=60)
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    rows = [json.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
    assert [(r["org_code"], r["city_rank"], r["county_rank"], r["county"]) for r in rows] == [
        (ORG_A, 1, 1, "411502"),
        (ORG_B, 2, 2, "411502"),
        (ORG_C, 3, 1, "411503"),
    ]
    for r in rows:
        assert r["score"] == pytest.approx(scores[r["org_code"]], abs=1e-6)
        assert r["received"] == PER_ORG and r["org_name"] == NAMES[r["org_code"]]
        assert r["rejected"] == sum(1 for v in verdicts[r["org_code"]] if not v.passed)
        assert r["accepted"] + r["rejected"] == r["received"]
        assert r["late"] == (1 if r["org_code"] == ORG_C else 0)

    county = healthbus(
        "quality", "ranking", "--from", d, "--to", d, "--county", "411503", "--json", env=env, timeout=60
    )
    assert [json.loads(line)["org_code"] for line in county.stdout.splitlines()] == [ORG_C], county.stdout

    out = tmp_path / "report.html"
    report = healthbus(
        "quality", "report", "--org", ORG_B, "--from", d, "--to", d, "--out", str(out), env=env, timeout=60
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert "city rank 2" in report.stdout, report.stdout
    html = out.read_text("utf-8")

    root = tmp_path / "chromium"
    root.mkdir()
    dom = run_chromium(root, "--dump-dom", out.as_uri())
    assert processes_using(str(root)) == []
    census = ChartCensus()
    census.feed(dom)
    charts = census.charts
    assert set(charts) == {"score-trend", "daily-volume", "failures-by-category"}, charts.keys()
    assert charts["score-trend"]["point"] == 1  # one day
    assert charts["daily-volume"]["bar"] == 3 and charts["daily-volume"]["stack"] == 1
    assert charts["failures-by-category"]["bar"] == 4
    assert NAMES[ORG_B] in dom and ORG_B in dom
    assert "第 2 名 / 共 3" in dom  # city
    assert "第 2 名 / 共 2" in dom  # county 411502: A and B
    assert "COR-CITIZEN-ID" in dom
    # the examples are B's three failed events, dated on the report's day in Asia/Shanghai (00:30 there is
    # the day before in UTC)
    assert dom.count('<code class="chip">COR-CITIZEN-ID</code>') == 3
    assert dom.count("2026-11-20 00:30") == 3 and "UTC+08:00" in dom and "UTC+00:00" not in dom

    # personal data from the payloads: only masked
    assert mask_name(NAME) == "张*丰" and "张*丰" in dom
    assert mask_id_number(BAD_ID) in dom
    issues_b = [e for e, v in judged if e["envelope"]["source"]["org_code"] == ORG_B and v.violations]
    for text in (html, dom):
        assert NAME not in text and BAD_ID not in text and PHONE not in text
        for e in issues_b:
            patient = e["envelope"]["patient"]
            for raw in (patient["name"], patient["id_number"], patient["phone"], patient["local_patient_id"]):
                assert raw not in text, raw

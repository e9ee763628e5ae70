"""The syndromic surveillance report (`healthbus surveillance report`): built from PostgreSQL daily counts and
alerts on a private database, written by the installed console script, rendered by headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

from foundation.settings import Settings
from read_side.reports.surveillance_report import render_surveillance_report
from read_side.reports.surveillance_report_data import build_surveillance_report
from read_side.reports.svg_charts import alarm_line_chart
from streams.surveillance.alert_store import StoredAlert, ensure_alert_store, save_alert
from streams.surveillance.case_store import ensure_case_store
from tests.conftest import healthbus, settings_env
from tests.test_quality_report_html import processes_using, run_chromium

pytestmark = pytest.mark.integration  # its fixtures open their own PostgreSQL (and Redis) connections

CST = dt.timezone(dt.timedelta(hours=8))
FIRST, LAST = dt.date(2026, 11, 1), dt.date(2026, 11, 30)
DAYS = (LAST - FIRST).days + 1
COUNTIES = {"411502": "浉河区", "411521": "罗山县"}
SYNDROMES = ("FEVER_RESP", "ILI", "DIARRHEA")
SURGE = range(19, 24)  # 11-20 .. 11-24: ILI in 浉河区
# written nowhere: the scan below must not find them (the tables hold no personal data at all)
RAW_IDENTIFIERS = (
    "王建国",
    "李秀英",
    "411502195703214526",
    "41152119880101002X",
    "13839712345",
    "hb-person-7f3a9c",
    "MZ20261121000173",
)


def alert(
    alert_id: str,
    syndrome: str,
    county: str,
    method: str,
    level: str,
    state: str,
    opened: dt.date,
    last: dt.date,
    closed: dt.date | None,
    observed: int,
    expected: float,
    threshold: float,
    group: str | None = None,
) -> StoredAlert:
    series = f"{syndrome}:{county}" + (f":{group}" if group else "")
    return StoredAlert(
        alert_id,
        series,
        syndrome,
        county,
        group,
        method,
        level,
        state,
        opened,
        last,
        closed,
        observed,
        expected,
        threshold,
        4.2,
        0.004 if method == "ewma" else None,
        False,
    )


# one open EARS alarm on the surge (4 days in the period), one EWMA yellow alert closed inside the period
# (3 days), one closed before the period (not shown)
OPEN_ALERT = alert(
    "ILI:411502:ears-c2:2026-11-21",
    "ILI",
    "411502",
    "ears-c2",
    "alarm",
    "OPEN",
    dt.date(2026, 11, 21),
    dt.date(2026, 11, 24),
    None,
    41,
    6.3,
    13.9,
)
CLOSED_ALERT = alert(
    "FEVER_RESP:411521:ewma:2026-11-05",
    "FEVER_RESP",
    "411521",
    "ewma",
    "yellow",
    "CLOSED",
    dt.date(2026, 11, 5),
    dt.date(2026, 11, 7),
    dt.date(2026, 11, 8),
    17,
    8.1,
    14.2,
)
OLD_ALERT = alert(
    "DIARRHEA:411502:ears-c1:2026-10-02",
    "DIARRHEA",
    "411502",
    "ears-c1",
    "alarm",
    "CLOSED",
    dt.date(2026, 10, 2),
    dt.date(2026, 10, 4),
    dt.date(2026, 10, 5),
    12,
    3.0,
    9.0,
)
ALERTS = (OPEN_ALERT, CLOSED_ALERT, OLD_ALERT)
MARKED = {("411502", "ILI"): ("red", 4), ("411521", "FEVER_RESP"): ("yellow", 3)}


def daily_rows() -> list[tuple[str, str, str, dt.date, int]]:
    """2 counties × 3 syndromes × 30 days (group ALL) plus VISITS; 罗山县 had no diarrhoea (zero rows, so no
    curve); a surge of ILI in 浉河区; a per-group row and days outside the period, which the report ignores."""
    rng = random.Random(7)
    rows = []
    for county in COUNTIES:
        for k in range(-3, DAYS + 3):
            day = FIRST + dt.timedelta(days=k)
            visits = rng.randint(180, 260)
            rows.append(("VISITS", county, "ALL", day, visits))
            for syndrome in SYNDROMES:
                if county == "411521" and syndrome == "DIARRHEA":
                    cases = 0
                elif syndrome == "ILI" and county == "411502" and k in SURGE:
                    cases = rng.randint(30, 45)
                else:
                    cases = rng.randint(2, 9)
                rows.append((syndrome, county, "ALL", day, cases))
                rows.append((syndrome, county, "child", day, cases // 2))
    return rows


def in_period(rows: list[tuple[str, str, str, dt.date, int]]) -> list[tuple[str, str, str, dt.date, int]]:
    return [r for r in rows if r[2] == "ALL" and FIRST <= r[3] <= LAST]


# --- pure Python ---------------------------------------------------------------------------------------


def test_alarm_line_chart_marks_days_by_level_and_draws_the_share() -> None:
    points = [(f"11-{d:02d}", float(v)) for d, v in zip(range(1, 8), (3, 4, 2, 19, 22, 5, 3))]
    svg = alarm_line_chart(
        points,
        title="<ILI>",
        chart_id="c",
        alarms={3: "red", 4: "yellow", 9: "red"},
        alarm_notes={3: "EARS C2 <alarm>"},
        share=[1.0, 2.0, None, 9.5, 10.0, 2.0, 1.0],
    )
    assert svg.count('class="point"') == 5 and svg.count('class="point marker') == 2
    assert svg.count('class="alarm-band alarm-red"') == 1 and svg.count('class="alarm-band alarm-yellow"') == 1
    assert svg.count('class="line share"') == 2  # the None splits the dashed line
    assert "&lt;ILI&gt;" in svg and "EARS C2 &lt;alarm&gt;" in svg and "<ILI>" not in svg
    assert "chart-empty" in alarm_line_chart([], title="t", chart_id="e")
    with pytest.raises(ValueError):
        alarm_line_chart(points, title="t", chart_id="x", share=[1.0])


def _model(rows, alerts=ALERTS):
    counts: dict = {}
    for syndrome, county, group, day, cases in rows:
        counts.setdefault((syndrome, county, group), {})[day] = cases
    return build_surveillance_report(counts, list(alerts), FIRST, LAST, dt.datetime(2026, 12, 1, 8, 0, tzinfo=CST))


def test_model_curves_marks_and_alert_order() -> None:
    rows = daily_rows()
    r = _model(rows)
    assert [c.county_code for c in r.counties] == list(COUNTIES)
    assert [c.county_name for c in r.counties] == list(COUNTIES.values())
    assert [[k.syndrome for k in c.curves] for c in r.counties] == [list(SYNDROMES), ["FEVER_RESP", "ILI"]]
    ili = r.counties[0].curves[1]
    assert ili.alarm_days == {k: "red" for k in range(20, 24)}
    assert r.counties[1].curves[0].alarm_days == {4: "yellow", 5: "yellow", 6: "yellow"}
    assert [e.alert.alert_id for e in r.alerts] == [OPEN_ALERT.alert_id, CLOSED_ALERT.alert_id]
    assert r.visits == sum(n for s, *_, n in in_period(rows) if s == "VISITS")
    assert r.cases_by_syndrome["ILI"] == sum(n for s, *_, n in in_period(rows) if s == "ILI")
    # a red and a yellow alert on the same day: red wins
    both = _model(
        rows,
        [
            OPEN_ALERT,
            alert(
                "y",
                "ILI",
                "411502",
                "ewma",
                "yellow",
                "OPEN",
                dt.date(2026, 11, 19),
                dt.date(2026, 11, 22),
                None,
                30,
                6.0,
                12.0,
                group="child",
            ),
        ],
    )
    assert both.counties[0].curves[1].alarm_days == {
        18: "yellow",
        19: "yellow",
        20: "red",
        21: "red",
        22: "red",
        23: "red",
    }


def test_page_escapes_and_no_data() -> None:
    evil = "<script>x</script>"
    html = render_surveillance_report(
        _model(
            [("ILI", "411502", "ALL", FIRST, 3), (evil, "411502", "ALL", FIRST, 2)],
            [alert(evil, evil, "411502", evil, evil, "OPEN", FIRST, FIRST, None, 2, 1.0, 1.5)],
        )
    )
    assert "<script" not in html and "&lt;script&gt;" in html
    empty = render_surveillance_report(_model([], []))
    assert 'class="block no-data"' in empty and "本期无监测数据" in empty and "<svg" not in empty
    with pytest.raises(ValueError):
        build_surveillance_report({}, [], LAST, FIRST, dt.datetime.now(CST))


# --- PostgreSQL → `healthbus surveillance report` → Chromium ----------------------------------------------


@dataclass
class Run:
    root: Path
    rows: list[tuple[str, str, str, dt.date, int]]
    page: Path
    html: str
    stdout: str
    env: dict[str, str]
    _dom: str | None = None
    _requests: list[dict] | None = None

    def dom(self) -> str:
        if self._dom is None:
            net_log = self.root / "net-log.json"
            self._dom = run_chromium(self.root, "--dump-dom", f"--log-net-log={net_log}", self.page.as_uri())
            self._requests = page_requests(net_log)
        return self._dom

    def requests(self) -> list[dict]:
        self.dom()
        assert self._requests is not None
        return self._requests


def page_requests(net_log: Path) -> list[dict]:
    """Network requests the page started (Chromium's NetLog): its own background traffic (update checks …)
    has no initiator ("not an origin"); a page's subresources have the page's origin ("null" for file:)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]
        for e in log["events"]
        if e["type"] == start_job and e.get("params", {}).get("initiator", "not an origin") != "not an origin"
    ]


@pytest.fixture(scope="module")
def database(module_db_url: str) -> str:
    return module_db_url


@pytest.fixture(scope="module")
def run(database: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("surveillance-report")
    rows = daily_rows()
    with psycopg.connect(database, autocommit=True) as conn:
        ensure_case_store(conn)
        ensure_alert_store(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO surveillance.daily_counts (syndrome, county_code, population_group, day, "
                "cases) VALUES (%s, %s, %s, %s, %s)",
                rows,
            )
            for a in ALERTS:
                save_alert(conn, a)
    env = settings_env(Settings(postgres_url=database, state_dir=root / "state"))
    page = root / "surveillance.html"
    done = healthbus(
        "surveillance", "report", "--from", FIRST.isoformat(), "--to", LAST.isoformat(), "--out", str(page), env=env
    )
    assert done.returncode == 0, done.stderr
    return Run(root, rows, page, page.read_text(encoding="utf-8"), done.stdout, env)


class Census(HTMLParser):
    """Elements of the page: county sections, panels, and per chart (``svg[data-chart]``) its elements'
    attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.counties: list[str] = []
        self.panels: list[tuple[str, str]] = []
        self.charts: dict[str, list[dict[str, str]]] = {}
        self.alert_rows: list[dict[str, str]] = []
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        css = a.get("class", "").split()
        if tag == "section" and "county" in css:
            self.counties.append(a["data-county"])
        elif tag == "figure" and "panel" in css:
            self.panels.append((self.counties[-1], a["data-syndrome"]))
        elif tag == "tr" and "alert-row" in css:
            self.alert_rows.append(a)
        elif tag == "svg" and a.get("data-chart"):
            self._chart = a["data-chart"]
            self.charts[self._chart] = []
        elif self._chart is not None:
            self.charts[self._chart].append({"tag": tag, **a})

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None

    def with_class(self, chart: str, name: str) -> list[dict[str, str]]:
        return [e for e in self.charts[chart] if name in e.get("class", "").split()]


def census_of(dom: str) -> Census:
    census = Census()
    census.feed(dom)
    return census


def test_chromium_renders_counties_curves_and_alarm_days(run: Run) -> None:
    dom = run.dom()
    census = census_of(dom)
    assert census.counties == list(COUNTIES)  # ordered by code
    with_cases = sorted({(county, s) for s, county, _, _, n in in_period(run.rows) if s != "VISITS" and n > 0})
    assert len(with_cases) == 5  # 罗山县 had no diarrhoea
    assert sorted(census.panels) == with_cases
    assert sorted(census.charts) == sorted(f"curve-{c}-{s}" for c, s in with_cases)
    for county, syndrome in with_cases:
        chart = f"curve-{county}-{syndrome}"
        points = census.with_class(chart, "point")
        assert len(points) == DAYS
        expected = {r[3].strftime("%m-%d"): r[4] for r in in_period(run.rows) if r[:2] == (syndrome, county)}
        assert {p["data-label"]: int(p["data-value"]) for p in points} == expected
        markers = census.with_class(chart, "marker")
        bands = census.with_class(chart, "alarm-band")
        level, n = MARKED.get((county, syndrome), (None, 0))
        assert len(markers) == len(bands) == n, chart
        assert {m["data-level"] for m in markers} == ({level} if level else set())
    ili = census.with_class("curve-411502-ILI", "marker")
    assert [m["data-label"] for m in ili] == ["11-21", "11-22", "11-23", "11-24"]
    assert [m["data-label"] for m in census.with_class("curve-411521-FEVER_RESP", "marker")] == [
        "11-05",
        "11-06",
        "11-07",
    ]
    assert census.with_class("curve-411502-ILI", "share")  # the share of visits, as a second line

    visits = sum(r[4] for r in in_period(run.rows) if r[0] == "VISITS")
    assert "2026-11-01 至 2026-11-30" in dom and f"{visits:,}" in dom
    assert "症候群监测预警报告" in dom and "Syndromic surveillance report" in dom
    assert "浉河区" in dom and "罗山县" in dom and "流感样病例" in dom and "Influenza-like illness" in dom
    assert "2 counties" in run.stdout and "1 open" in run.stdout


def test_alerts_table_has_the_open_alert(run: Run) -> None:
    dom = run.dom()
    rows = census_of(dom).alert_rows
    assert [(r["data-alert-id"], r["data-state"]) for r in rows] == [
        (OPEN_ALERT.alert_id, "OPEN"),
        (CLOSED_ALERT.alert_id, "CLOSED"),
    ]
    row = re.search(r'<tr class="alert-row state-open"[^>]*>(.*?)</tr>', dom, re.S)
    assert row is not None
    text = re.sub(r"<[^>]+>", " ", row.group(1))
    for expected in ("浉河区", "411502", "流感样病例", "EARS C2", "2026-11-21", "2026-11-24", "41", "13.9"):
        assert expected in text, expected
    assert OLD_ALERT.alert_id not in dom  # closed before the period


def test_page_is_self_contained_and_holds_no_identifiers(run: Run) -> None:
    html, dom = run.html, run.dom()
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    for text in (html.lower(), dom.lower()):
        assert "<script" not in text
        for fetches in (
            "http://",
            "https://",
            "<link",
            "<img",
            "<iframe",
            "<object",
            "<embed",
            "src=",
            "url(",
            "@import",
            "@font-face",
        ):
            assert fetches not in text, fetches
    assert run.requests() == [], run.requests()  # Chromium fetched nothing for the page
    for text in (html, dom):
        for raw in RAW_IDENTIFIERS:
            assert raw not in text, raw


def test_request_detection_is_not_vacuous(run: Run) -> None:
    """The NetLog check above does see a page's external fetches (to a closed local port)."""
    root = run.root / "control"
    root.mkdir()
    page = root / "control.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css"></head>'
        '<body><img src="http://127.0.0.1:9/i.png"></body></html>',
        encoding="utf-8",
    )
    run_chromium(root, "--dump-dom", f"--log-net-log={root / 'net.json'}", page.as_uri())
    assert {r["url"] for r in page_requests(root / "net.json")} >= {
        "http://127.0.0.1:9/x.css",
        "http://127.0.0.1:9/i.png",
    }
    assert processes_using(str(root)) == []


def test_screenshot(run: Run) -> None:
    png = run.root / "surveillance.png"
    run_chromium(run.root, f"--screenshot={png}", "--window-size=1280,2200", "--hide-scrollbars", run.page.as_uri())
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert processes_using(str(run.root)) == []


def test_period_without_data_renders_a_no_data_page(run: Run) -> None:
    page = run.root / "empty.html"
    done = healthbus(
        "surveillance", "report", "--from", "2025-01-01", "--to", "2025-01-07", "--out", str(page), env=run.env
    )
    assert done.returncode == 0, done.stderr
    assert "no data" in done.stdout
    root = run.root / "empty"
    root.mkdir()
    dom = run_chromium(root, "--dump-dom", page.as_uri())
    census = census_of(dom)
    assert census.counties == [] and census.charts == {} and census.alert_rows == []
    assert 'class="block no-data"' in dom and "本期无监测数据" in dom and "No surveillance data" in dom
    assert "2025-01-01 至 2025-01-07" in dom

    reversed_period = healthbus(
        "surveillance",
        "report",
        "--from",
        "2025-01-07",
        "--to",
        "2025-01-01",
        "--out",
        str(run.root / "x.html"),
        env=run.env,
    )
    assert reversed_period.returncode == 2 and not (run.root / "x.html").exists()

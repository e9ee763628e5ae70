"""The hospital data-quality feedback report: the SVG charts as pure functions, and the whole HTML page as
headless Chromium renders it (DOM dump and screenshot)."""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from read_side.reports.quality_feedback import (
    DailyQuality,
    ExampleRecord,
    FieldFailureCount,
    QualityReport,
    RankPosition,
    RuleFailureCount,
    render_quality_report,
)
from read_side.reports.svg_charts import EMPTY_MESSAGE, bar_chart, line_chart, stacked_bar_chart
from streams.privacy import mask_address, mask_id_number, mask_name, mask_phone

CST = dt.timezone(dt.timedelta(hours=8))
CHROMIUM_TIMEOUT = 40  # seconds per run; a run normally takes 1-3 s


# --- a realistic report --------------------------------------------------------------------------------

RULES = [
    ("CMP-001", "completeness", "error", "患者身份证件号码缺失", "Patient identity document number missing", 0.30),
    ("CMP-004", "completeness", "warning", "患者联系电话缺失", "Patient contact phone missing", 0.18),
    (
        "TIM-001",
        "timeliness",
        "warning",
        "就诊结束后超过 24 小时才上传",
        "Uploaded more than 24 h after the visit ended",
        0.0,
    ),
    (
        "COR-002",
        "correctness",
        "error",
        "诊断编码不在 ICD-10 字典中",
        "Diagnosis code not in the ICD-10 dictionary",
        0.14,
    ),
    (
        "COR-005",
        "correctness",
        "error",
        "现住址行政区划代码无效（GB/T 2260）",
        "Invalid region code of current address (GB/T 2260)",
        0.08,
    ),
    ("LOG-003", "logic", "error", "出院时间早于入院时间", "Discharge time before admission time", 0.05),
    ("LOG-007", "logic", "warning", "男性患者出现产科诊断", "Obstetric diagnosis on a male patient", 0.03),
    ("LOG-011", "logic", "error", "死亡登记后仍有就诊记录", "Visit recorded after the registered death", 0.02),
]
FIELDS = [
    ("envelope.patient.id_number", 412),
    ("envelope.patient.phone", 251),
    ("diagnoses[0].icd10_code", 196),
    ("patient.address.region_code", 117),
    ("visit.ended_at", 88),
    ("discharge.discharged_at", 64),
    ("envelope.patient.birth_date", 41),
    ("diagnoses[0].name", 33),
    ("patient.sex_code", 29),
    ("visit.department_code", 17),
    ("prescription.items[0].dose_unit", 9),
    ("patient.ethnicity_code", 4),
]
DAYS = 14
DIP_DAY = 7  # index of a day with an interface fault: the trend must mark it


def realistic_report(**changes: object) -> QualityReport:
    rng = random.Random(20240501)
    start = dt.date(2024, 5, 1)
    daily = []
    for i in range(DAYS):
        day = start + dt.timedelta(days=i)
        weekend = day.weekday() >= 5
        received = rng.randint(1300, 1600) if weekend else rng.randint(2100, 2500)
        reject_rate = 0.11 if i == DIP_DAY else rng.uniform(0.012, 0.03)
        rejected = round(received * reject_rate)
        accepted = received - rejected
        late = round(accepted * (0.09 if i == DIP_DAY else rng.uniform(0.01, 0.04)))
        score = 0.86 if i == DIP_DAY else round(rng.uniform(0.955, 0.985), 4)
        daily.append(DailyQuality(day, received, accepted, rejected, late, score))
    received = sum(d.received for d in daily)
    accepted = sum(d.accepted for d in daily)
    rejected = sum(d.rejected for d in daily)
    late = sum(d.late for d in daily)
    score = sum(d.score * d.received for d in daily) / received

    rule_failures = []
    for rule_id, category, severity, zh, en, share in RULES:
        failures = late if category == "timeliness" else round(rejected * share * 1.6)
        rule_failures.append(RuleFailureCount(rule_id, category, severity, zh, en, failures))
    by_category: dict[str, int] = {}
    for r in rule_failures:
        by_category[r.category] = by_category.get(r.category, 0) + r.failures

    examples = [
        ExampleRecord(
            "outpatient_visit",
            "ov-411502-20240508-000173",
            dt.datetime(2024, 5, 8, 9, 41, tzinfo=CST),
            ["CMP-001", "COR-002"],
            {
                "patient.name": mask_name("王建国"),
                "patient.id_number": "",
                "diagnoses[0].icd10_code": "E11.9OO",
                "visit.department_code": "03.01",
            },
        ),
        ExampleRecord(
            "inpatient_discharge",
            "ipd-411502-20240506-000042",
            dt.datetime(2024, 5, 6, 16, 5, tzinfo=CST),
            ["LOG-003"],
            {
                "patient.name": mask_name("李秀英"),
                "patient.id_number": mask_id_number("411502195703214526"),
                "admission.admitted_at": "2024-05-06 18:20",
                "discharge.discharged_at": "2024-05-06 16:05",
            },
        ),
        ExampleRecord(
            "outpatient_visit",
            "ov-411502-20240510-001209",
            dt.datetime(2024, 5, 10, 14, 12, tzinfo=CST),
            ["CMP-004", "COR-005"],
            {
                "patient.name": mask_name("欧阳娜娜"),
                "patient.phone": "",
                "patient.address": mask_address("河南省信阳市浉河区湖东街道东方红大道 88 号"),
                "patient.address.region_code": "411599",
            },
        ),
        ExampleRecord(
            "prescription",
            "rx-411502-20240503-004417",
            dt.datetime(2024, 5, 3, 10, 58, tzinfo=CST),
            ["TIM-001"],
            {
                "patient.name": mask_name("张伟"),
                "patient.phone": mask_phone("13839712345"),
                "visit.ended_at": "2024-05-03 10:58",
                "envelope.uploaded_at": "2024-05-05 02:13",
            },
        ),
        ExampleRecord(
            "inpatient_admission",
            "ipa-411502-20240512-000311",
            dt.datetime(2024, 5, 12, 8, 30, tzinfo=CST),
            ["LOG-007"],
            {"patient.name": mask_name("陈强"), "patient.sex_code": "1 (男)", "diagnoses[0].icd10_code": "O80.0"},
        ),
        ExampleRecord(
            "outpatient_visit",
            "ov-411502-20240513-000999",
            dt.datetime(2024, 5, 13, 11, 0, tzinfo=CST),
            ["CMP-001"],
            {"patient.name": mask_name("刘洋"), "patient.id_number": ""},
        ),
    ]
    report = QualityReport(
        org_code="425100241411502A1001",
        org_name="信阳市中心医院",
        county_code="411502",
        county_name="浉河区",
        period_from=start,
        period_to=start + dt.timedelta(days=DAYS - 1),
        rule_set_version="quality-rules 2024.05.1",
        score=score,
        received=received,
        accepted=accepted,
        rejected=rejected,
        late=late,
        daily=daily,
        failures_by_category=by_category,
        rules=rule_failures,
        fields=[FieldFailureCount(f, n) for f, n in FIELDS],
        examples=examples,
        city_rank=RankPosition(3, 286),
        county_rank=RankPosition(1, 19),
        generated_at=dt.datetime(2024, 5, 15, 8, 30, tzinfo=CST),
    )
    return replace(report, **changes) if changes else report


# --- pure Python: the charts ---------------------------------------------------------------------------


def classes(svg: str, name: str) -> int:
    """How many elements carry the class token ``name``."""
    return sum(1 for value in re.findall(r'class="([^"]*)"', svg) if name in value.split())


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, too
    assert root.tag == "svg" and "chart" in root.get("class", "").split() and root.get("role") == "img"
    assert root.find("title") is not None and root.find("title").text
    return root


def test_line_chart_has_one_point_per_value_and_highlights_markers() -> None:
    points = [(f"05-{d:02d}", v) for d, v in zip(range(1, 8), (97.0, 96.5, 95.2, 71.0, 96.0, 98.1, 97.7))]
    svg = line_chart(
        points, title="Score", y_max=100, y_format=lambda v: f"{v:.0f}%", chart_id="trend", markers=[3, 99]
    )
    root = parse(svg)
    assert root.get("data-chart") == "trend"
    assert classes(svg, "point") == 7
    assert classes(svg, "marker") == 1 and 'data-value="71"' in svg
    assert classes(svg, "axis-label") >= 7 + 2  # day labels and y ticks
    assert ">100%<" in svg and ">0%<" in svg  # the y axis runs 0..100 as asked


def test_bar_charts_count_bars_both_orientations() -> None:
    bars = [("完整性 Completeness", 120), ("及时性 Timeliness", 40), ("正确性 Correctness", 0), ("逻辑性 Logic", 7)]
    for horizontal in (False, True):
        svg = bar_chart(bars, title="By category", chart_id="cat", horizontal=horizontal)
        parse(svg)
        assert classes(svg, "bar") == 4
        assert "完整性 Completeness" in svg


def test_stacked_bar_chart_has_one_bar_per_day_and_series() -> None:
    days = ["05-01", "05-02", "05-03"]
    series = {"accepted": [100.0, 90.0, 0.0], "late": [5.0, 0.0, 0.0], "rejected": [2.0, 3.0, 0.0]}
    svg = stacked_bar_chart(days, series, title="Daily", chart_id="daily")
    parse(svg)
    assert classes(svg, "bar") == 9 and classes(svg, "stack") == 3
    assert classes(svg, "legend-swatch") == 3
    with pytest.raises(ValueError):
        stacked_bar_chart(days, {"accepted": [1.0, 2.0]}, title="Daily", chart_id="daily")


def test_charts_escape_labels_titles_and_ids() -> None:
    evil = '<script>alert("x")</script>'
    svgs = [
        line_chart([(evil, 1.0), ("b", 2.0)], title=evil, chart_id='a"b', y_format=str),
        bar_chart([(evil, 1.0)], title=evil, chart_id=evil),
        bar_chart([(evil, 1.0)], title=evil, chart_id="h", horizontal=True),
        stacked_bar_chart([evil], {evil: [1.0]}, title=evil, chart_id="s"),
    ]
    for svg in svgs:
        assert "<script" not in svg
        assert "&lt;script&gt;" in svg
        parse(svg)


def test_charts_survive_empty_single_and_all_zero_data() -> None:
    empties = [
        line_chart([], title="t", chart_id="e1", y_format=str),
        bar_chart([], title="t", chart_id="e2"),
        bar_chart([], title="t", chart_id="e3", horizontal=True),
        stacked_bar_chart([], {}, title="t", chart_id="e4"),
        stacked_bar_chart([], {"a": []}, title="t", chart_id="e5"),
    ]
    for svg in empties:
        root = parse(svg)
        assert "chart-empty" in root.get("class", "")
        assert EMPTY_MESSAGE in svg
        assert classes(svg, "point") == 0 and classes(svg, "bar") == 0

    odd = [
        line_chart([("only", 42.0)], title="t", chart_id="one", y_format=str),
        line_chart([("a", 0.0), ("b", 0.0)], title="t", chart_id="zeros", y_format=str),
        bar_chart([("a", 0), ("b", 0)], title="t", chart_id="z"),
        bar_chart([("a", 0), ("b", 0)], title="t", chart_id="zh", horizontal=True),
        stacked_bar_chart(["d1", "d2"], {"a": [0.0, 0.0], "b": [0.0, 0.0]}, title="t", chart_id="zs"),
    ]
    for svg in odd:
        parse(svg)
        assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert classes(odd[0], "point") == 1
    assert classes(odd[2], "bar") == 2 and classes(odd[4], "bar") == 4


# --- pure Python: the page -----------------------------------------------------------------------------


def test_report_is_self_contained() -> None:
    html = render_quality_report(realistic_report())
    assert "http://" not in html and "https://" not in html
    for fetches in ("<script", "<link", "<img", "<iframe", "src=", "url(", "@import", "@font-face"):
        assert fetches not in html.lower(), fetches
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in html and '<meta charset="utf-8">' in html


def test_report_escapes_hospital_data() -> None:
    evil = "<script>alert(1)</script>"
    report = realistic_report(
        org_name=f"信阳<b>医院</b>{evil}",
        county_name=evil,
        rule_set_version=f'v1"{evil}',
        rules=[RuleFailureCount(evil, evil, evil, evil, evil, 3)],
        fields=[FieldFailureCount(evil, 2)],
        examples=[ExampleRecord(evil, evil, dt.datetime(2024, 5, 1, 9, 0), [evil], {evil: evil})],
        failures_by_category={evil: 3},
    )
    html = render_quality_report(report)
    assert "<script" not in html and "<b>" not in html
    assert "信阳&lt;b&gt;医院&lt;/b&gt;" in html


def test_report_sections_and_empty_tables() -> None:
    html = render_quality_report(
        realistic_report(rules=[], fields=[], examples=[], daily=[], city_rank=None, failures_by_category={})
    )
    for heading in (
        "质量得分趋势",
        "Score trend",
        "规则失败明细",
        "Failures by rule",
        "问题最多的字段",
        "问题记录示例",
        "得分计算方法",
        "How the score is computed",
    ):
        assert heading in html
    assert "本期无规则失败" in html and "未参与排名" in html
    assert html.count("chart-empty") == 2  # the two daily charts; categories always show the four dimensions


def test_data_model_rejects_inconsistent_counts() -> None:
    with pytest.raises(ValueError):
        DailyQuality(dt.date(2024, 5, 1), received=10, accepted=8, rejected=1, late=0, score=0.9)
    with pytest.raises(ValueError):
        DailyQuality(dt.date(2024, 5, 1), received=10, accepted=8, rejected=2, late=9, score=0.9)
    with pytest.raises(ValueError):
        DailyQuality(dt.date(2024, 5, 1), received=10, accepted=8, rejected=2, late=0, score=1.2)
    with pytest.raises(ValueError):
        RankPosition(5, 4)
    with pytest.raises(ValueError):
        realistic_report(period_from=dt.date(2024, 6, 1))


# --- headless Chromium ---------------------------------------------------------------------------------


def chromium_binary() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        pytest.fail(
            "headless Chromium (/usr/bin/chromium) is missing: `ops/dev.sh test` installs it "
            "(Debian package `chromium`)",
            pytrace=False,
        )
    return found


def processes_using(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (our private run directory); zombies have none."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def run_chromium(root: Path, *args: str) -> str:
    """One headless run confined to ``root`` (profile, and HOME/XDG dirs so that the crash handler's database
    lands there too and its command line names ``root``), in its own process group. The group is killed on
    timeout and afterwards, and so is any process still naming ``root`` (the crash handler starts its own
    session)."""
    cmd = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={root / 'chromium-profile'}",
        *args,
    ]
    env = {
        **os.environ,
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT} s: {' '.join(cmd)}")
    finally:
        try:  # helpers (zygotes, GPU/utility processes) share the group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in processes_using(str(root)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out.decode()


class Browser:
    """The report rendered once into a file, and Chromium's view of it (lazily, so a missing browser fails
    the test that needs it rather than erroring in a fixture)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.report = realistic_report()
        self.page = root / "quality-report.html"
        self.page.write_text(render_quality_report(self.report), encoding="utf-8")
        self._dom: str | None = None
        self._png: Path | None = None

    def dom(self) -> str:
        if self._dom is None:
            self._dom = run_chromium(self.root, "--dump-dom", self.page.as_uri())
        return self._dom

    def screenshot(self) -> Path:
        if self._png is None:
            png = self.root / "r.png"
            run_chromium(
                self.root, f"--screenshot={png}", "--window-size=1200,2400", "--hide-scrollbars", self.page.as_uri()
            )
            self._png = png
        return self._png


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    return Browser(tmp_path_factory.mktemp("quality-report"))


class ChartCensus(HTMLParser):
    """Per chart (``svg[data-chart]``): how many elements carry each class token."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, int]] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg" and a.get("data-chart"):
            self._current = a["data-chart"]
            self.charts[self._current] = {}
        elif self._current is not None:
            for token in (a.get("class") or "").split():
                self.charts[self._current][token] = self.charts[self._current].get(token, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._current = None


def test_chromium_renders_charts_and_header(browser: Browser) -> None:
    dom = browser.dom()
    census = ChartCensus()
    census.feed(dom)
    charts = census.charts
    assert set(charts) == {"score-trend", "daily-volume", "failures-by-category"}, charts.keys()
    assert charts["score-trend"]["point"] == DAYS
    assert charts["score-trend"].get("marker") == 1  # the faulty day, and only it
    assert charts["daily-volume"]["bar"] == DAYS * 3  # on-time accepted, late, rejected per day
    assert charts["daily-volume"]["stack"] == DAYS
    assert charts["failures-by-category"]["bar"] == 4
    for chart in charts.values():
        assert chart.get("axis-label", 0) >= 4

    assert "信阳市中心医院" in dom and "425100241411502A1001" in dom
    assert "第 3 名 / 共 286" in dom and "第 1 名 / 共 19" in dom
    assert "2024-05-01 至 2024-05-14" in dom
    assert dom.count('<tr><td class="rule-id"><code>CMP-') == 2  # the rule table's completeness rows
    assert "ov-411502-20240513-000999" not in dom  # only the first five examples


def test_chromium_screenshot(browser: Browser) -> None:
    png = browser.screenshot()
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000, len(data)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 2400)


def test_no_chromium_left_behind(browser: Browser) -> None:
    browser.dom()
    browser.screenshot()
    assert processes_using(str(browser.root)) == []

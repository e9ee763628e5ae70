"""The syndromic surveillance report (症候群监测预警报告): every county's syndrome curves with the alarm days
marked, and the alerts of the period, in one self-contained HTML file.

The figures are gathered elsewhere (read_side/reports/surveillance_report_data.py) into a
:class:`SurveillanceReport`; :func:`render_surveillance_report` turns it into a page with inline CSS and SVG
only (no scripts, fonts, images or links to fetch) that opens offline and prints on A4. Labels are
bilingual, Chinese first (the city CDC reads Chinese). Every value from the data is escaped.

Page structure (what the test counts): one ``<section class="county" data-county="<code>">`` per county, and
in it one ``<figure class="panel" data-syndrome="<code>">`` per syndrome curve, holding an ``svg.chart``
drawn by :func:`read_side.reports.svg_charts.alarm_line_chart` (``data-chart="curve-<county>-<syndrome>"``; alarm
days are ``class="marker"`` dots). The alerts table's rows are ``tr.alert-row`` with ``data-alert-id`` and
``data-state``. A period without data renders ``<section class="no-data">`` instead of the counties.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from read_side.reports.report_style import base_css
from read_side.reports.report_style import bilingual as _bi
from read_side.reports.report_style import empty_row as _empty_row
from read_side.reports.report_style import esc as _e
from read_side.reports.report_style import local_time as _when
from read_side.reports.report_style import section as _section
from read_side.reports.svg_charts import ALARM_LEVELS, alarm_line_chart, format_number
from streams.surveillance.alert_store import StoredAlert

SYNDROME_EN: dict[str, str] = {
    "FEVER_RESP": "Fever with respiratory symptoms",
    "ILI": "Influenza-like illness",
    "DIARRHEA": "Diarrhoea",
    "FEVER_RASH": "Fever with rash",
    "FEVER_HEMORRHAGE": "Fever with haemorrhage",
    "ENCEPHALITIS": "Encephalitis / meningitis",
    "HFMD": "Hand, foot and mouth",
    "CONJUNCTIVITIS": "Acute conjunctivitis",
    "JAUNDICE": "Jaundice",
}
GROUPS: dict[str, tuple[str, str]] = {
    "ALL": ("全人群", "all ages"),
    "child": ("儿童 0–6 岁", "children 0–6"),
    "student": ("学生 7–18 岁", "students 7–18"),
    "adult": ("成人 19–59 岁", "adults 19–59"),
    "elderly": ("老年 ≥60 岁", "elderly ≥60"),
    "UNKNOWN": ("年龄不详", "age unknown"),
}
LEVELS: dict[str, tuple[str, str]] = {
    "alarm": ("预警", "alarm"),
    "red": ("红色", "red"),
    "yellow": ("黄色", "yellow"),
}
METHODS: dict[str, str] = {"ears-c1": "EARS C1", "ears-c2": "EARS C2", "ears-c3": "EARS C3", "ewma": "EWMA"}


def mark_level(level: str) -> str:
    """An alert level as a curve marks it: EWMA yellow is yellow, everything else (EARS alarm, red) red."""
    return "yellow" if level == "yellow" else "red"


# --- data model ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One alert that was open at some time in the period (its state is the one at generation time), with
    the names the page shows."""

    alert: StoredAlert
    syndrome_zh: str
    county_name: str


@dataclass(frozen=True, slots=True)
class SyndromeCurve:
    """One county's daily cases of one syndrome (group ALL), one value per report day, and the marked days:
    index → ``red``/``yellow`` with a note naming the alerts."""

    syndrome: str
    syndrome_zh: str
    cases: list[int]
    alarm_days: dict[int, str] = field(default_factory=dict)
    alarm_notes: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.cases)


@dataclass(frozen=True, slots=True)
class CountySection:
    county_code: str
    county_name: str
    visits: list[int]  # one value per report day (pseudo-syndrome VISITS, group ALL)
    curves: list[SyndromeCurve]
    alerts: int  # alerts open at some time in the period
    open_alerts: int

    @property
    def total_visits(self) -> int:
        return sum(self.visits)


@dataclass(frozen=True, slots=True)
class SurveillanceReport:
    period_from: dt.date
    period_to: dt.date
    generated_at: dt.datetime
    counties: list[CountySection]
    alerts: list[AlertEntry]
    cases_by_syndrome: dict[str, int]  # syndrome → cases over all counties (group ALL)
    visits: int
    syndrome_zh: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.period_from > self.period_to:
            raise ValueError(f"period {self.period_from} .. {self.period_to} is reversed")
        days = len(self.days)
        for county in self.counties:
            if len(county.visits) != days or any(len(c.cases) != days for c in county.curves):
                raise ValueError(f"county {county.county_code}: series must have one value per day ({days})")

    @property
    def days(self) -> list[dt.date]:
        n = (self.period_to - self.period_from).days + 1
        return [self.period_from + dt.timedelta(days=k) for k in range(n)]

    @property
    def empty(self) -> bool:
        return not self.counties and not self.alerts


# --- formatting ----------------------------------------------------------------------------------------


def _per100(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def _syndrome(code: str, zh: str) -> str:
    en = SYNDROME_EN.get(code, code)
    return f'{_e(zh or code)}<div class="en">{_e(en)} · <code>{_e(code)}</code></div>'


def _group(group: str | None) -> str:
    zh, en = GROUPS.get(group or "ALL", (group or "", group or ""))
    return f'{_e(zh)}<div class="en">{_e(en)}</div>'


def _level_badge(level: str) -> str:
    zh, en = LEVELS.get(level, (level, level))
    return f'<span class="badge level-{mark_level(level)}">{_e(zh)} · {_e(en)}</span>'


def _state_badge(state: str) -> str:
    if state == "OPEN":
        return '<span class="badge state-open">开启 · open</span>'
    return f'<span class="badge state-closed">{"已关闭 · closed" if state == "CLOSED" else _e(state)}</span>'


# --- sections ------------------------------------------------------------------------------------------


def _header(r: SurveillanceReport) -> str:
    days = len(r.days)
    open_now = sum(1 for e in r.alerts if e.alert.state == "OPEN")
    meta = [
        (
            _bi("统计周期", "Period"),
            f"{_e(r.period_from.isoformat())} 至 {_e(r.period_to.isoformat())}（{days} 天 / days，北京时间 / CST）",
        ),
        (_bi("生成时间", "Generated"), _e(_when(r.generated_at))),
        (_bi("区县数", "Counties"), _e(format_number(len(r.counties)))),
        (_bi("就诊人次", "Visits"), _e(format_number(r.visits))),
        (
            _bi("期内预警", "Alerts in period"),
            f"{_e(format_number(len(r.alerts)))}（开启 {_e(format_number(open_now))} / open）",
        ),
    ]
    rows = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in meta)
    return (
        '<header class="report-header">'
        '<p class="kicker">信阳市全民健康信息平台 · 疾病预防控制 · Xinyang Health Information Platform · CDC</p>'
        '<h1>症候群监测预警报告 <span class="en">Syndromic surveillance report</span></h1>'
        f'<dl class="meta">{rows}</dl>'
        "</header>"
    )


def _syndrome_table(r: SurveillanceReport) -> str:
    alerts: dict[str, int] = {}
    for e in r.alerts:
        alerts[e.alert.syndrome] = alerts.get(e.alert.syndrome, 0) + 1
    codes = [c for c in r.cases_by_syndrome if r.cases_by_syndrome[c] or alerts.get(c)]
    codes += [c for c in alerts if c not in r.cases_by_syndrome]
    rows = [
        f'<tr class="syndrome-row" data-syndrome="{_e(c)}"><td>{_syndrome(c, r.syndrome_zh.get(c, c))}</td>'
        f'<td class="num">{_e(format_number(r.cases_by_syndrome.get(c, 0)))}</td>'
        f'<td class="num">{_e(_per100(r.cases_by_syndrome.get(c, 0), r.visits))}</td>'
        f'<td class="num">{_e(format_number(alerts.get(c, 0)))}</td></tr>'
        for c in codes
    ] or [_empty_row(4, "本期无病例", "No cases in this period")]
    table = (
        '<table class="data syndromes"><thead><tr>'
        f'<th>{_bi("症候群", "Syndrome")}</th><th class="num">{_bi("病例数", "Cases")}</th>'
        f'<th class="num">{_bi("占就诊", "Share of visits")}</th><th class="num">{_bi("预警", "Alerts")}</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    note = (
        "全市合计（全人群）。一次就诊可同时计入多个症候群。"
        '<span class="en"> City total, all ages. One visit can count under several syndromes.</span>'
    )
    return _section(1, "各症候群病例数", "Cases per syndrome", table, note)


def _alerts_table(r: SurveillanceReport) -> str:
    rows = []
    for e in r.alerts:
        a = e.alert
        closed = a.closed_day.isoformat() if a.closed_day else "—"
        partial = ' <span class="partial" title="当日未结束 / partial day">*</span>' if a.partial_day else ""
        rows.append(
            f'<tr class="alert-row state-{_e(a.state.lower())}" data-alert-id="{_e(a.alert_id)}" '
            f'data-state="{_e(a.state)}" data-county="{_e(a.county_code)}" data-syndrome="{_e(a.syndrome)}">'
            f"<td>{_state_badge(a.state)}</td>"
            f'<td>{_e(e.county_name)}<div class="en"><code>{_e(a.county_code)}</code></div></td>'
            f"<td>{_syndrome(a.syndrome, e.syndrome_zh)}</td><td>{_group(a.population_group)}</td>"
            f"<td>{_e(METHODS.get(a.method, a.method))}</td><td>{_level_badge(a.level)}</td>"
            f'<td class="day">{_e(a.opened_day.isoformat())}</td><td class="day">{_e(a.last_day.isoformat())}'
            f'{partial}</td><td class="day">{_e(closed)}</td>'
            f'<td class="num"><strong>{_e(format_number(a.observed))}</strong> / '
            f"{_e(format_number(round(a.threshold, 1)))}"
            f'<div class="en">期望 expected {_e(format_number(round(a.expected, 1)))}</div></td></tr>'
        )
    if not rows:
        rows = [_empty_row(10, "本期无预警", "No alerts in this period")]
    table = (
        '<table class="data alerts"><thead><tr>'
        f"<th>{_bi('状态', 'State')}</th><th>{_bi('区县', 'County')}</th><th>{_bi('症候群', 'Syndrome')}</th>"
        f"<th>{_bi('人群', 'Group')}</th><th>{_bi('方法', 'Method')}</th><th>{_bi('级别', 'Level')}</th>"
        f"<th>{_bi('开始日', 'Opened')}</th><th>{_bi('最近超阈日', 'Last day')}</th>"
        f'<th>{_bi("关闭日", "Closed")}</th><th class="num">{_bi("观测 / 阈值", "Observed / threshold")}</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    note = (
        "期内任一天处于开启状态的预警；开启中的排在前面。状态为报告生成时的状态；观测 / 阈值为最近超阈日的数值。"
        '<span class="en"> Alerts open on any day of the period, open ones first. The state is the one when '
        "the report was generated; observed / threshold are those of the last day above the threshold. "
        "* the last day was judged before it ended.</span>"
    )
    return _section(2, "预警列表", "Alerts", table, note)


def _legend() -> str:
    red, yellow = ALARM_LEVELS["red"], ALARM_LEVELS["yellow"]
    return (
        '<p class="legend">'
        '<span class="key"><span class="swatch line"></span>每日病例数 <span class="en">daily cases</span></span>'
        '<span class="key"><span class="swatch share"></span>占就诊比例（右轴）<span class="en">share of visits, '
        "right axis</span></span>"
        f'<span class="key"><span class="swatch dot" style="background:{red[0]};box-shadow:0 0 0 3px {red[1]}">'
        '</span>预警日（EARS / EWMA 红色）<span class="en">alarm day (EARS, EWMA red)</span></span>'
        f'<span class="key"><span class="swatch dot" style="background:{yellow[0]};box-shadow:0 0 0 3px '
        f'{yellow[1]}"></span>EWMA 黄色 <span class="en">EWMA yellow</span></span>'
        "</p>"
    )


def _day_labels(r: SurveillanceReport) -> list[str]:
    same_year = r.period_from.year == r.period_to.year
    return [d.strftime("%m-%d") if same_year else d.isoformat() for d in r.days]


def _county(r: SurveillanceReport, c: CountySection, labels: list[str]) -> str:
    cases = sum(curve.total for curve in c.curves)
    summary = (
        f'<p class="county-summary">就诊 <strong>{_e(format_number(c.total_visits))}</strong> 人次 · '
        f"症候群病例 <strong>{_e(format_number(cases))}</strong> · 预警 <strong>{_e(format_number(c.alerts))}</strong>"
        f"（开启 {_e(format_number(c.open_alerts))}）"
        f'<span class="en"> {_e(format_number(c.total_visits))} visits · {_e(format_number(cases))} syndrome cases · '
        f"{_e(format_number(c.alerts))} alerts ({_e(format_number(c.open_alerts))} open)</span></p>"
    )
    panels = []
    for curve in c.curves:
        share = [100 * n / v if v else None for n, v in zip(curve.cases, c.visits)]
        chart = alarm_line_chart(
            list(zip(labels, (float(n) for n in curve.cases))),
            title=f"{c.county_name} {curve.syndrome_zh} 每日病例 / {SYNDROME_EN.get(curve.syndrome, curve.syndrome)}, "
            "daily cases",
            chart_id=f"curve-{c.county_code}-{curve.syndrome}",
            alarms=curve.alarm_days,
            alarm_notes=curve.alarm_notes,
            share=share,
            share_format=lambda v: f"{v:.1f}%" if not float(v).is_integer() else f"{v:.0f}%",
        )
        flag = (
            (
                f' <span class="badge level-{"red" if "red" in curve.alarm_days.values() else "yellow"}">'
                f"{len(curve.alarm_days)} 预警日 · alarm days</span>"
            )
            if curve.alarm_days
            else ""
        )
        panels.append(
            f'<figure class="panel" data-syndrome="{_e(curve.syndrome)}">'
            f'<figcaption><span class="panel-name">{_e(curve.syndrome_zh)}</span> '
            f'<span class="en">{_e(SYNDROME_EN.get(curve.syndrome, curve.syndrome))}</span>'
            f'<span class="panel-total">{_e(format_number(curve.total))} 例 · '
            f"{_e(_per100(curve.total, c.total_visits))}</span>{flag}</figcaption>{chart}</figure>"
        )
    if not panels:
        panels = ['<p class="empty">本期无症候群病例 <span class="en">/ No syndrome cases in this period</span></p>']
    return (
        f'<section class="county" data-county="{_e(c.county_code)}">'
        f"<h3>{_e(c.county_name)} <code>{_e(c.county_code)}</code></h3>{summary}"
        f'<div class="panels">{"".join(panels)}</div></section>'
    )


def _counties(r: SurveillanceReport) -> str:
    labels = _day_labels(r)
    body = _legend() + "".join(_county(r, c, labels) for c in r.counties)
    note = (
        "按区县代码排序；每个区县显示期内有病例或有预警的症候群（全人群）。"
        '<span class="en"> Counties by code; per county the syndromes with any case or alert in the period '
        "(all ages).</span>"
    )
    return _section(3, "各区县症候群曲线", "Syndrome curves by county", body, note)


def _no_data(r: SurveillanceReport) -> str:
    return (
        '<section class="block no-data">'
        '<p class="no-data-title">本期无监测数据 <span class="en">/ No surveillance data for this period</span></p>'
        f"<p>{_e(r.period_from.isoformat())} 至 {_e(r.period_to.isoformat())} 期间没有症候群日计数，也没有预警。"
        '<span class="en"> No daily syndrome counts and no alerts between these days: check the period, and that '
        "the surveillance worker has processed the visits.</span></p></section>"
    )


def _footnote() -> str:
    return (
        '<footer class="footnote">'
        f"<h2>{_bi('说明', 'Notes')}</h2>"
        "<p>病例数取自症候群日计数（全人群，按就诊日的北京时间计），就诊人次为同一表中全部已分类的门诊就诊，"
        "作为比例的分母。预警日：每条预警从开始日到最近超阈日之间的每一天（截取到统计周期内）；"
        "同一天有多条预警时按最高级别着色（红色优先于黄色）。按人群的预警也标在该区县的全人群曲线上，人群见预警列表。"
        "本报告只含汇总计数，不含个人信息。</p>"
        '<p class="en">Cases come from the daily syndrome counts (all ages, by the visit day in China time); visits '
        "are every classified outpatient visit in the same table, the denominator of the shares. Alarm days: every "
        "day from an alert's opening day to its last day above the threshold, within the period; a day with several "
        "alerts takes the highest level (red over yellow). Alerts of a population group are marked on the county's "
        "all-ages curve too; the alerts table names the group. The report holds aggregate counts only, no "
        "personal data.</p>"
        "</footer>"
    )


CSS = (
    base_css("#b91c1c", 1180)
    + """
.report{max-width:1180px;margin:24px auto;background:#fff;padding:32px 40px 24px;border-radius:6px;
box-shadow:0 1px 3px rgba(15,23,42,.12)}
.report-header{border-bottom:3px solid #b91c1c;padding-bottom:14px;margin-bottom:18px}
.block{margin-top:24px}
table.data td{border-bottom:1px solid #e5e7eb;padding:5px 8px;vertical-align:top}
table.data td .en{font-size:11px}
table.data td.day{white-space:nowrap;font-variant-numeric:tabular-nums}
table.syndromes{max-width:720px}
tr.state-open td{background:#fff7f7}
.state-open .badge.state-open,.badge.state-open{background:#fef2f2;color:#b91c1c;border-color:#fecaca;font-weight:600}
.badge.state-closed{background:#f3f4f6;color:#374151;border-color:#d1d5db}
.badge.level-red{background:#fef2f2;color:#b91c1c;border-color:#fecaca}
.badge.level-yellow{background:#fffbeb;color:#b45309;border-color:#fde68a}
.partial{color:#b45309;font-weight:700}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:12px;margin:4px 0 10px}
.legend .key{display:inline-flex;align-items:center;gap:6px}
.legend .en{font-size:11px}
.swatch{display:inline-block;width:18px;height:0;border-top:2px solid #2563eb}
.swatch.share{border-top:2px dashed #0f766e}
.swatch.dot{width:8px;height:8px;border:0;border-radius:4px;margin:0 3px}
.county{margin-top:18px;padding-top:6px;border-top:1px solid #e5e7eb;break-inside:avoid-page}
.county h3{margin:0;font-size:16px}
.county h3 code{color:#6b7280;font-weight:400;font-size:12px}
.county-summary{margin:2px 0 8px;font-size:12.5px}
.county-summary .en{display:block;font-size:11px}
.panels{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:10px 14px}
.panel{margin:0;border:1px solid #eef0f3;border-radius:5px;padding:6px 6px 2px;break-inside:avoid}
.panel figcaption{font-size:12.5px;line-height:1.3;margin-bottom:2px}
.panel-name{font-weight:700}
.panel figcaption .en{font-size:11px}
.panel-total{float:right;font-variant-numeric:tabular-nums;color:#374151;font-size:12px}
.panel .badge{margin-left:4px;font-size:10px}
.empty{color:#6b7280}
.no-data{margin-top:30px;padding:28px;border:2px dashed #d1d5db;border-radius:8px;text-align:center;background:#f9fafb}
.no-data-title{font-size:20px;font-weight:700;margin:0 0 8px}
.no-data .en{display:block}
.footnote{margin-top:28px;padding-top:10px;border-top:1px solid #d1d5db;font-size:12px;color:#374151;
break-inside:avoid}
@page{size:A4 landscape;margin:10mm}
@media (max-width:900px){
.report{padding:18px}
.panels{grid-template-columns:repeat(2,minmax(0,1fr))}
.meta{grid-template-columns:1fr 1fr}
}
@media (max-width:560px){.panels{grid-template-columns:1fr}}
"""
)


def render_surveillance_report(report: SurveillanceReport) -> str:
    """The whole report as one self-contained HTML document (UTF-8 text)."""
    r = report
    title = f"症候群监测预警报告 · {r.period_from.isoformat()} 至 {r.period_to.isoformat()}"
    if r.empty:
        body = _header(r) + _no_data(r) + _footnote()
    else:
        body = _header(r) + _syndrome_table(r) + _alerts_table(r) + _counties(r) + _footnote()
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="healthbus read_side.reports.surveillance_report">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body>\n<main class="report">{body}</main>\n</body>\n</html>\n'
    )

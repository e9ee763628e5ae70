"""The hospital data-quality feedback report (上传数据质量反馈报告): one institution, one period, one HTML file.

The figures are gathered elsewhere into a :class:`QualityReport`; :func:`render_quality_report` turns it into a
self-contained page (inline CSS and SVG, no scripts, fonts, images or links to fetch) that opens offline and
prints on A4. Headings are bilingual, Chinese first. Every value from the data is escaped.

Counting conventions (what the gatherer must supply):

* ``received = accepted + rejected`` — every record received in the period is either accepted or rejected;
* ``late`` counts *accepted* records that arrived after the upload deadline (timeliness, 及时性); a late record
  that is also rejected counts as rejected only. So one day's column is on-time accepted + late + rejected;
* scores are in 0..1: the weighted pass rate of the rules that apply to the records (see the footnote);
* example records arrive already masked (``streams.privacy``): the renderer shows them as given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from read_side.reports.report_style import base_css
from read_side.reports.report_style import bilingual as _bi
from read_side.reports.report_style import empty_row as _empty_row
from read_side.reports.report_style import esc as _e
from read_side.reports.report_style import local_time as _when
from read_side.reports.report_style import section as _section
from read_side.reports.svg_charts import bar_chart, format_number, line_chart, stacked_bar_chart

CATEGORIES: dict[str, tuple[str, str]] = {
    "completeness": ("完整性", "Completeness"),
    "timeliness": ("及时性", "Timeliness"),
    "correctness": ("正确性", "Correctness"),
    "logic": ("逻辑性", "Logic"),
}
SEVERITIES: dict[str, tuple[str, str]] = {
    "error": ("错误", "Error"),
    "warning": ("警告", "Warning"),
    "info": ("提示", "Info"),
}
TOP_FIELDS = 10
MAX_EXAMPLES = 5
BLANK = '<span class="blank">（空）/ empty</span>'  # an example field the hospital left empty
DIP_POINTS = 5.0  # a day is marked on the trend when it scores this many percentage points below the period


# --- data model ----------------------------------------------------------------------------------------


def _check_counts(where: str, received: int, accepted: int, rejected: int, late: int, score: float) -> None:
    if min(received, accepted, rejected, late) < 0:
        raise ValueError(f"{where}: negative count")
    if accepted + rejected != received:
        raise ValueError(f"{where}: accepted ({accepted}) + rejected ({rejected}) != received ({received})")
    if late > accepted:
        raise ValueError(f"{where}: late ({late}) counts accepted records only, but accepted is {accepted}")
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"{where}: score {score} outside 0..1")


@dataclass(frozen=True, slots=True)
class DailyQuality:
    """One day of uploads. ``score`` is that day's weighted pass rate (0..1)."""

    day: dt.date
    received: int
    accepted: int
    rejected: int
    late: int
    score: float

    def __post_init__(self) -> None:
        _check_counts(f"DailyQuality {self.day}", self.received, self.accepted, self.rejected, self.late, self.score)


@dataclass(frozen=True, slots=True)
class RuleFailureCount:
    """How often one quality rule failed in the period. ``category`` is one of :data:`CATEGORIES`' keys,
    ``severity`` one of :data:`SEVERITIES`' keys (others are shown as given)."""

    rule_id: str
    category: str
    severity: str
    message_zh: str
    message_en: str
    failures: int


@dataclass(frozen=True, slots=True)
class FieldFailureCount:
    """Failures attributed to one field, named by its path in the event, e.g. ``envelope.patient.id_number``."""

    field: str
    failures: int


@dataclass(frozen=True, slots=True)
class ExampleRecord:
    """A record that failed, for the hospital to find and fix. ``fields`` are already masked by the caller."""

    event_type: str
    event_id: str
    occurred_at: dt.datetime
    rule_ids: list[str]
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class RankPosition:
    """Position by period score among the uploading institutions: 1 is best."""

    rank: int
    of: int

    def __post_init__(self) -> None:
        if not 1 <= self.rank <= self.of:
            raise ValueError(f"rank {self.rank} of {self.of}")


@dataclass(frozen=True, slots=True)
class QualityReport:
    org_code: str
    org_name: str
    county_code: str
    county_name: str
    period_from: dt.date
    period_to: dt.date
    rule_set_version: str
    score: float
    received: int
    accepted: int
    rejected: int
    late: int
    daily: list[DailyQuality]
    failures_by_category: dict[str, int]
    rules: list[RuleFailureCount]
    fields: list[FieldFailureCount]
    examples: list[ExampleRecord]
    city_rank: RankPosition | None
    county_rank: RankPosition | None
    generated_at: dt.datetime

    def __post_init__(self) -> None:
        if self.period_from > self.period_to:
            raise ValueError(f"period {self.period_from} .. {self.period_to} is reversed")
        _check_counts(
            f"QualityReport {self.org_code}", self.received, self.accepted, self.rejected, self.late, self.score
        )


# --- formatting ----------------------------------------------------------------------------------------


def _pct(fraction: float, decimals: int = 1) -> str:
    return f"{fraction * 100:.{decimals}f}%"


def _share(part: int, whole: int) -> str:
    return _pct(part / whole) if whole else "—"


def _key(value: object) -> str:
    """A plain string for a key that may be a ``str`` enum (``streams.quality.rule_set.Category``/``Severity``)."""
    return str(getattr(value, "value", value))


def _category(key: str) -> str:
    key = _key(key)
    zh, en = CATEGORIES.get(key, (key, ""))
    return f'{_e(zh)} <span class="en">{_e(en)}</span>' if en else _e(key)


def _severity(key: str) -> str:
    key = _key(key)
    zh, en = SEVERITIES.get(key.lower(), (key, key))
    css = key.lower() if key.lower() in SEVERITIES else "other"
    return f'<span class="badge sev-{css}">{_e(zh)} · {_e(en)}</span>'


def _rank(rank: RankPosition | None) -> tuple[str, str]:
    if rank is None:
        return "—", "未参与排名 / not ranked"
    return f"第 {rank.rank} 名 / 共 {rank.of}", f"rank {rank.rank} of {rank.of}"


# --- sections ------------------------------------------------------------------------------------------


def _header(r: QualityReport) -> str:
    days = (r.period_to - r.period_from).days + 1
    meta = [
        (_bi("机构编码", "Institution code"), f"<code>{_e(r.org_code)}</code>"),
        (_bi("所属区县", "County"), f"{_e(r.county_name)} <code>{_e(r.county_code)}</code>"),
        (
            _bi("统计周期", "Period"),
            f"{_e(r.period_from.isoformat())} 至 {_e(r.period_to.isoformat())}（{days} 天 / days）",
        ),
        (_bi("规则集版本", "Rule set"), f"<code>{_e(r.rule_set_version)}</code>"),
        (_bi("生成时间", "Generated"), _e(_when(r.generated_at))),
    ]
    rows = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in meta)
    return (
        '<header class="report-header">'
        '<p class="kicker">信阳市全民健康信息平台 · Xinyang Health Information Platform</p>'
        f'<h1>上传数据质量反馈报告 <span class="en">Data-quality feedback report</span></h1>'
        f'<p class="hospital">{_e(r.org_name)}</p>'
        f'<dl class="meta">{rows}</dl>'
        "</header>"
    )


def _tiles(r: QualityReport) -> str:
    city, city_en = _rank(r.city_rank)
    county, county_en = _rank(r.county_rank)
    tiles = [
        ("tile-received", "接收", "Received", format_number(r.received), "条记录 / records"),
        (
            "tile-accepted",
            "通过",
            "Accepted",
            format_number(r.accepted),
            f"占接收量 {_share(r.accepted, r.received)} / of received",
        ),
        (
            "tile-rejected",
            "拒收",
            "Rejected",
            format_number(r.rejected),
            f"占接收量 {_share(r.rejected, r.received)} / of received",
        ),
        ("tile-late", "迟报", "Late", format_number(r.late), f"占通过量 {_share(r.late, r.accepted)} / of accepted"),
        ("tile-city-rank", "全市排名", "City rank", city, city_en),
        ("tile-county-rank", "区县排名", "County rank", county, f"{r.county_name} · {county_en}"),
    ]
    cells = [
        '<div class="tile tile-score">'
        f'<div class="tile-label">{_bi("质量得分", "Quality score")}</div>'
        f'<div class="tile-value">{_e(_pct(r.score))}</div>'
        '<div class="tile-sub">加权通过率 / weighted pass rate</div></div>'
    ]
    for css, zh, en, value, sub in tiles:
        cells.append(
            f'<div class="tile {css}"><div class="tile-label">{_bi(zh, en)}</div>'
            f'<div class="tile-value">{_e(value)}</div><div class="tile-sub">{_e(sub)}</div></div>'
        )
    return f'<section class="tiles" aria-label="概览 / Summary">{"".join(cells)}</section>'


def _day_labels(r: QualityReport, days: list[DailyQuality]) -> list[str]:
    same_year = r.period_from.year == r.period_to.year
    return [d.day.strftime("%m-%d") if same_year else d.day.isoformat() for d in days]


def _score_trend(r: QualityReport, days: list[DailyQuality]) -> str:
    labels = _day_labels(r, days)
    points = [(label, d.score * 100) for label, d in zip(labels, days)]
    dips = [i for i, d in enumerate(days) if (r.score - d.score) * 100 > DIP_POINTS]
    chart = line_chart(
        points,
        title="每日质量得分 / Daily quality score (%)",
        y_min=0,
        y_max=100,
        y_format=lambda v: f"{v:.0f}%" if float(v).is_integer() else f"{v:.1f}%",
        chart_id="score-trend",
        markers=dips,
        y_label="得分 Score (%)",
    )
    note = (
        f"本期得分 {_e(_pct(r.score))}；红色标出比本期得分低 {DIP_POINTS:g} 个百分点以上的日期。"
        f'<span class="en"> Period score {_e(_pct(r.score))}; days more than {DIP_POINTS:g} points below it '
        "are marked red.</span>"
    )
    return _section(1, "质量得分趋势", "Score trend", f'<figure class="figure">{chart}</figure>', note)


def _daily_volume(r: QualityReport, days: list[DailyQuality]) -> str:
    series = {
        "按时通过 On-time accepted": [float(d.accepted - d.late) for d in days],
        "迟报 Late": [float(d.late) for d in days],
        "拒收 Rejected": [float(d.rejected) for d in days],
    }
    colors = dict(zip(series, ("#3b82f6", "#f59e0b", "#dc2626")))
    chart = stacked_bar_chart(
        _day_labels(r, days),
        series,
        title="每日接收、拒收与迟报 / Daily received, rejected and late",
        chart_id="daily-volume",
        colors=colors,
        y_label="记录数 Records",
    )
    note = (
        "柱高为当日接收量 = 按时通过 + 迟报（已通过但超过上传时限）+ 拒收。"
        '<span class="en"> Column height is the day\'s received records = on-time accepted + late '
        "(accepted after the upload deadline) + rejected.</span>"
    )
    return _section(
        2, "每日上传量", "Daily uploads: received vs rejected vs late", f'<figure class="figure">{chart}</figure>', note
    )


def _categories(r: QualityReport) -> str:
    counts: dict[str, int] = {}
    for key, n in r.failures_by_category.items():
        counts[_key(key)] = counts.get(_key(key), 0) + n
    bars = []
    for key in list(CATEGORIES) + sorted(k for k in counts if k not in CATEGORIES):
        zh, en = CATEGORIES.get(key, (key, ""))
        bars.append((f"{zh} {en}".strip(), float(counts.get(key, 0))))
    chart = bar_chart(
        bars,
        title="各维度规则失败次数 / Rule failures by category",
        chart_id="failures-by-category",
        horizontal=True,
        colors=("#2563eb", "#f59e0b", "#dc2626", "#7c3aed", "#6b7280"),
    )
    return _section(
        3,
        "各维度失败次数",
        "Failures by category",
        f'<figure class="figure">{chart}</figure>',
        '一条记录可能同时违反多条规则。<span class="en"> One record can fail several rules.</span>',
    )


def _rules_table(r: QualityReport) -> str:
    rules = sorted(r.rules, key=lambda x: (-x.failures, x.rule_id))
    total = sum(x.failures for x in rules)
    rows = [
        f'<tr><td class="rule-id"><code>{_e(x.rule_id)}</code></td><td>{_category(x.category)}</td>'
        f"<td>{_severity(x.severity)}</td>"
        f'<td class="msg">{_e(x.message_zh)}<div class="en">{_e(x.message_en)}</div></td>'
        f'<td class="num">{_e(format_number(x.failures))}</td><td class="num">{_e(_share(x.failures, total))}</td></tr>'
        for x in rules
    ] or [_empty_row(6, "本期无规则失败", "No rule failures in this period")]
    table = (
        '<table class="data rules"><thead><tr>'
        f"<th>{_bi('规则', 'Rule')}</th><th>{_bi('维度', 'Category')}</th><th>{_bi('级别', 'Severity')}</th>"
        f'<th>{_bi("说明", "Message")}</th><th class="num">{_bi("失败次数", "Failures")}</th>'
        f'<th class="num">{_bi("占比", "Share")}</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return _section(4, "规则失败明细", "Failures by rule", table)


def _fields_table(r: QualityReport) -> str:
    fields = sorted(r.fields, key=lambda x: (-x.failures, x.field))[:TOP_FIELDS]
    worst = max((x.failures for x in fields), default=0)
    total = sum(x.failures for x in r.fields)
    rows = []
    for i, x in enumerate(fields, 1):
        width = 100 * x.failures / worst if worst else 0
        rows.append(
            f'<tr><td class="num rank">{i}</td><td><code>{_e(x.field)}</code></td>'
            f'<td class="num">{_e(format_number(x.failures))}</td><td class="num">{_e(_share(x.failures, total))}</td>'
            f'<td class="meter-cell"><span class="meter"><span style="width:{width:.1f}%"></span></span></td></tr>'
        )
    if not rows:
        rows = [_empty_row(5, "本期无字段问题", "No field failures in this period")]
    table = (
        '<table class="data fields"><thead><tr>'
        f'<th class="num">#</th><th>{_bi("字段", "Field")}</th><th class="num">{_bi("失败次数", "Failures")}</th>'
        f'<th class="num">{_bi("占比", "Share")}</th><th></th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return _section(5, f"问题最多的字段（前 {TOP_FIELDS}）", f"Worst fields (top {TOP_FIELDS})", table)


def _examples_table(r: QualityReport) -> str:
    rows = []
    for x in r.examples[:MAX_EXAMPLES]:
        rule_ids = " ".join(f'<code class="chip">{_e(rid)}</code>' for rid in x.rule_ids)
        fields = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v) if v else BLANK}</dd></div>" for k, v in x.fields.items())
        when, _, zone = _when(x.occurred_at).partition(" (")
        zone_html = f'<div class="tz">{_e(zone.rstrip(")"))}</div>' if zone else ""
        rows.append(
            f'<tr><td><code>{_e(x.event_type)}</code></td><td><code class="id">{_e(x.event_id)}</code></td>'
            f"<td>{_e(when)}{zone_html}</td><td>{rule_ids}</td>"
            f'<td><dl class="kv">{fields}</dl></td></tr>'
        )
    if not rows:
        rows = [_empty_row(5, "本期无问题记录示例", "No example records in this period")]
    table = (
        '<table class="data examples"><colgroup><col style="width:17%"><col style="width:17%"><col style="width:13%">'
        '<col style="width:9%"><col></colgroup><thead><tr>'
        f"<th>{_bi('事件类型', 'Event type')}</th><th>{_bi('事件编号', 'Event ID')}</th>"
        f"<th>{_bi('发生时间', 'Occurred at')}</th><th>{_bi('违反规则', 'Rules failed')}</th>"
        f"<th>{_bi('字段（已脱敏）', 'Fields (masked)')}</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    note = (
        "个人信息已脱敏；请按事件编号在本院系统中查找并更正后重新上传。"
        '<span class="en"> Personal data is masked; find each record by its event ID in the hospital system, '
        "correct it and upload it again.</span>"
    )
    return _section(6, "问题记录示例", "Example records", table, note)


def _footnote(r: QualityReport) -> str:
    v = _e(r.rule_set_version)
    return (
        '<footer class="footnote">'
        f"<h2>{_bi('得分计算方法', 'How the score is computed')}</h2>"
        "<p>质量得分是<strong>适用规则的加权通过率</strong>：每条记录只按适用于其事件类型的规则检查，"
        f"每条规则按规则集 <code>{v}</code> 中设定的权重计分；"
        "得分 = Σ（权重 × 通过次数）÷ Σ（权重 × 适用次数）。每日得分只统计当天接收的记录。"
        "接收 = 通过 + 拒收；迟报为已通过但超过上传时限的记录。排名按本期得分在全市 / 本区县上传机构中排序，第 1 名最好。</p>"
        '<p class="en">The quality score is the <strong>weighted pass rate of the rules that apply</strong>: each '
        "record is checked only against the rules that apply to its event type, and each rule counts with its "
        f"weight in rule set <code>{v}</code>; score = Σ(weight × passes) ÷ Σ(weight × applicable checks). A day's "
        "score counts the records received that day. Received = accepted + rejected; late records were accepted "
        "but arrived after the upload deadline. Ranks order the uploading institutions of the city / county by "
        "the period score; rank 1 is best.</p>"
        "</footer>"
    )


CSS = (
    base_css("#1d4ed8", 960)
    + """
.hospital{margin:0 0 10px;font-size:20px;font-weight:700}
.meta div{min-width:0}
.tiles{display:grid;grid-template-columns:1.3fr repeat(3,1fr);gap:10px;margin:0 0 8px}
.tile{border:1px solid #e5e7eb;border-radius:6px;padding:10px 14px;background:#f9fafb;min-width:0}
.tile-label{font-size:12px;color:#374151}
.tile-label .en{font-size:11px}
.tile-value{font-size:22px;font-weight:700;font-variant-numeric:tabular-nums;line-height:1.35;white-space:nowrap}
.tile-sub{font-size:11px;color:#6b7280}
.tile-score{grid-row:span 2;background:#eff6ff;border-color:#bfdbfe;display:flex;flex-direction:column;
justify-content:center}
.tile-score .tile-value{font-size:40px;color:#1d4ed8}
.tile-rejected .tile-value{color:#b91c1c}
.tile-late .tile-value{color:#b45309}
.tile-city-rank .tile-value,.tile-county-rank .tile-value{font-size:19px}
.figure{margin:0;break-inside:avoid}
table.data td.rule-id{white-space:nowrap}
table.data tbody tr:nth-child(even) td{background:#fafafa}
table.data td.msg .en{font-size:11.5px}
table.data td.rank{color:#6b7280}
table.rules code,table.fields code{word-break:break-all}
.sev-error{background:#fef2f2;color:#b91c1c;border-color:#fecaca}
.sev-warning{background:#fffbeb;color:#b45309;border-color:#fde68a}
.sev-info,.sev-other{background:#f3f4f6;color:#374151;border-color:#d1d5db}
.meter-cell{width:28%}
.meter{display:block;height:8px;background:#eef2ff;border-radius:4px;margin-top:5px;overflow:hidden}
.meter span{display:block;height:100%;background:#6366f1}
.chip{display:inline-block;background:#eef2ff;color:#3730a3;border-radius:4px;padding:0 5px;margin:1px 2px 1px 0;
font-size:11px}
code.id{word-break:break-all;font-size:11px}
.kv{margin:0;display:grid;grid-template-columns:auto 1fr;gap:1px 10px;font-size:12px}
.kv div{display:contents}
.kv dt{color:#6b7280;font-family:"SFMono-Regular",Consolas,"Liberation Mono",Menlo,monospace;font-size:11px}
.kv dd{margin:0;word-break:break-all}
.blank{color:#9ca3af;font-style:italic}
.tz{font-size:11px;color:#6b7280}
table.examples{table-layout:fixed}
table.examples td code{overflow-wrap:anywhere;font-size:11px}
@page{size:A4;margin:12mm}
@media print{
.tile{break-inside:avoid}
}
@media (max-width:700px){
.report{padding:18px}
.tiles{grid-template-columns:repeat(2,1fr)}
.tile-score{grid-row:auto;grid-column:span 2}
.meta{grid-template-columns:1fr}
}
"""
)


def render_quality_report(report: QualityReport) -> str:
    """The whole report as one self-contained HTML document (UTF-8 text)."""
    r = report
    days = sorted(r.daily, key=lambda d: d.day)
    title = f"上传数据质量反馈报告 · {r.org_name} · {r.period_from.isoformat()} 至 {r.period_to.isoformat()}"
    body = "".join(
        [
            _header(r),
            _tiles(r),
            _score_trend(r, days),
            _daily_volume(r, days),
            _categories(r),
            _rules_table(r),
            _fields_table(r),
            _examples_table(r),
            _footnote(r),
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="healthbus read_side.reports.quality_feedback">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f'<body>\n<main class="report">{body}</main>\n</body>\n</html>\n'
    )

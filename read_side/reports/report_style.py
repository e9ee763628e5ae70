"""The house style every HTML report shares: page, header, section headings, data tables, badges,
footnote and print rules (``base_css``; each report adds its own rules after these and may override
them), and the small HTML pieces built the same way everywhere: escaped text, a bilingual label, a local
time with its offset, a numbered section, an empty table row."""

from __future__ import annotations

import datetime as dt
from html import escape


def base_css(accent: str, max_width_px: int) -> str:
    """The shared rules, with the report's accent colour (header rule, kicker, section numbers)."""
    return f"""
*{{box-sizing:border-box}}
html{{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
body{{margin:0;background:#eef1f5;color:#1f2937;font:14px/1.55 "PingFang SC","Hiragino Sans GB","Microsoft YaHei",
"Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei",system-ui,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif}}
.report{{max-width:{max_width_px}px;margin:24px auto;background:#fff;padding:36px 44px 28px;border-radius:6px;
box-shadow:0 1px 3px rgba(15,23,42,.12)}}
.en{{color:#6b7280;font-weight:400}}
h1 .en,h2 .en{{font-size:.78em;margin-left:.2em}}
code{{font-family:"SFMono-Regular",Consolas,"Liberation Mono",Menlo,monospace;font-size:.9em}}
.report-header{{border-bottom:3px solid {accent};padding-bottom:14px;margin-bottom:20px}}
.kicker{{margin:0;color:{accent};font-size:12px;letter-spacing:.04em}}
h1{{margin:4px 0 10px;font-size:24px;line-height:1.3}}
.meta{{display:grid;grid-template-columns:repeat(3,auto);gap:6px 28px;margin:0;justify-content:start}}
.meta dt{{font-size:11px;color:#6b7280}}
.meta dd{{margin:0;font-weight:600}}
.block{{margin-top:26px}}
h2{{font-size:17px;margin:0 0 6px;padding-bottom:4px;border-bottom:1px solid #e5e7eb;break-after:avoid}}
h2 .num{{display:inline-block;min-width:22px;height:22px;line-height:22px;margin-right:8px;border-radius:11px;
background:{accent};color:#fff;font-size:12px;text-align:center;vertical-align:2px}}
.note{{margin:0 0 8px;font-size:12px;color:#374151}}
.note .en{{display:block}}
.chart{{display:block;width:100%;height:auto}}
table.data{{width:100%;border-collapse:collapse;font-size:12.5px}}
table.data th{{text-align:left;font-weight:600;background:#f3f4f6;border-bottom:1px solid #d1d5db;padding:6px 8px;
vertical-align:bottom;font-size:12px}}
table.data th .en{{display:block;font-size:11px;margin:0}}
table.data td{{border-bottom:1px solid #e5e7eb;padding:6px 8px;vertical-align:top}}
table.data .num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
table.data td.empty{{text-align:center;color:#6b7280;padding:14px}}
.badge{{display:inline-block;padding:1px 7px;border-radius:9px;font-size:11px;white-space:nowrap;border:1px solid}}
.footnote{{margin-top:30px;padding-top:10px;border-top:1px solid #d1d5db;font-size:12px;color:#374151;
break-inside:avoid}}
.footnote h2{{font-size:14px;border:0}}
.footnote p{{margin:4px 0}}
.footnote p.en{{color:#6b7280}}
@media print{{
body{{background:#fff;font-size:12px}}
.report{{max-width:none;margin:0;padding:0;box-shadow:none;border-radius:0}}
thead{{display:table-header-group}}
tr{{break-inside:avoid}}
}}
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def bilingual(zh: str, en: str) -> str:
    """Chinese first, English secondary (the city's staff read Chinese)."""
    return f'{esc(zh)} <span class="en">/ {esc(en)}</span>'


def local_time(moment: dt.datetime) -> str:
    """2026-11-27 19:31 (UTC+08:00): the offset written out, so a printed report is unambiguous."""
    text = moment.strftime("%Y-%m-%d %H:%M")
    offset = moment.utcoffset()
    if offset is None:
        return text
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{text} (UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d})"


def section(number: int, zh: str, en: str, body: str, note: str = "", css: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return (
        f'<section class="block {css}"><h2><span class="num">{number}</span>{bilingual(zh, en)}</h2>'
        f"{note_html}{body}</section>"
    )


def empty_row(columns: int, zh: str, en: str) -> str:
    return f'<tr><td class="empty" colspan="{columns}">{esc(zh)} <span class="en">/ {esc(en)}</span></td></tr>'

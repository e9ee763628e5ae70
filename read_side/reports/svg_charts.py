"""Small inline SVG charts for self-contained HTML reports: pure functions from data to an ``<svg>`` string.

Every chart's root is ``<svg class="chart" data-chart="<chart_id>" role="img">`` with a ``<title>`` (its
accessible name), tick labels on its axes, and one element per datum: ``class="point"`` (line chart) or
``class="bar"`` (bar charts; a stacked chart has one per day and series, zero-height ones included), each
carrying ``data-label``/``data-value`` and a hover ``<title>``. All text is escaped. No data gives an
empty-state chart with a message (``class="chart chart-empty"``) instead of an error.

No ``xmlns``: the charts are meant to be inlined in HTML, whose parser puts ``<svg>`` in the SVG namespace.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

from read_side.reports.report_style import esc as _e

Format = Callable[[float], str]

WIDTH = 720
FONT = 12
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
AXIS = "#9ca3af"
ACCENT = "#2563eb"
ALARM = "#dc2626"
ALARM_BAND = "#fdecec"
PALETTE = ("#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d")
EMPTY_MESSAGE = "暂无数据 / No data"


# --- helpers -------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """A coordinate: at most 1 decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _dom_id(chart_id: str) -> str:
    return "chart-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", chart_id).strip("-") or "x")


def text_width(text: str, size: float = FONT) -> float:
    """Rough rendered width: CJK and full-width characters 1 em, others ~0.6 em."""
    return sum(size * (1.0 if ord(ch) >= 0x2E80 else 0.6) for ch in text)


def format_number(value: float) -> str:
    """1234 → "1,234"; 12.345 → "12.35"; 0.5 → "0.5"."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _check_finite(values: Sequence[float], what: str) -> None:
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"{what}: non-finite value {v!r}")


def _nice_step(raw: float, integer: bool) -> float:
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        step = m * 10**exp
        if raw <= step * (1 + 1e-9):
            break
    return max(step, 1.0) if integer else step


def _scale(lo: float, data_hi: float, fixed_hi: float | None, integer: bool) -> tuple[float, float, list[float]]:
    """(lo, hi, ticks) for an axis starting at ``lo``: ``fixed_hi`` when given, else a round number ≥ the data."""
    if fixed_hi is not None and fixed_hi > lo:
        hi = fixed_hi
        step = _nice_step((hi - lo) / 5, integer)
    else:
        span = max(data_hi - lo, 0.0) or 1.0
        step = _nice_step(span / 5, integer)
        hi = lo + math.ceil(span / step - 1e-9) * step
    count = int(math.floor((hi - lo) / step + 1e-9))
    ticks = [round(lo + k * step, 10) for k in range(count + 1)]
    return lo, hi, ticks


def _tick_format(ticks: Sequence[float]) -> Format:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = 0 if step >= 1 or step <= 0 else min(6, -math.floor(math.log10(step) + 1e-9))
    return lambda v: f"{v:,.{decimals}f}"


def _open(chart_id: str, title: str, width: float, height: float, *, empty: bool = False, desc: str = "") -> str:
    dom = _dom_id(chart_id)
    labelled = f"{dom}-title" + (f" {dom}-desc" if desc else "")
    css_class = "chart chart-empty" if empty else "chart"
    head = (
        f'<svg class="{css_class}" data-chart="{_e(chart_id)}" role="img" aria-labelledby="{labelled}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" height="{_n(height)}" '
        f'font-size="{FONT}" fill="{INK}" style="max-width:100%;height:auto">'
        f'<title id="{dom}-title">{_e(title)}</title>'
    )
    if desc:
        head += f'<desc id="{dom}-desc">{_e(desc)}</desc>'
    return head


def _empty(chart_id: str, title: str, height: float = 160) -> str:
    return (
        _open(chart_id, title, WIDTH, height, empty=True)
        + f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="{_n(height - 1)}" rx="6" fill="#f9fafb" '
        f'stroke="{GRID}" stroke-dasharray="4 4"/>'
        f'<text class="empty-message" x="{WIDTH / 2}" y="{_n(height / 2 + 5)}" text-anchor="middle" '
        f'font-size="14" fill="{MUTED}">{_e(EMPTY_MESSAGE)}</text></svg>'
    )


def _label_every(labels: Sequence[str], band: float) -> int:
    """Show every k-th category label so that horizontal labels do not overlap."""
    widest = max((text_width(s, 11) for s in labels), default=0.0) + 6
    return max(1, math.ceil(widest / band)) if band > 0 else 1


def _y_axis(
    ticks: Sequence[float], y_of: Callable[[float], float], left: float, right: float, fmt: Format
) -> list[str]:
    out = []
    for t in ticks:
        y = y_of(t)
        out.append(f'<line class="grid" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" stroke="{GRID}"/>')
        out.append(
            f'<text class="axis-label tick" x="{_n(left - 8)}" y="{_n(y + 4)}" text-anchor="end" '
            f'font-size="11" fill="{MUTED}">{_e(fmt(t))}</text>'
        )
    return out


def _x_labels(labels: Sequence[str], x_of: Callable[[int], float], band: float, y: float) -> list[str]:
    every = _label_every(labels, band)
    out = []
    for i, label in enumerate(labels):
        if i % every:
            continue
        out.append(
            f'<text class="axis-label" x="{_n(x_of(i))}" y="{_n(y)}" text-anchor="middle" '
            f'font-size="11" fill="{MUTED}">{_e(label)}</text>'
        )
    return out


def _axis_titles(
    x_label: str | None, y_label: str | None, width: float, height: float, top: float, bottom_y: float
) -> list[str]:
    out = []
    if y_label:
        cy = (top + bottom_y) / 2
        out.append(
            f'<text class="axis-label axis-title" x="14" y="{_n(cy)}" text-anchor="middle" font-size="11" '
            f'fill="{MUTED}" transform="rotate(-90 14 {_n(cy)})">{_e(y_label)}</text>'
        )
    if x_label:
        out.append(
            f'<text class="axis-label axis-title" x="{_n(width / 2)}" y="{_n(height - 6)}" text-anchor="middle" '
            f'font-size="11" fill="{MUTED}">{_e(x_label)}</text>'
        )
    return out


# --- charts --------------------------------------------------------------------------------------------


def line_chart(
    points: list[tuple[str, float]],
    *,
    title: str,
    y_min: float = 0,
    y_max: float | None = None,
    y_format: Format | None = None,
    chart_id: str,
    markers: list[int] | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    width: float = WIDTH,
    height: float = 260,
) -> str:
    """A line over categories (e.g. days). ``markers`` are indexes of points to highlight (alarm days): a
    shaded band, a red point (``class="point marker"``) and its value. ``y_format`` formats tick and point
    values (default: plain numbers). Values outside [y_min, y_max] are drawn at the edge."""
    if not points:
        return _empty(chart_id, title)
    values = [float(v) for _, v in points]
    _check_finite(values, "line_chart")
    labels = [str(label) for label, _ in points]
    marked = {i for i in (markers or []) if 0 <= i < len(points)}

    top, right = 16.0, 16.0
    bottom = 30.0 + (18 if x_label else 0)
    left = 56.0 + (16 if y_label else 0)
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi, ticks = _scale(float(y_min), max(values), y_max, integer=False)
    tick_fmt = y_format or _tick_format(ticks)
    value_fmt = y_format or format_number
    band = plot_w / len(points)

    def x_of(i: int) -> float:
        return left + (i + 0.5) * band

    def y_of(v: float) -> float:
        v = min(max(v, lo), hi)
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    base_y = top + plot_h
    parts = [_open(chart_id, title, width, height)]
    for i in sorted(marked):
        parts.append(
            f'<rect class="marker-band" x="{_n(left + i * band)}" y="{_n(top)}" width="{_n(band)}" '
            f'height="{_n(plot_h)}" fill="{ALARM_BAND}"/>'
        )
    parts += _y_axis(ticks, y_of, left, width - right, tick_fmt)
    parts.append(
        f'<line class="axis" x1="{_n(left)}" y1="{_n(base_y)}" x2="{_n(width - right)}" '
        f'y2="{_n(base_y)}" stroke="{AXIS}"/>'
    )
    parts += _x_labels(labels, x_of, band, base_y + 18)
    parts += _axis_titles(x_label, y_label, width, height, top, base_y)

    coords = [(x_of(i), y_of(v)) for i, v in enumerate(values)]
    if len(coords) > 1:
        line = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        area = f"{_n(coords[0][0])},{_n(base_y)} {line} {_n(coords[-1][0])},{_n(base_y)}"
        parts.append(f'<polygon class="area" points="{area}" fill="{ACCENT}" fill-opacity="0.05"/>')
        parts.append(
            f'<polyline class="line" points="{line}" fill="none" stroke="{ACCENT}" stroke-width="2" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
    for i, ((x, y), label, value) in enumerate(zip(coords, labels, values)):
        shown = value_fmt(value)
        tip = f"<title>{_e(label)}: {_e(shown)}</title>"
        data = f'data-label="{_e(label)}" data-value="{_e(format_number(value))}"'
        if i in marked:
            parts.append(
                f'<circle class="point marker" {data} cx="{_n(x)}" cy="{_n(y)}" r="5" fill="{ALARM}" '
                f'stroke="#fff" stroke-width="1.5">{tip}</circle>'
            )
            label_y = y - 10 if y - 10 > top + 10 else y + 18
            parts.append(
                f'<text class="marker-label" x="{_n(x)}" y="{_n(label_y)}" text-anchor="middle" '
                f'font-size="11" font-weight="600" fill="{ALARM}">{_e(shown)}</text>'
            )
        else:
            parts.append(
                f'<circle class="point" {data} cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="#fff" '
                f'stroke="{ACCENT}" stroke-width="2">{tip}</circle>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: list[tuple[str, float]],
    *,
    title: str,
    chart_id: str,
    horizontal: bool = False,
    value_format: Format = format_number,
    colors: Sequence[str] | None = None,
    width: float = WIDTH,
) -> str:
    """One bar per (label, value), values labelled at the bar end. Horizontal bars suit long labels; the
    chart then grows with the number of bars. Negative values are drawn as zero-length bars."""
    if not bars:
        return _empty(chart_id, title)
    values = [float(v) for _, v in bars]
    _check_finite(values, "bar_chart")
    labels = [str(label) for label, _ in bars]
    integer = all(v.is_integer() for v in values)
    lo, hi, ticks = _scale(0.0, max(max(values), 0.0), None, integer)
    tick_fmt = _tick_format(ticks)
    fills = list(colors) if colors else [ACCENT]

    def fill(i: int) -> str:
        return fills[i % len(fills)]

    def tip(label: str, value: float) -> tuple[str, str]:
        return (
            f'data-label="{_e(label)}" data-value="{_e(format_number(value))}"',
            f"<title>{_e(label)}: {_e(value_format(value))}</title>",
        )

    if horizontal:
        row = 30.0
        top, bottom, right = 8.0, 26.0, 56.0
        left = min(max(text_width(s, 12) for s in labels) + 16, width * 0.4)
        height = top + row * len(bars) + bottom
        plot_w = width - left - right
        base_y = top + row * len(bars)

        def x_of(v: float) -> float:
            return left + plot_w * (min(max(v, 0.0), hi) / hi)

        parts = [_open(chart_id, title, width, height)]
        for t in ticks:
            x = x_of(t)
            parts.append(
                f'<line class="grid" x1="{_n(x)}" y1="{_n(top)}" x2="{_n(x)}" y2="{_n(base_y)}" stroke="{GRID}"/>'
            )
            parts.append(
                f'<text class="axis-label tick" x="{_n(x)}" y="{_n(base_y + 16)}" text-anchor="middle" '
                f'font-size="11" fill="{MUTED}">{_e(tick_fmt(t))}</text>'
            )
        parts.append(
            f'<line class="axis" x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" y2="{_n(base_y)}" stroke="{AXIS}"/>'
        )
        for i, (label, value) in enumerate(zip(labels, values)):
            cy = top + (i + 0.5) * row
            end = x_of(value)
            data, title_el = tip(label, value)
            parts.append(
                f'<text class="axis-label" x="{_n(left - 8)}" y="{_n(cy + 4)}" text-anchor="end" '
                f'font-size="12">{_e(label)}</text>'
            )
            parts.append(
                f'<rect class="bar" {data} x="{_n(left)}" y="{_n(cy - 9)}" width="{_n(end - left)}" '
                f'height="18" rx="2" fill="{fill(i)}">{title_el}</rect>'
            )
            parts.append(
                f'<text class="value" x="{_n(end + 6)}" y="{_n(cy + 4)}" font-size="11" '
                f'font-weight="600">{_e(value_format(value))}</text>'
            )
        parts.append("</svg>")
        return "".join(parts)

    height = 260.0
    top, right, left = 20.0, 16.0, 56.0
    band = (width - left - right) / len(bars)
    rotate = max(text_width(s, 11) for s in labels) + 6 > band
    bottom = 70.0 if rotate else 30.0
    plot_h = height - top - bottom
    base_y = top + plot_h

    def y_of(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), hi) / hi)

    parts = [_open(chart_id, title, width, height)]
    parts += _y_axis(ticks, y_of, left, width - right, tick_fmt)
    parts.append(
        f'<line class="axis" x1="{_n(left)}" y1="{_n(base_y)}" x2="{_n(width - right)}" '
        f'y2="{_n(base_y)}" stroke="{AXIS}"/>'
    )
    bar_w = min(band * 0.62, 64)
    for i, (label, value) in enumerate(zip(labels, values)):
        cx = left + (i + 0.5) * band
        y = y_of(value)
        data, title_el = tip(label, value)
        parts.append(
            f'<rect class="bar" {data} x="{_n(cx - bar_w / 2)}" y="{_n(y)}" width="{_n(bar_w)}" '
            f'height="{_n(base_y - y)}" rx="2" fill="{fill(i)}">{title_el}</rect>'
        )
        parts.append(
            f'<text class="value" x="{_n(cx)}" y="{_n(y - 5)}" text-anchor="middle" font-size="11" '
            f'font-weight="600">{_e(value_format(value))}</text>'
        )
        if rotate:
            parts.append(
                f'<text class="axis-label" x="{_n(cx)}" y="{_n(base_y + 14)}" text-anchor="end" '
                f'font-size="11" fill="{MUTED}" transform="rotate(-35 {_n(cx)} {_n(base_y + 14)})">'
                f"{_e(label)}</text>"
            )
        else:
            parts.append(
                f'<text class="axis-label" x="{_n(cx)}" y="{_n(base_y + 18)}" text-anchor="middle" '
                f'font-size="11" fill="{MUTED}">{_e(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar_chart(
    days: list[str],
    series: dict[str, list[float]],
    *,
    title: str,
    chart_id: str,
    colors: Mapping[str, str] | None = None,
    y_label: str | None = None,
    width: float = WIDTH,
    height: float = 280,
) -> str:
    """One stacked column per day: the series stack bottom-up in dict order, a legend on top and the column
    total above it. Every (day, series) pair is a ``class="bar"`` rect, zero-height ones included. Each
    series must have one value per day; negative values are drawn as zero."""
    for name, values in series.items():
        if len(values) != len(days):
            raise ValueError(f"stacked_bar_chart: series {name!r} has {len(values)} values for {len(days)} days")
        _check_finite([float(v) for v in values], "stacked_bar_chart")
    if not days or not series:
        return _empty(chart_id, title)
    names = list(series)
    fill = {name: (colors or {}).get(name) or PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    totals = [sum(max(float(series[name][d]), 0.0) for name in names) for d in range(len(days))]
    integer = all(float(v).is_integer() for values in series.values() for v in values)
    lo, hi, ticks = _scale(0.0, max(totals), None, integer)

    top, right = 40.0, 16.0
    left = 56.0 + (16 if y_label else 0)
    bottom = 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    base_y = top + plot_h
    band = plot_w / len(days)
    bar_w = min(band * 0.62, 48)

    def x_of(i: int) -> float:
        return left + (i + 0.5) * band

    def y_of(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), hi) / hi)

    parts = [_open(chart_id, title, width, height)]
    # legend
    x = left
    for name in names:
        parts.append(
            f'<rect class="legend-swatch" x="{_n(x)}" y="10" width="12" height="12" rx="2" fill="{fill[name]}"/>'
        )
        parts.append(f'<text class="legend" x="{_n(x + 18)}" y="20" font-size="12">{_e(name)}</text>')
        x += 18 + text_width(name, 12) + 22
    parts += _y_axis(ticks, y_of, left, width - right, _tick_format(ticks))
    parts.append(
        f'<line class="axis" x1="{_n(left)}" y1="{_n(base_y)}" x2="{_n(width - right)}" '
        f'y2="{_n(base_y)}" stroke="{AXIS}"/>'
    )
    parts += _x_labels(days, x_of, band, base_y + 18)
    parts += _axis_titles(None, y_label, width, height, top, base_y)
    show_totals = band >= text_width(format_number(max(totals)), 10) + 2
    for d, day in enumerate(days):
        cx = x_of(d)
        running = 0.0
        parts.append(f'<g class="stack" data-label="{_e(day)}">')
        for name in names:
            value = float(series[name][d])
            y_low, y_high = y_of(running), y_of(running + max(value, 0.0))
            running += max(value, 0.0)
            parts.append(
                f'<rect class="bar" data-series="{_e(name)}" data-label="{_e(day)}" '
                f'data-value="{_e(format_number(value))}" x="{_n(cx - bar_w / 2)}" y="{_n(y_high)}" '
                f'width="{_n(bar_w)}" height="{_n(y_low - y_high)}" fill="{fill[name]}">'
                f"<title>{_e(day)} · {_e(name)}: {_e(format_number(value))}</title></rect>"
            )
        parts.append("</g>")
        if show_totals:
            parts.append(
                f'<text class="value total" x="{_n(cx)}" y="{_n(y_of(totals[d]) - 5)}" '
                f'text-anchor="middle" font-size="10" fill="{MUTED}">{_e(format_number(totals[d]))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


ALARM_LEVELS: dict[str, tuple[str, str]] = {  # level → (dot, band) colours; red wins over yellow
    "red": (ALARM, ALARM_BAND),
    "yellow": ("#d97706", "#fef3c7"),
}
SHARE_INK = "#0f766e"


def alarm_line_chart(
    points: list[tuple[str, float]],
    *,
    title: str,
    chart_id: str,
    alarms: Mapping[int, str] | None = None,
    alarm_notes: Mapping[int, str] | None = None,
    share: Sequence[float | None] | None = None,
    share_format: Format | None = None,
    width: float = 360,
    height: float = 170,
) -> str:
    """A compact daily count curve (a small multiple) with alarm days marked by level.

    ``alarms`` maps point indexes to a level of :data:`ALARM_LEVELS` (``red`` or ``yellow``; anything else is
    drawn red): each gets a band (``class="alarm-band alarm-<level>"``) and a dot (``class="point marker
    alarm-<level>"``); ``alarm_notes`` adds text to that dot's hover title. Other days are ``class="point"``.
    ``share`` (one value or None per point) is a second, dashed line (``class="line share"``) on a right axis of
    its own, e.g. the cases' share of visits in percent; None leaves a gap. Counts start at 0."""
    if not points:
        return _empty(chart_id, title, height)
    values = [float(v) for _, v in points]
    _check_finite(values, "alarm_line_chart")
    labels = [str(label) for label, _ in points]
    levels = {i: (lv if lv in ALARM_LEVELS else "red") for i, lv in (alarms or {}).items() if 0 <= i < len(points)}
    notes = alarm_notes or {}
    if share is not None:
        if len(share) != len(points):
            raise ValueError(f"alarm_line_chart: {len(share)} share values for {len(points)} points")
        _check_finite([float(s) for s in share if s is not None], "alarm_line_chart share")

    top, bottom, left = 10.0, 24.0, 40.0
    right = 44.0 if share is not None else 12.0
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi, ticks = _scale(0.0, max(values), None, integer=all(v.is_integer() for v in values))
    band = plot_w / len(points)
    base_y = top + plot_h

    def x_of(i: int) -> float:
        return left + (i + 0.5) * band

    def y_of(v: float) -> float:
        return top + plot_h * (1 - (min(max(v, lo), hi) - lo) / (hi - lo))

    parts = [_open(chart_id, title, width, height)]
    for i in sorted(levels):
        parts.append(
            f'<rect class="alarm-band alarm-{levels[i]}" data-label="{_e(labels[i])}" data-level="{levels[i]}" '
            f'x="{_n(left + i * band)}" y="{_n(top)}" width="{_n(max(band, 1.0))}" height="{_n(plot_h)}" '
            f'fill="{ALARM_LEVELS[levels[i]][1]}"/>'
        )
    parts += _y_axis(ticks, y_of, left, width - right, _tick_format(ticks))
    parts.append(
        f'<line class="axis" x1="{_n(left)}" y1="{_n(base_y)}" x2="{_n(width - right)}" '
        f'y2="{_n(base_y)}" stroke="{AXIS}"/>'
    )
    parts += _x_labels(labels, x_of, band, base_y + 16)

    if share is not None:
        shown = [float(s) for s in share if s is not None]
        s_lo, s_hi, s_ticks = _scale(0.0, max(shown, default=0.0), None, integer=False)
        s_tick_fmt = share_format or _tick_format(s_ticks)

        def sy_of(v: float) -> float:
            return top + plot_h * (1 - (min(max(v, s_lo), s_hi) - s_lo) / (s_hi - s_lo))

        for t in (s_ticks[0], s_ticks[-1]):
            parts.append(
                f'<text class="axis-label tick share-tick" x="{_n(width - right + 6)}" '
                f'y="{_n(sy_of(t) + 4)}" font-size="10" fill="{SHARE_INK}">{_e(s_tick_fmt(t))}</text>'
            )
        run: list[str] = []
        runs: list[list[str]] = []
        for i, s in enumerate(share):
            if s is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(f"{_n(x_of(i))},{_n(sy_of(float(s)))}")
        if run:
            runs.append(run)
        for r in runs:
            if len(r) > 1:
                parts.append(
                    f'<polyline class="line share" points="{" ".join(r)}" fill="none" stroke="{SHARE_INK}" '
                    f'stroke-width="1.2" stroke-dasharray="3 2" stroke-opacity="0.8"/>'
                )

    coords = [(x_of(i), y_of(v)) for i, v in enumerate(values)]
    if len(coords) > 1:
        line = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        parts.append(
            f'<polyline class="line" points="{line}" fill="none" stroke="{ACCENT}" stroke-width="1.6" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
    radius = 2.2 if band >= 6 else 1.4
    for i, ((x, y), label, value) in enumerate(zip(coords, labels, values)):
        data = f'data-label="{_e(label)}" data-value="{_e(format_number(value))}"'
        extra = ""
        shared = share[i] if share is not None else None
        if shared is not None:
            extra = f" ({_e((share_format or format_number)(float(shared)))})"
        if i in levels:
            note = f" · {_e(notes[i])}" if notes.get(i) else ""
            parts.append(
                f'<circle class="point marker alarm-{levels[i]}" {data} data-level="{levels[i]}" cx="{_n(x)}" '
                f'cy="{_n(y)}" r="{_n(radius + 1.6)}" fill="{ALARM_LEVELS[levels[i]][0]}" stroke="#fff" '
                f'stroke-width="1"><title>{_e(label)}: {_e(format_number(value))}{extra}{note}</title></circle>'
            )
        else:
            parts.append(
                f'<circle class="point" {data} cx="{_n(x)}" cy="{_n(y)}" r="{_n(radius)}" fill="#fff" '
                f'stroke="{ACCENT}" stroke-width="1.2"><title>{_e(label)}: {_e(format_number(value))}'
                f"{extra}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)

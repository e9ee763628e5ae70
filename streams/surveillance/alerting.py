"""Early-warning alert decisions (docs/domain.md §6, issue #7): daily counts + open alerts → alert changes.

Pure: no I/O. streams/surveillance/monitor.py reads ``surveillance.daily_counts`` and the open alerts from
PostgreSQL, calls `judge_day` for each day in order, publishes the changes on ``alerts.surveillance`` and
records them (streams/surveillance/alert_store.py).

A series is syndrome × county (group ALL, id ``ILI:411502``) or syndrome × county × population group (id
``ILI:411502:child``); the detection plan (detection_plan.py) says which methods judge it. For one day each
(series, method) is judged once, with exactly the history its method needs ending on that day (a fixed
window, so a day's judgement is the same whether it is judged on time or during a catch-up), vectorised over
all series of one method and parameter set (`detect_many`). Then, with at most one open alert per series
and method:

* an alarm with nothing open → ``OPEN`` (alert id = uuid5 of series, method and the day it opened);
* an alarm with an alert open → ``UPDATED`` when the day is new to the alert (still above), its level changed
  (EWMA yellow ↔ red), or a partial-day judgement of that day became the closed-day one; otherwise nothing
  (a re-run changes nothing);
* no alarm with an alert open → ``CLOSED`` — on a closed day only;
* a **partial day** (today, judged intra-day on the count so far) may open or update an alert, since a surge
  is visible by noon, but never closes one: a partial count is naturally below a whole day's baseline.

Days before a county's first recorded visit (``data_since``, the VISITS denominator) are missing data, not
days without cases: a (series, method) whose baseline reaches before it is not judged yet, so a newly
connected county does not alarm on its first cases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundation.standards.china_time import CST
from foundation.standards.region_codes import region_name
from streams.surveillance.alert_store import StoredAlert
from streams.surveillance.case_store import ALL_GROUPS, VISITS
from streams.surveillance.detection import LEVEL_NAMES, Judgement, Method, detect_many
from streams.surveillance.detection_plan import SYNDROMES, DetectionPlan, MethodPlan
from streams.surveillance.syndromes import Syndrome

OPEN, UPDATED, CLOSED = "OPEN", "UPDATED", "CLOSED"
CASES_TOPIC = "surveillance.cases"  # without the deployment's topic prefix
CASES_TABLE = "surveillance.visit_cases"
ALERT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://healthbus.invalid/surveillance/alert")
GROUP_NAMES_ZH = {
    "child": "儿童(0-6岁)",
    "student": "学生(7-18岁)",
    "adult": "成人(19-59岁)",
    "elderly": "老年(60岁及以上)",
    "UNKNOWN": "年龄不详",
}
GROUP_NAMES_EN = {
    "child": "children 0-6",
    "student": "students 7-18",
    "adult": "adults 19-59",
    "elderly": "elderly 60+",
    "UNKNOWN": "age unknown",
}
LEVEL_ZH = {"alarm": "预警", "yellow": "黄色预警", "red": "红色预警"}
METHOD_LABEL = {Method.EARS_C1: "EARS C1", Method.EARS_C2: "EARS C2", Method.EARS_C3: "EARS C3", Method.EWMA: "EWMA"}

SeriesKey = tuple[str, str, str]  # (syndrome, county_code, population_group) as case_store.daily_counts keys them


def series_id(syndrome: str, county: str, group: str | None) -> str:
    """``syndrome:county`` for group ALL, else ``syndrome:county:group`` (the topic's message key)."""
    return f"{syndrome}:{county}" if group in (None, ALL_GROUPS) else f"{syndrome}:{county}:{group}"


def series_key(the_id: str) -> SeriesKey:
    parts = the_id.split(":")
    if len(parts) == 2:
        return parts[0], parts[1], ALL_GROUPS
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise ValueError(f"not a series id: {the_id!r}")


def alert_id(series: str, method: Method | str, opened_day: dt.date) -> str:
    """Deterministic: a re-run (or a re-publish after a crash) gives the same id, never a second alert."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{series}|{Method(method).value}|{opened_day.isoformat()}"))


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One message for alerts.surveillance and the row to record after the broker acknowledged it."""

    state: str  # OPEN | UPDATED | CLOSED (the event's state; the row's is OPEN or CLOSED)
    alert: StoredAlert  # the row after the change
    judgement: Judgement  # the judged day's figures
    day: dt.date  # the judged day
    partial_day: bool
    cases_from: dt.date  # the case list's days
    cases_to: dt.date

    @property
    def key(self) -> tuple[str, str]:
        return self.alert.series_id, self.alert.method


@dataclass(frozen=True)
class DayResult:
    day: dt.date
    partial_day: bool
    changes: list[AlertChange]
    judged: int  # (series, method) pairs judged
    alarms: int


def history_window(plan: DetectionPlan, first: dt.date, last: dt.date) -> tuple[dt.date, dt.date]:
    """The days of counts to read for judging every day from ``first`` to ``last``."""
    return first - dt.timedelta(days=plan.history_days), last


def _judge_series(
    counts: Mapping[SeriesKey, Mapping[dt.date, int]], keys: list[SeriesKey], day: dt.date, mp: MethodPlan
) -> list[Judgement]:
    """One judgement of ``day`` per series: the matrix holds exactly the method's history, so its only judged
    column is ``day``."""
    need = mp.history_days
    days = [day - dt.timedelta(days=k) for k in range(need, -1, -1)]
    matrix = np.array([[counts.get(k, {}).get(d, 0) for d in days] for k in keys], dtype=np.float64)
    result = detect_many(matrix, mp.method, mp.params)
    assert result.count.shape == (len(keys), 1), result.count.shape
    level = [LEVEL_NAMES[int(v)] for v in result.level[:, 0]]
    p_value = None if result.p_value is None else result.p_value[:, 0].tolist()
    smoothing = None if result.smoothing is None else result.smoothing[:, 0].tolist()
    return [
        Judgement(
            day,
            float(result.count[i, 0]),
            float(result.expected[i, 0]),
            float(result.sd[i, 0]),
            float(result.statistic[i, 0]),
            float(result.threshold[i, 0]),
            bool(result.alarm[i, 0]),
            level[i],
            None if p_value is None else float(p_value[i]),
            None if smoothing is None else float(smoothing[i]),
        )
        for i in range(len(keys))
    ]


def judge_day(
    counts: Mapping[SeriesKey, Mapping[dt.date, int]],
    day: dt.date,
    plan: DetectionPlan,
    open_alerts: Iterable[StoredAlert],
    partial_day: bool = False,
    data_since: Mapping[str, dt.date] | None = None,
) -> DayResult:
    """The alert changes of judging ``day`` (a closed day, or today's count so far with ``partial_day``).

    ``counts``: (syndrome, county, group) → day → cases (case_store.daily_counts with group None), covering
    at least `history_window`; missing days count 0. ``open_alerts``: the alerts open before this day.
    ``data_since``: county → its first day with visits (None: no such check)."""
    open_by = {(a.series_id, a.method): a for a in open_alerts if a.state == OPEN}
    series: set[SeriesKey] = {k for k in counts if k[0] in SYNDROMES and k[0] != VISITS and plan.judges_group(k[2])}
    series.update(series_key(a.series_id) for a in open_by.values())
    open_methods: dict[str, list[Method]] = {}
    for the_id, method in open_by:
        open_methods.setdefault(the_id, []).append(Method(method))
    tasks: dict[MethodPlan, list[SeriesKey]] = {}
    for key in sorted(series):
        planned = {mp.method: mp for mp in plan.methods_for(*key)}
        for method in open_methods.get(series_id(*key), ()):  # a method the plan dropped still judges its open
            if method not in planned:  # alert, so that it can close
                planned[method] = plan.method_plan(*key, method)
        for mp in planned.values():
            if data_since is not None:
                since = data_since.get(key[1])
                if since is None or since > day - dt.timedelta(days=mp.history_days):
                    continue
            tasks.setdefault(mp, []).append(key)
    changes: list[AlertChange] = []
    judged = alarms = 0
    for mp, keys in tasks.items():
        for key, judgement in zip(keys, _judge_series(counts, keys, day, mp)):
            judged += 1
            alarms += judgement.alarm
            the_id = series_id(*key)
            change = decide(key, mp.method, judgement, day, partial_day, open_by.get((the_id, mp.method.value)))
            if change is not None:
                changes.append(change)
    changes.sort(key=lambda c: (c.alert.series_id, c.alert.method))
    return DayResult(day, partial_day, changes, judged, alarms)


def decide(
    key: SeriesKey, method: Method, j: Judgement, day: dt.date, partial_day: bool, current: StoredAlert | None
) -> AlertChange | None:
    """The change one judgement makes to its (series, method), given the alert open there (if any)."""
    if current is not None and (
        current.last_day > day or (current.last_day == day and not current.partial_day and partial_day)
    ):
        return None  # the alert already reflects a later (or the closed) judgement of this day
    syndrome, county, group = key
    the_id = series_id(*key)
    figures: dict[str, Any] = dict(  # the alert's numbers, the same for every kind of change below
        observed=int(round(j.count)),
        expected=j.expected,
        threshold=j.threshold,
        statistic=j.statistic,
        p_value=j.p_value,
    )
    if j.alarm:
        assert j.level is not None
        if current is None:
            row = StoredAlert(
                alert_id(the_id, method, day),
                the_id,
                syndrome,
                county,
                None if group == ALL_GROUPS else group,
                method.value,
                j.level,
                OPEN,
                day,
                day,
                None,
                partial_day=partial_day,
                **figures,
            )
            return AlertChange(OPEN, row, j, day, partial_day, day, day)
        if current.last_day == day and current.level == j.level and current.partial_day == partial_day:
            return None  # the same judgement again
        row = _replace(current, level=j.level, last_day=day, partial_day=partial_day, **figures)
        return AlertChange(UPDATED, row, j, day, partial_day, current.opened_day, day)
    if current is None or partial_day:
        return None  # a partial count never closes an alert
    row = _replace(current, state=CLOSED, last_day=day, closed_day=day, partial_day=False, **figures)
    return AlertChange(
        CLOSED, row, j, day, False, current.opened_day, max(current.opened_day, day - dt.timedelta(days=1))
    )


def _replace(alert: StoredAlert, **changes: Any) -> StoredAlert:
    return dataclasses.replace(alert, **changes)


# ---------------------------------------------------------------------------------------------- the message


def case_filter(syndrome: str, county: str, group: str | None, first: dt.date, last: dt.date) -> str:
    """Where the cases are, in the columns of surveillance.visit_cases / fields of surveillance.cases
    (``syndrome`` is an element of their ``syndromes``)."""
    parts = [f"syndrome={syndrome}", f"county_code={county}"]
    if group not in (None, ALL_GROUPS):
        parts.append(f"population_group={group}")
    parts.append(
        f"day={first.isoformat()}" if first == last else f"day>={first.isoformat()} AND day<={last.isoformat()}"
    )
    return " AND ".join(parts)


def _num(value: float, digits: int = 1) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}"


def messages(change: AlertChange, at: dt.datetime | None = None) -> tuple[str, str]:
    """(zh, en) texts: county, syndrome, group, day and figures; no personal data."""
    a = change.alert
    method = Method(a.method)
    try:
        syndrome_zh = Syndrome(a.syndrome).zh  # type: ignore[call-arg]  # lookup by value; __new__ takes (code, zh)
    except ValueError:
        syndrome_zh = a.syndrome
    county_zh = f"{a.county_code} {region_name(a.county_code, change.day.year) or ''}".rstrip()
    who_zh = f" {GROUP_NAMES_ZH.get(a.population_group, a.population_group)}" if a.population_group else ""
    who_en = f" ({GROUP_NAMES_EN.get(a.population_group, a.population_group)})" if a.population_group else ""
    day = change.day.isoformat()
    if change.partial_day:
        local = at.astimezone(CST).strftime("%H:%M") if at is not None else None
        day_zh = f"{day} (当日截至 {local} 的部分计数)" if local else f"{day} (当日部分计数)"
        day_en = f"{day} (partial day, counted until {local})" if local else f"{day} (partial day)"
    else:
        day_zh, day_en = day, day
    above = change.state != CLOSED
    label = METHOD_LABEL[method]
    if method is Method.EWMA:
        rel_zh, rel_en = ("超过", "above") if above else ("低于", "below")
        p = "" if a.p_value is None else ", p<0.001" if a.p_value < 0.001 else f", p={a.p_value:.3f}"
        how_zh = f"预期 {_num(a.expected)}, {label} 统计量 {_num(a.statistic, 2)} {rel_zh}临界值 {_num(a.threshold, 2)}"
        how_en = (
            f"expected {_num(a.expected)}, {label} statistic {_num(a.statistic, 2)} {rel_en} {_num(a.threshold, 2)}"
        )
        if above:
            tag_zh, tag_en = f"({LEVEL_ZH.get(a.level, a.level)}{p})", f"({a.level}{p})"
        else:  # cleared: the level is the alert's last, not this day's
            tag_zh = tag_en = f"({p.removeprefix(', ')})"
    elif method is Method.EARS_C3:
        rel_zh, rel_en = ("超过", "above") if above else ("未超过", "not above")
        how_zh = f"{label} 统计量 {_num(a.statistic, 2)} {rel_zh}临界值 {_num(a.threshold, 2)}"
        how_en = f"{label} statistic {_num(a.statistic, 2)} {rel_en} the critical value {_num(a.threshold, 2)}"
        tag_zh, tag_en = f"({label})", f"({label})"
    else:
        rel_zh, rel_en = ("超过", "above") if above else ("未超过", "not above")
        how_zh, how_en = f"{rel_zh}阈值 {_num(a.threshold)}", f"{rel_en} the threshold {_num(a.threshold)}"
        tag_zh, tag_en = f"({label})", f"({label})"
    prefix_zh = {OPEN: "", UPDATED: "持续: ", CLOSED: "已回落: "}[change.state]
    prefix_en = {OPEN: "", UPDATED: "continuing: ", CLOSED: "cleared: "}[change.state]
    zh = f"{prefix_zh}{county_zh} {syndrome_zh}{who_zh} {day_zh} 观察 {a.observed} 例, {how_zh} {tag_zh}"
    en = f"{prefix_en}{a.county_code} {a.syndrome}{who_en} {day_en}: {a.observed} cases, {how_en} {tag_en}"
    return zh, en


def alert_value(change: AlertChange, at: dt.datetime, cases_topic: str = CASES_TOPIC) -> dict[str, Any]:
    """The ``alerts.surveillance_alert`` event (avro_schemas/alerts/surveillance_alert.avsc)."""
    a = change.alert
    zh, en = messages(change, at)
    return {
        "alert_id": a.alert_id,
        "state": change.state,
        "level": a.level,
        "series_id": a.series_id,
        "syndrome": a.syndrome,
        "county_code": a.county_code,
        "population_group": a.population_group,
        "day": change.day,
        "partial_day": change.partial_day,
        "method": a.method,
        "observed": a.observed,
        "expected": a.expected,
        "threshold": a.threshold,
        "statistic": a.statistic,
        "p_value": a.p_value,
        "opened_day": a.opened_day,
        "case_list": {
            "topic": cases_topic,
            "table": CASES_TABLE,
            "filter": case_filter(a.syndrome, a.county_code, a.population_group, change.cases_from, change.cases_to),
        },
        "changed_at": at,
        "message_zh": zh,
        "message_en": en,
    }

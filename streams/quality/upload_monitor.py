"""Daily upload monitoring (上传监测): which institution × event type feeds have gone quiet or thin.

Judged at a moment ``now`` (Asia/Shanghai) from uploads per feed per upload day:

- NO_UPLOAD: past the cutoff time, the feed has received nothing today although its median over the 28
  days before today is above zero (a feed that is usually silent can't be late);
- LOW_VOLUME: yesterday (the last complete day) the feed received less than ``min_share`` × its median
  over the 28 days before yesterday.

`judge_feeds` says which feeds fail now; `transitions` compares that with the alerts already open: a
failing feed without an open alert of that kind opens one, an open alert whose feed no longer fails closes.
Plain functions: the monitor command (read_side/quality_upload_monitor.py) reads ClickHouse and keeps the open
alerts in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from foundation.standards.china_time import CST

WINDOW_DAYS = 28
NO_UPLOAD = "NO_UPLOAD"
LOW_VOLUME = "LOW_VOLUME"


@dataclass(frozen=True, slots=True, order=True)
class FeedKey:
    org_code: str
    event_type: str


@dataclass(frozen=True, slots=True)
class FeedProblem:
    key: FeedKey
    kind: str  # NO_UPLOAD | LOW_VOLUME
    day: dt.date  # the judged upload day
    observed: int
    baseline_median: float


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: str
    key: FeedKey
    kind: str
    day: dt.date


def median_before(counts: Mapping[dt.date, int], day: dt.date, window: int = WINDOW_DAYS) -> float:
    """Median of the daily counts over the ``window`` days before ``day`` (days without uploads count 0)."""
    return float(statistics.median(counts.get(day - dt.timedelta(days=k), 0) for k in range(1, window + 1)))


def judge_feeds(
    uploads: Mapping[FeedKey, Mapping[dt.date, int]], now: dt.datetime, cutoff: dt.time, min_share: float
) -> list[FeedProblem]:
    """The feeds failing at ``now`` (aware datetime), sorted."""
    local = now.astimezone(CST)
    today, yesterday = local.date(), local.date() - dt.timedelta(days=1)
    problems: list[FeedProblem] = []
    for key in sorted(uploads):
        counts = uploads[key]
        if local.time() >= cutoff:
            usual = median_before(counts, today)
            if counts.get(today, 0) == 0 and usual > 0:
                problems.append(FeedProblem(key, NO_UPLOAD, today, 0, usual))
        usual = median_before(counts, yesterday)
        seen = counts.get(yesterday, 0)
        if usual > 0 and seen < min_share * usual:
            problems.append(FeedProblem(key, LOW_VOLUME, yesterday, seen, usual))
    return problems


def recovered(alert: OpenAlert, uploads: Mapping[FeedKey, Mapping[dt.date, int]], now: dt.datetime) -> bool:
    """A NO_UPLOAD alert clears only once the feed uploaded something on or after its day (a new day
    before the cutoff is not a recovery); a LOW_VOLUME one once it no longer fails."""
    if alert.kind != NO_UPLOAD:
        return True
    today = now.astimezone(CST).date()
    counts = uploads.get(alert.key, {})
    return any(counts.get(alert.day + dt.timedelta(days=k), 0) for k in range((today - alert.day).days + 1))


def transitions(
    open_alerts: Iterable[OpenAlert],
    problems: Iterable[FeedProblem],
    uploads: Mapping[FeedKey, Mapping[dt.date, int]],
    now: dt.datetime,
) -> tuple[list[FeedProblem], list[OpenAlert]]:
    """(problems to open an alert for, open alerts to close): one open alert per feed and kind."""
    failing = {(p.key, p.kind): p for p in problems}
    already = {(a.key, a.kind): a for a in open_alerts}
    to_open = [p for k, p in failing.items() if k not in already]
    to_close = [a for k, a in already.items() if k not in failing and recovered(a, uploads, now)]
    return to_open, to_close


def alert_id(problem: FeedProblem) -> str:
    """Deterministic: the same feed, kind and day give the same id (a re-run re-publishes, never forks)."""
    return f"{problem.key.org_code}:{problem.key.event_type}:{problem.kind}:{problem.day.isoformat()}"


def parse_cutoff(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))

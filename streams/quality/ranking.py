"""Ranking institutions by quality score (质量考核排名), city-wide and within each county.

Input: per institution × day × event type figures (ClickHouse ``quality_daily``); output: one row per
institution over the period, score = 1 − Σ failed weight / Σ applied weight (the weighted pass rate over
every rule evaluation of the period, so a hospital's busy days weigh more than its quiet ones). Ties share
a rank (1, 2, 2, 4); an institution with fewer than ``min_received`` events is listed unranked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DailyFigures:
    """One institution × day × event type (ClickHouse ``quality_daily``, sinks/clickhouse/quality_results.py)."""

    org_code: str
    org_name: str
    org_region_code: str
    day: dt.date
    event_type: str
    received: int
    accepted: int
    rejected: int
    late: int
    weight_applied: float
    weight_failed: float

    @property
    def score(self) -> float:
        return 1.0 - self.weight_failed / self.weight_applied if self.weight_applied else 1.0


@dataclass(frozen=True, slots=True)
class RankedInstitution:
    org_code: str
    org_name: str
    county_code: str
    received: int
    accepted: int
    rejected: int
    late: int
    score: float
    city_rank: int | None  # None: too few events to rank
    county_rank: int | None

    @property
    def late_share(self) -> float:
        return self.late / self.received if self.received else 0.0

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.received if self.received else 0.0


def _competition_ranks(scores: list[float]) -> list[int]:
    """Ranks of scores sorted best first; equal scores (to 6 decimals) share the better rank."""
    ranks: list[int] = []
    for i, s in enumerate(scores):
        ranks.append(ranks[-1] if i and round(s, 6) == round(scores[i - 1], 6) else i + 1)
    return ranks


def rank_institutions(figures: Iterable[DailyFigures], min_received: int = 1) -> list[RankedInstitution]:
    """City ranking, best first; ``county_rank`` places each institution within its county."""
    totals: dict[str, list] = {}
    for f in figures:
        t = totals.setdefault(f.org_code, [f.org_name, f.org_region_code, 0, 0, 0, 0, 0.0, 0.0])
        t[0] = t[0] or f.org_name
        t[2] += f.received
        t[3] += f.accepted
        t[4] += f.rejected
        t[5] += f.late
        t[6] += f.weight_applied
        t[7] += f.weight_failed
    rows = [
        (org, name, county, received, accepted, rejected, late, 1.0 - failed / applied if applied else 1.0)
        for org, (name, county, received, accepted, rejected, late, applied, failed) in totals.items()
    ]
    ranked = sorted((r for r in rows if r[3] >= min_received), key=lambda r: (-r[7], -r[3], r[0]))
    unranked = sorted((r for r in rows if r[3] < min_received), key=lambda r: r[0])
    city = dict(zip((r[0] for r in ranked), _competition_ranks([r[7] for r in ranked])))
    county: dict[str, int] = {}
    for code in {r[2] for r in ranked}:
        members = [r for r in ranked if r[2] == code]
        county.update(zip((r[0] for r in members), _competition_ranks([r[7] for r in members])))
    return [
        RankedInstitution(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], city.get(r[0]), county.get(r[0]))
        for r in ranked + unranked
    ]

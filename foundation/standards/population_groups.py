"""Age and population group (docs/domain.md §5): child 0–6, student 7–18, adult 19–59, elderly ≥ 60 years,
by completed years at the visit or diagnosis. Used by surveillance series, notifiable-disease trends and
the analytics tables alike, so a person falls in the same group everywhere."""

from __future__ import annotations

import datetime as dt
import math


def age_at(birth_date: dt.date | None, day: dt.date) -> int | None:
    """Completed years on ``day`` (a 29 February birthday falls on 1 March in common years); None without a
    birth date, or for a day before it or an age over 150 (bad data the quality rules flag)."""
    if birth_date is None or day < birth_date:
        return None
    years = day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))
    return years if years <= 150 else None


def population_group(age_years: int | float | None) -> str | None:
    """docs/domain.md §5 group by completed years at the visit: child 0–6, student 7–18, adult 19–59, elderly ≥ 60.
    A fractional age counts by its completed years (6.9 → child); None, negative or NaN → None."""
    if age_years is None:
        return None
    try:
        age = math.floor(age_years)
    except (ValueError, OverflowError, TypeError):
        return None
    if age < 0:
        return None
    return "child" if age <= 6 else "student" if age <= 18 else "adult" if age <= 59 else "elderly"

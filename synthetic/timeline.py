"""The generation window: local days in China Standard Time (UTC+8, no DST), stored as UTC instants.

Day ``d`` is the local calendar day ``start + d``. Every event lies in local [start, start+days) AND in UTC
[start, start+days): local 08:00 of the first day is 00:00 UTC, so the first day's events begin at 08:00
local (the night before 08:00 is simply not generated; clinics open at 08:00 anyway).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from foundation.standards.china_time import CST

UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class Window:
    start: dt.date
    days: int

    @property
    def start_utc(self) -> dt.datetime:
        """The earliest instant any event may have (= local 08:00 of the first day)."""
        return dt.datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_utc(self) -> dt.datetime:
        """Exclusive end in UTC; the last local day ends at 16:00 UTC, before this."""
        return self.start_utc + dt.timedelta(days=self.days)

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)

    def at(self, day: int, seconds: float) -> dt.datetime:
        """UTC instant of ``seconds`` after local midnight of day ``day`` (whole seconds, like HIS clocks)."""
        d = self.date(day)
        local = dt.datetime(d.year, d.month, d.day, tzinfo=CST) + dt.timedelta(seconds=int(seconds))
        return local.astimezone(UTC)

    def contains(self, moment: dt.datetime) -> bool:
        return self.start_utc <= moment < self.end_utc and self.local_day(moment) < self.days

    def local_day(self, moment: dt.datetime) -> int:
        return (moment.astimezone(CST).date() - self.start).days

    def earliest_second(self, day: int) -> int:
        """Seconds after local midnight before which nothing may happen on ``day``."""
        return 8 * 3600 if day == 0 else 0

    def clinic_second(self, rng: random.Random) -> int:
        """A time of an ordinary clinic visit: morning peak 08:00-12:00, afternoon 14:30-17:30."""
        if rng.random() < 0.62:
            return int(8 * 3600 + rng.triangular(0, 4 * 3600, 1.2 * 3600))
        return int(14.5 * 3600 + rng.triangular(0, 3 * 3600, 0.8 * 3600))

    def any_second(self, rng: random.Random, day: int) -> int:
        """A time of an event that happens round the clock (emergencies, births, deaths), rarer at night."""
        low = self.earliest_second(day)
        while True:
            second = rng.randrange(0, 86400)
            hour = second // 3600
            if second >= low and rng.random() < (0.45 if hour < 7 else 1.0):
                return second

"""China Standard Time (UTC+8, no daylight saving): the zone every day in healthbus is counted in.

A day of uploads, an event's year for the GB/T 2260 table, a person's age, a surveillance series' day:
all are Asia/Shanghai days, whatever the server's or the database session's zone. One definition here.
"""

from __future__ import annotations

import datetime as dt

CST = dt.timezone(dt.timedelta(hours=8), "CST")

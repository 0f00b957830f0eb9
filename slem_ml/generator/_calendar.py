"""The period's local days and the contracted hours on them.

Times are whole minutes since the period's first local midnight (``t0``, in UTC), so durations across a DST
change are true elapsed minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.generator._layout import Layout


@dataclass(frozen=True)
class Calendar:
    """Local days of the period. Times are whole minutes since the period's first local midnight (UTC)."""

    timezone: str
    first_day: int  # days since 1970-01-01 of the first local date
    days: int
    t0_minutes: int  # UTC minutes since 1970 of the first local midnight
    total_minutes: int  # true elapsed length of the period
    weekday: np.ndarray  # (D,) 0 = Monday
    holiday: np.ndarray  # (D,) bool

    @classmethod
    def build(cls, start: dt.date, days: int, site: SiteConfig) -> Calendar:
        first_day = (start - dt.date(1970, 1, 1)).days
        tz = site.site.timezone
        edges = _local_to_utc_minutes(np.array([first_day, first_day + days]) * 1440, tz)
        dates = [start + dt.timedelta(days=i) for i in range(days)]
        hols = site.site.holidays_between(dates[0], dates[-1])
        return cls(
            timezone=tz,
            first_day=first_day,
            days=days,
            t0_minutes=int(edges[0]),
            total_minutes=int(edges[1] - edges[0]),
            weekday=np.array([d.weekday() for d in dates], dtype=np.int64),
            holiday=np.array([d in hols for d in dates], dtype=bool),
        )

    def at(self, minute_of_day: int | np.ndarray) -> np.ndarray:
        """Minutes since t0 of a local wall time on every day of the period → (D,)."""
        local = (self.first_day + np.arange(self.days)) * 1440 + np.asarray(minute_of_day)
        return _local_to_utc_minutes(local, self.timezone) - self.t0_minutes


def _local_to_utc_minutes(local_minutes: np.ndarray, timezone: str) -> np.ndarray:
    """Local wall times (minutes since 1970, naive) → UTC minutes since 1970. A wall time that does not
    exist (spring forward) moves to the first one after it; a repeated one (fall back) is the first."""
    flat = np.asarray(local_minutes, dtype=np.int64).ravel()
    index = pd.DatetimeIndex((flat * 60).astype("datetime64[s]"))
    utc = index.tz_localize(timezone, ambiguous=np.ones(len(flat), dtype=bool), nonexistent="shift_forward")
    return (utc.as_unit("s").asi8 // 60).reshape(np.shape(local_minutes))


def contract_times(cal: Calendar, lay: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per client and day (K, D): contracted opening and closing [min since t0] and whether the contract
    has hours that day at all (False on closed days, holidays and for 24/7 clients)."""
    open_minute = lay.open_minute[:, cal.weekday]
    working = (open_minute >= 0) & ~(cal.holiday[None, :] & ~lay.holiday_open[:, None])
    opens = np.stack([cal.at(np.maximum(m, 0)) for m in open_minute]).reshape(working.shape)
    closes = np.stack([cal.at(np.maximum(m, 0)) for m in lay.close_minute[:, cal.weekday]])
    return opens, closes.reshape(working.shape), working

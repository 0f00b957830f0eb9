"""The periods a report covers (SPEC §10): an ISO week, a calendar month or a quarter of the site's local
calendar, parsed from ``2025-W10``, ``2025-03`` or ``2025-Q1``, with the periods it is compared with.

A period is a half-open range of local dates ``[start, end)``; :func:`period_bounds_ms` turns it into UTC
instants at the site's local midnights, as :func:`slem_ml.storage.months.month_bounds_ms` does for a month.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from slem_ml.errors import InputError
from slem_ml.io.localtime import wall_to_utc

__all__ = ["PeriodKind", "ReportPeriod", "last_complete", "parse_report_period", "period_bounds_ms"]

PeriodKind = Literal["week", "month", "quarter"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.IGNORECASE)
_QUARTER = re.compile(r"^(\d{4})-Q(\d)$", re.IGNORECASE)
_FORMS = "use 2025-03 (a month), 2025-W10 (an ISO week) or 2025-Q1 (a quarter)"
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class ReportPeriod:
    """A week, month or quarter of local dates ``[start, end)``; ``text`` is its canonical spelling."""

    text: str  # "2025-W10", "2025-03", "2025-Q1"
    kind: PeriodKind
    start: dt.date  # first local day
    end: dt.date  # the day after the last

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def label(self) -> str:
        """In words: "March 2025", "Week 10 of 2025 (3–9 March)", "Q1 2025 (January–March)"."""
        if self.kind == "month":
            return f"{_MONTH_NAMES[self.start.month - 1]} {self.start.year}"
        if self.kind == "quarter":
            first = _MONTH_NAMES[self.start.month - 1]
            last = _MONTH_NAMES[self.start.month + 1]
            return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year} ({first}–{last})"
        year, week, _ = self.start.isocalendar()
        return f"Week {week} of {year} ({_day_span(self.start, self.end - dt.timedelta(days=1))})"

    def previous(self) -> ReportPeriod:
        """The period of the same kind just before this one."""
        return _of_kind(self.kind, self.start - dt.timedelta(days=1))

    def next(self) -> ReportPeriod:
        """The period of the same kind just after this one."""
        return _of_kind(self.kind, self.end)

    def year_earlier(self) -> ReportPeriod:
        """The same period a year before: the same month or quarter, or the same ISO week number (week 53
        of a year whose year before has 52 weeks: that year's week 52)."""
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            week = min(week, _weeks_in(year - 1))
            return _week(year - 1, week)
        return _of_kind(self.kind, self.start.replace(year=self.start.year - 1))


def parse_report_period(text: str) -> ReportPeriod:
    """``2025-03`` (a month), ``2025-W10`` (an ISO week) or ``2025-Q1`` (a quarter) → :class:`ReportPeriod`.

    Raises
    ------
    InputError
        For any other text, a month outside 01–12, a week the year does not have, a quarter outside 1–4.
    """
    value = (text or "").strip()
    if match := _MONTH.match(value):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise InputError(f"period {text!r}: there is no month {month:02d}; {_FORMS}")
        return _month(year, month)
    if match := _WEEK.match(value):
        year, week = int(match[1]), int(match[2])
        if not 1 <= week <= _weeks_in(year):
            raise InputError(f"period {text!r}: {year} has ISO weeks 01 to {_weeks_in(year)}; {_FORMS}")
        return _week(year, week)
    if match := _QUARTER.match(value):
        year, quarter = int(match[1]), int(match[2])
        if not 1 <= quarter <= 4:
            raise InputError(f"period {text!r}: a quarter is Q1 to Q4; {_FORMS}")
        return _quarter(year, quarter)
    raise InputError(f"period {text!r} not understood: {_FORMS}")


def last_complete(kind: PeriodKind, today: dt.date) -> ReportPeriod:
    """The latest period of ``kind`` that is over on the local date ``today`` (it ended at or before it)."""
    if kind not in ("week", "month", "quarter"):
        raise InputError(f"period kind {kind!r}: one of week, month, quarter")
    return _of_kind(kind, today).previous()


def period_bounds_ms(period: ReportPeriod, timezone: str) -> tuple[int, int]:
    """The period's first local midnight and the one after its last day, as UTC instants [UTC ms]."""
    return dates_bounds_ms(period.start, period.end, timezone)


def dates_bounds_ms(start: dt.date, end: dt.date, timezone: str) -> tuple[int, int]:
    """Local midnights starting ``start`` and ``end`` as UTC instants [UTC ms]."""
    days = np.array([start.toordinal(), end.toordinal()], dtype=np.int64) - _EPOCH_ORDINAL
    bounds = wall_to_utc(days, np.zeros(2, dtype=np.int64), timezone).astype(np.int64)
    return int(bounds[0]), int(bounds[1])


# --- internals ----------------------------------------------------------------------------------------


def _of_kind(kind: PeriodKind, day: dt.date) -> ReportPeriod:
    """The period of ``kind`` holding the local date ``day``."""
    if kind == "month":
        return _month(day.year, day.month)
    if kind == "quarter":
        return _quarter(day.year, (day.month - 1) // 3 + 1)
    year, week, _ = day.isocalendar()
    return _week(year, week)


def _month(year: int, month: int) -> ReportPeriod:
    start = dt.date(year, month, 1)
    end = dt.date(year + month // 12, month % 12 + 1, 1)
    return ReportPeriod(f"{year:04d}-{month:02d}", "month", start, end)


def _quarter(year: int, quarter: int) -> ReportPeriod:
    start = dt.date(year, 3 * quarter - 2, 1)
    end = dt.date(year + 1, 1, 1) if quarter == 4 else dt.date(year, 3 * quarter + 1, 1)
    return ReportPeriod(f"{year:04d}-Q{quarter}", "quarter", start, end)


def _week(year: int, week: int) -> ReportPeriod:
    start = dt.date.fromisocalendar(year, week, 1)
    return ReportPeriod(f"{year:04d}-W{week:02d}", "week", start, start + dt.timedelta(days=7))


def _weeks_in(year: int) -> int:
    """52 or 53: the ISO week of 28 December is always the year's last."""
    return dt.date(year, 12, 28).isocalendar()[1]


def _day_span(first: dt.date, last: dt.date) -> str:
    """ "3–9 March", "28 April – 4 May", "30 December 2024 – 5 January 2025"."""
    if first.year != last.year:
        return (
            f"{first.day} {_MONTH_NAMES[first.month - 1]} {first.year} – "
            f"{last.day} {_MONTH_NAMES[last.month - 1]} {last.year}"
        )
    if first.month != last.month:
        return f"{first.day} {_MONTH_NAMES[first.month - 1]} – {last.day} {_MONTH_NAMES[last.month - 1]}"
    return f"{first.day}–{last.day} {_MONTH_NAMES[first.month - 1]}"

"""Coverage, contract windows and usage classes (SPEC §3.1–3.3), vectorised.

Each reading covers ``[t_i, min(t_next, t_i + max_gap))``. Coverage is cut at local midnight and at the
client's widened window edges into *pieces*; each piece is classed off / contract / cleaning / overtime.
The rules where the SPEC is open are in docs/billing-rules.md.

Windows are merged per client into sorted edge lists and looked up with one ``np.searchsorted`` over all
clients at once (each client's instants shifted into a range of its own), so the cost per reading is a
binary search over a few thousand edges, whatever the number of clients and days.

All instants are int64 milliseconds since the epoch (UTC); local dates are int64 day numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.billing.intervals import merge_intervals
from slem_ml.config.site import ClientContract, SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, wall_to_utc

__all__ = [
    "CLASS_CODES",
    "Pieces",
    "ReadingCoverage",
    "classified_readings",
    "compute_coverage",
    "contract_windows",
    "holiday_mask",
    "in_contract_at",
]

#: usage class codes in piece arrays; names in ``schema.USAGE_CLASSES`` order.
OFF, CONTRACT, OVERTIME, CLEANING = 0, 1, 2, 3
CLASS_CODES = {name: code for code, name in enumerate(S.USAGE_CLASSES)}
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Pieces:
    """Pieces of coverage in (zone, time) order; every array has one entry per piece."""

    reading: np.ndarray  # int64 row of the reading in Readings.frame
    start_ms: np.ndarray  # int64 UTC [ms]
    end_ms: np.ndarray  # int64 UTC [ms], > start_ms
    day: np.ndarray  # int64 local date of the piece (day number)
    usage: np.ndarray  # int8 class code
    power_mw: np.ndarray  # int64 power of the reading [mW]


@dataclass(frozen=True)
class ReadingCoverage:
    """Per-reading results (SPEC §7 scored_readings) and the pieces behind them."""

    covered_ms: np.ndarray  # int64 [ms]
    in_contract: np.ndarray  # bool, at the reading's timestamp
    is_on: np.ndarray  # bool
    usage: np.ndarray  # int8 class code at the reading's timestamp
    pieces: Pieces


def compute_coverage(frame: pd.DataFrame, site: SiteConfig) -> ReadingCoverage:
    """Coverage and classes of validated readings (frame sorted by zone, timestamp, line)."""
    n = len(frame)
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    zone = frame[S.ZONE_ID].cat.codes.to_numpy()
    client = _client_index(frame[S.CLIENT_ID], site)
    power_w = frame[S.POWER_W].to_numpy(dtype=float)
    power_mw = np.floor(power_w * 1000.0 + 0.5).astype(np.int64)
    cleaning = frame[S.CLEANING_STAFF].to_numpy(dtype=bool)
    is_on = power_w >= site.sampling.on_threshold_w

    # SPEC §3.1: the next row of the same zone ends the coverage; at the same instant it covers nothing.
    end = t + site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    if n > 1:
        same_zone = zone[1:] == zone[:-1]
        end[:-1] = np.where(same_zone, np.minimum(t[1:], end[:-1]), end[:-1])
    covered = end - t
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        pieces = Pieces(empty, empty, empty, empty, empty.astype(np.int8), empty)
        return ReadingCoverage(empty, empty.astype(bool), empty.astype(bool), empty.astype(np.int8), pieces)

    calendar = Calendar.build(site, int(t.min()), int(end.max()))
    key = client * S.GROUP_SPAN_MS + t
    in_contract = calendar.inside(key)
    usage = _classify(is_on, in_contract, cleaning)
    pieces = _cut(t, end, client, calendar, is_on, cleaning, power_mw)
    return ReadingCoverage(covered, in_contract, is_on, usage, pieces)


def classified_readings(frame: pd.DataFrame, coverage: ReadingCoverage) -> pd.DataFrame:
    """``frame`` plus the per-reading classes of SPEC §3.3: ``in_contract``, ``is_on``, ``usage_class``
    (categorical) and ``covered_minutes`` [min]."""
    return frame.assign(
        **{
            S.IN_CONTRACT: coverage.in_contract,
            S.IS_ON: coverage.is_on,
            S.USAGE_CLASS: pd.Categorical.from_codes(coverage.usage, categories=list(S.USAGE_CLASSES)),
            S.COVERED_MINUTES: coverage.covered_ms / S.MS_PER_MINUTE,
        }
    )


def in_contract_at(instant_ms: np.ndarray, client: pd.Series, site: SiteConfig) -> np.ndarray:
    """Whether each UTC instant [ms] lies in its client's widened contract window (SPEC §3.2).

    ``client`` is a categorical of client ids, one per instant; a client missing from the contracts is
    never inside a window.
    """
    if len(instant_ms) == 0:
        return np.zeros(0, dtype=bool)
    index = _client_index(client, site)
    calendar = Calendar.build(site, int(instant_ms.min()), int(instant_ms.max()))
    inside = calendar.inside(np.maximum(index, 0) * S.GROUP_SPAN_MS + instant_ms)
    return inside & (index >= 0)


def _client_index(column: pd.Series, site: SiteConfig) -> np.ndarray:
    order = {cid: i for i, cid in enumerate(site.clients)}
    # A category no row uses may be absent from the contracts; it is never looked up.
    lookup = np.array([order.get(c, -1) for c in column.cat.categories], dtype=np.int64)
    return lookup[column.cat.codes.to_numpy()]


def _classify(is_on: np.ndarray, in_contract: np.ndarray, cleaning: np.ndarray) -> np.ndarray:
    """SPEC §3.3: off / contract / cleaning / overtime."""
    usage = np.full(len(is_on), OVERTIME, dtype=np.int8)
    usage[cleaning] = CLEANING
    usage[in_contract] = CONTRACT
    usage[~is_on] = OFF
    return usage


@dataclass(frozen=True)
class Calendar:
    """Local midnights and every client's widened contract windows, merged, as sorted lookup keys.

    ``window_edges`` holds ``client × S.GROUP_SPAN_MS + instant`` of each merged window's start and end, in
    order, so
    a key lies inside a window exactly when an odd number of edges are ≤ it. ``cut_keys`` adds every
    local midnight to each client's edges: the instants at which a piece must end.
    """

    first_day: int  # day number of midnight[0]
    midnight: np.ndarray  # UTC ms of consecutive local midnights
    window_edges: np.ndarray
    cut_keys: np.ndarray

    @classmethod
    def build(cls, site: SiteConfig, first_ms: int, last_ms: int) -> Calendar:
        tz = site.site.timezone
        # Local dates from the day before the first instant to the day after the last: grace may
        # reach across midnight from either side.
        lo, hi = local_day_numbers(np.array([first_ms, last_ms]).view("datetime64[ms]"), tz)
        days = np.arange(lo - 1, hi + 3, dtype=np.int64)
        midnight = wall_to_utc(days, np.zeros(len(days), np.int64), tz).view(np.int64)
        days = days[:-1]
        holiday = holiday_mask(site, days)
        edges, cuts = [], []
        for index, contract in enumerate(site.clients.values()):
            if contract.always_open:
                opens, closes = merge_intervals(midnight[:-1], midnight[1:])
            else:
                opens, closes, _ = contract_windows(contract, days, holiday, tz)
            merged = np.column_stack([opens, closes]).ravel()  # [o1, c1, o2, c2, …]
            edges.append(index * S.GROUP_SPAN_MS + merged)
            cuts.append(index * S.GROUP_SPAN_MS + np.union1d(merged, midnight))
        return cls(
            first_day=int(days[0]),
            midnight=midnight,
            window_edges=np.concatenate(edges),
            cut_keys=np.concatenate(cuts),
        )

    def inside(self, key: np.ndarray) -> np.ndarray:
        """Whether each key (client × S.GROUP_SPAN_MS + instant) lies in one of its client's windows."""
        return (np.searchsorted(self.window_edges, key, side="right") & 1).astype(bool)

    def next_cut(self, key: np.ndarray) -> np.ndarray:
        """The first cut key strictly after each key (a large sentinel when there is none)."""
        index = np.searchsorted(self.cut_keys, key, side="right")
        padded = np.append(self.cut_keys, np.iinfo(np.int64).max)
        return padded[index]

    def day_of(self, instant: np.ndarray) -> np.ndarray:
        """Local date (day number) of each UTC instant [ms]."""
        return self.first_day + np.searchsorted(self.midnight, instant, side="right") - 1


def _date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(day))


def holiday_mask(site: SiteConfig, days: np.ndarray) -> np.ndarray:
    """Which of the local ``days`` (day numbers since 1970-01-01, ascending) are the site's holidays."""
    holidays = site.site.holidays_between(_date(days[0]), _date(days[-1]))
    return np.isin(days, [(d - _EPOCH).days for d in holidays])


def contract_windows(
    contract: ClientContract, days: np.ndarray, holiday: np.ndarray, timezone: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A client's contracted hours on the local ``days`` (day numbers; ``holiday`` marks the site's
    holidays among them), widened by its grace (SPEC §3.1–3.2): the opens and closes [UTC ms] of their
    union, sorted, and which of ``days`` are working days."""
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    start = np.array([w.open_minute if w else -1 for w in contract.week])[weekday]
    stop = np.array([w.close_minute if w else -1 for w in contract.week])[weekday]
    working = (start >= 0) & (contract.work_on_holidays | ~holiday)
    grace = contract.grace_minutes * S.MS_PER_MINUTE
    opens = wall_to_utc(days[working], start[working], timezone).view(np.int64) - grace
    closes = wall_to_utc(days[working], stop[working], timezone).view(np.int64) + grace
    opens, closes = merge_intervals(opens, closes)
    return opens, closes, working


def _cut(
    t: np.ndarray,
    end: np.ndarray,
    client: np.ndarray,
    calendar: Calendar,
    is_on: np.ndarray,
    cleaning: np.ndarray,
    power_mw: np.ndarray,
) -> Pieces:
    """Split coverage at midnights and window edges into pieces, kept in (reading, time) order.

    Most readings cross nothing and stay one piece; the few that do are cut one boundary at a time.
    """
    offset = client * S.GROUP_SPAN_MS
    starts, ends, owners = [], [], []
    todo = np.flatnonzero(end > t)
    begin = t[todo]
    while len(todo):
        stop = np.minimum(calendar.next_cut(offset[todo] + begin) - offset[todo], end[todo])
        starts.append(begin)
        ends.append(stop)
        owners.append(todo)
        more = stop < end[todo]
        todo, begin = todo[more], stop[more]

    # Round r gave each still-open reading its (r+1)-th piece: place it right after the r-th, no sort.
    counts = np.bincount(np.concatenate(owners), minlength=len(t)) if owners else np.zeros(len(t), int)
    base = np.cumsum(counts) - counts
    total = int(counts.sum())
    reading = np.empty(total, dtype=np.int64)
    start_ms = np.empty(total, dtype=np.int64)
    end_ms = np.empty(total, dtype=np.int64)
    for round_number, (who, a, b) in enumerate(zip(owners, starts, ends, strict=True)):
        where = base[who] + round_number
        reading[where], start_ms[where], end_ms[where] = who, a, b

    in_contract = calendar.inside(offset[reading] + start_ms)
    usage = _classify(is_on[reading], in_contract, cleaning[reading])
    day = calendar.day_of(start_ms)
    return Pieces(reading, start_ms, end_ms, day, usage, power_mw[reading])

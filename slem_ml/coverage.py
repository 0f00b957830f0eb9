"""Coverage, contract windows and usage classes (SPEC §3.1–3.3), vectorised.

Each reading covers ``[t_i, min(t_next, t_i + max_gap))``. Coverage is cut at local midnight and at the
client's widened window edges into *pieces*; each piece is classed off / contract / cleaning / overtime.
The rules where the SPEC is open are in docs/billing-rules.md.

All instants are int64 milliseconds since the epoch (UTC); local dates are int64 day numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml import schema as S
from slem_ml.contracts import SiteConfig
from slem_ml.localtime import local_day_numbers, wall_to_utc

__all__ = ["CLASS_CODES", "Pieces", "ReadingCoverage", "compute_coverage"]

#: usage class codes in piece arrays; names in ``schema.USAGE_CLASSES`` order.
OFF, CONTRACT, OVERTIME, CLEANING = 0, 1, 2, 3
CLASS_CODES = {name: code for code, name in enumerate(S.USAGE_CLASSES)}
_MS_PER_MIN = 60_000
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
    zone = frame[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)
    client = _client_index(frame[S.CLIENT_ID], site)
    power_w = frame[S.POWER_W].to_numpy(dtype=float)
    power_mw = np.floor(power_w * 1000.0 + 0.5).astype(np.int64)
    cleaning = frame[S.CLEANING_STAFF].to_numpy(dtype=bool)
    is_on = power_w >= site.sampling.on_threshold_w

    # SPEC §3.1: the next row of the same zone ends the coverage; at the same instant it covers nothing.
    gap_ms = site.sampling.max_gap_minutes * _MS_PER_MIN
    end = t + gap_ms
    if n > 1:
        same_zone = zone[1:] == zone[:-1]
        end[:-1] = np.where(same_zone, np.minimum(t[1:], end[:-1]), end[:-1])
    covered = end - t

    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        pieces = Pieces(empty, empty, empty, empty, empty.astype(np.int8), empty)
        return ReadingCoverage(empty, empty.astype(bool), empty.astype(bool), empty.astype(np.int8), pieces)

    day = local_day_numbers(t.view("datetime64[ms]"), site.site.timezone)
    table = WindowTable.build(site, int(day.min()), int(day.max()))
    k = day - table.first_day
    in_contract = table.inside(client, k, t)
    usage = _classify(is_on, in_contract, cleaning)
    pieces = _cut(t, end, k, client, table, is_on, cleaning, power_mw)
    return ReadingCoverage(covered, in_contract, is_on, usage, pieces)


def _client_index(column: pd.Series, site: SiteConfig) -> np.ndarray:
    order = {cid: i for i, cid in enumerate(site.clients)}
    categories = column.cat.categories
    lookup = np.array([order[c] for c in categories], dtype=np.int64)  # one entry per client id
    return lookup[column.cat.codes.to_numpy()]


def _classify(is_on: np.ndarray, in_contract: np.ndarray, cleaning: np.ndarray) -> np.ndarray:
    """SPEC §3.3: off / contract / cleaning / overtime."""
    usage = np.full(len(is_on), OVERTIME, dtype=np.int8)
    usage[cleaning] = CLEANING
    usage[in_contract] = CONTRACT
    usage[~is_on] = OFF
    return usage


@dataclass(frozen=True)
class WindowTable:
    """Widened contract windows per (client, local date) and local midnights, as UTC ms.

    Day index ``j`` stands for local date ``first_day + j``; the table runs from the day before the first
    reading's date to two days after the last, so a reading on day ``k`` may look at ``k-1 .. k+2``.
    """

    first_day: int
    midnight: np.ndarray  # [days + 1] UTC ms of local midnight starting each day
    open_ms: np.ndarray  # [clients, days] window start; == close_ms when closed
    close_ms: np.ndarray  # [clients, days]

    @classmethod
    def build(cls, site: SiteConfig, first_reading_day: int, last_reading_day: int) -> WindowTable:
        tz = site.site.timezone
        first = first_reading_day - 1
        days = np.arange(first, last_reading_day + 4, dtype=np.int64)  # one extra for midnights
        midnight = wall_to_utc(days, np.zeros(len(days), np.int64), tz).view(np.int64)
        days = days[:-1]
        holidays = site.site.holidays_between(_date(days[0]), _date(days[-1]))
        holiday = np.isin(days, [(d - _EPOCH).days for d in holidays])
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        clients = list(site.clients.values())
        open_ms = np.repeat(midnight[None, :-1], len(clients), axis=0)
        close_ms = open_ms.copy()
        for row, contract in enumerate(clients):
            if contract.always_open:
                close_ms[row] = midnight[1:]
                continue
            opens = np.array([w.open_minute if w else -1 for w in contract.week])[weekday]
            closes = np.array([w.close_minute if w else -1 for w in contract.week])[weekday]
            working = (opens >= 0) & (contract.work_on_holidays | ~holiday)
            if not working.any():
                continue
            grace = contract.grace_minutes * _MS_PER_MIN
            o = wall_to_utc(days[working], opens[working], tz).view(np.int64) - grace
            c = wall_to_utc(days[working], closes[working], tz).view(np.int64) + grace
            open_ms[row, working] = o
            close_ms[row, working] = c
        return cls(first, midnight, open_ms, close_ms)

    def inside(self, client: np.ndarray, k: np.ndarray, instant: np.ndarray) -> np.ndarray:
        """Whether ``instant`` lies in a widened window of days k-1..k+2 of the client."""
        out = np.zeros(len(instant), dtype=bool)
        for shift in (-1, 0, 1, 2):
            j = k + shift
            out |= (self.open_ms[client, j] <= instant) & (instant < self.close_ms[client, j])
        return out

    def cuts(self, client: np.ndarray, k: np.ndarray) -> list[np.ndarray]:
        """Every instant at which the class of a reading of day k may change."""
        out = [self.midnight[k + 1], self.midnight[k + 2]]
        for shift in (-1, 0, 1, 2):
            out.append(self.open_ms[client, k + shift])
            out.append(self.close_ms[client, k + shift])
        return out


def _date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(day))


def _cut(
    t: np.ndarray,
    end: np.ndarray,
    k: np.ndarray,
    client: np.ndarray,
    table: WindowTable,
    is_on: np.ndarray,
    cleaning: np.ndarray,
    power_mw: np.ndarray,
) -> Pieces:
    """Split coverage at midnights and window edges; only readings that straddle one are expanded."""
    cuts = table.cuts(client, k)
    straddles = np.zeros(len(t), dtype=bool)
    for c in cuts:
        straddles |= (t < c) & (c < end)
    whole = np.flatnonzero(~straddles & (end > t))
    split = np.flatnonzero(straddles)

    # Straddling readings: sort each row's cut instants (clipped into its interval) and take the gaps.
    edges = np.column_stack([t[split], end[split], *[c[split] for c in cuts]])
    edges = np.sort(np.clip(edges, t[split, None], end[split, None]), axis=1)
    starts, ends = edges[:, :-1], edges[:, 1:]
    keep = ends > starts
    split_reading = np.broadcast_to(split[:, None], starts.shape)[keep]

    reading = np.concatenate([whole, split_reading])
    start_ms = np.concatenate([t[whole], starts[keep]])
    end_ms = np.concatenate([end[whole], ends[keep]])
    order = np.lexsort((start_ms, reading))
    reading, start_ms, end_ms = reading[order], start_ms[order], end_ms[order]

    rk = k[reading]
    day = table.first_day + rk + (start_ms >= table.midnight[rk + 1])
    in_contract = table.inside(client[reading], rk, start_ms)
    usage = _classify(is_on[reading], in_contract, cleaning[reading])
    return Pieces(reading, start_ms, end_ms, day.astype(np.int64), usage, power_mw[reading])

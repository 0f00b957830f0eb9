"""Savings opportunities learnt from occupancy (SPEC §10): per zone and kind of day, a switch-off time and a
switch-on time, backtested on the report's period. Pure (pandas/NumPy, no I/O); the rule and how it is
judged are in docs/models.md, "Savings opportunities: how they are made and judged".

*Learning* (from ``history``, the stored readings of the weeks before the period): a zone is *in use* at a
reading when it is lit by light someone attends, or when someone switches it (the first lit reading of a
run, the first dark reading after one). Light of a run lit for more than 12 h in a row outside contracted
hours (SPEC §5's stuck_on) is nobody's: it does not count as use. The share of readings in use per zone and
hour of week (168 bins, a public holiday counted as a Sunday; a bin with too few readings falls back to the
same hour of the zone's weekdays or weekend days) gives, per kind of day, the night's profile from noon to
noon. The window is the longest stretch of hours whose share stays below :data:`QUIET_SHARE` (on every day of
the kind), outside the client's contracted hours (grace included): its start is the switch-off time, its
end the switch-on time.

*Backtest* (on ``period``): each night of the recommended kind the zone is switched off at the switch-off
time. Light on at that moment whose lit run lasts until the switch-on time (or longer) was left on: its
energy in the window is saved. A lit run on at the switch-off time that someone ended before the switch-on
time means a person was there: an *occupied cut*, saving nothing. Light switched on inside the window is
someone's choice and is not cut. A recommendation that would have cut an occupied zone more than once a
week is not made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import in_contract_at
from slem_ml.config.site import ClientContract, SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.models import savings_parts as parts

__all__ = ["DAY_KINDS", "MIN_HISTORY_DAYS", "QUIET_SHARE", "Savings", "savings_opportunities"]

#: A night hour is quiet when the zone is in use in fewer than this share of its readings.
QUIET_SHARE = 0.05
#: Less history than this (per zone, and over the whole frame) gives no recommendation [days].
MIN_HISTORY_DAYS = 14
#: Labels of the two kinds of day (by the evening a night starts on); index 0 = weekdays.
DAY_KINDS: tuple[str, str] = ("Mon–Fri", "Sat, Sun, holidays")
MAX_CUTS_PER_WEEK = 1.0  # more than this and a recommendation is not made
ROUND_THE_CLOCK = 0.95  # a zone lit in this share of its history's readings is stuck or 24/7 [fraction]
_MIN_BIN_READINGS = 3  # an hour-of-week bin with fewer readings falls back to its kind of day
_MIN_WINDOW_MIN = 60  # a shorter window is not worth a schedule [min]
_QUARTER = 15
_KWH_PER_W_MS = 1.0 / 3_600_000_000.0
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Savings:
    """Savings opportunities of one period.

    ``table`` has the columns of ``ReportContent.savings`` (money as ``Decimal`` in
    ``Saved money [<currency>]``), most money first; ``considered`` counts the zones looked at, ``rejected``
    those with a window that would have cut an occupied zone more than once a week; ``note`` is one sentence
    for the report. ``nights`` is the backtest night by night (``zone_id``, ``kind`` 0/1, ``off`` and ``on``
    in site time, ``outcome`` "saved" / "occupied cut" / "dark", ``saved_kwh`` [kWh]), for checks.
    """

    table: pd.DataFrame
    considered: int
    rejected: int
    note: str
    nights: pd.DataFrame = field(default_factory=pd.DataFrame)


def savings_opportunities(
    history: pd.DataFrame,
    period: pd.DataFrame,
    site: SiteConfig,
    *,
    price_per_kwh: Decimal,
    co2_kg_per_kwh: float,
) -> Savings:
    """Switch-off windows per zone and kind of day, learnt from ``history`` and backtested on ``period``.

    Both frames are stored readings (``slem_ml.storage.months.stored_readings``: ``timestamp`` UTC,
    categorical ``zone_id`` and ``client_id``, ``power_w`` [W], ``cleaning_staff``, ``building``, ``floor``),
    sorted by zone and time. ``price_per_kwh`` [currency/kWh], ``co2_kg_per_kwh`` [kg CO₂/kWh].
    """
    money = f"Saved money [{site.site.currency}]"
    period = parts.by_zone_and_time(period)
    history = parts.by_zone_and_time(history)
    zones = parts.zones_in_order(period)
    considered = len(zones)
    span_days = parts.span_days(history)
    if considered == 0 or span_days < MIN_HISTORY_DAYS:
        why = "no readings in the period" if considered == 0 else (
            f"fewer than {MIN_HISTORY_DAYS // 7} weeks of history before the period"
        )  # fmt: skip
        return Savings(parts.empty(money), considered, 0, f"No savings opportunities: {why}.")
    tz = site.site.timezone
    client = parts.zone_client(period, zones, site)
    share, enough = _in_use_profile(history, zones, site)
    off_min, on_min = _windows(share, client, site)  # (Z, 2) minutes after noon; -1 = none
    off_min[~enough] = -1
    nights = _backtest(period, zones, off_min, on_min, site)
    days = parts.period_days(period, tz)
    table, rejected = _table(
        nights, period, zones, off_min, on_min, days, money, price_per_kwh, co2_kg_per_kwh
    )
    weeks = round(span_days / 7)
    recommended = table[S.ZONE_ID].nunique()
    note = (
        f"Learnt from {weeks} weeks before the period; {recommended} of {considered} zones "
        f"{'has' if recommended == 1 else 'have'} a safe switch-off window that would have saved energy"
    )
    if rejected:
        note += (
            f"; {rejected} {'was' if rejected == 1 else 'were'} rejected: "
            f"{'it' if rejected == 1 else 'they'} would have cut an occupied zone more than once a week"
        )
    night_frame = _night_frame(nights, zones, tz)
    return Savings(table.drop(columns=S.ZONE_ID), considered, rejected, note + ".", night_frame)


# --- learning --------------------------------------------------------------------------------------


def _in_use_profile(
    history: pd.DataFrame, zones: list[str], site: SiteConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Share of readings in use per (period zone, day type 0–6, local hour) — NaN where unknown — and which
    zones have enough history and are neither lit round the clock nor never lit."""
    z = parts.zone_codes(history, zones)  # index into the period's zones, -1 for the others
    own = history[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)  # the history's own zones
    t = parts.ms(history)
    lit = history[S.POWER_W].to_numpy(dtype=float) >= site.sampling.on_threshold_w
    end = parts.coverage_end(t, own, site.sampling.max_gap_minutes)
    outside = np.zeros(len(t), dtype=bool)
    outside[lit] = ~in_contract_at(t[lit], history[S.CLIENT_ID][lit], site)
    unattended = parts.long_runs(lit & outside, own, t, end)
    starts = lit & ~parts.continues(lit, own, t, end)
    after_lit = np.zeros(len(t), dtype=bool)
    after_lit[1:] = lit[:-1] & ~lit[1:] & (own[1:] == own[:-1])
    in_use = (lit & ~unattended) | starts | after_lit
    day, minute = parts.wall(t, site.site.timezone)
    day_type = parts.day_type(day, site)
    keep = z >= 0
    n_zones = len(zones)
    index = (z * 168 + day_type * 24 + minute // 60)[keep]
    count = np.bincount(index, minlength=n_zones * 168).reshape(n_zones, 7, 24).astype(float)
    used = np.bincount(index, weights=in_use[keep], minlength=n_zones * 168).reshape(n_zones, 7, 24)
    share = np.full(count.shape, np.nan)
    np.divide(used, count, out=share, where=count >= _MIN_BIN_READINGS)
    for days in (slice(0, 5), slice(5, 7)):  # too little data: the same hour of the zone's kind of day
        pooled_n, pooled = count[:, days].sum(axis=1), used[:, days].sum(axis=1)
        fallback = np.where(pooled_n >= _MIN_BIN_READINGS, pooled / np.maximum(pooled_n, 1), np.nan)
        share[:, days] = np.where(np.isnan(share[:, days]), fallback[:, None, :], share[:, days])
    lit_n = np.bincount(z[keep], weights=lit[keep], minlength=n_zones)
    all_n = np.bincount(z[keep], minlength=n_zones)
    first = np.full(n_zones, np.iinfo(np.int64).max)
    last = np.full(n_zones, np.iinfo(np.int64).min)
    np.minimum.at(first, z[keep], day[keep])
    np.maximum.at(last, z[keep], day[keep])
    enough = (last - first + 1 >= MIN_HISTORY_DAYS) & (lit_n > 0) & (lit_n < ROUND_THE_CLOCK * all_n)
    return share, enough


def _windows(
    share: np.ndarray, client: list[ClientContract | None], site: SiteConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per zone and kind of day, the switch-off and switch-on times [min after noon of the evening's day,
    0–1440]; -1 where there is no window. Hour j of a night covers [noon + j h, noon + j + 1 h)."""
    n_zones = len(client)
    night = np.concatenate([share[:, :, 12:], np.roll(share, -1, axis=1)[:, :, :12]], axis=2)  # (Z, 7, 24)
    off = np.full((n_zones, 2), -1, dtype=np.int64)
    on = np.full((n_zones, 2), -1, dtype=np.int64)
    for kind, days in enumerate((slice(0, 5), slice(5, 7))):
        # the mean over the kind's days: one bin holds only as many nights as the history has weeks, too
        # few for a 5 % threshold; a day type used regularly (≥ 25 % of weekdays) still spoils the mean
        kind_share = np.nan_to_num(night[:, days], nan=1.0).mean(axis=1)  # (Z, 24); no data: not quiet
        quiet = kind_share < QUIET_SHARE
        floor, ceiling = _contract_limits(client, kind)
        hour_start = np.arange(24) * 60
        inside = (hour_start[None, :] + 60 > floor[:, None]) & (hour_start[None, :] < ceiling[:, None])
        start, length = _longest_run(quiet & inside)
        off[:, kind] = np.maximum(start * 60, floor)
        on[:, kind] = np.minimum((start + length) * 60, ceiling)
        none = (length == 0) | (on[:, kind] - off[:, kind] < _MIN_WINDOW_MIN) | (floor < 0)
        off[none, kind], on[none, kind] = -1, -1
    return off, on


def _contract_limits(client: list[ClientContract | None], kind: int) -> tuple[np.ndarray, np.ndarray]:
    """Per zone, the earliest switch-off and latest switch-on a night of ``kind`` allows [min after noon],
    outside the client's widened contract windows on every day the night may start or end; a floor of -1
    where no window is allowed (24/7 or unknown client)."""
    limits = {c: _limits(c, kind) for c in set(client)}
    return (
        np.array([limits[c][0] for c in client], dtype=np.int64),
        np.array([limits[c][1] for c in client], dtype=np.int64),
    )


def _limits(contract: ClientContract | None, kind: int) -> tuple[int, int]:
    if contract is None or contract.always_open:
        return -1, 0
    evenings = range(7) if kind == 1 and contract.work_on_holidays else ((0, 1, 2, 3, 4), (5, 6))[kind]
    mornings = (1, 2, 3, 4, 5) if kind == 0 else range(7)  # the day after a holiday may be any day
    grace = contract.grace_minutes
    closes = [w.close_minute + grace - parts.NOON for d in evenings if (w := contract.week[d]) is not None]
    opens = [w.open_minute - grace + parts.NOON for d in mornings if (w := contract.week[d]) is not None]
    floor = max([*closes, 0])
    ceiling = min([o for o in opens if o < 2 * parts.NOON] + [2 * parts.NOON])
    return -(-floor // _QUARTER) * _QUARTER, ceiling // _QUARTER * _QUARTER


def _longest_run(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of the longest (earliest on ties) run of True per row of a (rows, 24) mask."""
    rows = mask.shape[0]
    best_start, best_len = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
    current = np.zeros(rows, np.int64)
    for j in range(mask.shape[1]):  # 24 hours, over all zones at once
        current = np.where(mask[:, j], current + 1, 0)
        better = current > best_len
        best_len = np.where(better, current, best_len)
        best_start = np.where(better, j - current + 1, best_start)
    return best_start, best_len


# --- backtest --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Nights:
    zone: np.ndarray  # int64 index into the period's zones
    kind: np.ndarray  # int64 0 weekdays, 1 weekend or holiday
    off_ms: np.ndarray  # int64 UTC [ms]
    on_ms: np.ndarray
    saved_kwh: np.ndarray  # float [kWh]
    cut: np.ndarray  # bool: an occupied cut


def _backtest(
    period: pd.DataFrame, zones: list[str], off_min: np.ndarray, on_min: np.ndarray, site: SiteConfig
) -> _Nights:
    """Every night of the period with a window for its zone and kind, switched off and judged."""
    tz = site.site.timezone
    t = parts.ms(period)
    z = parts.zone_codes(period, zones)
    end = parts.coverage_end(t, z, site.sampling.max_gap_minutes)
    covered = end - t
    power = period[S.POWER_W].to_numpy(dtype=float)
    kwh = power * covered * _KWH_PER_W_MS  # as the app's energy views count it
    lit = power >= site.sampling.on_threshold_w
    run = np.cumsum(lit & ~parts.continues(lit, z, t, end)) - 1
    run_end = np.full(int(run.max(initial=-1)) + 2, np.iinfo(np.int64).min)  # one spare: no runs
    np.maximum.at(run_end, run[lit], end[lit])
    cum = np.cumsum(kwh)
    day_lo, _ = parts.wall(np.array([t.min()]), tz)
    day_hi, _ = parts.wall(np.array([end.max() - 1]), tz)
    days = np.arange(day_lo[0] - 1, day_hi[0] + 1)
    kind_of_day = (parts.day_type(days, site) >= 5).astype(np.int64)
    zi, di = np.nonzero(off_min[:, kind_of_day] >= 0)  # (zone, evening) pairs with a window
    kind = kind_of_day[di]
    off_ms = parts.night_instant(days[di], off_min[zi, kind], tz)
    on_ms = parts.night_instant(days[di], on_min[zi, kind], tz)
    inside = (off_ms >= t.min()) & (on_ms <= end.max())
    zi, kind, off_ms, on_ms = zi[inside], kind[inside], off_ms[inside], on_ms[inside]
    key = z * S.GROUP_SPAN_MS + t
    at_off = np.searchsorted(key, zi * S.GROUP_SPAN_MS + off_ms, side="right") - 1
    j = np.maximum(at_off, 0)
    on_at_off = (at_off >= 0) & (z[j] == zi) & lit[j] & (end[j] > off_ms)
    lasted = on_at_off & (run_end[np.maximum(run[j], 0)] >= on_ms)
    cut = on_at_off & ~lasted

    def energy_to(instant: np.ndarray) -> np.ndarray:  # the zone's energy from its first reading [kWh]
        i = np.maximum(np.searchsorted(key, zi * S.GROUP_SPAN_MS + instant, side="right") - 1, 0)
        part = power[i] * np.clip(instant - t[i], 0, covered[i]) * _KWH_PER_W_MS
        return cum[i] - kwh[i] + part

    saved = np.where(lasted, energy_to(on_ms) - energy_to(off_ms), 0.0)
    return _Nights(zi, kind, off_ms, on_ms, saved, cut)


def _table(
    nights: _Nights,
    period: pd.DataFrame,
    zones: list[str],
    off_min: np.ndarray,
    on_min: np.ndarray,
    days: int,
    money: str,
    price: Decimal,
    co2: float,
) -> tuple[pd.DataFrame, int]:
    """One row per zone and kind of day that saves and is not rejected, most money first; and the number
    of zones with a rejected window."""
    n = len(zones)
    row = nights.zone * 2 + nights.kind
    saved = np.bincount(row, weights=nights.saved_kwh, minlength=2 * n)
    cuts = np.bincount(row, weights=nights.cut, minlength=2 * n).astype(np.int64)
    per_week = cuts / (days / 7)
    has_window = (off_min >= 0).ravel()
    rejected_rows = has_window & (per_week > MAX_CUTS_PER_WEEK)
    rejected = int(rejected_rows.reshape(n, 2).any(axis=1).sum())
    keep = np.flatnonzero(has_window & ~rejected_rows & (saved > 0))
    zone, kind = keep // 2, keep % 2
    places = parts.places(period, zones)
    kwh = np.round(saved[keep], 3)
    table = pd.DataFrame(
        {
            S.ZONE_ID: np.array(zones, dtype=object)[zone],
            "Zone": np.array(zones, dtype=object)[zone],
            "Building": places[0][zone],
            "Floor": places[1][zone],
            "Switch off at": [parts.clock(m) for m in off_min[zone, kind]],
            "Switch on at": [parts.clock(m) for m in on_min[zone, kind]],
            "Days": np.array(DAY_KINDS, dtype=object)[kind],
            "Saved energy [kWh]": kwh,
            money: [(Decimal(repr(float(k))) * price).quantize(_CENT, ROUND_HALF_UP) for k in kwh],
            "Saved CO₂ [kg]": np.round(saved[keep] * co2, 3),
            "Occupied cuts": cuts[keep],
            "Occupied cuts per week": np.round(per_week[keep], 2),
        }
    )
    table = table.sort_values(["Saved energy [kWh]", "Zone"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True), rejected


def _night_frame(nights: _Nights, zones: list[str], tz: str) -> pd.DataFrame:
    outcome = np.where(nights.cut, "occupied cut", np.where(nights.saved_kwh > 0, "saved", "dark"))
    return pd.DataFrame(
        {
            S.ZONE_ID: np.array(zones, dtype=object)[nights.zone],
            "kind": nights.kind,
            "off": ms_to_local(nights.off_ms, tz),
            "on": ms_to_local(nights.on_ms, tz),
            "outcome": outcome,
            "saved_kwh": nights.saved_kwh,
        }
    )

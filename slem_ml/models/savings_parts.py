"""The savings rule's small parts (:mod:`slem_ml.models.savings`): zones coded in order, wall time and kinds
of day in the site's timezone, what each reading covers, lit runs that continue or last too long, and the
table's text. Pure NumPy/pandas. Instants in UTC ms, wall minutes after local midnight or noon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import holiday_mask
from slem_ml.config.site import ClientContract, SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local, wall_to_utc

__all__ = [
    "DAY_MS",
    "NOON",
    "UNATTENDED_MS",
    "by_zone_and_time",
    "clock",
    "continues",
    "coverage_end",
    "day_type",
    "empty",
    "long_runs",
    "ms",
    "night_instant",
    "period_days",
    "places",
    "span_days",
    "wall",
    "zone_client",
    "zone_codes",
    "zones_in_order",
]

DAY_MS = 86_400_000
NOON = 720  # [min after local midnight]
UNATTENDED_MS = 12 * 3_600_000  # SPEC §5: lit over 12 h in a row outside contracted hours is stuck on


def ms(frame: pd.DataFrame) -> np.ndarray:
    return frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)


def by_zone_and_time(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with categorical zone and client ids, sorted by zone and time (as the store gives it)."""
    text = [c for c in (S.ZONE_ID, S.CLIENT_ID) if not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if text:
        frame = frame.astype(dict.fromkeys(text, "category"))
    z = frame[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)
    key = z * S.GROUP_SPAN_MS + ms(frame)
    if len(key) > 1 and (np.diff(key) < 0).any():
        frame = frame.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
    return frame


def zones_in_order(frame: pd.DataFrame) -> list[str]:
    """The zones of a frame sorted by zone, in the order they appear."""
    column = frame[S.ZONE_ID]
    present = pd.unique(column.cat.codes.to_numpy())
    return [str(column.cat.categories[c]) for c in present]


def zone_codes(frame: pd.DataFrame, zones: list[str]) -> np.ndarray:
    """Each row's index in ``zones`` (-1 for a zone not there), worked out per category, not per row."""
    column = frame[S.ZONE_ID]
    lookup = pd.Index(zones).get_indexer(column.cat.categories.astype(str))
    return np.append(lookup, -1)[column.cat.codes.to_numpy()].astype(np.int64)


def wall(t: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Local day number and minute of day of UTC instants [ms].

    UTC offsets change only on quarter hours, so the offset is looked up once per quarter hour of the
    span (a few thousand) rather than per reading."""
    if len(t) == 0:
        return t.copy(), t.copy()
    step = 15 * S.MS_PER_MINUTE
    first = int(t.min()) // step
    quarters = np.arange(first, int(t.max()) // step + 1, dtype=np.int64) * step
    offset = ms_to_local(quarters, tz).tz_localize(None).as_unit("ms").asi8 - quarters
    wall = t + offset[t // step - first]
    return wall // DAY_MS, (wall % DAY_MS) // 60_000


def day_type(day: np.ndarray, site: SiteConfig) -> np.ndarray:
    """Monday 0 … Sunday 6 of local day numbers; a public holiday counts as a Sunday."""
    if len(day) == 0:
        return day.copy()
    lo, hi = int(day.min()), int(day.max())
    days = np.arange(lo, hi + 1, dtype=np.int64)
    per_day = np.where(holiday_mask(site, days), 6, (days + 3) % 7)  # 1970-01-01 was a Thursday
    return per_day[day - lo]


def night_instant(day: np.ndarray, minutes_after_noon: np.ndarray, tz: str) -> np.ndarray:
    wall = NOON + minutes_after_noon
    return wall_to_utc(day + wall // 1440, wall % 1440, tz).view(np.int64)


def coverage_end(t: np.ndarray, z: np.ndarray, max_gap_minutes: int) -> np.ndarray:
    """SPEC §3.1: a reading covers until the zone's next reading, at most ``max_gap`` [UTC ms] — the
    coverage of ``slem_ml.billing.coverage.compute_coverage`` (a test holds them equal) without its pieces
    cut at midnights and contract edges, which savings do not need and which cost most of its time."""
    end = t + max_gap_minutes * S.MS_PER_MINUTE
    if len(t) > 1:
        same = z[1:] == z[:-1]
        end[:-1] = np.where(same, np.minimum(t[1:], end[:-1]), end[:-1])
    return end


def continues(flag: np.ndarray, z: np.ndarray, t: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whether each reading carries on the flagged run of the reading before it (same zone, no gap)."""
    out = np.zeros(len(flag), dtype=bool)
    out[1:] = flag[:-1] & flag[1:] & (z[1:] == z[:-1]) & (end[:-1] >= t[1:])
    return out


def long_runs(flag: np.ndarray, z: np.ndarray, t: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Readings of flagged runs lasting more than 12 h."""
    if not flag.any():
        return flag
    run = np.cumsum(flag & ~continues(flag, z, t, end)) - 1
    first = np.full(int(run[flag].max()) + 1, np.iinfo(np.int64).max)
    last = np.zeros(len(first), dtype=np.int64)
    np.minimum.at(first, run[flag], t[flag])
    np.maximum.at(last, run[flag], end[flag])
    return flag & (last - first > UNATTENDED_MS)[np.maximum(run, 0)]


def span_days(history: pd.DataFrame) -> float:
    if history.empty:
        return 0.0
    t = ms(history)
    return float(t.max() - t.min()) / DAY_MS


def period_days(period: pd.DataFrame, tz: str) -> int:
    day, _ = wall(np.array([ms(period).min(), ms(period).max()]), tz)
    return int(day[1] - day[0] + 1)


def zone_client(period: pd.DataFrame, zones: list[str], site: SiteConfig) -> list[ClientContract | None]:
    """Each zone's contract, by the client of its first reading in the period (None: unknown client)."""
    firsts = np.unique(zone_codes(period, zones), return_index=True)[1]
    return [site.clients.get(str(c)) for c in period[S.CLIENT_ID].iloc[firsts]]


def places(period: pd.DataFrame, zones: list[str]) -> tuple[np.ndarray, np.ndarray]:
    firsts = np.unique(zone_codes(period, zones), return_index=True)[1]
    blank = np.full(len(zones), "", dtype=object)
    building, floor = (
        period[c].iloc[firsts].astype(str).to_numpy(dtype=object) if c in period else blank
        for c in (S.BUILDING, S.FLOOR)
    )
    return building, floor


def clock(minutes_after_noon: int) -> str:
    minute = (NOON + int(minutes_after_noon)) % 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def empty(money: str) -> pd.DataFrame:
    columns = ["Zone", "Building", "Floor", "Switch off at", "Switch on at", "Days", "Saved energy [kWh]",
               money, "Saved CO₂ [kg]", "Occupied cuts", "Occupied cuts per week"]  # fmt: skip
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})

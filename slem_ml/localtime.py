"""Site wall time ↔ UTC instants, vectorised, with the DST rules of docs/billing-rules.md.

All instants here are ``datetime64[ms]`` holding UTC (naive NumPy values; the tz lives in the name).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["local_day_numbers", "localize_naive", "wall_to_utc"]

_MS_PER_DAY = 86_400_000


def localize_naive(naive: np.ndarray, zones: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Naive site wall times → UTC instants, and a mask of those that do not exist.

    A wall time in the spring gap does not exist: NaT, and True in the mask. A wall time in the repeated
    autumn hour is summer time until the zone's clock goes backwards inside that hour (rows in input
    order), and standard time from then on.

    Parameters
    ----------
    naive : datetime64[ms] array of wall times, in input order (NaT allowed).
    zones : zone ids, same length; the repeated-hour rule is applied per zone and local date.
    timezone : IANA name of the site.
    """
    index = pd.DatetimeIndex(naive)
    if timezone == "UTC":
        return naive.astype("datetime64[ms]"), np.zeros(len(naive), dtype=bool)
    summer = np.ones(len(naive), dtype=bool)
    first = _utc(index.tz_localize(timezone, ambiguous=summer, nonexistent="NaT"))
    second = _utc(index.tz_localize(timezone, ambiguous=~summer, nonexistent="NaT"))
    present = ~np.isnat(naive)
    gap = present & np.isnat(first)
    repeated = present & ~gap & (first != second)
    out = first
    if repeated.any():
        rows = np.flatnonzero(repeated)
        frame = pd.DataFrame(
            {
                "zone": zones[rows],
                "day": naive[rows].astype("datetime64[D]"),
                "wall": naive[rows].view(np.int64),
            }
        )
        went_back = frame.groupby(["zone", "day"], sort=False)["wall"].diff().lt(0)
        standard = went_back.groupby([frame["zone"], frame["day"]], sort=False).cummax().to_numpy()
        out = first.copy()
        out[rows[standard]] = second[rows[standard]]
    return out, gap


def _utc(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ms]")


def wall_to_utc(days: np.ndarray, minutes: np.ndarray, timezone: str) -> np.ndarray:
    """The instant [UTC ms] of wall time ``minutes`` after midnight on local date ``days``.

    ``days`` are day numbers since 1970-01-01 (int64), ``minutes`` may be 0..1440 (1440 = next midnight).
    A wall time that does not exist (spring gap) is moved forward by the gap, as a clock would be: it is
    read with the offset in force just before the gap. A wall time that exists twice is taken at its first
    occurrence (summer time).
    """
    wall = (days.astype(np.int64) * _MS_PER_DAY + minutes.astype(np.int64) * 60_000).astype("datetime64[ms]")
    if timezone == "UTC":
        return wall
    index = pd.DatetimeIndex(wall)
    utc = _utc(index.tz_localize(timezone, ambiguous=np.ones(len(wall), bool), nonexistent="NaT")).copy()
    gap = np.isnat(utc) & ~np.isnat(wall)
    if gap.any():
        gap_end = _utc(index[gap].tz_localize(timezone, nonexistent="shift_forward"))
        before = gap_end - np.timedelta64(1, "ms")
        utc[gap] = wall[gap] - (_wall(before, timezone) - before)  # wall minus the earlier offset
    return utc


def _wall(utc: np.ndarray, timezone: str) -> np.ndarray:
    """Site wall time [naive datetime64[ms]] of UTC instants."""
    index = pd.DatetimeIndex(utc.astype("datetime64[ms]")).tz_localize("UTC")
    return index.tz_convert(timezone).tz_localize(None).to_numpy(dtype="datetime64[ms]")


def local_day_numbers(utc: np.ndarray, timezone: str) -> np.ndarray:
    """Local date of each UTC instant, as int64 day numbers since 1970-01-01."""
    return _wall(utc, timezone).astype("datetime64[D]").view(np.int64)

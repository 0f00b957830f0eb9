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
    A wall time that does not exist (spring gap) is moved forward by the gap, as a clock would be; a wall
    time that exists twice is taken at its first occurrence (summer time).
    """
    wall = days.astype(np.int64) * _MS_PER_DAY + minutes.astype(np.int64) * 60_000
    index = pd.DatetimeIndex(wall.astype("datetime64[ms]"))
    if timezone == "UTC":
        return wall.astype("datetime64[ms]")
    summer = np.ones(len(wall), dtype=bool)
    return _utc(index.tz_localize(timezone, ambiguous=summer, nonexistent="shift_forward")) + (
        _gap_shift(index, timezone)
    )


def _gap_shift(index: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """Extra shift so that a nonexistent wall time moves forward by the *gap*, not to the gap's end.

    pandas' ``shift_forward`` maps every wall time inside the gap to the first instant after it; the rule
    is "as the clock does": 02:30 on a 02:00→03:00 day is 03:30 summer time, i.e. 30 minutes after the change.
    """
    plain = index.tz_localize(timezone, ambiguous=np.ones(len(index), bool), nonexistent="NaT")
    missing = np.asarray(plain.isna()) & ~np.asarray(index.isna())
    shift = np.zeros(len(index), dtype="timedelta64[ms]")
    if missing.any():
        wall = index[missing]
        gap_end = wall.tz_localize(timezone, nonexistent="shift_forward")
        # Minutes into the gap: wall time minus the wall time at which the gap started.
        gap_start_wall = gap_end.tz_localize(None) - _gap_length(gap_end, timezone)
        shift[missing] = (wall - gap_start_wall).to_numpy(dtype="timedelta64[ms]")
    return shift


def _gap_length(gap_end: pd.DatetimeIndex, timezone: str) -> pd.TimedeltaIndex:
    after = gap_end.tz_convert(timezone)
    before = (gap_end - pd.Timedelta(milliseconds=1)).tz_convert(timezone)
    return pd.TimedeltaIndex([a.utcoffset() - b.utcoffset() for a, b in zip(after, before, strict=True)])


def local_day_numbers(utc: np.ndarray, timezone: str) -> np.ndarray:
    """Local date of each UTC instant, as int64 day numbers since 1970-01-01."""
    index = pd.DatetimeIndex(utc.astype("datetime64[ms]")).tz_localize("UTC")
    local = index.tz_convert(timezone).tz_localize(None)
    return local.to_numpy(dtype="datetime64[ms]").astype("datetime64[D]").view(np.int64)

"""Site wall time ↔ UTC instants, vectorised, with the DST rules of docs/billing-rules.md, and slem's
integer time (UTC ms, local day numbers) as people read it.

All instants here are ``datetime64[ms]`` holding UTC (naive NumPy values; the tz lives in the name), or
int64 milliseconds since the epoch; :func:`ms_to_local` is the one way to turn them into site time.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = [
    "day_to_date",
    "iso_local",
    "local_day_numbers",
    "localize_naive",
    "ms_to_local",
    "ms_to_utc",
    "utc_ms",
    "wall_to_utc",
]

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
    return ms_to_local(utc, timezone).tz_localize(None).to_numpy(dtype="datetime64[ms]")


def local_day_numbers(utc: np.ndarray, timezone: str) -> np.ndarray:
    """Local date of each UTC instant, as int64 day numbers since 1970-01-01."""
    return _wall(utc, timezone).astype("datetime64[D]").view(np.int64)


def day_to_date(days: np.ndarray) -> list[dt.date]:
    """Local day numbers (days since 1970-01-01) as ``datetime.date`` objects."""
    return days.astype("datetime64[D]").astype(object).tolist()


def ms_to_utc(ms: np.ndarray) -> pd.DatetimeIndex:
    """UTC instants (int64 [ms] or ``datetime64``) as tz-aware UTC timestamps [ms resolution]."""
    return pd.DatetimeIndex(np.asarray(ms).astype("datetime64[ms]", copy=False)).tz_localize("UTC")


def ms_to_local(ms: np.ndarray, timezone: str) -> pd.DatetimeIndex:
    """UTC instants (int64 [ms] or ``datetime64``) as tz-aware timestamps in ``timezone``."""
    return ms_to_utc(ms).tz_convert(timezone)


def utc_ms(values: pd.Series | pd.Index) -> np.ndarray:
    """tz-aware instants (or ISO 8601 text with offsets) as UTC instants [int64 ms]."""
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return np.asarray(index.as_unit("ms").asi8, dtype=np.int64)


def iso_local(index: pd.DatetimeIndex) -> np.ndarray:
    """tz-aware instants as ISO 8601 with the UTC offset (``2025-02-10T18:00:00+01:00``), vectorised.

    Milliseconds appear only where they are not zero (``…T18:00:00.250+01:00``).
    """
    wall = index.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    utc = index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ms]")
    offset_min = (wall - utc).astype("timedelta64[m]").astype(np.int64)
    whole = wall.astype("datetime64[s]")
    text = np.where(
        whole == wall,
        np.datetime_as_string(whole, unit="s"),
        np.datetime_as_string(wall, unit="ms"),
    ).astype(object)
    distinct, inverse = np.unique(offset_min, return_inverse=True)
    suffix = np.array([_offset_text(int(m)) for m in distinct], dtype=object)
    return text + suffix[inverse]


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"

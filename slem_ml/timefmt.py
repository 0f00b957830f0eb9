"""Conversions from the engine's integer time (UTC ms, local day numbers) to what people read."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["day_to_date", "iso_local", "ms_to_local"]


def day_to_date(days: np.ndarray) -> list[dt.date]:
    """Local day numbers (days since 1970-01-01) as ``datetime.date`` objects."""
    return days.astype("datetime64[D]").astype(object).tolist()


def ms_to_local(ms: np.ndarray, timezone: str) -> pd.DatetimeIndex:
    """UTC milliseconds as tz-aware timestamps in the site timezone."""
    return pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC").tz_convert(timezone)


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

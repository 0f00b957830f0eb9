"""Conversions from the engine's integer time (UTC ms, local day numbers) to what people read."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["day_to_date", "ms_to_local"]


def day_to_date(days: np.ndarray) -> list[dt.date]:
    """Local day numbers (days since 1970-01-01) as ``datetime.date`` objects."""
    return days.astype("datetime64[D]").astype(object).tolist()


def ms_to_local(ms: np.ndarray, timezone: str) -> pd.DatetimeIndex:
    """UTC milliseconds as tz-aware timestamps in the site timezone."""
    return pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC").tz_convert(timezone)

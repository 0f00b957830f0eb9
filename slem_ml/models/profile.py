"""The level-scaled hour-of-week profile of a zone (issue 16): a strong baseline, a feature and a fallback.

For a zone-hour at local day ``d`` and local hour ``h``:

* ``how_median_12w_w`` — the median of the zone's mean power at local hour ``h`` on days ``d − 7``,
  ``d − 14``, …, ``d − 84`` (the same hour of the week over the last 12 weeks, in local time so a DST change
  does not shift it; a week without readings at that hour is skipped, and a week less than 168 h before the
  row is never used). Public holidays are off days: a holiday is forecast from the Sundays before it, and a
  working day never from a holiday;
* ``level_ratio`` — the zone's recent level against that profile: over the 28 local days ending 8 days
  before ``d``, what the zone drew divided by what the profile said for those same hours (1 where there is
  nothing to compare; clipped to [1/4, 4]). A zone whose lights drift, or whose tenant came back from
  holidays, moves the ratio; a zone like its last 12 weeks keeps it near 1;
* ``profile_w`` — their product [W]: the level-scaled 12-week hour-of-week median.

Everything looks back at least a week, like the forecaster's other features, so a forecast up to seven days
ahead uses only what was known at its origin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slem_ml.io import schema as S

__all__ = ["LEVEL_DAYS", "PROFILE_WEEKS", "hour_of_week_profile", "nanmedian_rows"]

PROFILE_WEEKS = 12  # weeks of the same hour the median is taken over
LEVEL_DAYS = 28  # [days] the level ratio is measured over
_LOOKBACK_DAYS = 8  # the level window ends this many days before the row's day (see features._LOOKBACK_DAYS)
_RATIO_CLIP = 4.0
_WEEK_MS = 168 * 3_600_000
_SPAN = np.int64(1 << 32)  # key = zone code × _SPAN + local day × 24 + local hour


def hour_of_week_profile(rows: pd.DataFrame, daily: pd.DataFrame, holiday_days: np.ndarray) -> pd.DataFrame:
    """``how_median_12w_w`` [W], ``level_ratio`` and ``profile_w`` [W] per row of ``rows``, in its order.

    ``rows`` has ``zone_id``, ``local_day``, ``local_hour`` and ``hour_ms`` (UTC hour start [ms]); ``daily``
    one row per zone, local day and local hour of the history: ``zone_id``, ``local_day``, ``local_hour``,
    ``power_w`` (mean [W]) and ``hour_ms`` (the first UTC hour of that local hour: the autumn's repeated
    hour is one cell); ``holiday_days`` the local day numbers of the site's public holidays.
    """
    zones = pd.concat([rows[S.ZONE_ID].astype(str), daily[S.ZONE_ID].astype(str)], ignore_index=True)
    codes = pd.factorize(zones)[0].astype(np.int64)
    row_zone, cell_zone = codes[: len(rows)], codes[len(rows) :]
    row_day = rows["local_day"].to_numpy(dtype=np.int64)
    cell_day = daily["local_day"].to_numpy(dtype=np.int64)
    row_key = row_zone * _SPAN + row_day * 24 + rows["local_hour"].to_numpy(dtype=np.int64)
    cell_key = cell_zone * _SPAN + cell_day * 24 + daily["local_hour"].to_numpy(dtype=np.int64)
    power = daily[S.POWER_W].to_numpy(dtype=float)
    cell_ms = daily["hour_ms"].to_numpy(dtype=np.int64)
    index = pd.Index(cell_key)

    cell_holiday = np.isin(cell_day, holiday_days)

    def median_of(keys: np.ndarray, day: np.ndarray, hour_ms: np.ndarray) -> np.ndarray:
        holiday = np.isin(day, holiday_days)
        back = np.where(holiday, (day + 3 - 6) % 7, 0) * 24  # a holiday looks back to Sundays [hours]
        weeks = np.full((len(keys), PROFILE_WEEKS), np.nan)
        for k in range(1, PROFILE_WEEKS + 1):
            at = index.get_indexer(keys - back - k * 7 * 24)
            found = at >= 0
            found[found] = (cell_ms[at[found]] <= hour_ms[found] - _WEEK_MS) & (  # never the last 168 h
                holiday[found] | ~cell_holiday[at[found]]  # a working day never from a holiday
            )
            weeks[found, k - 1] = power[at[found]]
        return nanmedian_rows(weeks)

    # the profile of every history cell (the level ratio needs them); a row that is a history cell takes
    # its cell's (by the cell's first UTC hour: the stricter of the autumn's two), the others are computed
    said = median_of(cell_key, cell_day, cell_ms)
    at = index.get_indexer(row_key)
    median = np.where(at >= 0, said[np.maximum(at, 0)], np.nan)
    new = at < 0
    if new.any():
        median[new] = median_of(row_key[new], row_day[new], rows["hour_ms"].to_numpy(dtype=np.int64)[new])
    # the ratio's sums: per zone and local day, the power drawn and the profile's, over hours that have both
    both = ~np.isnan(said) & ~np.isnan(power)
    per_day = (
        pd.DataFrame(
            {
                "key": cell_zone * _SPAN + cell_day,
                "drawn": np.where(both, power, 0.0),
                "said": np.where(both, said, 0.0),
            }
        )
        .groupby("key", sort=True)[["drawn", "said"]]
        .sum()
    )
    day_key = per_day.index.to_numpy(dtype=np.int64)
    drawn = np.concatenate([[0.0], np.cumsum(per_day["drawn"].to_numpy())])
    profile_said = np.concatenate([[0.0], np.cumsum(per_day["said"].to_numpy())])
    last = row_zone * _SPAN + row_day - _LOOKBACK_DAYS  # days last − LEVEL_DAYS + 1 … last, same zone
    hi = np.searchsorted(day_key, last, side="right")
    lo = np.searchsorted(day_key, last - LEVEL_DAYS, side="right")
    drawn_w, said_w = drawn[hi] - drawn[lo], profile_said[hi] - profile_said[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(said_w > 0, drawn_w / said_w, np.nan)
    ratio = np.where(np.isnan(ratio), 1.0, np.clip(ratio, 1 / _RATIO_CLIP, _RATIO_CLIP))
    return pd.DataFrame(
        {"how_median_12w_w": median, "level_ratio": ratio, "profile_w": median * ratio}, index=rows.index
    )


def nanmedian_rows(values: np.ndarray) -> np.ndarray:
    """The median of each row ignoring NaN (NaN for a row of NaN only); ``np.nanmedian(axis=1)`` without its
    Python-level work per row."""
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = np.sum(~np.isnan(values), axis=1)
    last = max(values.shape[1] - 1, 0)
    low = np.take_along_axis(ordered, np.clip((count - 1) // 2, 0, last)[:, None], axis=1)[:, 0]
    high = np.take_along_axis(ordered, np.clip(count // 2, 0, last)[:, None], axis=1)[:, 0]
    return np.where(count > 0, (low + high) / 2, np.nan)

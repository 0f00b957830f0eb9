"""Hourly zone features shared by training, forecasting and scoring (SPEC §5), vectorised.

Readings are aggregated to one row per zone and **UTC hour** (``hour_start``), so a 23- or 25-hour local day
simply has 23 or 25 rows; calendar features are then read in the site timezone (``local_hour`` repeats in
the autumn, skips in the spring). Targets:

* ``power_w`` — mean power of the zone's readings in the hour [W];
* ``lit`` — the lights were on for at least half of the hour's readings (the on-probability's label).

Features (:data:`FEATURES`): zone, floor and building (categorical); local hour, weekday, public holiday,
off-day (weekend or holiday), off-day a week earlier, inside the client's contracted window; lags of the
target one day and one week back; the median of the same hour on the last four days of the same day type
(working or off) as of eight days earlier; the median of the same hour of the week over the last four weeks;
the zone's mean power over the week that ended eight days earlier; the level-scaled 12-week hour-of-week
profile (:data:`PROFILE_COLUMNS`, :mod:`slem_ml.models.profile`).

Every lag and rolling statistic used by the forecaster (:data:`FORECAST_FEATURES`) looks back at least a
week (168 h), so a forecast up to a week ahead only uses what was known at its origin. ``lag_24h_w`` is
computed for scoring-time use but kept out of the forecaster: fed with true values it leaks inside the
horizon, and fed recursively it was worse (docs/models-research.md).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import in_contract_at
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, ms_to_local
from slem_ml.models.profile import hour_of_week_profile

__all__ = [
    "CATEGORICAL",
    "FEATURES",
    "FORECAST_FEATURES",
    "HOUR_MS",
    "PROFILE_COLUMNS",
    "add_features",
    "future_hours",
    "lagged",
    "seasonal_baselines",
    "zone_hours",
]

HOUR_MS = 3_600_000
_DAY_MS = 24 * HOUR_MS
_EPOCH = np.datetime64("1970-01-01", "D")
#: Daily statistics are taken from local days ending at least this many days before the row's day: 8, not
#: 7, because a whole local day 7 days back reaches into the last 168 h (and a spring DST change shortens
#: "the same hour a week ago" to 167 h).
_LOOKBACK_DAYS = 8

HOUR_START = "hour_start"  # UTC hour, tz-aware
#: The level-scaled 12-week hour-of-week profile (:mod:`slem_ml.models.profile`): median, ratio, product.
PROFILE_COLUMNS: tuple[str, ...] = ("how_median_12w_w", "level_ratio", "profile_w")
LIT = "lit"
CATEGORICAL: tuple[str, ...] = (S.ZONE_ID, S.FLOOR, S.BUILDING)
#: Everything :func:`add_features` computes.
FEATURES: tuple[str, ...] = (
    *CATEGORICAL,
    "local_hour",
    "weekday",
    "is_holiday",
    "off_day",
    "off_day_lag_7d",
    "in_contract_hour",
    "lag_24h_w",
    "lag_168h_w",
    "lit_lag_168h",
    "same_type_median_w",
    "how_median_4w_w",
    "week_mean_lag_7d_w",
    *PROFILE_COLUMNS,
)
#: What the forecasters use: nothing from inside a one-week horizon, and of the profile its product alone
#: (its median and ratio as features too were no better on the backtests of issue 16).
FORECAST_FEATURES: tuple[str, ...] = tuple(
    f for f in FEATURES if f not in ("lag_24h_w", "how_median_12w_w", "level_ratio")
)


def zone_hours(frame: pd.DataFrame, is_on: np.ndarray) -> pd.DataFrame:
    """One row per zone and UTC hour with readings: the targets ``power_w`` [W] and ``lit`` (bool).

    ``frame`` is a validated readings frame (canonical columns, ``timestamp`` tz-aware UTC); ``is_on`` one
    bool per row. Also carries ``client_id`` (of the hour's last reading), ``building``, ``floor`` and
    ``readings`` (count).
    """
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    work = pd.DataFrame(  # .array keeps the reader's categoricals: no string copies of a million rows
        {
            S.ZONE_ID: frame[S.ZONE_ID].array,
            "hour_ms": t - t % HOUR_MS,
            S.POWER_W: frame[S.POWER_W].to_numpy(dtype=float),
            "on": np.asarray(is_on, dtype=float),
            S.CLIENT_ID: frame[S.CLIENT_ID].array,
            S.BUILDING: frame[S.BUILDING].array,
            S.FLOOR: frame[S.FLOOR].array,
        }
    )
    grouped = work.groupby([S.ZONE_ID, "hour_ms"], sort=True, observed=True)
    hours = grouped.agg(
        power_w=(S.POWER_W, "mean"),
        on_share=("on", "mean"),
        readings=(S.POWER_W, "size"),
        client_id=(S.CLIENT_ID, "last"),
        building=(S.BUILDING, "last"),
        floor=(S.FLOOR, "last"),
    ).reset_index()
    for column in (S.ZONE_ID, S.CLIENT_ID, S.BUILDING, S.FLOOR):  # plain values, as the reader's categories
        if isinstance(hours[column].dtype, pd.CategoricalDtype):
            hours[column] = hours[column].astype(hours[column].cat.categories.dtype)
    hours[LIT] = hours.pop("on_share") >= 0.5
    return _with_hour_start(hours)


def future_hours(history: pd.DataFrame, start_ms: int, hours: int) -> pd.DataFrame:
    """Rows to forecast: every zone of ``history`` for ``hours`` UTC hours from ``start_ms`` [ms].

    Targets are NaN/False; zone attributes and client are each zone's last known ones.
    """
    last = history.sort_values("hour_ms").groupby(S.ZONE_ID, sort=True, observed=True).tail(1)
    steps = start_ms - start_ms % HOUR_MS + HOUR_MS * np.arange(hours, dtype=np.int64)
    rows = last.loc[last.index.repeat(hours), [S.ZONE_ID, S.CLIENT_ID, S.BUILDING, S.FLOOR]]
    rows = rows.reset_index(drop=True)
    rows["hour_ms"] = np.tile(steps, len(last))
    rows[S.POWER_W] = np.nan
    rows["readings"] = 0
    rows[LIT] = False
    return _with_hour_start(rows)


def _with_hour_start(hours: pd.DataFrame) -> pd.DataFrame:
    hours[HOUR_START] = pd.to_datetime(hours["hour_ms"].to_numpy(), unit="ms", utc=True)
    return hours


def add_features(
    hours: pd.DataFrame, site: SiteConfig, *, history: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``hours`` (from :func:`zone_hours` or :func:`future_hours`) with every column of :data:`FEATURES`.

    Lags are looked up in ``history`` (default: ``hours`` itself), also a :func:`zone_hours` frame: to
    forecast, pass the observed hours as history and the future rows as ``hours``. Missing lags are NaN
    (LightGBM treats them as missing, not zero).
    """
    history = hours if history is None else history
    tz = site.site.timezone
    out = hours.copy()
    hour_ms = out["hour_ms"].to_numpy(dtype=np.int64)
    wall = ms_to_local(hour_ms, tz)
    day = local_day_numbers(hour_ms.view("datetime64[ms]"), tz)
    out["local_day"] = day
    out["local_hour"] = wall.hour.to_numpy(dtype=np.int16)
    out["weekday"] = ((day + 3) % 7).astype(np.int16)  # 1970-01-01 was a Thursday; Monday = 0
    holiday_days = _holiday_days(site, day, history)
    out["is_holiday"] = np.isin(day, holiday_days)
    out["off_day"] = out["is_holiday"] | (out["weekday"] >= 5)
    out["off_day_lag_7d"] = np.isin(day - 7, holiday_days) | (out["weekday"] >= 5)
    mid_hour = hour_ms + HOUR_MS // 2
    out["in_contract_hour"] = in_contract_at(mid_hour, out[S.CLIENT_ID].astype("category"), site)

    past = history[[S.ZONE_ID, "hour_ms", S.POWER_W, LIT]]
    out["lag_24h_w"] = lagged(out, past, S.POWER_W, 24 * HOUR_MS)
    out["lag_168h_w"] = lagged(out, past, S.POWER_W, 168 * HOUR_MS)
    out["lit_lag_168h"] = lagged(out, past, LIT, 168 * HOUR_MS)
    daily = _daily_history(history, site, holiday_days)
    out["same_type_median_w"] = _same_type_median(out, daily)
    out["how_median_4w_w"] = seasonal_baselines(out, history)["how_median_4w_w"].to_numpy()
    out["week_mean_lag_7d_w"] = _week_mean(out, daily)
    profile = hour_of_week_profile(out, daily, holiday_days)
    for column in PROFILE_COLUMNS:
        out[column] = profile[column].to_numpy()
    for column in CATEGORICAL:
        out[column] = out[column].astype(str)
    return out


def _holiday_days(site: SiteConfig, day: np.ndarray, history: pd.DataFrame) -> np.ndarray:
    """Day numbers of the site's public holidays over the span of ``day`` and the history, plus a week."""
    first = int(day.min()) if len(day) else 0
    if len(history):
        first = min(first, int(local_day_numbers(history["hour_ms"].to_numpy().view("datetime64[ms]")[:1],
                                                 site.site.timezone)[0]) - 35)  # fmt: skip
    last = int(day.max()) if len(day) else 0
    dates = site.site.holidays_between(
        (_EPOCH + np.timedelta64(first - 7, "D")).item(), (_EPOCH + np.timedelta64(last + 1, "D")).item()
    )
    return np.array(sorted((np.datetime64(d, "D") - _EPOCH).astype(np.int64) for d in dates), dtype=np.int64)


def lagged(rows: pd.DataFrame, past: pd.DataFrame, column: str, lag_ms: int) -> np.ndarray:
    """``column`` of ``past`` for the same zone ``lag_ms`` [ms] earlier than each row, NaN where absent.

    ``past`` has at most one row per zone and hour (a :func:`zone_hours` frame).
    """
    zones = pd.concat([rows[S.ZONE_ID].astype(str), past[S.ZONE_ID].astype(str)], ignore_index=True)
    codes = pd.factorize(zones)[0].astype(np.int64) * S.GROUP_SPAN_MS
    wanted = codes[: len(rows)] + (rows["hour_ms"].to_numpy(dtype=np.int64) - lag_ms)
    have = codes[len(rows) :] + past["hour_ms"].to_numpy(dtype=np.int64)
    position = pd.Index(have).get_indexer(wanted)
    values = past[column].to_numpy(dtype=float)
    return np.where(position >= 0, values[position], np.nan)


def _daily_history(history: pd.DataFrame, site: SiteConfig, holiday_days: np.ndarray) -> pd.DataFrame:
    """Per zone, local date and local hour: mean power and the first UTC hour [ms]; with the date's type
    (off day or not)."""
    hour_ms = history["hour_ms"].to_numpy(dtype=np.int64)
    tz = site.site.timezone
    day = local_day_numbers(hour_ms.view("datetime64[ms]"), tz)
    wall = ms_to_local(hour_ms, tz)
    frame = pd.DataFrame(
        {
            S.ZONE_ID: history[S.ZONE_ID].astype(str).to_numpy(),
            "local_day": day,
            "local_hour": wall.hour.to_numpy(dtype=np.int16),
            S.POWER_W: history[S.POWER_W].to_numpy(dtype=float),
            "hour_ms": hour_ms,
        }
    )
    frame = (
        frame.groupby([S.ZONE_ID, "local_day", "local_hour"], sort=True)
        .agg(power_w=(S.POWER_W, "mean"), hour_ms=("hour_ms", "min"))
        .reset_index()
    )
    frame["off"] = np.isin(frame["local_day"], holiday_days) | ((frame["local_day"] + 3) % 7 >= 5)
    return frame


def _same_type_median(rows: pd.DataFrame, daily: pd.DataFrame) -> np.ndarray:
    """Median power at the same local hour on the last 4 days of the row's day type, 8+ days before."""
    keys = [S.ZONE_ID, "local_hour", "off"]
    d = daily.sort_values([*keys, "local_day"]).reset_index(drop=True)
    d["median"] = _trailing(d, keys, 4, np.nanmedian, min_count=1)
    left = pd.DataFrame(
        {
            S.ZONE_ID: rows[S.ZONE_ID].astype(str).to_numpy(),
            "local_hour": rows["local_hour"].to_numpy(dtype=np.int16),
            "off": rows["off_day"].to_numpy(dtype=bool),
            "local_day": rows["local_day"].to_numpy(dtype=np.int64) - _LOOKBACK_DAYS,
            "row": np.arange(len(rows)),
        }
    ).sort_values("local_day")
    found = pd.merge_asof(
        left, d[[*keys, "local_day", "median"]].sort_values("local_day"), on="local_day", by=keys
    )
    return found.sort_values("row")["median"].to_numpy(dtype=float)


def _trailing(frame: pd.DataFrame, keys: list[str], window: int, how: Any, *, min_count: int) -> np.ndarray:
    """``how`` (``np.nanmedian`` or ``np.nanmean``) of ``power_w`` over each row and the ``window − 1`` rows
    before it within the same ``keys`` group (``frame`` sorted by keys, then time); NaN below ``min_count``
    values. What ``groupby(keys).rolling(window, min_periods=min_count)`` computes, without a Python loop
    over the groups."""
    values = frame[S.POWER_W].to_numpy(dtype=float)
    group = frame.groupby(keys, sort=False, observed=True).ngroup().to_numpy()
    n = len(values)
    stack = np.full((n, window), np.nan)
    for k in range(min(window, n)):  # column k: the value k rows back, where it is of the same group
        same = np.zeros(n, dtype=bool)
        same[k:] = group[k:] == group[: n - k]
        stack[k:, k] = np.where(same[k:], values[: n - k], np.nan)
    count = np.sum(~np.isnan(stack), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN rows: NaN, as meant
        out = how(stack, axis=1)
    return np.where(count >= min_count, out, np.nan)


def _week_mean(rows: pd.DataFrame, daily: pd.DataFrame) -> np.ndarray:
    """The zone's mean power over the 7 local days ending 8 days before the row's day [W]."""
    per_day = daily.groupby([S.ZONE_ID, "local_day"], sort=True)[S.POWER_W].mean().reset_index()
    per_day["week"] = _trailing(per_day, [S.ZONE_ID], 7, np.nanmean, min_count=3)
    left = pd.DataFrame(
        {
            S.ZONE_ID: rows[S.ZONE_ID].astype(str).to_numpy(),
            "local_day": rows["local_day"].to_numpy(dtype=np.int64) - _LOOKBACK_DAYS,
            "row": np.arange(len(rows)),
        }
    ).sort_values("local_day")
    found = pd.merge_asof(
        left, per_day[[S.ZONE_ID, "local_day", "week"]].sort_values("local_day"), on="local_day", by=S.ZONE_ID
    )
    return found.sort_values("row")["week"].to_numpy(dtype=float)


def seasonal_baselines(rows: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The two baselines forecasts are judged against (SPEC §5), per row [W].

    ``seasonal_naive_w``: the same hour one week earlier; ``how_median_4w_w``: the median of the same hour of
    the week over the last four weeks (NaN where none of the four has readings).
    """
    past = history[[S.ZONE_ID, "hour_ms", S.POWER_W]]
    weeks = np.column_stack([lagged(rows, past, S.POWER_W, k * 168 * HOUR_MS) for k in range(1, 5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-NaN row gives NaN, as meant
        median = np.nanmedian(weeks, axis=1)
    return pd.DataFrame({"seasonal_naive_w": weeks[:, 0], "how_median_4w_w": median}, index=rows.index)

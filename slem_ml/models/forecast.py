"""Hourly forecasts per zone after the end of the readings, and their peak hours (SPEC §6 ``slem forecast``).

The forecaster's features look back at least a week, so the first 7 days are forecast directly from the
observed history; beyond a week, each further week uses the forecasts of the week before as its history
(recursive by whole weeks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.io.readings import Readings
from slem_ml.models.features import HOUR_MS, LIT, add_features, future_hours, zone_hours
from slem_ml.models.forecaster import ZoneForecaster

__all__ = ["FORECAST_COLUMNS", "ForecastResult", "forecast", "peak_hours"]

#: Columns of forecasts.csv (SPEC §6).
FORECAST_COLUMNS: tuple[str, ...] = (S.ZONE_ID, S.TIMESTAMP, S.EXPECTED_POWER_W, "p_on", "lower_w", "upper_w")
_WEEK = 168


@dataclass(frozen=True)
class ForecastResult:
    """``forecasts``: :data:`FORECAST_COLUMNS` plus ``building``, ``floor``, ``known_zone``; ``timestamp`` is
    the hour's start (tz-aware, site timezone). ``zone_peaks`` / ``building_peaks``: the peak hours."""

    forecasts: pd.DataFrame
    zone_peaks: pd.DataFrame
    building_peaks: pd.DataFrame
    unknown_zones: tuple[str, ...]


def forecast(
    readings: Readings, site: SiteConfig, forecaster: ZoneForecaster, *, days: int
) -> ForecastResult:
    """Forecast every zone of ``readings`` for ``days`` × 24 hours after the last reading's hour."""
    frame = readings.frame
    if frame.empty:
        raise ValueError("no valid readings to forecast from")
    coverage = compute_coverage(frame, site)
    history = zone_hours(frame, coverage.is_on)
    start = int(history["hour_ms"].max()) + HOUR_MS
    parts = []
    remaining = days * 24
    while remaining > 0:
        hours = min(_WEEK, remaining)
        rows = add_features(future_hours(history, start, hours), site, history=history)
        predicted = forecaster.predict(rows)
        out = rows[[S.ZONE_ID, S.BUILDING, S.FLOOR, "hour_ms"]].join(predicted.drop(columns=[S.ZONE_ID]))
        parts.append(out)
        week = rows[[S.ZONE_ID, S.CLIENT_ID, S.BUILDING, S.FLOOR, "hour_ms", "hour_start"]].assign(
            **{S.POWER_W: predicted[S.EXPECTED_POWER_W].to_numpy(), LIT: predicted["p_on"].to_numpy() >= 0.5}
        )
        history = pd.concat([history, week], ignore_index=True)
        start += hours * HOUR_MS
        remaining -= hours
    table = pd.concat(parts, ignore_index=True)
    table[S.TIMESTAMP] = ms_to_local(table["hour_ms"].to_numpy(dtype="int64"), site.site.timezone)
    table = table[[*FORECAST_COLUMNS, S.BUILDING, S.FLOOR, "known_zone"]]
    unknown = tuple(sorted(table.loc[~table["known_zone"], S.ZONE_ID].unique()))
    zone_peaks, building_peaks = peak_hours(table)
    return ForecastResult(table, zone_peaks, building_peaks, unknown)


def peak_hours(table: pd.DataFrame, *, top: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``top`` hours of highest expected power per zone and per building (summed over its zones).

    Columns: ``zone_id`` or ``building``, ``rank`` (1 = highest), ``timestamp`` (site time) and
    ``expected_power_w`` [W, 0.1 W], ties to the earlier hour.
    """
    zones = _top(table, S.ZONE_ID, top)
    buildings = table.groupby([S.BUILDING, S.TIMESTAMP], observed=True, as_index=False)[
        S.EXPECTED_POWER_W
    ].sum()
    return zones, _top(buildings, S.BUILDING, top)


def _top(table: pd.DataFrame, key: str, top: int) -> pd.DataFrame:
    ordered = table.sort_values([key, S.EXPECTED_POWER_W, S.TIMESTAMP], ascending=[True, False, True])
    best = ordered.groupby(key, observed=True, sort=True).head(top).copy()
    best["rank"] = best.groupby(key, observed=True).cumcount() + 1
    best[S.EXPECTED_POWER_W] = np.round(best[S.EXPECTED_POWER_W].to_numpy(dtype=float), 1)
    return best[[key, "rank", S.TIMESTAMP, S.EXPECTED_POWER_W]].reset_index(drop=True)

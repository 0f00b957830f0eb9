"""Hourly forecasts per zone after the end of the readings, their peak hours and the expected occupancy
(SPEC §6 ``slem forecast``; issue 16).

The forecaster's features look back at least a week, so the first 7 days are forecast directly from the
observed history; beyond a week, each further week uses the forecasts of the week before as its history
(recursive by whole weeks).

**Occupancy.** Light is slem's only sign of presence, so a zone's *expected occupancy* in an hour is the
forecaster's on-probability ``p_on``: the probability that the zone is lit for most of that hour
(calibrated on the backtest, judged by its Brier score and reliability in docs/benchmarks.md). A
building's expected occupancy is the mean over its zones, i.e. the expected share of them in use, and
``expected_occupied_zones`` their sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.io.readings import Readings
from slem_ml.models.features import HOUR_MS, LIT, add_features, future_hours, zone_hours
from slem_ml.models.forecaster import ZoneForecaster

__all__ = [
    "FORECAST_COLUMNS",
    "OCCUPANCY",
    "ForecastResult",
    "building_occupancy",
    "forecast",
    "occupancy_peaks",
    "peak_hours",
]

#: Columns of forecasts.csv (SPEC §6).
FORECAST_COLUMNS: tuple[str, ...] = (S.ZONE_ID, S.TIMESTAMP, S.EXPECTED_POWER_W, "p_on", "lower_w", "upper_w")
#: The expected occupancy of a zone or building in an hour [0..1] (see the module docstring).
OCCUPANCY = "expected_occupancy"
OCCUPIED_ZONES = "expected_occupied_zones"
_WEEK = 168


@dataclass(frozen=True)
class ForecastResult:
    """``forecasts``: :data:`FORECAST_COLUMNS` plus ``building``, ``floor``, ``known_zone``; ``timestamp`` is
    the hour's start (tz-aware, site timezone). ``zone_peaks`` / ``building_peaks``: the peak hours of
    expected power; ``zone_occupancy_peaks`` / ``building_occupancy_peaks``: those of expected occupancy
    (:func:`occupancy_peaks`)."""

    forecasts: pd.DataFrame
    zone_peaks: pd.DataFrame
    building_peaks: pd.DataFrame
    unknown_zones: tuple[str, ...]
    zone_occupancy_peaks: pd.DataFrame = field(default_factory=pd.DataFrame)
    building_occupancy_peaks: pd.DataFrame = field(default_factory=pd.DataFrame)


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
    return ForecastResult(table, zone_peaks, building_peaks, unknown, *occupancy_peaks(table))


def peak_hours(table: pd.DataFrame, *, top: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``top`` hours of highest expected power per zone and per building (summed over its zones).

    Columns: ``zone_id`` or ``building``, ``rank`` (1 = highest), ``timestamp`` (site time) and
    ``expected_power_w`` [W, 0.1 W], ties to the earlier hour.
    """
    zones = _top(table, S.ZONE_ID, S.EXPECTED_POWER_W, top, 1)
    buildings = table.groupby([S.BUILDING, S.TIMESTAMP], observed=True, as_index=False)[
        S.EXPECTED_POWER_W
    ].sum()
    return zones, _top(buildings, S.BUILDING, S.EXPECTED_POWER_W, top, 1)


def building_occupancy(table: pd.DataFrame) -> pd.DataFrame:
    """Per building and hour of a forecasts ``table``: ``zones`` forecast, ``expected_occupied_zones`` (the
    sum of their ``p_on``) and ``expected_occupancy`` (its mean: the expected share of the zones in use)."""
    grouped = table.groupby([S.BUILDING, S.TIMESTAMP], observed=True, sort=True)["p_on"]
    out = grouped.agg(zones="size", expected_occupied_zones="sum", expected_occupancy="mean").reset_index()
    return out[[S.BUILDING, S.TIMESTAMP, "zones", OCCUPIED_ZONES, OCCUPANCY]]


def occupancy_peaks(table: pd.DataFrame, *, top: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``top`` hours of highest expected occupancy per zone and per building.

    Zones: ``zone_id``, ``rank``, ``timestamp``, ``expected_occupancy`` (``p_on``, to the percent: hours as
    likely as each other to the percent tie, and the earlier comes first). Buildings: ``building``,
    ``rank``, ``timestamp``, ``expected_occupancy`` (the share of its zones expected in use, to the percent)
    and ``expected_occupied_zones`` (to 0.01 zone), ranked by the latter.
    """
    zones = _top(table.assign(**{OCCUPANCY: table["p_on"]}), S.ZONE_ID, OCCUPANCY, top, 2, ties=True)
    per_building = building_occupancy(table)
    buildings = _top(per_building, S.BUILDING, OCCUPIED_ZONES, top, 2)
    shares = per_building.set_index([S.BUILDING, S.TIMESTAMP])[OCCUPANCY]
    at = pd.MultiIndex.from_frame(buildings[[S.BUILDING, S.TIMESTAMP]])
    buildings[OCCUPANCY] = np.round(shares.reindex(at).to_numpy(dtype=float), 2)
    return zones, buildings[[S.BUILDING, "rank", S.TIMESTAMP, OCCUPANCY, OCCUPIED_ZONES]]


def _top(
    table: pd.DataFrame, key: str, value: str, top: int, decimals: int, *, ties: bool = False
) -> pd.DataFrame:
    """The ``top`` rows of highest ``value`` per ``key``, ties to the earlier hour; ``value`` rounded to
    ``decimals`` for showing, and before ranking when ``ties`` (values equal when rounded are ties)."""
    rounded = np.round(table[value].to_numpy(dtype=float), decimals)
    ranked = table.assign(**{value: rounded}) if ties else table
    ordered = ranked.sort_values([key, value, S.TIMESTAMP], ascending=[True, False, True])
    best = ordered.groupby(key, observed=True, sort=True).head(top).copy()
    best["rank"] = best.groupby(key, observed=True).cumcount() + 1
    best[value] = np.round(best[value].to_numpy(dtype=float), decimals)
    return best[[key, "rank", S.TIMESTAMP, value]].reset_index(drop=True)

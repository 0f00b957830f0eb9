"""The app's findings beyond the stored tables: cleaning ranked, one zone's power, fixes judged, forecasts.

Each function takes a :class:`~slem_ml.app.views.RunView` (already limited to what the user may see) and,
where it needs them, the champion models; power in W, energy in kWh, times in the site's timezone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from slem_ml.app.views import RunView
from slem_ml.app.workspace import run_input
from slem_ml.billing.coverage import classified_readings, compute_coverage
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.io.reader import read_readings
from slem_ml.models.alerts import zoned_readings
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.features import add_features, zone_hours
from slem_ml.models.forecast import forecast, peak_hours

__all__ = ["ForecastView", "cleaning_ranking", "fix_effects", "forecast_view", "zone_series"]

#: Days of readings compared before and after a maintenance action.
EFFECT_DAYS = 7


def cleaning_ranking(sessions: pd.DataFrame) -> pd.DataFrame:
    """Flagged cleaning per building and floor, most wasted energy first.

    Columns: ``building, floor, sessions`` (flagged), ``excess_hours`` [h], ``wasted_kwh`` [kWh],
    ``savings`` [currency, Decimal].
    """
    flagged = sessions[sessions["flagged"]]
    if flagged.empty:
        return pd.DataFrame(
            columns=["building", "floor", "sessions", "excess_hours", "wasted_kwh", "savings"]
        )
    grouped = flagged.assign(
        building=flagged["building"].astype(str),
        floor=flagged["floor"].astype(str),
        excess_hours=flagged["excess_minutes"].astype(float) / 60.0,
        wasted=flagged["wasted_kwh"].astype(float),
    ).groupby(["building", "floor"], observed=True)
    ranked = grouped.agg(
        sessions=("zone_id", "size"), excess_hours=("excess_hours", "sum"), wasted_kwh=("wasted", "sum")
    )
    ranked["savings"] = grouped["savings"].agg(lambda values: sum(values, Decimal(0)))
    return ranked.reset_index().sort_values("wasted_kwh", ascending=False, ignore_index=True)


def zone_series(
    view: RunView, zone_id: str, models: ModelBundle | None, readings: pd.DataFrame
) -> pd.DataFrame:
    """One zone's hourly mean power with the models' expectation and 80 % band, from its ``readings``
    (:func:`slem_ml.app.views.zone_readings`: the month's stored readings).

    Columns ``hour`` (local, naive for charts), ``actual_w``, ``lit`` and, with models, ``expected_w``,
    ``lower_w``, ``upper_w`` [W]. Raises :class:`SlemError` for a zone the user may not see.
    """
    if zone_id not in view.zones:
        raise SlemError(f"no zone {zone_id!r} in this month")
    coverage = compute_coverage(readings, view.site)
    hours = zone_hours(readings, coverage.is_on)
    local = ms_to_local(hours["hour_ms"].to_numpy(dtype="int64"), view.site.site.timezone)
    out = pd.DataFrame(
        {
            "hour": local.tz_localize(None),
            "actual_w": hours[S.POWER_W].to_numpy(),
            "lit": hours["lit"].to_numpy(),
        }
    )
    if models is not None:
        predicted = models.forecaster.predict(add_features(hours, view.site))
        out["expected_w"] = predicted[S.EXPECTED_POWER_W].to_numpy()
        out["lower_w"] = predicted["lower_w"].to_numpy()
        out["upper_w"] = predicted["upper_w"].to_numpy()
    return out


def detector_status(view: RunView, zone_id: str, readings: pd.DataFrame, models: ModelBundle | None) -> str:
    """Which detectors judge the zone in the view's month, in words (SPEC §8.5: a detector with too little
    history for a zone says so here instead of alerting)."""
    rules = "stuck-on and dropout rules: on"
    if models is None:
        return f"**{zone_id}** — {rules}; spikes and drift: off (no trained models)."
    if readings.empty:
        return f"**{zone_id}** — no stored readings in {view.period}."
    scored = classified_readings(readings, compute_coverage(readings, view.site))
    needed = models.drift.min_history()
    if zone_id in models.drift.short_history(zoned_readings(scored), view.site):
        drift = f"drift: not judged yet (fewer than {needed} complete lit days of this zone in {view.period})"
    else:
        drift = "drift: on"
    return f"**{zone_id}** — {rules}; spikes: on; {drift}."


def fix_effects(series: pd.DataFrame, actions: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Did each maintenance action work? Mean lit power [W] in the week before and after it.

    ``series`` from :func:`zone_series`; ``actions`` from
    :func:`slem_ml.storage.maintenance.maintenance_history` for the zone (``at`` tz-aware); ``timezone``
    the site's, in which ``series`` hours are given. Adds ``before_w``, ``after_w``,
    ``change`` (after / before − 1) and ``verdict``: "lower draw after the fix" (at least 5 % less), "no
    change" (within 5 %), "higher draw after the fix", or "not enough readings" (no lit hour on a side).
    """
    out = actions.copy()
    if out.empty:
        return out.assign(before_w=[], after_w=[], change=[], verdict=[])
    lit = series[series["lit"]]
    hours = lit["hour"].to_numpy(dtype="datetime64[us]")
    power = lit["actual_w"].to_numpy(dtype=float)
    before, after = [], []
    window = np.timedelta64(EFFECT_DAYS, "D")
    local = pd.to_datetime(out["at"], utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
    for at in local.to_numpy(dtype="datetime64[us]"):
        pre = power[(hours >= at - window) & (hours < at)]
        post = power[(hours >= at) & (hours < at + window)]
        before.append(pre.mean() if len(pre) else np.nan)
        after.append(post.mean() if len(post) else np.nan)
    out["before_w"] = np.round(before, 1)
    out["after_w"] = np.round(after, 1)
    change = out["after_w"] / out["before_w"] - 1.0
    out["change"] = np.round(change, 3)
    out["verdict"] = np.select(
        [change.isna(), change <= -0.05, change >= 0.05],
        ["not enough readings", "lower draw after the fix", "higher draw after the fix"],
        default="no change",
    )
    return out


@dataclass(frozen=True)
class ForecastView:
    """The next days of every visible zone (``forecasts`` as ``forecasts.csv`` plus building, floor)."""

    forecasts: pd.DataFrame
    zone_peaks: pd.DataFrame
    building_peaks: pd.DataFrame


def forecast_view(view: RunView, models: ModelBundle, *, days: int = 7) -> ForecastView:
    """Forecasts for ``days`` after the run's last reading, for the zones the user may see."""
    source = run_input(view.folder)
    if source is None:
        raise SlemError("this run's readings are not kept by the app: upload them to forecast")
    full = _forecast(str(source), view, models, days)
    if view.user.client_id is None:
        return full
    table = full.forecasts[full.forecasts[S.ZONE_ID].isin(view.zones)].reset_index(drop=True)
    zone_peaks, building_peaks = peak_hours(table)  # over the zones this user sees, not the building's
    return ForecastView(table, zone_peaks, building_peaks)


_FORECASTS: dict[tuple[str, int, str, int], ForecastView] = {}


def _forecast(path: str, view: RunView, models: ModelBundle, days: int) -> ForecastView:
    """The whole run's forecast, computed once per run, model version and horizon (the last one kept)."""
    key = (path, view.run.run_id, models.version, days)
    cached = _FORECASTS.get(key)
    if cached is None:
        result = forecast(read_readings(path, view.site), view.site, models.forecaster, days=days)
        cached = ForecastView(result.forecasts, result.zone_peaks, result.building_peaks)
        _FORECASTS.clear()
        _FORECASTS[key] = cached
    return cached

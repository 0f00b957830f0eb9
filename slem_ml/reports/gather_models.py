"""Gathering a report, the parts the models make (SPEC §10): the next period's forecast with its peak hours
(the champion's forecaster, :func:`slem_ml.models.forecast.forecast`) and the savings opportunities.

Both start from the scope's energy frame of :func:`slem_ml.reports.gather.scope_energy`; each returns its
frames and the notes that say why a part is empty.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.forecast import forecast
from slem_ml.models.savings import savings_opportunities
from slem_ml.reports.periods import ReportPeriod, dates_bounds_ms, period_bounds_ms

__all__ = [
    "FORECAST_HISTORY_DAYS",
    "MAX_FORECAST_DAYS",
    "MODEL_DAYS",
    "STORED_COLUMNS",
    "forecast_frames",
    "peak_hours_table",
    "savings_frame",
]

#: Days of readings before the period's end the forecast starts from (the forecaster looks back a week).
FORECAST_HISTORY_DAYS = 35
#: The longest stretch forecast: a quarter's next quarter is forecast for its first month.
MAX_FORECAST_DAYS = 31
#: Days the champion forecasts itself (one pass of the forecaster); the rest of the period repeats them.
MODEL_DAYS = 7
#: The columns of :func:`slem_ml.storage.months.stored_readings`.
STORED_COLUMNS = (S.TIMESTAMP, S.ZONE_ID, S.CLIENT_ID, S.POWER_W, S.CLEANING_STAFF, S.BUILDING, S.FLOOR)
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FORECAST_FRAME_COLUMNS = ("Date", "Expected energy [kWh]", "Low [kWh]", "High [kWh]")
PEAK_COLUMNS = ("Weekday", "Peak hour", "Expected power [kW]")
#: A weekday whose peak is below this share of the week's highest has no lighting expected.
NO_LIGHTING_SHARE = 0.05
#: What the peak-hours table says of such a day.
NO_LIGHTING = "no lighting expected"


def forecast_frames(
    energy: pd.DataFrame, site: SiteConfig, period: ReportPeriod, models: ModelBundle | None
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The next period by day (expected energy [kWh] with its 80 % band) and its peak hour per weekday
    [kW]; empty frames and a note without a champion or readings.

    The champion forecasts the :data:`MODEL_DAYS` days after the last reading of ``energy`` before the
    period's end, from the :data:`FORECAST_HISTORY_DAYS` days before it (one pass of the forecaster: its
    later weeks would only feed on its own first week). A longer next period repeats that week by
    weekday, a public holiday taking the week's Sunday; the note says so.
    """
    empty_forecast = pd.DataFrame({c: [] for c in FORECAST_FRAME_COLUMNS})
    empty_peaks = pd.DataFrame({c: [] for c in PEAK_COLUMNS})
    following = period.next()
    if models is None or getattr(models, "forecaster", None) is None:
        note = f"No champion model: no forecast of {following.label} (train one with slem train)."
        return empty_forecast, empty_peaks, [note]
    tz = site.site.timezone
    notes = []
    last_day = following.end
    if following.days > MAX_FORECAST_DAYS:
        last_day = following.start + dt.timedelta(days=MAX_FORECAST_DAYS)
        notes.append(f"The forecast covers the first {MAX_FORECAST_DAYS} days of {following.label}.")
    first_ms, after_ms = dates_bounds_ms(following.start, last_day, tz)
    _, end_ms = period_bounds_ms(period, tz)
    t = energy["t_ms"].to_numpy()
    recent = energy[(t >= end_ms - FORECAST_HISTORY_DAYS * _MS_PER_DAY) & (t < end_ms)]
    if recent.empty:
        notes.append(f"No readings in the {FORECAST_HISTORY_DAYS} days before the period's end: no forecast.")
        return empty_forecast, empty_peaks, notes
    readings = validate_frame(recent[list(STORED_COLUMNS)].reset_index(drop=True), site, source="store")
    begin_ms = (int(recent["t_ms"].max()) // _MS_PER_HOUR + 1) * _MS_PER_HOUR
    days = max(1, -(-(min(after_ms, first_ms + MODEL_DAYS * _MS_PER_DAY) - begin_ms) // _MS_PER_DAY))
    table = forecast(readings, site, models.forecaster, days=days).forecasts
    hour_ms = table[S.TIMESTAMP].dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]").view(np.int64)
    table = table[(hour_ms >= first_ms) & (hour_ms < after_ms)]
    if table.empty:
        notes.append(f"The readings end too long before {following.label} to forecast it.")
        return empty_forecast, empty_peaks, notes
    hourly = table.groupby(S.TIMESTAMP, as_index=False)[[S.EXPECTED_POWER_W, "lower_w", "upper_w"]].sum()
    local = hourly[S.TIMESTAMP].dt.tz_convert(tz)
    hourly = hourly.assign(date=local.dt.date, weekday=local.dt.day_of_week, hour=local.dt.hour)
    daily = hourly.groupby("date", as_index=False)[[S.EXPECTED_POWER_W, "lower_w", "upper_w"]].sum()
    daily, repeated = _whole_period(daily, site, following.start, last_day)
    forecast_table = pd.DataFrame(
        {
            "Date": list(daily["date"]),
            "Expected energy [kWh]": daily[S.EXPECTED_POWER_W].to_numpy(dtype=float) / 1000.0,  # W × 1 h
            "Low [kWh]": daily["lower_w"].to_numpy(dtype=float) / 1000.0,
            "High [kWh]": daily["upper_w"].to_numpy(dtype=float) / 1000.0,
        }
    )
    typical = hourly.groupby(["weekday", "hour"], as_index=False)[S.EXPECTED_POWER_W].mean()
    peak_table = peak_hours_table(typical, site.sampling.on_threshold_w)
    notes.append(
        "Forecast by the champion model; the daily band sums the zones' 80 % bands (wider than the total's)."
    )
    if repeated:
        notes.append(
            f"The model forecasts the first {MODEL_DAYS} days; the {repeated} days after repeat that week "
            "by weekday (a public holiday as its Sunday)."
        )
    return forecast_table, peak_table.reset_index(drop=True), notes


def peak_hours_table(typical: pd.DataFrame, on_threshold_w: float) -> pd.DataFrame:
    """The peak hour of each weekday from ``typical`` (``weekday`` 0–6, ``hour`` 0–23 and its mean
    expected power [W]): ``Weekday``, ``Peak hour`` (``HH:00``), ``Expected power [kW]``.

    A weekday whose peak is below ``on_threshold_w`` [W] or :data:`NO_LIGHTING_SHARE` of the week's
    highest peak reads "no lighting expected" (its power NaN, shown as "—"): its "peak" is noise."""
    typical = typical.sort_values(["weekday", S.EXPECTED_POWER_W, "hour"], ascending=[True, False, True])
    peaks = typical.groupby("weekday", as_index=False).head(1)
    power = peaks[S.EXPECTED_POWER_W].to_numpy(dtype=float)
    top = float(power.max()) if len(power) else 0.0
    dark = power < max(float(on_threshold_w), NO_LIGHTING_SHARE * top)
    return pd.DataFrame(
        {
            "Weekday": [_WEEKDAYS[w] for w in peaks["weekday"]],
            "Peak hour": np.where(dark, NO_LIGHTING, [f"{h:02d}:00" for h in peaks["hour"]]).tolist(),
            "Expected power [kW]": np.where(dark, np.nan, power / 1000.0),
        }
    )


def _whole_period(
    daily: pd.DataFrame, site: SiteConfig, first: dt.date, after: dt.date
) -> tuple[pd.DataFrame, int]:
    """The forecast days ``daily`` (``date`` and the day's sums) stretched over ``[first, after)``: a day
    past the forecast takes the forecast day of its weekday (a public holiday: the Sunday's). Returns
    the frame and how many days were repeated."""
    known = {day: row for day, row in zip(daily["date"], range(len(daily)), strict=True)}
    wanted = [first + dt.timedelta(days=d) for d in range((after - first).days)]
    if all(day in known for day in wanted):
        return daily[daily["date"].isin(wanted)].reset_index(drop=True), 0
    by_weekday = {day.weekday(): row for day, row in known.items()}
    holidays = site.site.holidays_between(first, after)
    rows, repeated = [], 0
    for day in wanted:
        if day in known:
            rows.append(known[day])
            continue
        weekday = 6 if day in holidays else day.weekday()
        rows.append(by_weekday.get(weekday, by_weekday.get(day.weekday(), 0)))
        repeated += 1
    stretched = daily.iloc[rows].reset_index(drop=True)
    return stretched.assign(date=wanted), repeated


def savings_frame(
    history: pd.DataFrame, period: pd.DataFrame, site: SiteConfig, price: Decimal, co2_kg_per_kwh: float
) -> tuple[pd.DataFrame, list[str]]:
    """Savings opportunities learnt from ``history`` (the weeks before the period) and backtested on
    ``period`` (both energy frames of the scope), most money first, with the savings' note."""
    found = savings_opportunities(
        _stored(history), _stored(period), site, price_per_kwh=price, co2_kg_per_kwh=co2_kg_per_kwh
    )
    return found.table, [found.note] if found.note else []


def _stored(energy: pd.DataFrame) -> pd.DataFrame:
    """The stored-readings columns of an energy frame, categories trimmed to those in use."""
    frame = energy[list(STORED_COLUMNS)].reset_index(drop=True)
    for column in (S.ZONE_ID, S.CLIENT_ID):
        frame[column] = frame[column].cat.remove_unused_categories()
    return frame

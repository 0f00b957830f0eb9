"""Hourly forecasts after the end of the readings, and their peak hours (slem_ml/models/forecast.py).

A small forecaster is fitted once (about 2.5 s) on three generated, fault-free weeks of 4 zones at 15 minutes,
6–26 January 2025 (Europe/Berlin, CET = UTC+1). The readings end at 26 January 23:45 local, so the forecast
starts at 27 January 00:00 local (26 January 23:00Z), the hour after the last reading's hour. The model's
numbers are not checked against values; the shape of the result, its second (recursive) week and the peak
hours are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.coverage import compute_coverage
from slem_ml.generator.generate import GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.io.readings import Readings
from slem_ml.models.features import add_features, zone_hours
from slem_ml.models.forecast import (
    FORECAST_COLUMNS,
    ForecastResult,
    building_occupancy,
    forecast,
    occupancy_peaks,
    peak_hours,
)
from slem_ml.models.forecaster import ZoneForecaster

SITE = default_site()
TZ = SITE.site.timezone  # Europe/Berlin
ZONES = ["HQ-F1-Z1", "Manufacturing-F1-Z1", "R&D-F1-Z1", "Sales-F1-Z1"]
WEEK = 168


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def generated(start: dt.date) -> Readings:
    config = GeneratorConfig(start=start, days=21, zones=4, step_minutes=15, seed=7, faults=False)
    return validate_frame(generate(config).readings, SITE)


@pytest.fixture(scope="module")
def readings() -> Readings:
    return generated(dt.date(2025, 1, 6))


@pytest.fixture(scope="module")
def forecaster(readings: Readings) -> ZoneForecaster:
    frame = readings.frame
    hours = add_features(zone_hours(frame, compute_coverage(frame, SITE).is_on), SITE)
    return ZoneForecaster(n_estimators=30, n_jobs=1).fit(hours)


@pytest.fixture(scope="module")
def fortnight(readings: Readings, forecaster: ZoneForecaster) -> ForecastResult:
    return forecast(readings, SITE, forecaster, days=14)


def by_zone(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(z): rows.reset_index(drop=True) for z, rows in table.groupby(S.ZONE_ID, sort=True)}


def check_sane(rows: pd.DataFrame) -> None:
    """Finite, non-negative, a probability in [0, 1], and a band that contains the point."""
    values = rows[[S.EXPECTED_POWER_W, "p_on", "lower_w", "upper_w"]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert (rows[S.EXPECTED_POWER_W] >= 0).all() and (rows["lower_w"] >= 0).all()
    assert rows["p_on"].between(0, 1).all()
    assert (rows["lower_w"] <= rows[S.EXPECTED_POWER_W]).all()
    assert (rows[S.EXPECTED_POWER_W] <= rows["upper_w"]).all()


# --- forecast -------------------------------------------------------------------------------------


def test_the_readings_end_where_the_module_docstring_says(readings: Readings) -> None:
    assert readings.frame[S.TIMESTAMP].max() == pd.Timestamp("2025-01-26 22:45", tz="UTC")
    assert sorted(readings.frame[S.ZONE_ID].astype(str).unique()) == ZONES


def test_fourteen_days_are_336_consecutive_hours_of_every_zone(fortnight: ForecastResult) -> None:
    table = fortnight.forecasts
    assert list(table.columns) == [*FORECAST_COLUMNS, S.BUILDING, S.FLOOR, "known_zone"]
    assert len(table) == 4 * 14 * 24
    hours = pd.date_range(local("2025-01-27 00:00"), periods=336, freq="h")
    assert hours[-1] == local("2025-02-09 23:00")
    zones = by_zone(table)
    assert sorted(zones) == ZONES
    for zone, rows in zones.items():
        assert rows[S.TIMESTAMP].tolist() == hours.tolist(), zone
    assert str(table[S.TIMESTAMP].dt.tz) == TZ
    assert table["known_zone"].all() and fortnight.unknown_zones == ()


def test_second_week_is_forecast_for_every_zone_and_hour(fortnight: ForecastResult) -> None:
    """Hours 168–335 come from the recursive step (the first week's forecasts as history)."""
    second = fortnight.forecasts[fortnight.forecasts[S.TIMESTAMP] >= local("2025-02-03 00:00")]
    assert len(second) == 4 * WEEK
    for zone, rows in by_zone(second).items():
        assert (
            rows[S.TIMESTAMP].tolist() == pd.date_range(local("2025-02-03"), periods=WEEK, freq="h").tolist()
        )
        check_sane(rows)
        assert rows[S.EXPECTED_POWER_W].max() > 0, zone


def test_second_week_keeps_the_shape_of_a_working_week(fortnight: ForecastResult) -> None:
    """The generator lights these zones in working hours and darkens them at night (no holiday in
    3–9 February), so a recursive week that kept its history is brighter at 10–16 h on weekdays than at
    01–04 h."""
    second = fortnight.forecasts[fortnight.forecasts[S.TIMESTAMP] >= local("2025-02-03 00:00")]
    t = second[S.TIMESTAMP].dt
    working = second[(t.day_of_week < 5) & (t.hour >= 10) & (t.hour < 16)]
    night = second[(t.hour >= 1) & (t.hour < 4)]
    day_mean = working.groupby(S.ZONE_ID)[S.EXPECTED_POWER_W].mean()
    night_mean = night.groupby(S.ZONE_ID)[S.EXPECTED_POWER_W].mean()
    assert (day_mean > 2 * night_mean).all(), pd.DataFrame({"day": day_mean, "night": night_mean})


def test_first_week_does_not_depend_on_the_horizon(
    readings: Readings, forecaster: ZoneForecaster, fortnight: ForecastResult
) -> None:
    """The first 7 days are forecast from the observed history alone."""
    week = forecast(readings, SITE, forecaster, days=7).forecasts
    first = fortnight.forecasts[fortnight.forecasts[S.TIMESTAMP] < local("2025-02-03 00:00")]
    pd.testing.assert_frame_equal(first.reset_index(drop=True), week.reset_index(drop=True))


def test_a_part_week_after_the_first(readings: Readings, forecaster: ZoneForecaster) -> None:
    table = forecast(readings, SITE, forecaster, days=10).forecasts
    assert len(table) == 4 * 240
    for rows in by_zone(table).values():
        assert rows[S.TIMESTAMP].iloc[-1] == local("2025-02-05 23:00")
        check_sane(rows.iloc[WEEK:])


def test_fourteen_days_across_the_spring_change_are_336_utc_hours(forecaster: ZoneForecaster) -> None:
    """Readings 3–23 March end at 23 March 23:45 CET. 336 hours from 24 March 00:00 CET (23 March 23:00Z)
    cross 30 March, a 23-hour day without 02:00, and end at 6 April 22:00Z = 7 April 00:00 CEST."""
    result = forecast(generated(dt.date(2025, 3, 3)), SITE, forecaster, days=14)
    for rows in by_zone(result.forecasts).values():
        utc = rows[S.TIMESTAMP].dt.tz_convert("UTC")
        assert utc.tolist() == pd.date_range("2025-03-23 23:00", periods=336, freq="h", tz="UTC").tolist()
        wall = rows[S.TIMESTAMP]
        assert wall.iloc[0] == local("2025-03-24 00:00") and wall.iloc[-1] == local("2025-04-07 00:00")
        spring_day = wall[wall.dt.date == dt.date(2025, 3, 30)]
        assert len(spring_day) == 23 and 2 not in set(spring_day.dt.hour)
        offsets = wall.map(lambda ts: ts.utcoffset())
        assert set(offsets[utc < pd.Timestamp("2025-03-30 01:00", tz="UTC")]) == {dt.timedelta(hours=1)}
        assert set(offsets[utc >= pd.Timestamp("2025-03-30 01:00", tz="UTC")]) == {dt.timedelta(hours=2)}
        check_sane(rows.iloc[WEEK:])


def test_a_zone_the_model_never_saw_is_forecast_and_named(
    readings: Readings, forecaster: ZoneForecaster
) -> None:
    frame = readings.frame
    renamed = frame.assign(**{S.ZONE_ID: frame[S.ZONE_ID].astype(str).replace("HQ-F1-Z1", "HQ-F1-Z9")})
    renamed = renamed.assign(**{S.ZONE: np.where(renamed[S.ZONE_ID] == "HQ-F1-Z9", 9, frame[S.ZONE])})
    result = forecast(validate_frame(renamed, SITE), SITE, forecaster, days=14)
    assert result.unknown_zones == ("HQ-F1-Z9",)
    stranger = result.forecasts[S.ZONE_ID] == "HQ-F1-Z9"
    assert stranger.sum() == 336
    assert not result.forecasts.loc[stranger, "known_zone"].any()
    assert result.forecasts.loc[~stranger, "known_zone"].all()
    check_sane(result.forecasts[stranger])


def test_no_readings_is_refused(readings: Readings, forecaster: ZoneForecaster) -> None:
    empty = dataclasses.replace(readings, frame=readings.frame.iloc[:0])
    with pytest.raises(ValueError, match="no valid readings"):
        forecast(empty, SITE, forecaster, days=7)


def test_forecast_peaks_are_the_highest_hours_of_its_table(fortnight: ForecastResult) -> None:
    table = fortnight.forecasts
    best = table.loc[table.groupby(S.ZONE_ID)[S.EXPECTED_POWER_W].idxmax()]
    first = fortnight.zone_peaks[fortnight.zone_peaks["rank"] == 1].set_index(S.ZONE_ID)
    for row in best.itertuples(index=False):
        assert first.loc[row.zone_id, S.TIMESTAMP] == row.timestamp
        assert first.loc[row.zone_id, S.EXPECTED_POWER_W] == round(row.expected_power_w, 1)
    assert fortnight.zone_peaks.groupby(S.ZONE_ID)["rank"].apply(list).tolist() == [[1, 2, 3]] * 4


# --- peak_hours on a hand-made table --------------------------------------------------------------

HOURS = [
    local("2025-02-10 12:00"),
    local("2025-02-10 13:00"),
    local("2025-02-10 14:00"),
    local("2025-02-10 15:00"),
]
#: zone → (building, power at 12, 13, 14, 15 h); the Lab zone has no forecast at 14 and 15 h.
POWER = {
    "HQ-F1-Z1": ("HQ", [10.0, 40.0, 40.0, 25.0]),
    "HQ-F1-Z2": ("HQ", [30.0, 5.0, 20.0, 50.04]),
    "Lab-F1-Z1": ("Lab", [7.26, 3.0]),
}


@pytest.fixture
def table() -> pd.DataFrame:
    rows = [
        {S.ZONE_ID: zone, S.BUILDING: building, S.TIMESTAMP: hour, S.EXPECTED_POWER_W: power}
        for zone, (building, powers) in POWER.items()
        for hour, power in zip(HOURS, powers, strict=False)
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)  # order must not matter


def test_zone_peaks_by_hand(table: pd.DataFrame) -> None:
    zones, _ = peak_hours(table)
    assert list(zones.columns) == [S.ZONE_ID, "rank", S.TIMESTAMP, S.EXPECTED_POWER_W]
    assert zones.to_dict("list") == {
        S.ZONE_ID: ["HQ-F1-Z1"] * 3 + ["HQ-F1-Z2"] * 3 + ["Lab-F1-Z1"] * 2,
        "rank": [1, 2, 3, 1, 2, 3, 1, 2],
        # HQ-F1-Z1: 40 W twice, the earlier hour first; Lab has only two hours
        S.TIMESTAMP: [HOURS[1], HOURS[2], HOURS[3], HOURS[3], HOURS[0], HOURS[2], HOURS[0], HOURS[1]],
        S.EXPECTED_POWER_W: [40.0, 40.0, 25.0, 50.0, 30.0, 20.0, 7.3, 3.0],  # rounded to 0.1 W
    }


def test_building_peaks_sum_their_zones_by_hand(table: pd.DataFrame) -> None:
    """HQ: 12 h 10 + 30 = 40, 13 h 40 + 5 = 45, 14 h 40 + 20 = 60, 15 h 25 + 50.04 = 75.04."""
    _, buildings = peak_hours(table)
    assert list(buildings.columns) == [S.BUILDING, "rank", S.TIMESTAMP, S.EXPECTED_POWER_W]
    assert buildings.to_dict("list") == {
        S.BUILDING: ["HQ"] * 3 + ["Lab"] * 2,
        "rank": [1, 2, 3, 1, 2],
        S.TIMESTAMP: [HOURS[3], HOURS[2], HOURS[1], HOURS[0], HOURS[1]],
        S.EXPECTED_POWER_W: [75.0, 60.0, 45.0, 7.3, 3.0],
    }


def test_top_one_is_each_peak_alone(table: pd.DataFrame) -> None:
    zones, buildings = peak_hours(table, top=1)
    assert zones[[S.ZONE_ID, S.TIMESTAMP]].values.tolist() == [
        ["HQ-F1-Z1", HOURS[1]],
        ["HQ-F1-Z2", HOURS[3]],
        ["Lab-F1-Z1", HOURS[0]],
    ]
    assert buildings[[S.BUILDING, S.TIMESTAMP]].values.tolist() == [["HQ", HOURS[3]], ["Lab", HOURS[0]]]
    assert (zones["rank"] == 1).all() and (buildings["rank"] == 1).all()


def test_zone_peaks_are_the_top_hours_of_the_horizon_with_their_columns() -> None:
    """Every day of this zone peaks at 14:00 local; the later days a little higher, so the top three are the
    three 14:00 hours, the last day first."""
    days = pd.date_range(local("2025-02-10"), periods=3 * 24, freq="h")
    power = np.where(days.hour == 14, 90.0, 10.0) + np.arange(len(days)) * 0.01
    table = pd.DataFrame(
        {S.ZONE_ID: "HQ-F1-Z1", S.BUILDING: "HQ", S.TIMESTAMP: days, S.EXPECTED_POWER_W: power}
    )
    zones, _ = peak_hours(table)
    assert list(zones.columns) == [S.ZONE_ID, "rank", S.TIMESTAMP, S.EXPECTED_POWER_W]
    assert [t.hour for t in zones[S.TIMESTAMP]] == [14, 14, 14]
    assert [t.day for t in zones[S.TIMESTAMP]] == [12, 11, 10]


# --- expected occupancy (issue 16) ------------------------------------------------------------------------


def test_occupancy_peaks_are_the_likeliest_hours_of_each_zone_and_building(fortnight: ForecastResult) -> None:
    table = fortnight.forecasts
    zones, buildings = fortnight.zone_occupancy_peaks, fortnight.building_occupancy_peaks
    assert list(zones.columns) == [S.ZONE_ID, "rank", S.TIMESTAMP, "expected_occupancy"]
    assert list(buildings.columns) == [
        S.BUILDING, "rank", S.TIMESTAMP, "expected_occupancy", "expected_occupied_zones",
    ]  # fmt: skip
    assert (
        zones["expected_occupancy"].between(0, 1).all()
        and buildings["expected_occupancy"].between(0, 1).all()
    )
    assert zones.groupby(S.ZONE_ID)["rank"].apply(list).tolist() == [[1, 2, 3]] * 4
    first = zones[zones["rank"] == 1].set_index(S.ZONE_ID)["expected_occupancy"]
    assert first.to_dict() == table.groupby(S.ZONE_ID)["p_on"].max().round(2).to_dict()
    per_hour = table.groupby([S.BUILDING, S.TIMESTAMP])["p_on"].sum().groupby(level=0).max().round(2)
    assert buildings[buildings["rank"] == 1].set_index(S.BUILDING)["expected_occupied_zones"].to_dict() == (
        per_hour.to_dict()
    )
    assert table["p_on"].between(0, 1).all()


def test_building_occupancy_by_hand() -> None:
    """HQ has two zones: at 12 h 0.9 and 0.5 → 1.4 zones in use expected, 70 %; at 13 h 0.2 and 0.1 →
    0.3, 15 %. Lab's one zone at 12 h: 0.25."""
    table = pd.DataFrame(
        {
            S.ZONE_ID: ["HQ-F1-Z1", "HQ-F1-Z2", "HQ-F1-Z1", "HQ-F1-Z2", "Lab-F1-Z1"],
            S.BUILDING: ["HQ", "HQ", "HQ", "HQ", "Lab"],
            S.TIMESTAMP: [HOURS[0], HOURS[0], HOURS[1], HOURS[1], HOURS[0]],
            "p_on": [0.9, 0.5, 0.2, 0.1, 0.25],
        }
    )
    per_hour = building_occupancy(table)
    assert per_hour.to_dict("list") == {
        S.BUILDING: ["HQ", "HQ", "Lab"],
        S.TIMESTAMP: [HOURS[0], HOURS[1], HOURS[0]],
        "zones": [2, 2, 1],
        "expected_occupied_zones": pytest.approx([1.4, 0.3, 0.25]),
        "expected_occupancy": pytest.approx([0.7, 0.15, 0.25]),
    }
    zones, buildings = occupancy_peaks(table, top=2)
    assert zones[[S.ZONE_ID, "rank", S.TIMESTAMP, "expected_occupancy"]].values.tolist() == [
        ["HQ-F1-Z1", 1, HOURS[0], 0.9], ["HQ-F1-Z1", 2, HOURS[1], 0.2],
        ["HQ-F1-Z2", 1, HOURS[0], 0.5], ["HQ-F1-Z2", 2, HOURS[1], 0.1],
        ["Lab-F1-Z1", 1, HOURS[0], 0.25],
    ]  # fmt: skip
    assert buildings.values.tolist() == [
        ["HQ", 1, HOURS[0], 0.7, 1.4], ["HQ", 2, HOURS[1], 0.15, 0.3], ["Lab", 1, HOURS[0], 0.25, 0.25],
    ]  # fmt: skip


def test_equally_likely_hours_to_the_percent_tie_to_the_earlier() -> None:
    table = pd.DataFrame(
        {
            S.ZONE_ID: "HQ-F1-Z1",
            S.BUILDING: "HQ",
            S.TIMESTAMP: HOURS,
            "p_on": [0.981, 0.984, 0.979, 0.5],  # 0.98, 0.98, 0.98, 0.5 to the percent
        }
    )
    zones, _ = occupancy_peaks(table)
    assert zones[S.TIMESTAMP].tolist() == HOURS[:3]

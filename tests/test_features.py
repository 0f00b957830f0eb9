"""Hourly zone features (slem_ml/models/features.py): hand-checked lags, local calendar, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.coverage import compute_coverage
from slem_ml.config.site import parse_site
from slem_ml.io.reader import validate_frame
from slem_ml.models.features import (
    FORECAST_FEATURES,
    add_features,
    future_hours,
    seasonal_baselines,
    zone_hours,
)

SITE = parse_site(
    {
        "site": {"timezone": "Europe/Berlin", "currency": "EUR", "holidays": {"dates": ["2025-03-19"]}},
        "sampling": {"on_threshold_w": 5, "max_gap_minutes": 60},
        "clients": {"C001": {"name": "Acme", "hours": {"mon-fri": "08:00-18:00"}}},
    }
)


def hourly_readings(start: str, hours: int, power) -> pd.DataFrame:
    """One reading per hour at :00 (UTC) for zone HQ-F1-Z1; ``power(i)`` gives the i-th value [W]."""
    stamps = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": stamps,
            "zone_id": "HQ-F1-Z1",
            "client_id": "C001",
            "power_w": [float(power(i)) for i in range(hours)],
        }
    )


def features_of(raw: pd.DataFrame) -> pd.DataFrame:
    readings = validate_frame(raw, SITE)
    coverage = compute_coverage(readings.frame, SITE)
    return add_features(zone_hours(readings.frame, coverage.is_on), SITE)


def test_lags_and_calendar_by_hand():
    # 3 weeks of hourly readings from Mon 2025-03-03 00:00 UTC (01:00 Berlin); power = hour number i
    feats = features_of(hourly_readings("2025-03-03", 21 * 24, lambda i: i))
    row = feats.iloc[400]  # i = 400: 2025-03-19 16:00 UTC = 17:00 Berlin, a Wednesday and our holiday
    assert row["power_w"] == 400
    assert row["lag_24h_w"] == 376 and row["lag_168h_w"] == 232
    assert row["local_hour"] == 17 and row["weekday"] == 2
    assert row["is_holiday"] and row["off_day"]
    assert not row["off_day_lag_7d"]  # 2025-03-12 was a normal Wednesday
    assert not row["in_contract_hour"]  # the holiday closes C001's window
    assert feats.iloc[400 - 168]["in_contract_hour"]  # 17:00-18:00 on Wed 03-12 lies in 08:00-18:00
    # same hour on the last 4 off days 8+ days before (≤ 03-11): Sat 03-08 and Sun 03-09 → i = 136, 160
    assert row["same_type_median_w"] == pytest.approx(np.median([136, 160]))
    assert feats.iloc[0][["lag_24h_w", "lag_168h_w"]].isna().all()  # nothing before the start


def test_dst_day_has_23_hours_and_no_local_2am():
    feats = features_of(hourly_readings("2025-03-29", 3 * 24, lambda i: 10))
    sunday = feats[feats["local_day"] == (pd.Timestamp("2025-03-30") - pd.Timestamp("1970-01-01")).days]
    assert len(sunday) == 23
    assert 2 not in set(sunday["local_hour"])


def test_forecast_features_never_look_inside_a_week():
    base = hourly_readings("2025-03-03", 28 * 24, lambda i: (i * 37) % 100)
    changed = base.copy()
    last_week = changed.index >= 21 * 24
    changed.loc[last_week, "power_w"] = 999.0
    a, b = features_of(base), features_of(changed)
    cols = [c for c in FORECAST_FEATURES if c not in ("zone_id", "floor", "building")]
    pd.testing.assert_frame_equal(a.loc[last_week, cols], b.loc[last_week, cols])
    assert not np.array_equal(a.loc[last_week, "lag_24h_w"], b.loc[last_week, "lag_24h_w"])


def test_future_rows_take_lags_from_history():
    raw = hourly_readings("2025-03-03", 14 * 24, lambda i: i)
    readings = validate_frame(raw, SITE)
    history = zone_hours(readings.frame, compute_coverage(readings.frame, SITE).is_on)
    start = int(history["hour_ms"].max()) + 3_600_000
    future = add_features(future_hours(history, start, 24), SITE, history=history)
    assert len(future) == 24 and future["power_w"].isna().all()
    assert future["lag_168h_w"].tolist() == [float(i) for i in range(7 * 24, 8 * 24)]
    baselines = seasonal_baselines(future, history)
    assert baselines["seasonal_naive_w"].tolist() == future["lag_168h_w"].tolist()
    # two weeks of history: median of lags 168 and 336 h
    assert baselines["how_median_4w_w"].iloc[0] == pytest.approx(np.median([168, 0]))

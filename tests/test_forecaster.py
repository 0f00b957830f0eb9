"""The zone forecaster and its backtest (slem_ml/models/forecaster.py, backtest.py) on generated data."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.coverage import compute_coverage
from slem_ml.generator.generate import GeneratorConfig, default_site, generate
from slem_ml.io.reader import validate_frame
from slem_ml.models.backtest import backtest, backtest_days_for, choose_strategy, fit_backtested, fold_origins
from slem_ml.models.features import add_features, zone_hours
from slem_ml.models.forecaster import ZoneForecaster

SITE = default_site()


@pytest.fixture(scope="module")
def hours() -> pd.DataFrame:
    data = generate(GeneratorConfig(days=42, zones=16, step_minutes=15, seed=5, faults=False))
    readings = validate_frame(data.readings, SITE)
    return add_features(zone_hours(readings.frame, compute_coverage(readings.frame, SITE).is_on), SITE)


@pytest.fixture(scope="module")
def fitted(hours: pd.DataFrame) -> ZoneForecaster:
    return ZoneForecaster(n_estimators=60).fit(hours)


def test_predictions_are_well_formed(fitted: ZoneForecaster, hours: pd.DataFrame):
    out = fitted.predict(hours)
    assert len(out) == len(hours) and out.index.equals(hours.index)
    assert (out["expected_power_w"] >= 0).all()
    assert ((out["p_on"] >= 0) & (out["p_on"] <= 1)).all()
    assert (out["lower_w"] <= out["expected_power_w"]).all() and (
        out["expected_power_w"] <= out["upper_w"]
    ).all()
    assert out["known_zone"].all()


def test_joblib_round_trip_gives_identical_predictions(fitted: ZoneForecaster, hours: pd.DataFrame):
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    pd.testing.assert_frame_equal(loaded.predict(hours), fitted.predict(hours))


def test_unseen_zone_is_forecast_not_refused(fitted: ZoneForecaster, hours: pd.DataFrame):
    zone = hours["zone_id"].iloc[0]
    stranger = hours[hours["zone_id"] == zone].assign(zone_id="HQ-F9-Z99")
    out = fitted.predict(stranger)
    assert not out["known_zone"].any()
    assert np.isfinite(out[["expected_power_w", "p_on", "lower_w", "upper_w"]].to_numpy()).all()


def test_calibration_widens_the_interval_to_its_stated_coverage(hours: pd.DataFrame):
    cut = int(hours["hour_ms"].quantile(0.75))
    model = ZoneForecaster(n_estimators=60).fit(hours[hours["hour_ms"] < cut])
    later = hours[(hours["hour_ms"] >= cut) & hours["power_w"].notna()]
    raw = model.predict(later)
    model.calibrate(raw, later["power_w"].to_numpy())
    widened = model.predict(later)
    assert model.margin_ >= 0
    inside = (widened["lower_w"] <= later["power_w"]) & (later["power_w"] <= widened["upper_w"])
    assert inside.mean() >= 0.8  # in-sample for the margin: at least the stated share


def test_unknown_strategy_is_refused(hours: pd.DataFrame):
    with pytest.raises(ValueError, match="strategy"):
        ZoneForecaster(strategy="magic").fit(hours)


def test_backtest_origins_are_local_midnights_a_week_apart(hours: pd.DataFrame):
    origins = fold_origins(hours)
    assert len(origins) == 2 and origins[1] - origins[0] == 7 * 86_400_000
    local = pd.to_datetime(origins, unit="ms", utc=True).tz_convert(SITE.site.timezone)
    assert (local.hour == 0).all()


def test_backtest_beats_seasonal_naive_and_compares_strategies(hours: pd.DataFrame):
    results = backtest(hours, {"strategy": "per_zone", "per_zone_min_days": 21, "n_estimators": 60})
    assert [r.strategy for r in results] == ["per_zone", "global"]
    best, reason = choose_strategy(results)
    assert best.strategy in reason and "WAPE" in reason
    metrics = results[1].metrics
    assert metrics["model_wape"] < 0.9 * metrics["seasonal_naive_wape"]
    assert 0.0 <= metrics["brier"] < 0.25
    assert set(results[1].forecasts["fold"]) == {0, 1}
    # the test weeks never reach into the training hours of their own fold
    origins = fold_origins(hours)
    first_fold = results[1].forecasts[results[1].forecasts["fold"] == 0]
    assert first_fold["hour_start"].min() >= pd.Timestamp(origins[0], unit="ms", tz="UTC")


def test_backtest_learns_for_each_fold_from_the_other_and_reports_both_states(hours: pd.DataFrame):
    """Issue 16: the forecasts carry the model's and the profile's points and the classifier's own p_on; the
    metrics the coverage of lit and dark hours and the Brier score with and without calibration."""
    result = backtest(hours, {"n_estimators": 40})[0]
    f = result.forecasts
    assert {"model_w", "profile_w", "p_on_raw", "lower_raw_w", "upper_raw_w"} <= set(f.columns)
    m = result.metrics
    for key in ("coverage_lit", "coverage_dark", "brier_raw", "profile_wape", "lightgbm_wape"):
        assert 0.0 <= m[key] <= 1.5, key
    assert m["on_calibrated"] in (0.0, 1.0)
    if m["on_calibrated"] == 0.0:
        assert (f["p_on"] == f["p_on_raw"]).all()
    # each fold's point is its zone's mix of model and profile, as its model learnt it from the other fold
    mix = np.where(f["profile_w"].isna(), f["model_w"], (f["model_w"] + f["profile_w"]) / 2)
    chosen = np.isclose(f["expected_power_w"], f["model_w"]) | np.isclose(
        f["expected_power_w"], f["profile_w"]
    )
    assert (np.isclose(f["expected_power_w"], mix) | chosen).all()
    model = fit_backtested(hours, {"n_estimators": 40}, result)
    assert set(model.margins_) == {"lit", "dark"} and set(model.profile_weights_) == set(hours["zone_id"])


def test_backtest_length_grows_for_a_site_of_few_zones():
    """5,000 zone-hours at least: 1 zone → 30 weeks wanted, 8 at most, and the first fold keeps 21 days
    of history; 100 zones → the 2 weeks every backtest has."""

    def frame(zones: int, days: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "zone_id": np.repeat([f"Z{i}" for i in range(zones)], days),
                "local_day": np.tile(np.arange(days), zones),
            }
        )

    assert backtest_days_for(frame(1, 400)) == 56
    assert backtest_days_for(frame(1, 63)) == 42  # (63 − 21) / 7 = 6 weeks
    assert backtest_days_for(frame(1, 30)) == 14
    assert backtest_days_for(frame(10, 400)) == 21  # 5,000 / 1,680 → 3 weeks
    assert backtest_days_for(frame(100, 400)) == 14

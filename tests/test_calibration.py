"""What the forecaster learns from out-of-sample hours (slem_ml/models/calibration.py, ZoneForecaster.finish)
and the reliability table (slem_ml/models/metrics.py), on hand-made and synthetic cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.models.calibration import isotonic_map, profile_weights, state_margins
from slem_ml.models.forecaster import ZoneForecaster
from slem_ml.models.metrics import reliability


def learnt(**state: object) -> ZoneForecaster:
    """A forecaster with only the learnt state :meth:`ZoneForecaster.finish` reads (no LightGBM needed)."""
    model = ZoneForecaster()
    model.zone_scale_w_ = {"A": 100.0, "B": 100.0, "C": 100.0}
    model.scale_w_, model.margin_, model.margins_, model.on_map_ = 100.0, 0.0, {}, None
    model.profile_weights_, model.profile_default_ = {}, 0.5
    for name, value in state.items():
        setattr(model, name, value)
    return model


def raw(zone: list[str], model_w: list[float], profile_w: list[float], p_on: list[float]) -> pd.DataFrame:
    n = len(zone)
    return pd.DataFrame(
        {
            "zone_id": zone,
            "hour_start": pd.date_range("2025-03-03", periods=n, freq="h", tz="UTC"),
            "model_w": model_w,
            "profile_w": profile_w,
            "p_on_raw": p_on,
            "lower_raw_w": [10.0] * n,
            "upper_raw_w": [60.0] * n,
            "known_zone": [True] * n,
        }
    )


# --- the profile's weight per zone -------------------------------------------------------------------


def backtested() -> pd.DataFrame:
    """Three zones, four hours each. A: the profile exact, the model 20 W off every hour → the profile
    alone (error 0 against the mix's 40). B: the model exact, the profile 20 W off → the model alone.
    C: both 10 W off, on either side → their mean is exact (error 0 against 40 each) → the mix."""
    y = [50.0, 0.0, 50.0, 0.0]
    return pd.DataFrame(
        {
            "zone_id": ["A"] * 4 + ["B"] * 4 + ["C"] * 4,
            "power_w": y * 3,
            "model_w": [70.0, 20.0, 30.0, 20.0] + y + [60.0, 10.0, 40.0, 10.0],
            "profile_w": y + [70.0, 20.0, 30.0, 20.0] + [40.0, 0.0, 60.0, 0.0],
        }
    )


def test_a_zone_whose_profile_beats_the_model_uses_the_profile() -> None:
    weights = profile_weights(backtested(), model="model_w", profile="profile_w")
    assert weights == {"A": 1.0, "B": 0.0, "C": 0.5}
    model = learnt().choose_profile(backtested(), backtested()["power_w"].to_numpy())
    out = model.finish(raw(["A", "B", "C", "D"], [80.0] * 4, [40.0] * 4, [0.9] * 4))
    # A the profile, B the model, C and a zone the backtest never saw (D) the even mix
    assert out["expected_power_w"].tolist() == [40.0, 80.0, 60.0, 60.0]


def test_a_small_advantage_keeps_the_mix() -> None:
    """y = 100 W twice; the model 100 and 60 W (error 40), the profile 134 and 100 W (34); their mean
    117 and 80 W (37). The profile alone is 8 % better than the mix, less than the 10 % it needs: the mix
    stays. With 130 W instead of 134 the profile (30) is 14 % better than the mix (35): it forecasts."""
    frame = pd.DataFrame(
        {
            "zone_id": ["A"] * 2,
            "power_w": [100.0, 100.0],
            "model_w": [100.0, 60.0],
            "profile_w": [134.0, 100.0],
        }
    )
    assert profile_weights(frame, model="model_w", profile="profile_w") == {"A": 0.5}
    frame["profile_w"] = [130.0, 100.0]
    assert profile_weights(frame, model="model_w", profile="profile_w") == {"A": 1.0}


def test_without_a_profile_the_model_forecasts() -> None:
    out = learnt(profile_weights_={"A": 1.0}).finish(
        raw(["A", "B"], [80.0, 80.0], [np.nan, np.nan], [0.9, 0.9])
    )
    assert out["expected_power_w"].tolist() == [80.0, 80.0]


def test_a_forecaster_pickled_before_the_profile_forecasts_with_its_model() -> None:
    model = learnt()
    del model.profile_weights_, model.profile_default_, model.margins_, model.on_map_
    out = model.finish(raw(["A"], [80.0], [40.0], [0.9]))
    assert out["expected_power_w"].tolist() == [80.0] and out["p_on"].tolist() == [0.9]


# --- the band's margins per state ----------------------------------------------------------------------


def test_margins_apply_by_predicted_state_in_zone_scale() -> None:
    """Scale 100 W; raw band [10, 60] W. Predicted lit (p_on 0.9): margins (0.1, 0.2) → [0, 80] W;
    predicted dark (0.2): (−0.05, 0.5) → [15, 110] W — then widened to hold the point (40 W)."""
    model = learnt(margins_={"lit": (0.1, 0.2), "dark": (-0.05, 0.5)}, profile_weights_={"A": 0.0})
    out = model.finish(raw(["A", "A"], [40.0, 12.0], [40.0, 12.0], [0.9, 0.2]))
    assert out["lower_w"].tolist() == pytest.approx([0.0, 12.0])  # 10 − 10 = 0; min(15, 12) = 12
    assert out["upper_w"].tolist() == pytest.approx([80.0, 110.0])
    assert out["lower_raw_w"].tolist() == [10.0, 10.0] and out["upper_raw_w"].tolist() == [60.0, 60.0]


def synthetic_zone(seed: int, hours: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A zone lit with probability p (drawn per hour, uniform in [0, 1]): lit it draws 1000 ± 150 W, dark
    5 ± 2 W. Its raw band is a poor one: [900, 1100] W where p ≥ 0.5, [0, 10] W elsewhere (covering about
    half the lit hours and a fifth of the dark hours predicted lit)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, hours)
    lit = rng.uniform(0.0, 1.0, hours) < p
    y = np.where(lit, rng.normal(1000.0, 150.0, hours), np.abs(rng.normal(5.0, 2.0, hours)))
    frame = pd.DataFrame(
        {
            "zone_id": "A",
            "power_w": y,
            "lit": lit,
            "lower_raw_w": np.where(p >= 0.5, 900.0, 0.0),
            "upper_raw_w": np.where(p >= 0.5, 1100.0, 10.0),
        }
    )
    return frame, p


def covered(
    frame: pd.DataFrame, p: np.ndarray, margins: dict[str, tuple[float, float]]
) -> tuple[float, float]:
    """Coverage of the lit and of the dark hours by the band widened with ``margins`` (scale 500 W)."""
    lit_predicted = p >= 0.5
    low = np.where(lit_predicted, margins["lit"][0], margins["dark"][0]) * 500.0
    high = np.where(lit_predicted, margins["lit"][1], margins["dark"][1]) * 500.0
    y = frame["power_w"].to_numpy()
    inside = (y >= frame["lower_raw_w"].to_numpy() - low) & (y <= frame["upper_raw_w"].to_numpy() + high)
    lit = frame["lit"].to_numpy()
    return float(inside[lit].mean()), float(inside[~lit].mean())


def test_band_covers_both_states_on_hours_it_was_not_calibrated_on() -> None:
    calibration, p_cal = synthetic_zone(1, 4000)
    held_out, p_test = synthetic_zone(2, 4000)
    raw_lit, raw_dark = covered(held_out, p_test, {"lit": (0.0, 0.0), "dark": (0.0, 0.0)})
    assert raw_lit < 0.6 and raw_dark < 0.75  # the raw band misses both
    margins = state_margins(calibration, np.full(4000, 500.0), p_cal, 0.8)
    lit, dark = covered(held_out, p_test, margins)
    assert 0.75 <= lit <= 0.85 and 0.75 <= dark <= 0.85, (lit, dark, margins)
    in_lit, in_dark = covered(calibration, p_cal, margins)
    assert in_lit >= 0.8 and in_dark >= 0.8  # what it was chosen to hold, where it was chosen


def test_one_state_only_is_one_constraint() -> None:
    frame, p = synthetic_zone(3, 500)
    frame["lit"] = True
    margins = state_margins(frame, np.full(500, 500.0), p, 0.8)
    lit_predicted = p >= 0.5
    low = np.where(lit_predicted, margins["lit"][0], margins["dark"][0]) * 500.0
    high = np.where(lit_predicted, margins["lit"][1], margins["dark"][1]) * 500.0
    y = frame["power_w"].to_numpy()
    inside = (y >= frame["lower_raw_w"] - low) & (y <= frame["upper_raw_w"] + high)
    assert inside.sum() >= np.ceil(501 * 0.8)


# --- the on-probability ---------------------------------------------------------------------------------


def test_isotonic_map_turns_an_overconfident_probability_into_the_observed_share() -> None:
    """The classifier says 0.9 where the zone was lit half the time, and 0.1 where it never was."""
    p = np.array([0.1] * 10 + [0.9] * 10)
    outcome = np.array([0] * 10 + [1, 0] * 5)
    x, y = isotonic_map(p, outcome)
    assert np.interp([0.1, 0.9], x, y).tolist() == [0.0, 0.5]
    model = learnt(on_map_=(x, y))
    assert model.finish(raw(["A"], [1.0], [1.0], [0.9]))["p_on"].tolist() == [0.5]


def test_reliability_table_on_a_hand_made_case() -> None:
    p = np.array([0.05, 0.05, 0.15, 0.95, 0.95, 1.0, np.nan])
    outcome = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    table = reliability(p, outcome)
    assert table["bin_low"].tolist() == [0.0, 0.1, 0.9]
    assert table["bin_high"].tolist() == [0.1, 0.2, 1.0]
    assert table["hours"].tolist() == [2, 1, 3]  # p = 1.0 belongs to the last bin; NaN to none
    assert table["mean_p"].tolist() == pytest.approx([0.05, 0.15, 2.9 / 3])
    assert table["observed"].tolist() == pytest.approx([0.5, 0.0, 2 / 3])

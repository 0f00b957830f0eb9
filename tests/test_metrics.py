"""Forecast metrics on cases small enough to check on paper."""

import numpy as np
import pytest

from slem_ml.models.metrics import brier, coverage, cv_rmse, mae, nmbe, per_group_wape, wape

Y = np.array([10.0, 0.0, 30.0, np.nan])
F = np.array([12.0, 1.0, 27.0, 5.0])  # the NaN actual is left out


def test_wape_mae_nmbe_by_hand():
    # |2| + |1| + |-3| = 6 over Σy = 40
    assert wape(Y, F) == pytest.approx(6 / 40)
    assert mae(Y, F) == pytest.approx(6 / 3)
    # (2 + 1 - 3) / 40 = 0: over- and under-forecasts cancel
    assert nmbe(Y, F) == pytest.approx(0.0)


def test_cv_rmse_by_hand():
    # sqrt((4 + 1 + 9) / 3) / (40 / 3)
    assert cv_rmse(Y, F) == pytest.approx(np.sqrt(14 / 3) / (40 / 3))


def test_zero_actuals_give_nan_not_a_division_error():
    assert np.isnan(wape(np.zeros(3), np.ones(3)))
    assert np.isnan(cv_rmse(np.zeros(3), np.ones(3)))


def test_brier_and_coverage_by_hand():
    assert brier(np.array([1, 0, 1]), np.array([0.9, 0.2, 0.5])) == pytest.approx((0.01 + 0.04 + 0.25) / 3)
    lower, upper = np.array([9.0, 0.0, 31.0, 0.0]), np.array([11.0, 0.5, 40.0, 9.0])
    assert coverage(Y, lower, upper) == pytest.approx(2 / 3)  # 30 is below 31


def test_per_group_wape():
    import pandas as pd

    frame = pd.DataFrame({"z": ["a", "a", "b"], "y": [1.0, 3.0, 0.0], "f": [2.0, 3.0, 1.0]})
    out = per_group_wape(frame, "z", "y", "f")
    assert out["a"] == pytest.approx(0.25)
    assert np.isnan(out["b"])

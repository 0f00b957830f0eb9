"""Applying trained models to readings (slem_ml/models/inference.py).

``billed_power_w`` (with ``billing.invoices.billed_power_mw``) and ``infer_cleaning`` are checked on
hand-made frames. ``expected_power`` needs a forecaster: a small one is fitted on two generated, fault-free
weeks of 3 zones at 30 minutes (about 2 s).
Its forecasts are whatever the model says; what is checked is that each reading gets the forecast of its
own zone and UTC hour (SPEC §5: one forecast per zone and hour), looked up independently here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.invoices import billed_power_mw
from slem_ml.generator.generate import GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.features import add_features, zone_hours
from slem_ml.models.forecaster import ZoneForecaster
from slem_ml.models.inference import billed_power_w, expected_power, infer_cleaning

SITE = default_site()


def is_on(frame: pd.DataFrame) -> np.ndarray:
    """SPEC §3.3: a reading is on at or above the site's threshold."""
    return frame[S.POWER_W].to_numpy(dtype=float) >= SITE.sampling.on_threshold_w


@pytest.fixture(scope="module")
def readings() -> pd.DataFrame:
    data = generate(GeneratorConfig(days=14, zones=3, step_minutes=30, seed=11, faults=False))
    return data.readings


@pytest.fixture(scope="module")
def frame(readings: pd.DataFrame) -> pd.DataFrame:
    return validate_frame(readings, SITE).frame


@pytest.fixture(scope="module")
def forecaster(frame: pd.DataFrame) -> ZoneForecaster:
    hours = add_features(zone_hours(frame, is_on(frame)), SITE)
    return ZoneForecaster(n_estimators=20, n_jobs=1).fit(hours)


def forecast_of_each_reading(frame: pd.DataFrame, forecaster: ZoneForecaster) -> np.ndarray:
    """The point forecast of each reading's (zone, UTC hour), found by a plain merge on the hour's start."""
    hours = add_features(zone_hours(frame, is_on(frame)), SITE)
    table = pd.DataFrame(
        {
            "zone": hours[S.ZONE_ID].astype(str).to_numpy(),
            "hour": hours["hour_start"].to_numpy(),
            "point": forecaster.predict_point(hours),
        }
    )
    keys = pd.DataFrame(
        {
            "zone": frame[S.ZONE_ID].astype(str).to_numpy(),
            "hour": frame[S.TIMESTAMP].dt.floor("h").to_numpy(),
        }
    )
    return keys.merge(table, how="left", on=["zone", "hour"], validate="many_to_one")["point"].to_numpy()


# --- expected_power -------------------------------------------------------------------------------


def test_each_reading_gets_the_forecast_of_its_zone_and_hour(
    frame: pd.DataFrame, forecaster: ZoneForecaster
) -> None:
    out, unknown = expected_power(frame, is_on(frame), SITE, forecaster)
    assert unknown == ()
    assert len(out) == len(frame)
    np.testing.assert_array_equal(out, forecast_of_each_reading(frame, forecaster))
    assert np.isfinite(out).all() and (out >= 0).all()
    # two readings of a zone in one hour (at :00 and :30) share the value
    same_hour = pd.DataFrame({"zone": frame[S.ZONE_ID].astype(str), "hour": frame[S.TIMESTAMP].dt.floor("h")})
    assert (pd.Series(out).groupby([same_hour["zone"], same_hour["hour"]]).nunique() == 1).all()
    assert same_hour.groupby(["zone", "hour"]).size().eq(2).all()


def test_values_follow_the_rows_whatever_their_order(frame: pd.DataFrame, forecaster: ZoneForecaster) -> None:
    out, _ = expected_power(frame, is_on(frame), SITE, forecaster)
    order = np.random.default_rng(0).permutation(len(frame))
    shuffled = frame.iloc[order].reset_index(drop=True)
    again, _ = expected_power(shuffled, is_on(shuffled), SITE, forecaster)
    np.testing.assert_array_equal(again, out[order])


def test_a_frame_whose_zone_column_has_unused_categories(
    frame: pd.DataFrame, forecaster: ZoneForecaster
) -> None:
    """One zone's readings, its categorical still listing the other zones (as after filtering the reader's
    frame)."""
    zone = frame[S.ZONE_ID].cat.categories[-1]
    one = frame[frame[S.ZONE_ID] == zone].reset_index(drop=True)
    assert len(one[S.ZONE_ID].cat.categories) == 3
    out, unknown = expected_power(one, is_on(one), SITE, forecaster)
    assert unknown == ()
    np.testing.assert_array_equal(out, forecast_of_each_reading(one, forecaster))


def test_a_zone_the_model_never_saw_is_forecast_and_named(
    readings: pd.DataFrame, forecaster: ZoneForecaster
) -> None:
    first = readings[S.ZONE_ID].astype(str).min()
    building = first.rsplit("-F", 1)[0]
    stranger = f"{building}-F9-Z9"
    renamed = readings.assign(**{S.ZONE_ID: readings[S.ZONE_ID].astype(str).replace(first, stranger)})
    moved = renamed[S.ZONE_ID] == stranger
    renamed.loc[moved, S.FLOOR] = 9
    renamed.loc[moved, S.ZONE] = 9
    frame = validate_frame(renamed, SITE).frame
    out, unknown = expected_power(frame, is_on(frame), SITE, forecaster)
    assert unknown == (stranger,)
    values = out[frame[S.ZONE_ID].astype(str).to_numpy() == stranger]
    assert len(values) == moved.sum() and np.isfinite(values).all() and (values >= 0).all()


def test_no_readings_no_forecasts(frame: pd.DataFrame, forecaster: ZoneForecaster) -> None:
    out, unknown = expected_power(frame.iloc[:0], np.zeros(0, dtype=bool), SITE, forecaster)
    assert out.shape == (0,) and unknown == ()


# --- billed_power_w -------------------------------------------------------------------------------


def test_billed_power_is_the_measured_power_unless_a_spike_has_a_reference() -> None:
    nan = float("nan")
    frame = pd.DataFrame({S.POWER_W: [12.3456789, 40.0, 80.0, 80.0, 30.0, 0.0625, 0.1875]})
    is_spike = np.array([False, False, True, True, True, False, False])
    reference_w = np.array([50.0, 5.0, 20.0, nan, 50.0, nan, nan])
    billed_w = billed_power_w(frame, is_spike, reference_w)
    assert np.isnan(billed_w[[0, 1, 3, 5, 6]]).all()  # billed as measured
    out = billed_power_mw(frame[S.POWER_W].to_numpy(), billed_w)
    assert out.dtype == np.int64
    assert out.tolist() == [
        12346,  # floor(12345.6789 + 0.5)
        40000,  # not a spike: the reference does not matter
        20000,  # a spike: billed at its expected lit power
        80000,  # a spike without a reference: as measured
        30000,  # a spike below its reference: the adjustment never bills more than was measured
        63,  # 62.5 mW: half up
        188,  # 187.5 mW: half up
    ]


def test_billed_power_accepts_a_spike_mask_of_integers() -> None:
    frame = pd.DataFrame({S.POWER_W: [80.0, 80.0]})
    out = billed_power_mw(
        frame[S.POWER_W].to_numpy(), billed_power_w(frame, np.array([1, 0]), np.array([20.0, 20.0]))
    )
    assert out.tolist() == [20000, 80000]


# --- infer_cleaning -------------------------------------------------------------------------------


class StubClassifier:
    """Says "cleaning" for the rows it is told to, and remembers what it was asked."""

    def __init__(self, flags: list[int]) -> None:
        self.flags = flags
        self.calls: list[tuple[pd.DataFrame, object]] = []

    def predict_cleaning(self, frame: pd.DataFrame, site: object) -> list[int]:
        self.calls.append((frame, site))
        return self.flags


def test_cleaning_flag_is_the_classifiers_as_booleans() -> None:
    frame = pd.DataFrame(
        {
            S.ZONE_ID: ["HQ-F1-Z1", "HQ-F1-Z1", "HQ-F1-Z2"],
            S.POWER_W: [10.0, 20.0, 30.0],
            S.CLEANING_STAFF: [False, True, False],
        }
    )
    stub = StubClassifier([1, 0, 1])
    out = infer_cleaning(frame, SITE, stub)
    assert out[S.CLEANING_STAFF].tolist() == [True, False, True]
    assert out[S.CLEANING_STAFF].dtype == bool
    pd.testing.assert_frame_equal(out.drop(columns=S.CLEANING_STAFF), frame.drop(columns=S.CLEANING_STAFF))
    assert frame[S.CLEANING_STAFF].tolist() == [False, True, False]  # the input is not changed
    assert len(stub.calls) == 1 and stub.calls[0][0] is frame and stub.calls[0][1] is SITE


def test_cleaning_flag_is_added_when_the_input_had_none() -> None:
    frame = pd.DataFrame({S.ZONE_ID: ["HQ-F1-Z1", "HQ-F1-Z1"], S.POWER_W: [10.0, 0.0]})
    out = infer_cleaning(frame, SITE, StubClassifier([0, 1]))
    assert list(out.columns) == [S.ZONE_ID, S.POWER_W, S.CLEANING_STAFF]
    assert out[S.CLEANING_STAFF].tolist() == [False, True]

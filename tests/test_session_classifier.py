"""The session classifier (SPEC §4, §5): cleaning crew or tenant overtime where the flag is missing.

Hand-made cases use the shipped sample site (Europe/Berlin; C001 contracted Mon–Fri 08:00–18:00; on at
≥ 5 W; a reading stands for at most 60 minutes). 2025-02-12 is a Wednesday. Readings every 15 minutes
from 06:00 to 23:45; a zone at 1 W is dark.

The model is fitted once on generated data whose flag is true (seed 1) and judged on another seed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from slem_ml.billing.coverage import compute_coverage
from slem_ml.generator.generate import GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.segments import FEATURES, after_hours_segments
from slem_ml.models.session_classifier import (
    SessionClassifier,
    cleaning_match_scores,
    rule_cleaning,
)

SITE = default_site()
DAY = "2025-02-12"  # a Wednesday
TIMES = pd.date_range(f"{DAY} 06:00", f"{DAY} 23:45", freq="15min", tz="Europe/Berlin")


def _zone(
    zone_id: str, spans: list[tuple[str, str, float]], cleaning: tuple[tuple[str, str], ...] = ()
) -> pd.DataFrame:
    """One zone of C001 on 2025-02-12: ``(from, to, W)`` lit spans (1 W elsewhere) and crew spans."""
    clock = TIMES.strftime("%H:%M")
    power = np.ones(len(TIMES))
    for begin, end, watts in spans:
        power[(clock >= begin) & (clock < end)] = watts
    crew = np.zeros(len(TIMES), dtype=bool)
    for begin, end in cleaning:
        crew |= (clock >= begin) & (clock < end)
    return pd.DataFrame(
        {
            S.TIMESTAMP: TIMES,
            S.ZONE_ID: zone_id,
            S.CLIENT_ID: "C001",
            S.POWER_W: power,
            S.CLEANING_STAFF: crew,
        }
    )


def _readings(*zones: pd.DataFrame) -> pd.DataFrame:
    return validate_frame(pd.concat(zones, ignore_index=True), SITE).frame


def _at(frame: pd.DataFrame, zone_id: str, begin: str, end: str) -> np.ndarray:
    """Rows of ``zone_id`` with local time in [begin, end)."""
    clock = frame[S.TIMESTAMP].dt.tz_convert("Europe/Berlin").dt.strftime("%H:%M")
    return ((frame[S.ZONE_ID] == zone_id) & (clock >= begin) & (clock < end)).to_numpy()


# A tenant works on 18:00–19:30 at half light in Z1; at 21:00 a crew lights Z1 fully, then Z2 at 21:45.
WALK = _readings(
    _zone("HQ-F1-Z1", [("08:00", "18:00", 100.0), ("18:00", "19:30", 50.0), ("21:00", "21:45", 100.0)]),
    _zone("HQ-F1-Z2", [("08:00", "18:00", 100.0), ("21:45", "22:30", 100.0)]),
)


def _generated(seed: int, fmt: Literal["periodic", "legacy"] = "periodic") -> pd.DataFrame:
    config = GeneratorConfig(days=28, zones=40, step_minutes=15, seed=seed, fmt=fmt)
    return validate_frame(generate(config).readings, SITE).frame


@pytest.fixture(scope="module")
def model() -> SessionClassifier:
    return SessionClassifier().fit(_generated(1), SITE)


@pytest.fixture(scope="module")
def unseen() -> pd.DataFrame:
    return _generated(2)


def _blind(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{S.CLEANING_STAFF: False})


# --- segments and their features, by hand -------------------------------------------------------------


def test_segments_of_the_walk_worked_out_on_paper() -> None:
    table = after_hours_segments(WALK, SITE).table
    rows = {(r[S.ZONE_ID], r["start"].strftime("%H:%M")): r for _, r in table.iterrows()}
    assert list(rows) == [("HQ-F1-Z1", "18:00"), ("HQ-F1-Z1", "21:00"), ("HQ-F1-Z2", "21:45")]

    tenant = rows["HQ-F1-Z1", "18:00"]
    assert tenant["readings"] == 6  # 18:00 … 19:15
    assert tenant["duration_h"] == 1.5
    assert tenant["level"] == pytest.approx(0.5)  # 50 W against 100 W in contracted hours
    assert tenant["before_kind"] == 1 and tenant["level_before"] == pytest.approx(
        1.0
    )  # carries on from the day
    assert tenant["after_kind"] == 0 and np.isnan(tenant["level_after"])
    assert tenant["since_close_h"] == 0.0
    assert tenant["until_open_h"] == 12.5  # 19:30 → Thursday 08:00
    assert tenant["open_day"] and tenant["weekday"] == 2 and tenant["start_hour"] == 18.0

    crew_1 = rows["HQ-F1-Z1", "21:00"]
    assert crew_1["level"] == pytest.approx(1.0) and crew_1["before_kind"] == 0
    assert crew_1["since_close_h"] == 3.0 and crew_1["duration_h"] == 0.75
    assert crew_1["handover_after_h"] == 0.0  # Z2 lights up as Z1 goes dark
    assert crew_1["handover_before_h"] == -1.5  # nearest end elsewhere: Z2 at 22:30

    crew_2 = rows["HQ-F1-Z2", "21:45"]
    assert crew_2["handover_before_h"] == 0.0  # Z1 went dark at 21:45
    assert crew_2["handover_after_h"] == -1.5  # nearest start elsewhere: Z1 at 21:00
    assert crew_2["lit_at_start"] == 0  # Z1's crew segment ends exactly then
    assert list(table.columns[-len(FEATURES) :]) == list(FEATURES)


def test_a_power_step_cuts_a_run_and_a_spike_does_not() -> None:
    frame = _readings(
        _zone(
            "HQ-F1-Z1",
            [
                ("08:00", "18:00", 100.0),
                ("18:00", "19:00", 50.0),
                ("19:00", "20:00", 100.0),
                ("19:30", "19:45", 400.0),
            ],
        )
    )
    table = after_hours_segments(frame, SITE).table
    assert table["start"].dt.strftime("%H:%M").tolist() == ["18:00", "19:00"]
    assert table["readings"].tolist() == [4, 4]
    assert table["level"].tolist() == pytest.approx([0.5, 1.0])  # the 400 W spike is filtered out
    assert table["before_kind"].tolist() == [1, 2]


# --- the fitted model ---------------------------------------------------------------------------------


def test_tenant_after_closing_is_overtime_and_the_late_walk_is_cleaning(model: SessionClassifier) -> None:
    predicted = model.predict_cleaning(_blind(WALK), SITE)
    expected = _at(WALK, "HQ-F1-Z1", "21:00", "21:45") | _at(WALK, "HQ-F1-Z2", "21:45", "22:30")
    assert predicted.tolist() == expected.tolist()


def test_a_crew_right_after_the_tenant_in_the_same_zone(model: SessionClassifier) -> None:
    frame = _readings(
        _zone("HQ-F1-Z1", [("08:00", "18:00", 100.0), ("18:00", "19:00", 50.0), ("19:00", "19:45", 100.0)])
    )
    assert (
        model.predict_cleaning(_blind(frame), SITE).tolist()
        == _at(frame, "HQ-F1-Z1", "19:00", "19:45").tolist()
    )


@pytest.mark.parametrize("fmt", ["periodic", "legacy"])
def test_cleaning_inference_f1_on_an_unseen_seed(fmt: Literal["periodic", "legacy"]) -> None:
    fitted = SessionClassifier().fit(_generated(1, fmt), SITE)
    truth = _generated(2, fmt)
    scores = cleaning_match_scores(truth, fitted.predict_cleaning(_blind(truth), SITE), SITE)
    assert scores["true_sessions"] > 300
    assert scores["session_f1"] >= 0.9
    assert scores["reading_f1"] >= 0.9
    baseline = cleaning_match_scores(truth, rule_cleaning(_blind(truth), SITE), SITE)
    assert scores["reading_f1"] > baseline["reading_f1"]


def test_saved_and_loaded_model_predicts_the_same(
    model: SessionClassifier, unseen: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "session_classifier.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    blind = _blind(unseen)
    assert np.array_equal(loaded.predict_cleaning(blind, SITE), model.predict_cleaning(blind, SITE))
    pd.testing.assert_frame_equal(loaded.predict_segments(blind, SITE), model.predict_segments(blind, SITE))


def test_no_after_hours_light_means_no_cleaning(model: SessionClassifier) -> None:
    frame = _readings(_zone("HQ-F1-Z1", [("08:00", "18:00", 100.0)]), _zone("HQ-F1-Z2", []))
    assert len(after_hours_segments(frame, SITE).table) == 0
    assert list(model.predict_segments(frame, SITE).columns[4:-2]) == list(FEATURES)
    predicted = model.predict_cleaning(frame, SITE)
    assert predicted.dtype == bool and predicted.shape == (len(frame),) and not predicted.any()


def test_only_lit_after_hours_readings_can_be_cleaning(
    model: SessionClassifier, unseen: pd.DataFrame
) -> None:
    coverage = compute_coverage(unseen, SITE)
    after_hours = coverage.is_on & ~coverage.in_contract
    predicted = model.predict_cleaning(_blind(unseen), SITE)
    assert predicted.any() and not (predicted & ~after_hours).any()
    # calling every segment cleaning marks exactly the lit after-hours readings
    everything = copy.copy(model)
    everything.threshold, everything.max_cleaning_hours = 0.0, np.inf
    assert np.array_equal(everything.predict_cleaning(_blind(unseen), SITE), after_hours)


def test_predicting_before_fitting_says_so() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        SessionClassifier().predict_cleaning(WALK, SITE)


def test_fit_needs_both_kinds_of_session() -> None:
    with pytest.raises(ValueError, match="both cleaning crews and tenants.*0 cleaning and 1 tenant"):
        SessionClassifier().fit(_readings(_zone("HQ-F1-Z1", [("08:00", "19:00", 100.0)])), SITE)


# --- the session-level score -------------------------------------------------------------------------


def _walk_scores(predicted: np.ndarray) -> dict[str, float]:
    truth = _readings(
        _zone("HQ-F1-Z1", [("08:00", "18:00", 100.0), ("21:00", "21:45", 100.0)], (("21:00", "21:45"),))
    )
    return cleaning_match_scores(truth, predicted, SITE)


def test_a_session_is_found_when_half_of_it_is_covered() -> None:
    frame = _readings(_zone("HQ-F1-Z1", [("08:00", "18:00", 100.0), ("21:00", "21:45", 100.0)]))
    whole = _walk_scores(_at(frame, "HQ-F1-Z1", "21:00", "21:45"))
    assert whole["session_f1"] == 1.0 and whole["reading_f1"] == 1.0 and whole["true_sessions"] == 1
    two_thirds = _walk_scores(_at(frame, "HQ-F1-Z1", "21:00", "21:30"))  # 30 of 45 min
    assert two_thirds["session_recall"] == 1.0 and two_thirds["reading_recall"] == pytest.approx(2 / 3)
    one_third = _walk_scores(_at(frame, "HQ-F1-Z1", "21:00", "21:15"))  # 15 of 45 min
    assert one_third["session_recall"] == 0.0 and one_third["session_precision"] == 1.0
    nothing = _walk_scores(np.zeros(len(frame), dtype=bool))
    assert nothing["session_f1"] == 0.0 and nothing["inferred_sessions"] == 0
    assert nothing["session_precision"] == 1.0 and nothing["reading_precision"] == 1.0  # nothing claimed

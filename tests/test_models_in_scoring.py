"""Scoring with a trained bundle (SPEC §3.9, §4, §5, §7): model columns, spike-adjusted lines, inferred
cleaning, zones the models never saw, and the stored alert lifecycle across runs.

Uses the session's small training run (tests/conftest.py): four fault-free weeks of 10 zones, one zone
kept out of training.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.session_classifier import cleaning_match_scores
from slem_ml.scoring.score import score
from slem_ml.storage import open_database, store_result
from slem_ml.storage.tables import Alert
from tests.conftest import SITE


@pytest.fixture(scope="module")
def last_week(training_data) -> pd.DataFrame:
    """The last 7 days of every zone (the held-out one included), as the reader would pass them on."""
    frame = training_data.readings
    return frame[frame[S.TIMESTAMP] >= frame[S.TIMESTAMP].max() - pd.Timedelta(days=7)].reset_index(drop=True)


@pytest.fixture(scope="module")
def plain(last_week, run):
    return score(validate_frame(last_week, SITE), SITE, models=run.bundle)


def test_model_columns_are_filled_and_a_normal_week_adjusts_nothing(plain, held_out_zone: str) -> None:
    scored = plain.readings.frame
    assert scored[S.EXPECTED_POWER_W].notna().all() and (scored[S.EXPECTED_POWER_W] >= 0).all()
    # the forest scores only the readings the level and neighbour tests let through: none in a normal week
    assert scored[S.ANOMALY_SCORE].isna().all()
    assert not scored[S.IS_ANOMALY].to_numpy(dtype=bool).any()  # no reading of a normal week is a spike
    assert not plain.invoice_lines["adjusted"].any() and len(plain.invoice_lines) > 0
    assert plain.alerts.empty
    assert plain.model_versions["models"]
    # the held-out zone is scored from floor, building and calendar, and the run says so
    assert any(held_out_zone in note.text for note in plain.all_notes)
    unseen = scored[scored[S.ZONE_ID].astype(str) == held_out_zone]
    assert len(unseen) > 0 and unseen[S.EXPECTED_POWER_W].notna().all()


def test_a_spike_in_overtime_is_billed_at_the_expected_power(last_week, plain, run) -> None:
    line = plain.invoice_lines.sort_values("minutes").iloc[-1]  # the longest overtime session
    t = last_week[S.TIMESTAMP]
    inside = last_week.index[
        (last_week[S.ZONE_ID].astype(str) == line["zone_id"])
        & (t > line["start"].tz_convert("UTC") + pd.Timedelta(hours=1))
        & (t < line["end"].tz_convert("UTC") - pd.Timedelta(hours=1))
    ]
    assert len(inside) > 4, "the longest line should last more than two hours"
    spiked = last_week.copy()
    row = inside[len(inside) // 2]
    lit_w = float(spiked.at[row, S.POWER_W])
    spiked.loc[row, S.POWER_W] = 4 * lit_w

    result = score(validate_frame(spiked, SITE), SITE, models=run.bundle)
    flagged = result.readings.frame[result.readings.frame[S.IS_ANOMALY].to_numpy(dtype=bool)]
    assert flagged[S.POWER_W].tolist() == [4 * lit_w]
    assert flagged[S.ANOMALY_SCORE].notna().all()  # the forest's score of the one candidate
    same = result.invoice_lines[
        (result.invoice_lines["zone_id"] == line["zone_id"])
        & (result.invoice_lines["start"] == line["start"])
    ]
    assert len(same) == 1 and bool(same["adjusted"].iloc[0])
    adjusted, original = same["energy_kwh"].iloc[0], same["original_energy_kwh"].iloc[0]
    # the original kWh is what the spike would have cost; the billed kWh is close to the normal line's
    assert original > adjusted
    assert abs(adjusted - line["energy_kwh"]) < (original - line["energy_kwh"]) / 4
    others = result.invoice_lines.drop(index=same.index)
    assert not others["adjusted"].any()


def test_without_the_cleaning_flag_the_classifier_decides(last_week, run) -> None:
    blind = last_week.drop(columns=[S.CLEANING_STAFF])
    readings = validate_frame(blind, SITE)
    assert not readings.has_cleaning_flag
    result = score(readings, SITE, models=run.bundle)
    sessions = result.cleaning_sessions
    assert len(sessions) > 0 and sessions["inferred"].all()
    truth = validate_frame(last_week, SITE).frame  # the reader's row order, with the true flag
    assert (truth[S.TIMESTAMP].to_numpy() == result.readings.frame[S.TIMESTAMP].to_numpy()).all()
    decided = result.readings.frame[S.CLEANING_STAFF].to_numpy(dtype=bool)
    scores = cleaning_match_scores(truth, decided, SITE)
    assert scores["session_f1"] >= 0.9, scores


def test_without_models_the_model_columns_stay_empty(last_week) -> None:
    result = score(validate_frame(last_week, SITE), SITE)
    assert result.readings.frame[S.EXPECTED_POWER_W].isna().all() and result.alerts.empty


def test_a_silent_zone_is_one_alert_open_then_ongoing_across_runs(last_week, run, tmp_path: Path) -> None:
    zone = sorted(last_week[S.ZONE_ID].astype(str).unique())[0]
    t = last_week[S.TIMESTAMP]
    end = t.max()
    silent = (last_week[S.ZONE_ID].astype(str) == zone) & (t > end - pd.Timedelta(days=3))
    day_two = last_week[~silent & (t <= end - pd.Timedelta(days=1))]
    day_three = last_week[~silent]

    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        first = score(validate_frame(day_two, SITE), SITE, models=run.bundle)
        dropouts = first.alerts[first.alerts["kind"] == "dropout"]
        assert dropouts["zone_id"].tolist() == [zone] and dropouts["status"].tolist() == ["open"]
        store_result(engine, first)
        second = score(validate_frame(day_three, SITE), SITE, models=run.bundle)
        assert second.alerts.loc[second.alerts["kind"] == "dropout", "alert_id"].tolist() == (
            dropouts["alert_id"].tolist()
        )
        store_result(engine, second)
        with Session(engine) as session:
            stored = session.scalars(select(Alert).where(Alert.kind == "dropout")).all()
        assert [(a.zone_id, a.status) for a in stored] == [(zone, "ongoing")]
        assert stored[0].last_seen > stored[0].first_seen
    finally:
        engine.dispose()


def test_energy_columns_stay_exact_decimals(plain) -> None:
    lines = plain.invoice_lines
    assert all(isinstance(v, Decimal) for v in lines["energy_kwh"])
    assert all(isinstance(v, Decimal) for v in lines["original_energy_kwh"])
    unadjusted = lines[~lines["adjusted"].to_numpy(dtype=bool)]
    assert len(unadjusted) > 0 and (unadjusted["original_energy_kwh"] == unadjusted["energy_kwh"]).all()

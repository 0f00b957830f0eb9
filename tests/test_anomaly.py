"""Maintenance alerts (SPEC §5): the spike detector of slem_ml.models.anomaly, the drift detector of
slem_ml.models.drift,
the rules and the alerts table of slem_ml.models.alerts.

Hand-made cases a reader can check on paper use one office zone of the shipped sample site (client C001,
Mon–Fri 08:00–18:00 Europe/Berlin, readings every 15 min, lit at 400 W with 2 % noise, 0.5 W standby). One
test runs the detectors on generated data with faults only in the last 40 % and checks recall and precision
against the generator's labels.
"""

from __future__ import annotations

import re

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from slem_ml.errors import SlemError
from slem_ml.generator.generate import FaultRates, GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.alerts import alert_columns, dropout_alerts, stuck_on_alerts
from slem_ml.models.anomaly import SpikeDetector, maintenance_alerts
from slem_ml.models.drift import DriftDetector
from slem_ml.scoring.score import score

SITE = default_site()
TZ = SITE.site.timezone
ZONE = "HQ-F1-Z1"
LIT_W = 400.0


def local(text: str) -> pd.Timestamp:
    """A site wall time as the UTC instant the alerts table holds."""
    return pd.Timestamp(text, tz=TZ).tz_convert("UTC")


def office(
    start: str, end: str, *, zone: str = ZONE, level_w: float = LIT_W, noise: float = 0.02, seed: int = 0
) -> pd.DataFrame:
    """Readings every 15 min in [start, end) local: ``level_w`` (sd ``noise``) Mon–Fri 08–18, else 0.5 W."""
    ts = pd.date_range(start, end, freq="15min", tz=TZ, inclusive="left")
    open_hours = (ts.day_of_week < 5) & (ts.hour >= 8) & (ts.hour < 18)
    wobble = np.random.default_rng(seed).standard_normal(len(ts))
    power = np.where(open_hours, level_w * (1 + noise * wobble), 0.5)
    columns = {"timestamp": ts, "zone_id": zone, "client_id": "C001", "power_w": power.round(1)}
    return pd.DataFrame({**columns, "cleaning_staff": False})


def scored(readings: pd.DataFrame) -> pd.DataFrame:
    """The scored readings frame the detectors take (reader + orchestrator, as in production)."""
    return score(validate_frame(readings, SITE), SITE).readings.frame


def set_power(readings: pd.DataFrame, start: str, end: str, power_w: float) -> pd.DataFrame:
    """The same readings with ``power_w`` at every reading in [start, end] local."""
    ts = readings["timestamp"]
    at = (ts >= pd.Timestamp(start, tz=TZ)) & (ts <= pd.Timestamp(end, tz=TZ))
    out = readings.copy()
    out.loc[at, "power_w"] = power_w
    return out


def drop(readings: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """The readings without those in [start, end] local."""
    ts = readings["timestamp"]
    return readings[(ts < pd.Timestamp(start, tz=TZ)) | (ts > pd.Timestamp(end, tz=TZ))]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """Four fault-free weeks, Mon 6 Jan – Sun 2 Feb 2025."""
    return scored(office("2025-01-06", "2025-02-03", seed=1))


@pytest.fixture(scope="module")
def detectors(history: pd.DataFrame) -> tuple[SpikeDetector, DriftDetector]:
    return SpikeDetector().fit(history, SITE), DriftDetector().fit(history, SITE)


# --- hand-made cases -------------------------------------------------------------------------------


def test_one_reading_at_three_times_the_lit_level_is_one_spike_detected_at_the_next_reading(detectors):
    steady = office("2025-02-03", "2025-02-08", noise=0.0)  # exactly 400 W, so the words are exact too
    week = set_power(steady, "2025-02-05 14:00", "2025-02-05 14:00", 1200.0)
    frame = scored(week)
    found = maintenance_alerts(frame, SITE, *detectors)

    spike_row = frame.index[frame["timestamp"] == local("2025-02-05 14:00")]
    assert np.flatnonzero(found.is_anomaly).tolist() == spike_row.tolist()
    assert found.reference_w[spike_row[0]] == LIT_W  # its energy is billed at this power (SPEC §3.9)
    assert np.isnan(found.reference_w[~found.is_anomaly]).all()
    # the forest scores the one reading the level and neighbour tests let through, and nothing else
    assert np.flatnonzero(~np.isnan(found.anomaly_score)).tolist() == spike_row.tolist()

    assert len(found.alerts) == 1
    alert = found.alerts.iloc[0]
    assert (alert["kind"], alert["zone_id"], alert["status"]) == ("spike", ZONE, "resolved")
    assert alert["first_seen"] == alert["last_seen"] == local("2025-02-05 14:00")
    assert alert["detected_at"] == local("2025-02-05 14:15")  # confirmed by the next reading
    assert alert["alert_id"] == "spike:HQ-F1-Z1:20250205T1300Z"
    assert alert["severity"] == "medium"  # 3× the most the zone draws in contracted hours
    assert alert["detail"] == (
        "Zone HQ-F1-Z1 drew 1,200 W on Wed 5 Feb 14:00 (local), 3.0× the most it usually draws when lit in"
        " contracted hours (400 W); 400 W before and 400 W after."
    )


def test_a_spike_waits_for_the_next_reading(detectors):
    steady = office("2025-02-03", "2025-02-08", noise=0.0)
    week = set_power(steady, "2025-02-05 14:00", "2025-02-05 14:00", 1200.0)
    spike = detectors[0]
    until_spike = week[week["timestamp"] <= pd.Timestamp("2025-02-05 14:00", tz=TZ)]
    assert not spike.predict(scored(until_spike), SITE).any()  # the 1,200 W reading is the last one so far
    one_more = week[week["timestamp"] <= pd.Timestamp("2025-02-05 14:15", tz=TZ)]
    assert spike.predict(scored(one_more), SITE).sum() == 1


def test_the_forest_alone_would_flag_half_of_any_data_the_gate_flags_none(history, detectors):
    spike = detectors[0]
    scores = spike.score_samples(history, SITE)
    lit = history[S.IS_ON].to_numpy()
    assert np.mean(scores[lit] > spike.threshold_) == pytest.approx(0.5, abs=0.01)
    assert not spike.predict(history, SITE).any()
    assert np.isnan(spike.find(history, SITE).score).all()  # no candidate: the forest is not asked


def test_a_stable_zone_raises_nothing(history, detectors):
    for frame in (history, scored(office("2025-02-03", "2025-03-03", seed=3))):
        found = maintenance_alerts(frame, SITE, *detectors)
        assert not found.is_anomaly.any()
        assert found.alerts.empty
        assert tuple(found.alerts.columns) == alert_columns()


def test_lights_on_13_h_outside_contracted_hours_are_stuck_on_11_h_are_not():
    week = office("2025-02-03", "2025-02-08", seed=4)
    thirteen = scored(set_power(week, "2025-02-04 18:00", "2025-02-05 06:45", LIT_W))  # off at 07:00
    eleven = scored(set_power(week, "2025-02-04 18:00", "2025-02-05 04:45", LIT_W))  # off at 05:00

    alerts = stuck_on_alerts(thirteen, SITE)
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert alert["first_seen"] == local("2025-02-04 18:00")
    assert alert["detected_at"] == local("2025-02-05 06:15")  # the first reading more than 12 h later
    assert alert["last_seen"] == local("2025-02-05 06:45")
    # severity by consequence: every stuck-on is at least medium; 13 h and 5.2 kWh are under 24 h and 10 kWh
    assert (alert["score"], alert["severity"], alert["status"]) == (13.0, "medium", "resolved")
    assert alert["detail"].startswith("Lights on for 13.0 h outside contracted hours (since Tue 4 Feb 18:00)")
    assert "about 5.2 kWh at 400 W" in alert["detail"]
    assert stuck_on_alerts(eleven, SITE).empty


def test_stuck_on_still_lit_at_the_end_of_the_readings_is_open():
    friday = office("2025-02-07", "2025-02-08 08:00", seed=5)  # the readings end on Saturday at 07:45
    frame = scored(set_power(friday, "2025-02-07 18:00", "2025-02-08 08:00", LIT_W))
    alerts = stuck_on_alerts(frame, SITE)
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert (alert["status"], alert["last_seen"]) == ("open", local("2025-02-08 07:45"))
    assert alert["detected_at"] == local("2025-02-08 06:15")
    assert "and still on at the end of the readings" in alert["detail"]


def test_a_30_h_silence_is_a_dropout_20_h_is_not():
    week = office("2025-02-03", "2025-02-08", seed=6)
    thirty = scored(drop(week, "2025-02-04 10:15", "2025-02-05 15:45"))  # last Tue 10:00, next Wed 16:00
    twenty = scored(drop(week, "2025-02-04 10:15", "2025-02-05 05:45"))  # next Wed 06:00

    alerts = dropout_alerts(thirty, SITE)
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert alert["first_seen"] == local("2025-02-04 10:00")
    assert alert["detected_at"] == local("2025-02-05 10:00")  # 24 h without a reading
    assert alert["last_seen"] == local("2025-02-05 16:00")
    assert (alert["score"], alert["status"]) == (30.0, "resolved")
    assert alert["detail"] == (
        "No readings for 30 h since Tue 4 Feb 10:00; the zone normally reports every 15 min."
    )
    assert dropout_alerts(twenty, SITE).empty


def test_a_silence_every_zone_shares_is_missing_data_not_a_dropout():
    """Two exports a week apart in one file (the legacy sample): nobody reported, so nothing dropped out;
    one zone silent while the other reports is a dropout, detected at the silence threshold."""
    first = pd.concat(
        [office("2025-02-03", "2025-02-05", seed=1), office("2025-02-03", "2025-02-05", zone="HQ-F1-Z2")]
    )
    later = pd.concat(
        [office("2025-02-10", "2025-02-12", seed=2), office("2025-02-10", "2025-02-12", zone="HQ-F1-Z2")]
    )
    assert dropout_alerts(scored(pd.concat([first, later])), SITE).empty

    week = pd.concat(
        [
            drop(office("2025-02-03", "2025-02-08", seed=6), "2025-02-04 10:15", "2025-02-05 15:45"),
            office("2025-02-03", "2025-02-08", zone="HQ-F1-Z2", seed=3),
        ]
    )
    alerts = dropout_alerts(scored(week), SITE)
    assert alerts[["zone_id", "first_seen", "detected_at"]].values.tolist() == [
        [ZONE, local("2025-02-04 10:00"), local("2025-02-05 10:00")]
    ]


def test_a_zone_that_reports_twice_a_day_is_not_judged_by_the_24_h_rule():
    twice = office("2025-02-03", "2025-02-15", seed=6).iloc[::48]  # every 12 h
    frame = scored(drop(twice, "2025-02-08", "2025-02-08 12:00"))  # one gap of 36 h
    assert frame["timestamp"].diff().max() == pd.Timedelta(hours=36)
    assert dropout_alerts(frame, SITE).empty


def test_a_zone_silent_at_the_end_while_others_report_is_an_open_dropout():
    silent = office("2025-02-03", "2025-02-05 12:00", seed=7)  # last reading Wed 11:45
    other = office("2025-02-03", "2025-02-08", zone="HQ-F1-Z2", seed=8)
    alerts = dropout_alerts(scored(pd.concat([silent, other])), SITE)
    assert len(alerts) == 1
    alert = alerts.iloc[0]
    assert (alert["zone_id"], alert["status"]) == (ZONE, "open")
    assert alert["detected_at"] == local("2025-02-06 11:45")
    assert alert["last_seen"] == local("2025-02-07 23:45")  # the last reading of the frame
    assert alert["severity"] == "low" and alert["score"] == 60.0  # 60 h by the end: a data gap under 72 h


def test_a_data_gap_is_never_high_whatever_its_length(detectors):
    """A ten-day silence of one zone while another reports: one dropout, medium (72 h or more), never high;
    and around the gap nothing else — no spike, no drift, no stuck-on."""
    weeks = pd.concat(
        [
            drop(office("2025-02-03", "2025-02-22", seed=6), "2025-02-04 10:15", "2025-02-14 10:00"),
            office("2025-02-03", "2025-02-22", zone="HQ-F1-Z2", seed=3),
        ]
    )
    alerts = maintenance_alerts(scored(weeks), SITE, *detectors).alerts
    assert alerts[["kind", "zone_id", "severity"]].values.tolist() == [["dropout", ZONE, "medium"]]
    assert alerts["score"].iloc[0] == 240.25  # silent from Tue 4 Feb 10:00 to Fri 14 Feb 10:15


def ramp(readings: pd.DataFrame, onset: str, per_day: float) -> pd.DataFrame:
    """Lit readings from ``onset`` on multiplied by 1 + per_day × days since onset."""
    days = (readings["timestamp"] - pd.Timestamp(onset, tz=TZ)) / pd.Timedelta(days=1)
    lit = readings["power_w"] > 5
    out = readings.copy()
    out.loc[lit, "power_w"] = (readings["power_w"] * (1 + per_day * days.clip(lower=0)))[lit].round(1)
    return out


def test_a_rise_of_1_percent_a_day_is_one_drift_alert_within_7_days(detectors):
    onset = "2025-02-03"
    frame = scored(ramp(office("2025-02-03", "2025-03-03", seed=9), onset, 0.01))
    found = maintenance_alerts(frame, SITE, *detectors)
    assert found.alerts["kind"].tolist() == ["drift"]
    alert = found.alerts.iloc[0]
    delay = alert["detected_at"] - local(onset)
    assert pd.Timedelta(0) < delay <= pd.Timedelta(days=7)
    # raised by the reading that ends the day's lit run (dark at 18:00), not at the next midnight
    assert alert["detected_at"].tz_convert(TZ).strftime("%H:%M") == "18:00"
    assert local(onset) - pd.Timedelta(days=2) <= alert["first_seen"] <= alert["detected_at"]
    assert alert["status"] == "open"
    assert alert["severity"] == "high"  # about +25 % by the end
    assert re.match(r"On-power has risen about 2\d % since \d Feb \(about 1\.\d %/day\)", alert["detail"])


def test_a_flat_zone_with_2_percent_noise_raises_no_drift_in_60_days():
    frame = scored(office("2025-01-06", "2025-03-07", seed=10))
    drift = DriftDetector().fit(frame[frame["timestamp"] < local("2025-01-27")], SITE)  # three weeks
    assert drift.detect(frame, SITE).empty


def test_stable_zones_with_spikes_raise_no_drift_in_17_weeks():
    zones = [(f"HQ-F2-Z{i}", level, 20 + i) for i, level in enumerate((400.0, 250.0, 120.0, 60.0, 35.0), 1)]
    months = [office("2025-01-06", "2025-05-05", zone=zone, level_w=w, seed=seed) for zone, w, seed in zones]
    readings = pd.concat(months, ignore_index=True)
    for day in ("2025-02-11", "2025-03-12", "2025-04-15"):  # one reading at 3× in every zone
        at = readings["timestamp"] == pd.Timestamp(f"{day} 11:00", tz=TZ)
        readings.loc[at, "power_w"] *= 3
    frame = scored(readings)
    drift = DriftDetector().fit(frame[frame["timestamp"] < local("2025-02-03")], SITE)  # four weeks
    assert drift.detect(frame, SITE).empty  # 5 zones × 17 weeks, none of them drifting


@pytest.mark.parametrize(
    ("zone", "onset"),
    [(ZONE, "2025-02-05 13:00"), ("HQ-F1-Z2", "2025-02-17")],
    ids=["seen in fit", "own baseline"],
)
def test_later_readings_change_no_earlier_drift_decision(detectors, zone, onset):
    drift = detectors[1]  # fitted on ZONE only
    frame = scored(ramp(office("2025-02-03", "2025-03-17", zone=zone, seed=12), onset, 0.01))
    full = drift.detect(frame, SITE)
    assert len(full) == 1
    detected = full["detected_at"].iloc[0]
    assert detected - local(onset) <= pd.Timedelta(days=7)
    quarter = pd.Timedelta(minutes=15)
    cuts = [detected, detected + quarter, detected + pd.Timedelta(hours=7), detected + pd.Timedelta(days=9)]
    for cut in cuts:  # a decision on a day uses readings up to then only: the cut days are incomplete
        part = drift.detect(frame[frame["timestamp"] < cut], SITE)
        due = full[full["detected_at"] < cut]
        columns = ["alert_id", "detected_at", "first_seen"]
        pd.testing.assert_frame_equal(
            part[columns].reset_index(drop=True), due[columns].reset_index(drop=True)
        )


def test_a_zone_not_seen_in_fit_takes_its_baseline_from_its_first_7_days(detectors):
    other = "HQ-F1-Z2"
    frame = scored(ramp(office("2025-02-03", "2025-03-17", zone=other, seed=11), "2025-02-17", 0.01))
    alerts = detectors[1].detect(frame, SITE)
    assert alerts["zone_id"].tolist() == [other]
    assert alerts["detected_at"].iloc[0] <= local("2025-02-24")
    assert "not in the training data" in alerts["detail"].iloc[0]


def test_empty_and_one_row_frames_give_empty_findings_of_the_same_shape(history, detectors):
    for frame in (history.iloc[:0], history.iloc[:1]):
        found = maintenance_alerts(frame, SITE, *detectors)
        assert len(found.anomaly_score) == len(found.is_anomaly) == len(frame)
        assert not found.is_anomaly.any()
        assert found.alerts.empty and tuple(found.alerts.columns) == alert_columns()
        assert str(found.alerts["detected_at"].dtype) == "datetime64[ms, UTC]"


# --- errors --------------------------------------------------------------------------------------


def test_errors_name_the_problem(history):
    dark = history.assign(power_w=0.5, is_on=False)
    with pytest.raises(SlemError, match="needs lit readings"):
        SpikeDetector().fit(dark, SITE)
    with pytest.raises(SlemError, match="needs 7 days of steady lit readings"):
        DriftDetector().fit(history[history["timestamp"] < local("2025-01-09")], SITE)
    with pytest.raises(SlemError, match="lack the column.*in_contract"):
        stuck_on_alerts(history.drop(columns=S.IN_CONTRACT), SITE)
    with pytest.raises(NotFittedError):
        SpikeDetector().find(history, SITE)
    with pytest.raises(NotFittedError):
        DriftDetector().detect(history, SITE)


# --- generated data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated():
    data = generate(
        GeneratorConfig(
            days=60, zones=40, step_minutes=15, seed=1, faults_after=0.6,
            fault_rates=FaultRates(drift_zone_share=0.15),
        )
    )  # fmt: skip
    frame = score(validate_frame(data.readings, SITE), SITE).readings.frame
    first, last = frame["timestamp"].min(), frame["timestamp"].max()
    train = frame[frame["timestamp"] < first + 0.6 * (last - first)]
    return frame, data.labels, SpikeDetector().fit(train, SITE), DriftDetector().fit(train, SITE)


def _overlap(alerts: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """Per label: an alert of its zone overlaps it."""
    start, end = labels["start"].dt.tz_convert("UTC"), labels["end"].dt.tz_convert("UTC")
    return np.array(
        [
            ((alerts["zone_id"] == z) & (alerts["first_seen"] <= e) & (alerts["last_seen"] >= s)).any()
            for z, s, e in zip(labels["zone_id"], start, end, strict=True)
        ]
    )


def test_on_generated_data_faults_are_found_and_fault_free_zones_stay_quiet(generated):
    frame, labels, spike, drift = generated
    found = maintenance_alerts(frame, SITE, spike, drift)
    alerts = found.alerts

    spikes = labels[labels["kind"] == "spike"]
    key = pd.MultiIndex.from_arrays([frame["zone_id"].astype(str), frame["timestamp"]])
    truth = key.isin(pd.MultiIndex.from_arrays([spikes["zone_id"], spikes["start"].dt.tz_convert("UTC")]))
    hits = (found.is_anomaly & truth).sum()
    assert hits / found.is_anomaly.sum() >= 0.9  # precision
    assert hits / truth.sum() >= 0.9  # recall

    for kind in ("stuck_on", "dropout"):
        wanted = labels[labels["kind"] == kind]
        assert len(wanted) and _overlap(alerts[alerts["kind"] == kind], wanted).mean() >= 0.95

    drifts = labels[labels["kind"] == "drift"]
    raised = alerts[alerts["kind"] == "drift"]
    caught = [
        ((raised["zone_id"] == z) & (raised["detected_at"] >= s)).any()
        for z, s in zip(drifts["zone_id"], drifts["start"].dt.tz_convert("UTC"), strict=True)
    ]
    assert np.mean(caught) >= 0.8

    faulty = set(labels.loc[labels["is_fault"], "zone_id"])
    clean = set(frame["zone_id"].astype(str)) - faulty
    zone_weeks = len(clean) * 60 / 7
    assert alerts["zone_id"].isin(clean).sum() <= zone_weeks / 100  # at most 1 per 100 zone-weeks


def test_later_readings_change_no_earlier_decision(generated):
    frame, _, spike, drift = generated
    cut = frame["timestamp"].min() + pd.Timedelta(days=50, hours=13, minutes=7)
    early = frame[frame["timestamp"] < cut].reset_index(drop=True)
    full = maintenance_alerts(frame, SITE, spike, drift)
    part = maintenance_alerts(early, SITE, spike, drift)
    assert len(part.alerts) > 10

    # every alert raised on the early readings is raised again, unchanged, once later readings arrive
    both = part.alerts.merge(full.alerts, on="alert_id", how="left", suffixes=("", "_full"))
    assert (both["detected_at"] == both["detected_at_full"]).all()
    assert (both["first_seen"] == both["first_seen_full"]).all()
    # and every alert of the full run that was due before the cut was already there
    due = full.alerts[full.alerts["detected_at"] < early["timestamp"].max()]
    assert set(due["alert_id"]) <= set(part.alerts["alert_id"])

    # a reading whose next reading came before the cut keeps its score and decision
    order = frame.sort_values(["zone_id", "timestamp"]).index
    next_ts = frame.loc[order].groupby("zone_id", observed=True)["timestamp"].shift(-1).reindex(frame.index)
    kept = (frame["timestamp"] < cut).to_numpy()
    decided = (next_ts < cut).to_numpy()[kept]
    assert decided.sum() > 0.99 * kept.sum()
    np.testing.assert_array_equal(part.is_anomaly[decided], full.is_anomaly[kept][decided])
    np.testing.assert_array_equal(part.anomaly_score[decided], full.anomaly_score[kept][decided])


def test_fitted_detectors_survive_joblib(generated, tmp_path):
    frame, _, spike, drift = generated
    joblib.dump((spike, drift), tmp_path / "maintenance.joblib")
    spike2, drift2 = joblib.load(tmp_path / "maintenance.joblib")
    before = maintenance_alerts(frame, SITE, spike, drift)
    after = maintenance_alerts(frame, SITE, spike2, drift2)
    np.testing.assert_array_equal(before.anomaly_score, after.anomaly_score)
    np.testing.assert_array_equal(before.is_anomaly, after.is_anomaly)
    pd.testing.assert_frame_equal(before.alerts, after.alerts)
    assert spike2.get_params() == spike.get_params()


def test_alert_ids_are_stable_and_unique_whatever_the_row_order(generated):
    frame, _, spike, drift = generated
    first = maintenance_alerts(frame, SITE, spike, drift)
    again = maintenance_alerts(frame, SITE, spike, drift)
    shuffled_frame = frame.sample(frac=1.0, random_state=0)
    shuffled = maintenance_alerts(shuffled_frame, SITE, spike, drift)

    pd.testing.assert_frame_equal(first.alerts, again.alerts)
    pd.testing.assert_frame_equal(first.alerts, shuffled.alerts)
    back = pd.Series(shuffled.anomaly_score, index=shuffled_frame.index).reindex(frame.index).to_numpy()
    np.testing.assert_array_equal(back, first.anomaly_score)

    ids = first.alerts["alert_id"]
    assert ids.is_unique
    assert set(first.alerts["kind"]) == {"spike", "drift", "stuck_on", "dropout"}
    pattern = re.compile(r"^(spike|drift|stuck_on|dropout):[^:]+:\d{8}T\d{4}Z$")
    assert all(pattern.match(i) for i in ids)
    stamps = first.alerts["first_seen"].dt.strftime("%Y%m%dT%H%MZ")
    assert (ids == first.alerts["kind"] + ":" + first.alerts["zone_id"] + ":" + stamps).all()
    assert set(first.alerts["severity"]) <= {"low", "medium", "high"}
    assert set(first.alerts["status"]) <= {"open", "resolved"}


def test_forest_scores_in_row_blocks_are_sklearns_bit_for_bit():
    from sklearn.ensemble import IsolationForest

    from slem_ml.models.spikes import _forest_scores

    X = np.random.default_rng(5).normal(size=(120_000, 4))
    forest = IsolationForest(n_estimators=20, random_state=0).fit(X[:5_000])
    np.testing.assert_array_equal(_forest_scores(forest, X), forest.score_samples(X))
    assert _forest_scores(forest, X[:0]).shape == (0,)

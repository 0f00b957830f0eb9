"""The spike detector (SPEC §5 ``spike``, slem_ml.models.spikes) on hand-built zones.

One office zone of the shipped sample site (client C001, Mon–Fri 08:00–18:00 Europe/Berlin). The zones are
built so the outcome can be checked on paper: a spike is a lit reading at least 1.25 × (1 + 3 / n) times the
90th percentile of the zone's previous n ≤ 256 lit readings in the same contract state (n ≥ 4), at least
1.2 times its previous lit reading and its next one when lit, confirmed by the next reading.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.generator.generate import default_site
from slem_ml.io.reader import validate_frame
from slem_ml.models.anomaly import maintenance_alerts
from slem_ml.models.drift import DriftDetector
from slem_ml.models.spikes import SpikeDetector
from slem_ml.scoring.score import score

SITE = default_site()
TZ = SITE.site.timezone
ZONE = "HQ-F1-Z1"


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ)


def zone(times: pd.DatetimeIndex, power: np.ndarray) -> pd.DataFrame:
    columns = {"timestamp": times, "zone_id": ZONE, "client_id": "C001", "power_w": np.round(power, 1)}
    return pd.DataFrame({**columns, "cleaning_staff": False})


def scored(readings: pd.DataFrame) -> pd.DataFrame:
    return score(validate_frame(readings, SITE), SITE).readings.frame


def sparse(start: str, days: int, seed: int) -> pd.DataFrame:
    """A legacy-like export: readings 10–40 min apart, 08:00–18:00 on weekdays, each drawn uniformly from
    60–140 W (the same lamps, a tenant's whim): nothing here is a spike."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(10, 41, size=days * 100)
    times = local(start) + pd.to_timedelta(np.cumsum(steps), unit="min")
    times = times[(times.day_of_week < 5) & (times.hour >= 8) & (times.hour < 18)]
    times = times[times < local(start) + pd.Timedelta(days=days)]
    return zone(times, rng.uniform(60.0, 140.0, len(times)))


def with_power(readings: pd.DataFrame, at: pd.Timestamp, power_w: float) -> pd.DataFrame:
    out = readings.copy()
    out.loc[out["timestamp"] == at, "power_w"] = power_w
    return out


def office(start: str, end: str, watts: float) -> pd.DataFrame:
    """Readings every 15 min in contracted hours (Mon–Fri 08–18) at ``watts``."""
    times = pd.date_range(start, end, freq="15min", tz=TZ, inclusive="left")
    times = times[(times.day_of_week < 5) & (times.hour >= 8) & (times.hour < 18)]
    return zone(times, np.full(len(times), watts))


@pytest.fixture(scope="module")
def detector() -> SpikeDetector:
    return SpikeDetector().fit(scored(sparse("2025-01-06", 28, seed=1)), SITE)


@pytest.fixture(scope="module")
def drift() -> DriftDetector:
    """Fitted on three flat weeks: it raises nothing on the flat weeks below."""
    return DriftDetector().fit(scored(office("2025-01-06", "2025-01-27", 400.0)), SITE)


def test_noise_up_to_140_w_in_a_zone_of_60_to_140_w_is_never_a_spike(detector):
    frame = scored(sparse("2025-02-03", 28, seed=2))
    found = detector.find(frame, SITE)
    assert len(frame) > 400 and not found.is_spike.any()
    assert np.isnan(found.score).all()  # no reading passed the level test: the forest is not asked


def test_three_times_a_reading_of_a_noisy_sparse_zone_is_a_spike(detector):
    readings = sparse("2025-02-03", 28, seed=2)
    at = readings["timestamp"].iloc[400]  # weeks into the zone's history: its top is about 132 W
    normal = float(readings["power_w"].iloc[400])
    frame = scored(with_power(readings, at, 3 * normal))
    found = detector.find(frame, SITE)
    assert 3 * normal >= 180.0  # 3 × at least 60 W: above 1.25 × 140 W, the most noise ever draws
    assert frame.loc[found.is_spike, "timestamp"].tolist() == [at.tz_convert("UTC")]
    before, after = readings["power_w"].iloc[399], readings["power_w"].iloc[401]
    assert found.reference_w[found.is_spike][0] == pytest.approx((before + after) / 2)  # SPEC §3.9


def test_a_level_that_rises_and_stays_is_not_a_spike():
    readings = office("2025-02-03", "2025-02-08", 400.0)
    readings.loc[readings["timestamp"] >= local("2025-02-05 12:00"), "power_w"] = 1000.0  # new lamps: 2.5×
    frame = scored(readings)
    spike = SpikeDetector().fit(frame, SITE)
    assert not spike.predict(frame, SITE).any()  # each 1,000 W reading has a lit neighbour as bright


def test_evening_light_is_judged_against_the_evenings_and_working_hours_against_theirs(drift):
    days = pd.date_range("2025-02-03", "2025-02-15", freq="15min", tz=TZ, inclusive="left")
    weekday = days.day_of_week < 5
    working = weekday & (days.hour >= 8) & (days.hour < 18)
    evening = weekday & (days.hour >= 18) & (days.hour < 22)
    power = np.where(working, 400.0, np.where(evening, 100.0, 0.5))
    readings = zone(days, power)
    readings = with_power(readings, local("2025-02-12 20:00"), 300.0)  # 3× the evening, under the day
    readings = with_power(readings, local("2025-02-12 11:00"), 450.0)  # 1.125× the working hours
    frame = scored(readings)
    found = maintenance_alerts(frame, SITE, SpikeDetector().fit(frame, SITE), drift)
    assert frame.loc[found.is_anomaly, "timestamp"].tolist() == [local("2025-02-12 20:00").tz_convert("UTC")]
    (detail,) = found.alerts["detail"]
    assert detail.startswith(
        "Zone HQ-F1-Z1 drew 300 W on Wed 12 Feb 20:00 (local), 3.0× the most it usually draws when lit"
        " outside contracted hours (100 W); 100 W before and 100 W after."
    )


def test_a_zone_state_with_fewer_than_four_earlier_lit_readings_is_not_judged():
    times = pd.date_range("2025-02-03 08:00", periods=12, freq="15min", tz=TZ)
    power = np.full(12, 100.0)
    power[3] = power[8] = 500.0  # the 4th lit reading (3 before it) and the 9th (8 before it)
    frame = scored(zone(times, power))
    spike = SpikeDetector().fit(frame, SITE)
    # the 9th: 500 W ≥ 1.25 × 100 W × (1 + 3/8); the 4th has too little history to say what is normal
    assert frame.loc[spike.predict(frame, SITE), "timestamp"].tolist() == [times[8].tz_convert("UTC")]


def test_spikes_of_a_zone_less_than_a_day_apart_are_one_alert_its_largest_in_words(drift):
    readings = office("2025-02-03", "2025-02-08", 400.0)
    spikes = (("2025-02-04 10:00", 1200.0), ("2025-02-04 15:00", 1800.0), ("2025-02-06 10:00", 800.0))
    for at, watts in spikes:
        readings = with_power(readings, local(at), watts)
    frame = scored(readings)
    found = maintenance_alerts(frame, SITE, SpikeDetector().fit(frame, SITE), drift)
    alerts = found.alerts
    assert found.is_anomaly.sum() == 3
    assert alerts["first_seen"].tolist() == [local("2025-02-04 10:00"), local("2025-02-06 10:00")]
    assert alerts["last_seen"].tolist() == [local("2025-02-04 15:00"), local("2025-02-06 10:00")]
    assert alerts["severity"].tolist() == ["high", "low"]  # 4.5× and 2.0× the zone's 400 W
    assert alerts["detail"].iloc[0] == (
        "Zone HQ-F1-Z1 drew 1,800 W on Tue 4 Feb 15:00 (local), 4.5× the most it usually draws when lit in"
        " contracted hours (400 W); 400 W before and 400 W after (2 spikes until Tue 4 Feb 15:00; the largest"
        " is shown)."
    )
    # the second alert's last spike is two days before the end of the readings: nothing more can join it
    assert alerts["status"].tolist() == ["resolved", "resolved"]


def test_a_detector_pickled_before_its_new_parameters_takes_their_defaults(detector):
    state = detector.__getstate__()
    for name in ("window", "min_history", "short_margin", "reference_quantile", "neighbour_ratio"):
        state.pop(name)
    old = SpikeDetector.__new__(SpikeDetector)
    old.__setstate__(state)
    assert old.get_params() == SpikeDetector().get_params()
    assert old.threshold_ == -np.inf  # its forest judged every reading: its threshold no longer fits
    frame = scored(sparse("2025-02-03", 28, seed=2))
    assert not old.find(frame, SITE).is_spike.any()

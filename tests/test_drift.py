"""When the drift detector (SPEC §5 ``drift``, slem_ml.models.drift) says nothing: too few days, a rise too
small to act on, readings that are never steady. Hand-built zones a reader can check on paper.

One office zone of the shipped sample site (client C001, Mon–Fri 08:00–18:00 Europe/Berlin), lit at exactly
400 W in contracted hours, readings every 15 min. Fitted on three such weeks, the zone's ceiling is exactly
400 W (every day's level is log 400 W, so the anchor, its step and every gap are 0). The CUSUM then adds
log(level / 400 W) − 0.0025 for each judged day and alerts past 0.01, once the brightest of the last 7
judged days is 1.5 % above the ceiling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.generator.generate import default_site
from slem_ml.io.reader import validate_frame
from slem_ml.models.alerts import zoned_readings
from slem_ml.models.drift import DriftDetector
from slem_ml.scoring.score import score

SITE = default_site()
TZ = SITE.site.timezone
ZONE = "HQ-F1-Z1"


def office(start: str, end: str, watts: float, *, step: str = "15min") -> pd.DataFrame:
    times = pd.date_range(start, end, freq=step, tz=TZ, inclusive="left")
    times = times[(times.day_of_week < 5) & (times.hour >= 8) & (times.hour < 18)]
    power = np.full(len(times), watts)
    columns = {"timestamp": times, "zone_id": ZONE, "client_id": "C001", "power_w": power}
    return pd.DataFrame({**columns, "cleaning_staff": False})


def scored(readings: pd.DataFrame) -> pd.DataFrame:
    return score(validate_frame(readings, SITE), SITE).readings.frame


@pytest.fixture(scope="module")
def drift() -> DriftDetector:
    fitted = DriftDetector().fit(scored(office("2025-01-06", "2025-01-27", 400.0)), SITE)
    assert fitted.ceiling_w_[ZONE] == pytest.approx(400.0)
    return fitted


def test_three_lit_days_at_plus_25_percent_raise_nothing_five_raise_a_drift(drift):
    three = scored(office("2025-02-03", "2025-02-06", 500.0))  # Mon–Wed
    assert drift.detect(three, SITE).empty
    assert drift.short_history(zoned_readings(three), SITE) == (ZONE,)  # and the run says why
    five = scored(office("2025-02-03", "2025-02-08", 500.0))  # Mon–Fri: Thursday is the first judged day
    alerts = drift.detect(five, SITE)
    assert len(alerts) == 1
    # Thursday's level is known at the reading after its run: Friday 08:00
    assert alerts["detected_at"].iloc[0] == pd.Timestamp("2025-02-07 08:00", tz=TZ)
    assert drift.short_history(zoned_readings(five), SITE) == ()


def test_a_rise_of_1_percent_passes_the_cusum_threshold_but_raises_nothing_3_percent_does(drift):
    history = office("2025-02-03", "2025-02-06", 400.0)  # three days at the ceiling: the rise is judged
    one = scored(pd.concat([history, office("2025-02-06", "2025-02-22", 404.0)]))
    # +1 %: each day adds log(1.01) − 0.0025 = 0.0075, past 0.01 on the second day, but 1 % < 1.5 %
    assert drift.detect(one, SITE).empty
    three = scored(pd.concat([history, office("2025-02-06", "2025-02-22", 412.0)]))
    alerts = drift.detect(three, SITE)
    # +3 %: Thursday adds log(1.03) − 0.0025 = 0.027, past 0.01 at once, known at Friday 08:00
    assert len(alerts) == 1 and alerts["detected_at"].iloc[0] == pd.Timestamp("2025-02-07 08:00", tz=TZ)
    assert "risen about 3 %" in alerts["detail"].iloc[0]


def test_readings_minutes_apart_that_agree_by_chance_are_no_steady_light():
    """A legacy export's draws: a reading every 3 min, each 60–140 W at random. Runs of readings within
    10 % of each other happen, but none lasts 30 minutes: no day has a level, nothing is learnt, and a rise
    of the whole zone by half raises nothing."""
    rng = np.random.default_rng(3)
    random = office("2025-01-06", "2025-02-03", 0.0, step="3min")
    random["power_w"] = rng.uniform(60.0, 140.0, len(random)).round(1)
    fitted = DriftDetector().fit(scored(random), SITE)
    assert fitted.ceiling_w_.empty
    later = office("2025-02-03", "2025-03-03", 0.0, step="3min")
    later["power_w"] = 1.5 * rng.uniform(60.0, 140.0, len(later)).round(1)
    assert fitted.detect(scored(later), SITE).empty

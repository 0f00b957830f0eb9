"""The level-scaled 12-week hour-of-week profile (slem_ml/models/profile.py) on hand-made zones.

Cells are built directly (zone, local day, local hour, power, first UTC hour), on a site whose local time is
UTC, so a day's hours are ``(day × 24 + hour) h`` after the epoch. Day 20,000 (2024-10-04) is a Friday;
day numbers below are chosen by their weekday, ``(day + 3) % 7`` (Monday = 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.models.profile import hour_of_week_profile, nanmedian_rows

HOUR_MS = 3_600_000
MONDAY = 20_003  # 2024-10-07


def cells(days: range, power) -> pd.DataFrame:
    """Every hour of ``days`` for zone Z, ``power(day, hour)`` [W]."""
    day = np.repeat(np.array(days), 24)
    hour = np.tile(np.arange(24), len(days))
    return pd.DataFrame(
        {
            "zone_id": "Z",
            "local_day": day,
            "local_hour": hour,
            "power_w": [float(power(d, h)) for d, h in zip(day, hour, strict=True)],
            "hour_ms": (day * 24 + hour) * HOUR_MS,
        }
    )


def row(day: int, hour: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"zone_id": ["Z"], "local_day": [day], "local_hour": [hour], "hour_ms": [(day * 24 + hour) * HOUR_MS]}
    )


def lit_by_day(day: int, hour: int) -> float:
    """50 W from 08 to 18 h on weekdays, 1 W otherwise (a Sunday is dark all day)."""
    return 50.0 if (day + 3) % 7 < 5 and 8 <= hour < 18 else 1.0


def test_the_median_of_twelve_weeks_scaled_to_a_doubled_level() -> None:
    """Days 0–83 of the history draw P, days 84–118 draw 2 P. For day 119: its lags 7, 14, …, 35 days back
    are doubled, 42 … 84 are not (7 of 12), so the median is P; every day of its level window (days 84–111,
    28 days ending 8 days back) drew 2 P where the profile (at most 3 doubled lags of 12 each) said P: the
    ratio is 2 and the level-scaled profile 2 P."""
    start = MONDAY
    history = cells(range(start, start + 119), lambda d, h: lit_by_day(d, h) * (2 if d >= start + 84 else 1))
    day = start + 119  # a Monday
    out = hour_of_week_profile(
        pd.concat([row(day, 10), row(day, 3)], ignore_index=True), history, np.array([])
    )
    assert out["how_median_12w_w"].tolist() == [50.0, 1.0]
    assert out["level_ratio"].tolist() == [2.0, 2.0]
    assert out["profile_w"].tolist() == [100.0, 2.0]


def test_a_holiday_looks_back_to_sundays_and_a_working_day_never_to_a_holiday() -> None:
    """Two weeks of history (Monday to Sunday twice); the first Wednesday (day +2) was a public holiday,
    dark all day. The third week's Wednesday (day +16) at 10 h: its lags are the ordinary Wednesday +9
    and the holiday +2, left out → 50 W (with the holiday it would have been the median of 50 and 1,
    25.5). The third week's Thursday (day +17) is a holiday: it looks back to the Sundays at least a week
    before it, day +6 (and −1, before the history) → 1 W, where its own weekday would have given 50 W."""
    start = MONDAY
    holiday = start + 2

    def power(d: int, h: int) -> float:
        return 1.0 if d == holiday else lit_by_day(d, h)

    history = cells(range(start, start + 14), power)
    holidays = np.array([holiday, start + 17])  # the third week's Thursday too
    out = hour_of_week_profile(pd.concat([row(start + 16, 10), row(start + 17, 10)]), history, holidays)
    assert out["how_median_12w_w"].tolist() == [50.0, 1.0]


def test_an_hour_less_than_a_week_back_is_never_used() -> None:
    """The same local hour a week earlier is only 167 h back across a spring DST change: it is left out,
    so a row with one such lag has no profile at all."""
    history = cells(range(MONDAY, MONDAY + 1), lambda d, h: 40.0)
    history["hour_ms"] += HOUR_MS  # every cell an hour later in UTC than its wall time says
    out = hour_of_week_profile(row(MONDAY + 7, 10), history, np.array([]))
    assert np.isnan(out["how_median_12w_w"].iloc[0]) and np.isnan(out["profile_w"].iloc[0])
    assert out["level_ratio"].iloc[0] == 1.0  # nothing to compare: unscaled


def test_rows_keep_their_index_and_order() -> None:
    history = cells(range(MONDAY, MONDAY + 21), lit_by_day)
    rows = pd.concat([row(MONDAY + 21, 3), row(MONDAY + 21, 10)]).set_axis([7, 5])
    out = hour_of_week_profile(rows, history, np.array([]))
    assert out.index.tolist() == [7, 5] and out["how_median_12w_w"].tolist() == [1.0, 50.0]


@pytest.mark.parametrize("seed", range(5))
def test_nanmedian_rows_is_numpys_nanmedian(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(200, 12)).round(1)  # rounded: ties and equal middles occur
    values[rng.random(values.shape) < 0.4] = np.nan
    values[:5] = np.nan  # rows without any value
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(values, axis=1)
    np.testing.assert_array_equal(nanmedian_rows(values), expected)

"""Runs of touching pieces and the exact money helpers (slem_ml/billing/sessions.py), on hand-made pieces.

Times are in whole minutes from an arbitrary origin (``M`` ms each); power is in mW. A piece's energy is
``power_mw × length_ms`` [mW·ms], and 1 kWh is 3.6 × 10¹² mW·ms (docs/billing-rules.md "Sessions and money").
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.coverage import Pieces
from slem_ml.billing.sessions import (
    MS_PER_KWH_UNIT,
    decimal_kwh,
    decimal_minutes,
    find_runs,
    labels_at,
    round_cents,
)
from slem_ml.io import schema as S

M = S.MS_PER_MINUTE
OVERTIME, CLEANING, CONTRACT = 2, 3, 1


def pieces(rows: list[tuple[int, int, int, int, int, int]]) -> Pieces:
    """Pieces from ``(reading, start_min, end_min, day, usage, power_mw)`` rows, in (zone, time) order."""
    reading, start, end, day, usage, power = (
        np.array(col, dtype=np.int64) for col in zip(*rows, strict=True)
    )
    return Pieces(reading, start * M, end * M, day, usage.astype(np.int8), power)


# Zone 0: readings 0–3, zone 1: readings 4–5. Day 100 ends at minute 600.
#   piece reading  minutes    day  class     power
#   0     0        0–10       100  overtime  10 W
#   1     1        10–20      100  overtime  20 W   touches 0
#   2     2        20–30      100  contract  30 W   breaks the overtime run
#   3     3        30–40      100  overtime  40 W
#   4     3        50–60      100  overtime  40 W   gap 40–50: a new run
#   5     4        60–70      100  overtime   5 W   zone 1 starts where zone 0 ended: a new run
#   6     4        70–80      100  overtime   5 W
#   7     5        590–600    100  overtime   8 W
#   8     5        600–610    101  overtime   8 W   the same reading cut at midnight
ZONE = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
PIECES = pieces(
    [
        (0, 0, 10, 100, OVERTIME, 10_000),
        (1, 10, 20, 100, OVERTIME, 20_000),
        (2, 20, 30, 100, CONTRACT, 30_000),
        (3, 30, 40, 100, OVERTIME, 40_000),
        (3, 50, 60, 100, OVERTIME, 40_000),
        (4, 60, 70, 100, OVERTIME, 5_000),
        (4, 70, 80, 100, OVERTIME, 5_000),
        (5, 590, 600, 100, OVERTIME, 8_000),
        (5, 600, 610, 101, OVERTIME, 8_000),
    ]
)


def test_runs_break_on_a_gap_a_class_change_and_a_zone_change_but_not_at_an_unkeyed_midnight() -> None:
    runs = find_runs(PIECES, PIECES.usage == OVERTIME, ZONE)
    assert runs.selected.tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    assert runs.first_piece.tolist() == [0, 2, 3, 4, 6]  # positions among the selected pieces
    assert runs.run_of_piece.tolist() == [0, 0, 1, 2, 3, 3, 4, 4]
    assert runs.reading.tolist() == [0, 3, 3, 4, 5]
    assert (runs.start_ms // M).tolist() == [0, 30, 50, 60, 590]
    assert (runs.end_ms // M).tolist() == [20, 40, 60, 80, 610]
    assert (runs.covered_ms // M).tolist() == [20, 10, 10, 20, 20]
    # 10 W × 10 min + 20 W × 10 min = 10,000 mW × 600,000 ms + 20,000 mW × 600,000 ms
    assert runs.energy.tolist() == [
        18_000_000_000,
        24_000_000_000,
        24_000_000_000,
        6_000_000_000,
        9_600_000_000,
    ]
    assert runs.day.tolist() == [100, 100, 100, 100, 100]  # a run keeps the date of its first piece


def test_a_day_key_splits_the_run_at_midnight() -> None:
    """Overtime sessions (SPEC §3.4) are keyed by local date as well: the last reading makes two runs."""
    runs = find_runs(PIECES, PIECES.usage == OVERTIME, ZONE, PIECES.day)
    assert (runs.start_ms // M).tolist() == [0, 30, 50, 60, 590, 600]
    assert (runs.end_ms // M).tolist() == [20, 40, 60, 80, 600, 610]
    assert runs.day.tolist() == [100, 100, 100, 100, 100, 101]
    assert runs.reading.tolist() == [0, 3, 3, 4, 5, 5]


def test_without_keys_touching_pieces_of_two_zones_would_merge() -> None:
    """Why the zone is a key: pieces 4 (zone 0) and 5 (zone 1) touch at minute 60."""
    runs = find_runs(PIECES, PIECES.usage == OVERTIME)
    assert (runs.start_ms // M).tolist() == [0, 30, 50, 590]
    assert (runs.end_ms // M).tolist() == [20, 40, 80, 610]


def test_a_key_change_between_touching_pieces_breaks_the_run() -> None:
    client = np.array([7, 8, 7, 7, 7, 7, 7, 7, 7])  # pieces 0 and 1 touch but belong to two clients
    runs = find_runs(PIECES, PIECES.usage == OVERTIME, ZONE, client)
    assert (runs.start_ms // M).tolist()[:2] == [0, 10]
    assert runs.reading.tolist()[:2] == [0, 1]


def test_a_single_selected_piece_is_one_run() -> None:
    runs = find_runs(PIECES, PIECES.usage == CONTRACT, ZONE)
    assert runs.selected.tolist() == [2]
    assert runs.first_piece.tolist() == [0]
    assert (runs.start_ms // M).tolist() == [20] and (runs.end_ms // M).tolist() == [30]
    assert runs.energy.tolist() == [30_000 * 10 * M]


def test_nothing_selected_gives_empty_runs() -> None:
    runs = find_runs(PIECES, PIECES.usage == CLEANING, ZONE)
    for name in ("first_piece", "reading", "start_ms", "end_ms", "covered_ms", "energy", "day", "selected"):
        assert len(getattr(runs, name)) == 0, name


def test_labels_at_reads_the_category_text_of_the_rows() -> None:
    column = pd.Series(
        pd.Categorical(["HQ-F2-Z1", "R&D-F1-Z5", "HQ-F2-Z1"], categories=["unused", "R&D-F1-Z5", "HQ-F2-Z1"])
    )
    out = labels_at(column, np.array([2, 1, 0]))
    assert out.tolist() == ["HQ-F2-Z1", "R&D-F1-Z5", "HQ-F2-Z1"]
    assert out.dtype == object


def test_labels_at_of_integer_categories_is_text() -> None:
    column = pd.Series(pd.Categorical([3, 1, 3]))
    assert labels_at(column, np.array([0, 1])).tolist() == ["3", "1"]


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (25 * 15, 60, "6.25"),  # 25 minutes at 15.00 per hour
        (1, 200, "0.01"),  # 0.005: half up
        (1, 201, "0.00"),  # 0.004975…
        (1, 8, "0.13"),  # 0.125: half up, where round() would give 0.12
        (1, 3, "0.33"),
        (2, 3, "0.67"),
        (0, 7, "0.00"),
        (2**63 - 1, 1, "9223372036854775807.00"),  # 200 × numerator is past int64: Python integers
    ],
)
def test_round_cents_is_half_up_and_exact(numerator: int, denominator: int, expected: str) -> None:
    out = round_cents(numerator, denominator)
    assert isinstance(out, Decimal)
    assert str(out) == expected


def test_one_kwh_in_energy_units() -> None:
    """1 kWh = 1000 W × 1000 mW/W × 1 h, and 1 h = 3,600,000 ms."""
    assert MS_PER_KWH_UNIT == 1000 * 1000 * 3_600_000


@pytest.mark.parametrize(
    ("energy", "expected"),
    [
        (3_600_000_000_000, "1.000000"),
        (10_000 * 15 * M, "0.002500"),  # 10 W for 15 minutes
        (1_800_000, "0.000001"),  # exactly 0.0000005 kWh: half up
        (1_799_999, "0.000000"),
        (0, "0.000000"),
    ],
)
def test_decimal_kwh_has_six_decimals_half_up(energy: int, expected: str) -> None:
    assert str(decimal_kwh(energy)) == expected


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (M, "1.000"),
        (90_500, "1.508"),  # 1.50833…
        (30, "0.001"),  # exactly 0.0005 minutes: half up
        (29, "0.000"),
        (180 * M + 20, "180.000"),  # 180 min + 20 ms shows as 180.000 (docs/billing-rules.md)
        (0, "0.000"),
    ],
)
def test_decimal_minutes_has_three_decimals_half_up(ms: int, expected: str) -> None:
    assert str(decimal_minutes(ms)) == expected

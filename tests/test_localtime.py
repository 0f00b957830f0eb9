"""Site wall time ↔ UTC (slem_ml/io/localtime.py), on cases worked out by hand.

Europe/Berlin in 2025: CET (UTC+1) until Sunday 30 March, when the clocks jump from 02:00 to 03:00 at 01:00Z
(so 02:00–03:00 local does not exist); CEST (UTC+2) until Sunday 26 October, when they fall back from 03:00 to
02:00 at 01:00Z (so 02:00–03:00 local happens twice: first 00:00–01:00Z in CEST, then 01:00–02:00Z in CET).
The rules for the gap and the fold are in the module's docstrings and docs/billing-rules.md "Input
normalisation" and "Contract windows". Day numbers count days since 1970-01-01.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from slem_ml.io.localtime import (
    day_to_date,
    iso_local,
    local_day_numbers,
    localize_naive,
    ms_to_local,
    wall_to_utc,
)

BERLIN = "Europe/Berlin"
EPOCH = dt.date(1970, 1, 1)
SPRING = dt.date(2025, 3, 30)  # Berlin: 02:00 → 03:00
AUTUMN = dt.date(2025, 10, 26)  # Berlin: 03:00 → 02:00
NAT = np.datetime64("NaT", "ms")


def day(date: dt.date) -> int:
    """Day number of a date: days since 1970-01-01."""
    return (date - EPOCH).days


def ms(text: str) -> np.datetime64:
    """A naive ``datetime64[ms]`` (a wall time, or a UTC instant where the test says so)."""
    return np.datetime64(text, "ms")


def naive(*texts: str) -> np.ndarray:
    return np.array([ms(t) if t != "NaT" else NAT for t in texts], dtype="datetime64[ms]")


def utc_ms(text: str) -> int:
    """Milliseconds since the epoch of a UTC instant."""
    return int(np.datetime64(text, "ms").astype(np.int64))


# --- localize_naive: naive wall times from a file -------------------------------------------------


def test_spring_gap_wall_times_do_not_exist() -> None:
    wall = naive(
        "2025-03-30T01:59:59.999",
        "2025-03-30T02:00",
        "2025-03-30T02:30",
        "2025-03-30T02:59:59.999",
        "2025-03-30T03:00",
    )
    utc, gap = localize_naive(wall, np.array(["HQ-F1-Z1"] * 5), BERLIN)
    assert gap.tolist() == [False, True, True, True, False]
    assert utc[0] == ms("2025-03-30T00:59:59.999")  # CET, UTC+1
    assert np.isnat(utc[1]) and np.isnat(utc[2]) and np.isnat(utc[3])
    assert utc[4] == ms("2025-03-30T01:00")  # CEST, UTC+2
    assert utc.dtype == np.dtype("datetime64[ms]")


def test_fold_with_one_pass_is_summer_time() -> None:
    wall = naive(
        "2025-10-26T01:59", "2025-10-26T02:00", "2025-10-26T02:15", "2025-10-26T02:59", "2025-10-26T03:00"
    )
    utc, gap = localize_naive(wall, np.array(["HQ-F1-Z1"] * 5), BERLIN)
    assert not gap.any()
    assert (
        utc.tolist()
        == naive(
            "2025-10-25T23:59",  # 01:59 CEST
            "2025-10-26T00:00",  # 02:00 CEST: first occurrence
            "2025-10-26T00:15",
            "2025-10-26T00:59",
            "2025-10-26T02:00",  # 03:00 CET: exists once
        ).tolist()
    )


def test_fold_with_two_passes_switches_to_standard_time_where_the_clock_goes_back() -> None:
    """02:00, 02:30, 02:45 (summer), then 02:15 < 02:45: the clock went back, standard time from there on."""
    wall = naive(
        "2025-10-26T01:45",
        "2025-10-26T02:00",
        "2025-10-26T02:30",
        "2025-10-26T02:45",
        "2025-10-26T02:15",
        "2025-10-26T02:30",
        "2025-10-26T02:45",
        "2025-10-26T03:00",
    )
    utc, gap = localize_naive(wall, np.array(["HQ-F1-Z1"] * len(wall)), BERLIN)
    assert not gap.any()
    assert (
        utc.tolist()
        == naive(
            "2025-10-25T23:45",  # 01:45 CEST
            "2025-10-26T00:00",  # summer
            "2025-10-26T00:30",
            "2025-10-26T00:45",
            "2025-10-26T01:15",  # standard (CET, UTC+1) from the step back on
            "2025-10-26T01:30",
            "2025-10-26T01:45",
            "2025-10-26T02:00",  # 03:00 CET
        ).tolist()
    )


def test_fold_rule_is_applied_per_zone() -> None:
    """Zone A goes back (02:50 → 02:05); zone B's 02:20 after A's 02:50 is not a step back of B's clock."""
    wall = naive(
        "2025-10-26T02:10", "2025-10-26T02:50", "2025-10-26T02:20", "2025-10-26T02:05", "2025-10-26T02:40"
    )
    zones = np.array(["A", "A", "B", "A", "B"])
    utc, _ = localize_naive(wall, zones, BERLIN)
    assert (
        utc.tolist()
        == naive(
            "2025-10-26T00:10",  # A summer
            "2025-10-26T00:50",  # A summer
            "2025-10-26T00:20",  # B summer
            "2025-10-26T01:05",  # A standard: its clock went back
            "2025-10-26T00:40",  # B summer: B only went forward
        ).tolist()
    )


def test_equal_wall_times_in_the_fold_are_not_a_step_back() -> None:
    wall = naive("2025-10-26T02:30", "2025-10-26T02:30")
    utc, _ = localize_naive(wall, np.array(["A", "A"]), BERLIN)
    assert utc.tolist() == naive("2025-10-26T00:30", "2025-10-26T00:30").tolist()


def test_nat_stays_nat_and_is_not_a_gap() -> None:
    utc, gap = localize_naive(naive("NaT", "2025-01-30T05:01"), np.array(["A", "A"]), BERLIN)
    assert np.isnat(utc[0]) and utc[1] == ms("2025-01-30T04:01")
    assert gap.tolist() == [False, False]


def test_utc_site_takes_wall_time_as_is() -> None:
    wall = naive("2025-03-30T02:30", "2025-10-26T02:30")
    utc, gap = localize_naive(wall, np.array(["A", "A"]), "UTC")
    assert utc.tolist() == wall.tolist() and not gap.any()


def test_new_york_gap_and_fold() -> None:
    """US 2025: 9 March 02:00 EST → 03:00 EDT (UTC−5 → −4); 2 November 02:00 EDT → 01:00 EST."""
    wall = naive("2025-03-09T02:30", "2025-03-09T03:30", "2025-11-02T01:30")
    utc, gap = localize_naive(wall, np.array(["A", "A", "A"]), "America/New_York")
    assert gap.tolist() == [True, False, False]
    assert utc[1] == ms("2025-03-09T07:30")  # 03:30 EDT
    assert utc[2] == ms("2025-11-02T05:30")  # 01:30 EDT, the first occurrence


# --- wall_to_utc: contract window edges -----------------------------------------------------------


def test_ordinary_winter_and_summer_days() -> None:
    days = np.array([day(dt.date(2025, 1, 30)), day(dt.date(2025, 6, 13))])
    minutes = np.array([8 * 60, 18 * 60])
    out = wall_to_utc(days, minutes, BERLIN)
    assert out.tolist() == naive("2025-01-30T07:00", "2025-06-13T16:00").tolist()


def test_spring_gap_wall_times_move_forward_by_the_gap() -> None:
    """Read with the offset before the gap (+01:00): 02:00 is 01:00Z (= 03:00 CEST), 02:30 is 01:30Z."""
    minutes = np.array([0, 119, 120, 150, 179, 180, 1440])
    out = wall_to_utc(np.full(len(minutes), day(SPRING)), minutes, BERLIN)
    assert (
        out.tolist()
        == naive(
            "2025-03-29T23:00",  # midnight CET
            "2025-03-30T00:59",  # 01:59 CET
            "2025-03-30T01:00",  # 02:00 → 03:00 CEST
            "2025-03-30T01:30",  # 02:30 → 03:30 CEST
            "2025-03-30T01:59",  # 02:59 → 03:59 CEST
            "2025-03-30T01:00",  # 03:00 CEST
            "2025-03-30T22:00",  # next midnight, CEST
        ).tolist()
    )


def test_window_wholly_inside_the_spring_gap_is_empty() -> None:
    """docs/billing-rules.md: Berlin 02:30–03:00 on the last Sunday of March has close before open."""
    opens, closes = wall_to_utc(np.array([day(SPRING)] * 2), np.array([150, 180]), BERLIN)
    assert closes < opens


def test_fold_wall_times_take_the_first_occurrence() -> None:
    minutes = np.array([0, 120, 150, 180, 1440])
    out = wall_to_utc(np.full(len(minutes), day(AUTUMN)), minutes, BERLIN)
    assert (
        out.tolist()
        == naive(
            "2025-10-25T22:00",  # midnight CEST
            "2025-10-26T00:00",  # 02:00 CEST, first occurrence
            "2025-10-26T00:30",  # 02:30 CEST
            "2025-10-26T02:00",  # 03:00 CET
            "2025-10-26T23:00",  # next midnight, CET
        ).tolist()
    )


def test_local_days_are_23_and_25_hours_long_around_the_changes() -> None:
    days = np.array([day(SPRING), day(AUTUMN), day(dt.date(2025, 1, 30))])
    start = wall_to_utc(days, np.zeros(3, np.int64), BERLIN).astype(np.int64)
    end = wall_to_utc(days, np.full(3, 1440), BERLIN).astype(np.int64)
    assert ((end - start) // 3_600_000).tolist() == [23, 25, 24]


@pytest.mark.xfail(
    strict=True,
    reason="wall_to_utc finds the gap's end with pandas tz_localize(nonexistent='shift_forward'), which "
    "for Australia/Lord_Howe returns 03:00+11:00 instead of 02:30+11:00; the offset 'just before the gap' "
    "is then read as +11:00 and 02:15 becomes 15:15Z (01:45 local, moved backwards) instead of 15:45Z",
)
def test_half_hour_gap_moves_forward_by_half_an_hour() -> None:
    """Lord Howe Island, 5 October 2025: 02:00 (+10:30) → 02:30 (+11:00). 02:15 is read as +10:30."""
    out = wall_to_utc(
        np.array([day(dt.date(2025, 10, 5))] * 3), np.array([119, 135, 150]), "Australia/Lord_Howe"
    )
    assert out.tolist() == naive("2025-10-04T15:29", "2025-10-04T15:45", "2025-10-04T15:30").tolist()


def test_utc_site_wall_time_is_the_instant() -> None:
    out = wall_to_utc(np.array([day(SPRING)]), np.array([150]), "UTC")
    assert out.tolist() == naive("2025-03-30T02:30").tolist()


# --- local_day_numbers, day_to_date ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "timezone", "date"),
    [
        ("2025-01-30T22:59:59.999", BERLIN, dt.date(2025, 1, 30)),  # 23:59:59.999 CET
        ("2025-01-30T23:00", BERLIN, dt.date(2025, 1, 31)),  # 00:00 CET: already the next local date
        ("2025-06-30T21:59", BERLIN, dt.date(2025, 6, 30)),  # 23:59 CEST
        ("2025-06-30T22:00", BERLIN, dt.date(2025, 7, 1)),  # 00:00 CEST
        ("2025-01-31T03:00", "America/New_York", dt.date(2025, 1, 30)),  # 22:00 EST the day before
        ("2025-01-31T03:00", "UTC", dt.date(2025, 1, 31)),
        ("1969-12-31T23:30", BERLIN, dt.date(1970, 1, 1)),  # 00:30 CET: day 0
        ("1969-12-31T22:30", BERLIN, dt.date(1969, 12, 31)),  # 23:30 CET: day −1
    ],
)
def test_local_day_numbers_around_midnight(instant: str, timezone: str, date: dt.date) -> None:
    assert local_day_numbers(naive(instant), timezone).tolist() == [day(date)]


def test_local_day_numbers_accept_int64_milliseconds() -> None:
    """The module's instants are datetime64[ms] *or* int64 ms."""
    out = local_day_numbers(np.array([utc_ms("2025-01-30T23:00")], dtype=np.int64), BERLIN)
    assert out.tolist() == [day(dt.date(2025, 1, 31))]
    assert out.dtype == np.int64


def test_fold_hour_belongs_to_its_local_date() -> None:
    """Both passes of 02:30 on 26 October (00:30Z and 01:30Z) are on 26 October."""
    out = local_day_numbers(naive("2025-10-25T21:59", "2025-10-26T00:30", "2025-10-26T01:30"), BERLIN)
    assert out.tolist() == [day(dt.date(2025, 10, 25)), day(AUTUMN), day(AUTUMN)]


def test_day_to_date() -> None:
    # 2025-01-01 is day 55 × 365 + 14 leap days = 20,089; 30 January is 29 days later, 30 March 88 days
    out = day_to_date(np.array([0, -1, 20_118, 20_177], dtype=np.int64))
    assert out == [dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2025, 1, 30), dt.date(2025, 3, 30)]
    assert all(type(d) is dt.date for d in out)


# --- ms_to_local, iso_local -----------------------------------------------------------------------


def test_ms_to_local_accepts_int64_milliseconds() -> None:
    out = ms_to_local(
        np.array([utc_ms("2025-01-31T00:00"), utc_ms("2025-07-10T16:00:00.250")], np.int64), BERLIN
    )
    assert str(out.tz) == BERLIN
    assert out[0] == pd.Timestamp("2025-01-31 01:00", tz=BERLIN)
    assert out[1] == pd.Timestamp("2025-07-10 18:00:00.250", tz=BERLIN)
    assert [ts.utcoffset() for ts in out] == [dt.timedelta(hours=1), dt.timedelta(hours=2)]


def test_ms_to_local_accepts_datetime64_and_keeps_both_passes_of_the_fold() -> None:
    out = ms_to_local(naive("2025-10-26T00:30", "2025-10-26T01:30"), BERLIN)
    assert [ts.strftime("%H:%M") for ts in out] == ["02:30", "02:30"]
    assert [ts.utcoffset() for ts in out] == [dt.timedelta(hours=2), dt.timedelta(hours=1)]


def test_iso_local_offsets_and_milliseconds() -> None:
    instants = naive(
        "2025-02-10T17:00",  # 18:00 CET
        "2025-07-10T16:00:00.250",  # 18:00:00.250 CEST
        "2025-10-26T00:30",  # 02:30 CEST, first pass
        "2025-10-26T01:30",  # 02:30 CET, second pass
        "2025-02-10T17:00:00.001",
    )
    out = iso_local(ms_to_local(instants, BERLIN))
    assert out.tolist() == [
        "2025-02-10T18:00:00+01:00",
        "2025-07-10T18:00:00.250+02:00",
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T02:30:00+01:00",
        "2025-02-10T18:00:00.001+01:00",
    ]
    assert isinstance(out, np.ndarray)


@pytest.mark.parametrize(
    ("timezone", "text"),
    [
        ("UTC", "2025-02-10T17:00:00+00:00"),
        ("America/New_York", "2025-02-10T12:00:00-05:00"),
        ("Asia/Kolkata", "2025-02-10T22:30:00+05:30"),
        ("America/St_Johns", "2025-02-10T13:30:00-03:30"),
    ],
)
def test_iso_local_other_offsets(timezone: str, text: str) -> None:
    assert iso_local(ms_to_local(naive("2025-02-10T17:00"), timezone)).tolist() == [text]


def test_iso_local_of_nothing_is_empty() -> None:
    assert iso_local(ms_to_local(np.zeros(0, np.int64), BERLIN)).tolist() == []


def test_utc_ms_reads_tz_aware_instants_and_iso_text_with_offsets() -> None:
    from slem_ml.io.localtime import utc_ms

    berlin = pd.Series(pd.to_datetime(["2025-02-10 18:00"]).tz_localize("Europe/Berlin"))
    text = pd.Series(["2025-02-10T18:00:00.250+01:00"])
    assert utc_ms(berlin).tolist() == [1_739_206_800_000]  # 17:00 UTC
    assert utc_ms(text).tolist() == [1_739_206_800_250]

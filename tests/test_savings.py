"""Savings opportunities (SPEC §10, issue 14 item 2): hand-built zones whose windows, savings and occupied
cuts are worked out on paper, and a generated site checked against the generator's ground truth."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.coverage import compute_coverage, in_contract_at
from slem_ml.config.site import parse_site
from slem_ml.generator.generate import FaultRates, GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.localtime import wall_to_utc
from slem_ml.models.savings import DAY_KINDS, savings_opportunities
from slem_ml.models.savings_parts import coverage_end

TZ = "Europe/Berlin"
SITE = parse_site(
    {
        "site": {"timezone": TZ, "currency": "EUR"},
        "sampling": {"on_threshold_w": 5, "max_gap_minutes": 15},
        "clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}, "C005": {"hours": "24/7"}},
    }
)
HISTORY_START, HISTORY_DAYS = dt.date(2025, 1, 6), 56  # Monday, 8 weeks
PERIOD_START, PERIOD_DAYS = dt.date(2025, 3, 3), 14  # Monday 3 – Sunday 16 March (no DST change)
PRICE, CO2 = Decimal("0.30"), 0.4
MONEY = "Saved money [EUR]"

#: power [W] of a zone from arrays of weekday (Mon = 0), minute of the local day and date
Power = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _zone(zone_id: str, client: str, first: dt.date, days: int, power: Power) -> pd.DataFrame:
    """One zone read every 15 minutes of local time from ``first`` for ``days`` days."""
    day0 = (first - dt.date(1970, 1, 1)).days
    day = np.repeat(np.arange(day0, day0 + days, dtype=np.int64), 96)
    minute = np.tile(np.arange(0, 1440, 15, dtype=np.int64), days)
    weekday = (day + 3) % 7
    dates = day.astype("datetime64[D]")
    utc = wall_to_utc(day, minute, TZ)
    return pd.DataFrame(
        {
            S.TIMESTAMP: pd.DatetimeIndex(utc).tz_localize("UTC"),
            S.ZONE_ID: zone_id,
            S.CLIENT_ID: client,
            S.POWER_W: power(weekday, minute, dates).astype(float),
            S.CLEANING_STAFF: False,
            S.BUILDING: "HQ",
            S.FLOOR: "1",
        }
    )


def _frame(*zones: pd.DataFrame) -> pd.DataFrame:
    frame = pd.concat(zones, ignore_index=True)
    return frame.astype({S.ZONE_ID: "category", S.CLIENT_ID: "category", S.BUILDING: "category"})


def _left_on(late_until: dict[int, int] | None = None) -> Power:
    """Lit at 600 W in the contract (Mon–Fri 08–18), then left on at 400 W until 07:00 the next morning —
    except on the weekdays of ``late_until`` (weekday → minute), where someone works until then and
    switches off."""
    late = late_until or {}

    def power(weekday: np.ndarray, minute: np.ndarray, _dates: np.ndarray) -> np.ndarray:
        work = weekday < 5
        day = work & (minute >= 480) & (minute < 1080)
        stop = np.array([late.get(w, 1440) for w in range(7)])[weekday]
        evening = work & (minute >= 1080) & (minute < stop)
        prev = (weekday + 6) % 7  # the evening before this morning
        morning = (prev < 5) & (minute < 420) & ~np.isin(prev, list(late))
        return np.select([day, evening | morning], [600.0, 400.0], 0.0)

    return power


def _always(watts: float) -> Power:
    return lambda weekday, minute, _dates: np.full(len(minute), watts)


def _tenant_24_7(weekday: np.ndarray, minute: np.ndarray, _dates: np.ndarray) -> np.ndarray:
    return np.where((minute >= 360) & (minute < 1320), 300.0, 0.0)


def _monday_late(weekday: np.ndarray, minute: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """As :func:`_left_on`, but every Monday someone stays until 20:00 and switches off."""
    return _left_on({0: 1200})(weekday, minute, dates)


@pytest.fixture(scope="module")
def hand_built():
    zones = {
        "A": (_left_on(), _left_on()),  # left on every weekday night, in history and period
        "B": (_left_on(), _left_on({2: 1260})),  # period: works until 21:00 on Wednesdays
        "C": (_left_on(), _left_on({1: 1260, 3: 1260})),  # period: until 21:00 on Tuesdays and Thursdays
        "D": (_always(300), _always(300)),  # stuck on round the clock
        "F": (_monday_late, _monday_late),  # history: Mondays until 20:00
    }
    history = [_zone(f"HQ-F1-Z{k}", "C001", HISTORY_START, HISTORY_DAYS, h) for k, (h, _) in zones.items()]
    period = [_zone(f"HQ-F1-Z{k}", "C001", PERIOD_START, PERIOD_DAYS, p) for k, (_, p) in zones.items()]
    history.append(_zone("HQ-F1-ZE", "C005", HISTORY_START, HISTORY_DAYS, _tenant_24_7))
    period.append(_zone("HQ-F1-ZE", "C005", PERIOD_START, PERIOD_DAYS, _tenant_24_7))
    return savings_opportunities(
        _frame(*history), _frame(*period), SITE, price_per_kwh=PRICE, co2_kg_per_kwh=CO2
    )


def _row(savings, zone: str) -> pd.Series:
    rows = savings.table[savings.table["Zone"] == zone]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_lights_left_on_every_night_are_cut_at_closing_and_saved(hand_built) -> None:
    row = _row(hand_built, "HQ-F1-ZA")
    assert (row["Switch off at"], row["Switch on at"], row["Days"]) == ("18:00", "07:00", DAY_KINDS[0])
    # 10 weekday nights (3–7 and 10–14 March), each 13 h at 400 W inside the window = 5.2 kWh
    assert row["Saved energy [kWh]"] == pytest.approx(52.0)
    assert row[MONEY] == Decimal("15.60")
    assert row["Saved CO₂ [kg]"] == pytest.approx(20.8)
    assert (row["Occupied cuts"], row["Occupied cuts per week"]) == (0, 0.0)
    assert row["Building"] == "HQ" and row["Floor"] == "1"


def test_a_late_worker_who_switches_off_is_an_occupied_cut(hand_built) -> None:
    row = _row(hand_built, "HQ-F1-ZB")
    assert (row["Switch off at"], row["Switch on at"]) == ("18:00", "07:00")
    assert row["Saved energy [kWh]"] == pytest.approx(8 * 5.2)  # the two Wednesdays save nothing
    assert row[MONEY] == Decimal("12.48")
    assert (row["Occupied cuts"], row["Occupied cuts per week"]) == (2, 1.0)  # once a week: still made
    nights = hand_built.nights
    cuts = nights[(nights[S.ZONE_ID] == "HQ-F1-ZB") & (nights["outcome"] == "occupied cut")]
    assert list(cuts["off"].dt.strftime("%a %d %H:%M")) == ["Wed 05 18:00", "Wed 12 18:00"]


def test_a_window_that_cuts_more_than_once_a_week_is_not_made(hand_built) -> None:
    assert "HQ-F1-ZC" not in set(hand_built.table["Zone"])
    nights = hand_built.nights
    cuts = nights[(nights[S.ZONE_ID] == "HQ-F1-ZC") & (nights["outcome"] == "occupied cut")]
    assert len(cuts) == 4  # Tuesdays and Thursdays: 2 per week
    assert hand_built.rejected == 1


def test_the_usual_evening_light_pushes_the_switch_off_later(hand_built) -> None:
    row = _row(hand_built, "HQ-F1-ZF")
    # Mondays lit until 20:00 and switched off then: 20:00–21:00 is in use on 1 of 5 weekdays (≥ 5 %)
    assert (row["Switch off at"], row["Switch on at"]) == ("21:00", "07:00")
    # 8 nights left on from 21:00 to 07:00 at 400 W (the two Mondays are dark by 21:00)
    assert row["Saved energy [kWh]"] == pytest.approx(8 * 4.0)
    assert row["Occupied cuts"] == 0


def test_round_the_clock_zones_get_nothing_and_the_note_counts(hand_built) -> None:
    zones = set(hand_built.table["Zone"])
    assert {"HQ-F1-ZD", "HQ-F1-ZE"}.isdisjoint(zones)  # stuck on; a 24/7 client
    assert list(hand_built.table["Zone"]) == ["HQ-F1-ZA", "HQ-F1-ZB", "HQ-F1-ZF"]  # most money first
    assert list(hand_built.table.columns) == [
        "Zone", "Building", "Floor", "Switch off at", "Switch on at", "Days", "Saved energy [kWh]", MONEY,
        "Saved CO₂ [kg]", "Occupied cuts", "Occupied cuts per week",
    ]  # fmt: skip
    assert hand_built.considered == 6
    assert hand_built.note == (
        "Learnt from 8 weeks before the period; 3 of 6 zones have a safe switch-off window that would have "
        "saved energy; 1 was rejected: it would have cut an occupied zone more than once a week."
    )


@pytest.mark.parametrize("days", [0, 10])
def test_too_little_history_gives_an_empty_table_and_says_why(days: int) -> None:
    period = _frame(_zone("HQ-F1-ZA", "C001", PERIOD_START, PERIOD_DAYS, _left_on()))
    first = PERIOD_START - dt.timedelta(days=max(days, 1))
    history = _frame(_zone("HQ-F1-ZA", "C001", first, max(days, 1), _left_on())).iloc[: days * 96]
    result = savings_opportunities(history, period, SITE, price_per_kwh=PRICE, co2_kg_per_kwh=CO2)
    assert result.table.empty and MONEY in result.table.columns
    assert result.note == "No savings opportunities: fewer than 2 weeks of history before the period."
    assert (result.considered, result.rejected) == (1, 0)


def test_a_period_that_is_never_lit_saves_nothing() -> None:
    history = _frame(_zone("HQ-F1-ZA", "C001", HISTORY_START, HISTORY_DAYS, _left_on()))
    period = _frame(_zone("HQ-F1-ZA", "C001", PERIOD_START, PERIOD_DAYS, _always(0.0)))
    result = savings_opportunities(history, period, SITE, price_per_kwh=PRICE, co2_kg_per_kwh=CO2)
    assert result.table.empty and (result.considered, result.rejected) == (1, 0)
    assert set(result.nights["outcome"]) == {"dark"} and len(result.nights) == 13  # 10 weekday + 3 weekend
    assert result.note.startswith("Learnt from 8 weeks before the period; 0 of 1 zones have")


# --- a generated site against the generator's truth ------------------------------------------------


@pytest.fixture(scope="module")
def generated():
    site = dataclasses.replace(
        default_site(), sampling=dataclasses.replace(default_site().sampling, max_gap_minutes=15)
    )
    rates = FaultRates(stuck_on_per_zone_day=0.03)  # lights left on over night more often than by default
    config = GeneratorConfig(start=HISTORY_START, days=70, zones=40, step_minutes=15, seed=7, site=site,
                             fault_rates=rates)  # fmt: skip
    data = generate(config)
    frame = data.readings.assign(**{S.TIMESTAMP: data.readings[S.TIMESTAMP].dt.tz_convert("UTC")})
    frame = frame.sort_values([S.ZONE_ID, S.TIMESTAMP], kind="stable").reset_index(drop=True)
    cut = pd.Timestamp(PERIOD_START, tz=TZ)
    history = frame[frame[S.TIMESTAMP] < cut].reset_index(drop=True)
    period = frame[frame[S.TIMESTAMP] >= cut].reset_index(drop=True)
    savings = savings_opportunities(history, period, site, price_per_kwh=PRICE, co2_kg_per_kwh=CO2)
    return data, site, period, savings


def test_generated_windows_never_reach_into_contracted_hours(generated) -> None:
    _, site, period, savings = generated
    nights = savings.nights
    assert len(nights) > 100
    quarters = ((nights["on"] - nights["off"]) // pd.Timedelta(minutes=15)).to_numpy()
    row = np.repeat(np.arange(len(nights)), quarters)
    step = np.arange(len(row)) - np.repeat(np.cumsum(quarters) - quarters, quarters)
    off_ms = nights["off"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    instants = off_ms.view(np.int64)[row] + step * 15 * 60_000
    first_client = period.groupby(S.ZONE_ID, observed=True)[S.CLIENT_ID].first().astype(str)
    clients = pd.Series(pd.Categorical(first_client.loc[nights[S.ZONE_ID]].to_numpy()[row]))
    assert not in_contract_at(instants, clients, site).any()


def test_generated_savings_come_from_nights_nobody_was_there(generated) -> None:
    data, _, _, savings = generated
    saved = savings.nights[savings.nights["saved_kwh"] > 0]
    assert savings.table["Saved energy [kWh]"].sum() == pytest.approx(saved["saved_kwh"].sum(), abs=0.01)
    assert saved["saved_kwh"].sum() > 10  # the planted stuck-on nights
    labels = data.labels
    # people: tenants' overtime and crews at work (a crew leaving the lights on works ≤ 150 min of it)
    present = labels[labels["kind"].isin(["overtime", "cleaning"])].copy()
    left_on = present["cause"] == "lights_left_on"
    present.loc[left_on, "end"] = present.loc[left_on, "start"] + pd.Timedelta(minutes=150)
    merged = saved.merge(present[[S.ZONE_ID, "start", "end"]], on=S.ZONE_ID)
    overlap = merged[(merged["start"] < merged["on"]) & (merged["end"] > merged["off"])]
    assert overlap.empty, overlap
    stuck = labels[labels["kind"] == "stuck_on"].merge(saved, on=S.ZONE_ID)
    inside = stuck[(stuck["start"] <= stuck["off"]) & (stuck["end"] >= stuck["on"])]
    # every saved night lies inside a planted stuck-on fault
    assert len(inside[[S.ZONE_ID, "off"]].drop_duplicates()) == len(saved)
    # and every occupied cut is a night someone (a tenant, a crew) lit the zone: light is the only signal,
    # so a crew's lights left on that go off hours later read as someone there
    lit_by_people = labels[labels["kind"].isin(["overtime", "cleaning"])]
    cuts = savings.nights[savings.nights["outcome"] == "occupied cut"].merge(lit_by_people, on=S.ZONE_ID)
    cut_nights = savings.nights["outcome"].eq("occupied cut").sum()
    touched = cuts[(cuts["start"] < cuts["on"]) & (cuts["end"] > cuts["off"])]
    assert cut_nights > 0 and len(touched[[S.ZONE_ID, "off"]].drop_duplicates()) == cut_nights


def test_the_window_keeps_clear_of_the_grace_widened_contract() -> None:
    site = dataclasses.replace(SITE, clients={"C001": parse_site(
        {"billing": {"grace_minutes": 20}, "clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}}}
    ).clients["C001"]})  # fmt: skip

    def early(weekday: np.ndarray, minute: np.ndarray, _dates: np.ndarray) -> np.ndarray:
        return np.where((weekday < 5) & (minute >= 480) & (minute < 960), 600.0, 0.0)  # 08–16, then dark

    zones = (("HQ-F1-ZA", _left_on()), ("HQ-F1-ZG", early))
    history = _frame(*(_zone(z, "C001", HISTORY_START, HISTORY_DAYS, p) for z, p in zones))
    period = _frame(*(_zone(z, "C001", PERIOD_START, PERIOD_DAYS, p) for z, p in zones))
    result = savings_opportunities(history, period, site, price_per_kwh=PRICE, co2_kg_per_kwh=CO2)
    row = _row(result, "HQ-F1-ZA")
    # 18:00–18:20 is contract now, and lit: the hour from 18:00 is in use; 12 h × 400 W on 10 nights
    assert (row["Switch off at"], row["Switch on at"]) == ("19:00", "07:00")
    assert row["Saved energy [kWh]"] == pytest.approx(48.0)
    # dark from 16:00: the window starts where the widened contract ends (18:20 → 18:30) and ends before
    # it opens (07:40 → 07:30); nothing to save, so no row, but every weekday night was judged
    nights = result.nights[(result.nights[S.ZONE_ID] == "HQ-F1-ZG") & (result.nights["kind"] == 0)]
    assert len(nights) == 10 and set(nights["outcome"]) == {"dark"}
    assert set(nights["off"].dt.strftime("%H:%M")) == {"18:30"}
    assert set(nights["on"].dt.strftime("%H:%M")) == {"07:30"}
    assert "HQ-F1-ZG" not in set(result.table["Zone"])


def test_energy_is_counted_as_billing_counts_it(generated) -> None:
    """The backtest's coverage per reading is billing's (SPEC §3.1), gaps and dropouts included."""
    _, site, period, _ = generated
    keep = np.random.default_rng(1).random(len(period)) > 0.05  # readings lost: gaps beyond max_gap
    period = period[keep].reset_index(drop=True)
    z = period[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)
    t = period[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    covered = coverage_end(t, z, site.sampling.max_gap_minutes) - t
    expected = compute_coverage(period, site).covered_ms
    assert (np.diff(t)[z[1:] == z[:-1]] > 15 * 60_000).any()  # the period has gaps to get right
    np.testing.assert_array_equal(covered, expected)

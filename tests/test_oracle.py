"""The fast engine against the slow reference (``tests/reference.py``), to the cent.

First the reference itself on cases worked out by hand from ``docs/billing-rules.md``, then Hypothesis
properties that feed the same random readings to ``slem_ml.scoring.score.score`` and to the reference and
compare every invoice line, invoice and cleaning session exactly.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from slem_ml.config.site import SiteConfig, parse_site
from slem_ml.io.reader import validate_frame  # imported, never skipped: the oracle must run
from slem_ml.scoring.score import score
from tests.reference import (
    Record,
    ReferenceResult,
    drop_exact_duplicates,
    power_mw,
    reference_score,
    round_half_up,
    to_ms,
    wall_to_utc_ms,
)

UTC = dt.UTC

# --- helpers -------------------------------------------------------------------------------------


def make_site(tz: str = "UTC", clients: dict[str, Any] | None = None, **sections: Any) -> SiteConfig:
    raw: dict[str, Any] = {
        "site": {"timezone": tz, "currency": "EUR"},
        "sampling": {"on_threshold_w": 5, "max_gap_minutes": 15},
        "billing": {
            "hourly_rate": 15.00,
            "energy_rate": 0.20,
            "block_minutes": 15,
            "grace_minutes": 0,
        },
        "cleaning": {"expected_minutes": [30, 60], "flag_after_minutes": 180, "energy_price": 0.20},
        "clients": clients or {"C001": {"hours": {"mon-fri": "08:00-18:00"}}},
    }
    for name, body in sections.items():
        raw[name] = {**raw.get(name, {}), **body}
    return parse_site(raw)


def recs(rows: list[tuple[Any, ...]]) -> list[Record]:
    """(iso timestamp with offset, power_w[, cleaning[, client[, zone]]]) → records in input order."""
    out = []
    for i, row in enumerate(rows):
        ts, power, *rest = row
        cleaning = rest[0] if len(rest) > 0 else False
        client = rest[1] if len(rest) > 1 else "C001"
        zone = rest[2] if len(rest) > 2 else "HQ-F1-Z1"
        out.append(Record(dt.datetime.fromisoformat(ts), zone, client, float(power), cleaning, i + 2))
    return out


def iso(value: dt.datetime) -> str:
    return value.isoformat()


def ref(records: list[Record], site: SiteConfig) -> ReferenceResult:
    """The reference's result; the engine must agree with it on the same readings."""
    rows = [
        {
            "ms": to_ms(r.timestamp),
            "zone_id": r.zone_id,
            "client_id": r.client_id,
            "power_w": r.power_w,
            "cleaning_staff": r.cleaning_staff,
        }
        for r in sorted(records, key=lambda r: r.input_order)
    ]
    problems, _ = engine_vs_reference(site, rows)
    assert not problems, "engine differs:\n" + "\n".join(problems)
    return reference_score(records, site)


# --- the reference on hand-computed cases --------------------------------------------------------


def test_wall_times_in_gaps_move_forward_and_repeated_ones_take_the_first_occurrence() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring, autumn = dt.date(2025, 3, 30), dt.date(2025, 10, 26)

    def utc(day: dt.date, minute: int, tz: ZoneInfo) -> str:
        ms = wall_to_utc_ms(day, minute, tz)
        return (dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)).isoformat()

    assert utc(spring, 0, berlin) == "2025-03-29T23:00:00+00:00"
    assert utc(spring, 90, berlin) == "2025-03-30T00:30:00+00:00"  # 01:30 CET, before the gap
    assert utc(spring, 120, berlin) == "2025-03-30T01:00:00+00:00"  # 02:00 → 03:00 CEST
    assert utc(spring, 150, berlin) == "2025-03-30T01:30:00+00:00"  # 02:30 → 03:30 CEST (+ the gap)
    assert utc(spring, 180, berlin) == "2025-03-30T01:00:00+00:00"  # 03:00 CEST, the same instant
    assert utc(spring, 1440, berlin) == "2025-03-30T22:00:00+00:00"  # 24:00 = next midnight, CEST
    assert utc(autumn, 150, berlin) == "2025-10-26T00:30:00+00:00"  # 02:30 CEST, first occurrence
    assert utc(autumn, 180, berlin) == "2025-10-26T02:00:00+00:00"  # 03:00 CET
    new_york, sydney = ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")
    assert utc(dt.date(2025, 3, 9), 150, new_york) == "2025-03-09T07:30:00+00:00"  # 03:30 EDT
    assert utc(dt.date(2025, 11, 2), 90, new_york) == "2025-11-02T05:30:00+00:00"  # 01:30 EDT
    assert utc(dt.date(2025, 10, 5), 150, sydney) == "2025-10-04T16:30:00+00:00"  # 03:30 AEDT
    assert utc(dt.date(2025, 4, 6), 150, sydney) == "2025-04-05T15:30:00+00:00"  # 02:30 AEDT
    kolkata = ZoneInfo("Asia/Kolkata")
    assert utc(dt.date(2025, 6, 1), 0, kolkata) == "2025-05-31T18:30:00+00:00"


def test_exact_helpers() -> None:
    assert power_mw(1.5) == 1500
    assert power_mw(0.0004) == 0
    assert power_mw(1.2345) == 1235  # 1234.5 in double, rounds up
    assert round_half_up(Fraction(1, 40), 2) == Decimal("0.03")  # 0.025 → 0.03, not banker's 0.02
    assert round_half_up(Fraction(1, 3), 6) == Decimal("0.333333")
    assert str(round_half_up(Fraction(3, 2), 2)) == "1.50"


def test_overtime_after_closing_is_one_session_rounded_to_blocks() -> None:
    site = make_site()  # Fri 2025-06-13, UTC, 08:00-18:00, max_gap 15
    records = recs(
        [
            ("2025-06-13T17:50:00+00:00", 100),  # [17:50, 18:00) contract, [18:00, 18:05) overtime
            ("2025-06-13T18:05:00+00:00", 100),  # [18:05, 18:20) overtime
            ("2025-06-13T18:20:00+00:00", 0),  # off
        ]
    )
    result = ref(records, site)
    (line,) = result.lines
    assert line["invoice_id"] == "INV-C001-202506"
    assert (iso(line["start"]), iso(line["end"])) == (
        "2025-06-13T18:00:00+00:00",
        "2025-06-13T18:20:00+00:00",
    )
    assert line["minutes"] == 20.0 and line["billable_minutes"] == 30
    assert line["energy_exact"] == Fraction(1, 30)  # 100 W × 1/3 h = 33.3 Wh
    assert line["energy_kwh"] == Decimal("0.033333")
    assert line["hours_charge"] == Decimal("7.50")  # 30/60 h × 15
    assert line["energy_charge"] == Decimal("0.01")  # 0.00667
    assert line["amount"] == Decimal("7.51")
    (invoice,) = result.invoices
    assert invoice["total"] == Decimal("7.51") and invoice["period"] == "2025-06"
    assert [p["class"] for p in result.pieces] == ["contract", "overtime", "overtime", "off"]
    assert not result.cleaning_sessions


@pytest.mark.parametrize(
    ("first", "second", "kwh", "amount"),
    [(100, 300, "0.05", "3.76"), (300, 100, "0.016667", "3.75")],
)
def test_the_later_row_at_one_instant_stands(first: int, second: int, kwh: str, amount: str) -> None:
    site = make_site()
    records = recs(
        [
            ("2025-06-13T20:00:00+00:00", first),
            ("2025-06-13T20:00:00+00:00", second),
            ("2025-06-13T20:10:00+00:00", 0),
        ]
    )
    (line,) = ref(records, site).lines
    assert line["minutes"] == 10.0 and line["billable_minutes"] == 15
    assert line["energy_kwh"] == Decimal(kwh)
    assert line["amount"] == Decimal(amount)
    assert ref(records, site).covered_ms[2] == 0


def test_overtime_splits_at_midnight_but_cleaning_does_not() -> None:
    site = make_site()
    rows = [
        ("2025-06-13T23:50:00+00:00", 100),
        ("2025-06-14T00:05:00+00:00", 100),
        ("2025-06-14T00:20:00+00:00", 0),
    ]
    lines = ref(recs(rows), site).lines
    assert [(str(x["date"]), x["minutes"], x["billable_minutes"]) for x in lines] == [
        ("2025-06-13", 10.0, 15),
        ("2025-06-14", 20.0, 30),
    ]
    cleaning = ref(recs([(ts, p, True) for ts, p in rows]), site)
    assert not cleaning.lines
    (session,) = cleaning.cleaning_sessions
    assert str(session["date"]) == "2025-06-13" and session["minutes"] == 30.0
    assert iso(session["end"]) == "2025-06-14T00:20:00+00:00"
    assert session["building"] == "HQ" and session["floor"] == 1


def test_durations_are_elapsed_time_across_the_spring_change() -> None:
    site = make_site("Europe/Berlin")  # Sunday 2025-03-30 is closed
    start = dt.datetime(2025, 3, 30, 0, 50, tzinfo=UTC)  # 01:50 CET
    rows = [(iso(start + dt.timedelta(minutes=10 * k)), 120) for k in range(3)]
    rows.append((iso(start + dt.timedelta(minutes=30)), 0))  # 03:20 CEST
    (line,) = ref(recs(rows), site).lines
    assert iso(line["start"]) == "2025-03-30T01:50:00+01:00"
    assert iso(line["end"]) == "2025-03-30T03:20:00+02:00"
    assert line["minutes"] == 30.0  # the wall clock says 90
    assert line["energy_kwh"] == Decimal("0.060000") and line["amount"] == Decimal("7.51")


@pytest.mark.parametrize(("grace", "minutes", "billable"), [(0, 30.0, 30), (10, 20.0, 30)])
def test_a_window_opening_in_the_gap_opens_an_hour_later_on_the_wall(
    grace: int, minutes: float, billable: int
) -> None:
    site = make_site("Europe/Berlin", {"C001": {"hours": {"sun": "02:30-05:00"}, "grace_minutes": grace}})
    start = dt.datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 03:00 CEST; the window opens 03:30 CEST
    rows = [(iso(start + dt.timedelta(minutes=15 * k)), 100) for k in range(3)]
    rows.append((iso(start + dt.timedelta(minutes=45)), 0))
    (line,) = ref(recs(rows), site).lines
    assert iso(line["start"]) == "2025-03-30T03:00:00+02:00"
    assert line["minutes"] == minutes and line["billable_minutes"] == billable


def test_a_window_inside_the_gap_is_empty() -> None:
    # 02:30 → 03:30 CEST, 03:00 → 03:00 CEST: the window [01:30 UTC, 01:00 UTC) holds nothing.
    site = make_site("Europe/Berlin", {"C001": {"hours": {"sun": "02:30-03:00"}}})
    start = dt.datetime(2025, 3, 30, 0, 45, tzinfo=UTC)
    rows = [(iso(start + dt.timedelta(minutes=15 * k)), 100) for k in range(4)]
    rows.append((iso(start + dt.timedelta(minutes=60)), 0))
    (line,) = ref(recs(rows), site).lines
    assert line["minutes"] == 60.0


def test_a_window_closing_in_the_repeated_hour_closes_at_the_first_occurrence() -> None:
    site = make_site("Europe/Berlin", {"C001": {"hours": {"sun": "00:00-02:30"}}})
    start = dt.datetime(2025, 10, 26, 0, 15, tzinfo=UTC)  # 02:15 CEST
    rows = [(iso(start + dt.timedelta(minutes=15 * k)), 100) for k in range(6)]
    rows.append((iso(start + dt.timedelta(minutes=90)), 0))  # 01:45 UTC = 02:45 CET
    (line,) = ref(recs(rows), site).lines
    assert iso(line["start"]) == "2025-10-26T02:30:00+02:00"
    assert iso(line["end"]) == "2025-10-26T02:45:00+01:00"
    assert line["minutes"] == 75.0 and line["billable_minutes"] == 75
    assert line["hours_charge"] == Decimal("18.75")
    assert line["energy_kwh"] == Decimal("0.125000")
    assert line["energy_charge"] == Decimal("0.03")  # 0.025 exactly, half up
    assert line["amount"] == Decimal("18.78")


def test_grace_reaches_over_midnight() -> None:
    site = make_site(clients={"C001": {"hours": {"mon-sun": "08:00-24:00"}, "grace_minutes": 15}})
    rows = [("2025-06-14T00:10:00+00:00", 100), ("2025-06-14T00:25:00+00:00", 0)]
    (line,) = ref(recs(rows), site).lines
    assert iso(line["start"]) == "2025-06-14T00:15:00+00:00" and line["minutes"] == 10.0


@pytest.mark.parametrize(("works", "lines"), [(False, 1), (True, 0)])
def test_holidays_close_unless_the_client_works_on_them(works: bool, lines: int) -> None:
    site = make_site(
        clients={"C001": {"hours": {"mon-fri": "08:00-18:00"}, "work_on_holidays": works}},
        site={"holidays": {"dates": ["2025-06-13"]}},
    )
    rows = [("2025-06-13T10:00:00+00:00", 100), ("2025-06-13T10:15:00+00:00", 0)]
    assert len(ref(recs(rows), site).lines) == lines


def test_a_24_7_client_is_never_billed() -> None:
    site = make_site(clients={"C005": {"hours": "24/7"}})
    rows = [(f"2025-06-1{d}T0{h}:00:00+00:00", 100, False, "C005") for d in (3, 4) for h in (1, 5)]
    result = ref(recs(rows), site)
    assert not result.lines and not result.invoices and not result.cleaning_sessions


@pytest.mark.parametrize(("flag_after", "flagged"), [(180, False), (100, True)])
def test_cleaning_waste_counts_after_the_expected_minutes(flag_after: int, flagged: bool) -> None:
    site = make_site(sampling={"max_gap_minutes": 60}, cleaning={"flag_after_minutes": flag_after})
    rows = [
        ("2025-06-13T19:00:00+00:00", 200, True),  # [19:00, 19:45) 200 W
        ("2025-06-13T19:45:00+00:00", 400, True),  # [19:45, 20:45) 400 W, straddles 20:00
        ("2025-06-13T20:45:00+00:00", 0, True),
    ]
    (session,) = ref(recs(rows), site).cleaning_sessions
    assert session["minutes"] == 105.0 and session["excess_minutes"] == 45.0
    assert session["flagged"] is flagged
    assert session["wasted_kwh"] == Decimal("0.300000")  # 400 W × 45 min
    assert session["savings"] == Decimal("0.06")


def test_a_cleaning_session_may_change_client_but_overtime_may_not() -> None:
    site = make_site(clients={"C001": {"hours": {"mon-fri": "08:00-18:00"}}, "C002": {"hours": {}}})
    rows = [
        ("2025-06-13T20:00:00+00:00", 100, True, "C001"),
        ("2025-06-13T20:15:00+00:00", 100, True, "C002"),
        ("2025-06-13T20:30:00+00:00", 100, False, "C001"),
        ("2025-06-13T20:45:00+00:00", 100, False, "C002"),
        ("2025-06-13T21:00:00+00:00", 0),
    ]
    result = ref(recs(rows), site)
    (session,) = result.cleaning_sessions
    assert session["minutes"] == 30.0 and session["clients"] == ["C001", "C002"]
    assert [(x["client_id"], x["minutes"]) for x in result.lines] == [
        ("C001", 15.0),
        ("C002", 15.0),
    ]


def test_one_millisecond_past_a_block_bills_the_next_block() -> None:
    site = make_site(sampling={"max_gap_minutes": 60})
    rows = [("2025-06-13T20:00:00+00:00", 100), ("2025-06-13T20:15:00.001+00:00", 0)]
    (line,) = ref(recs(rows), site).lines
    assert str(line["minutes"]) == "15.000" and line["minutes_exact"] == Fraction(900_001, 60_000)
    assert line["billable_minutes"] == 30
    rows = [("2025-06-13T20:00:00+00:00", 100), ("2025-06-13T20:00:00.030+00:00", 0)]
    (line,) = ref(recs(rows), site).lines
    assert str(line["minutes"]) == "0.001"  # 0.0005 min, half up
    assert line["billable_minutes"] == 15


def test_flagged_compares_the_exact_minutes_not_the_display_value() -> None:
    site = make_site(sampling={"max_gap_minutes": 720})
    rows = [("2025-06-13T19:00:00+00:00", 100, True), ("2025-06-13T22:00:00.020+00:00", 0, True)]
    (session,) = ref(recs(rows), site).cleaning_sessions
    assert str(session["minutes"]) == "180.000" and session["flagged"] is True  # 180 min + 20 ms
    assert str(session["excess_minutes"]) == "120.000"
    assert str(session["wasted_kwh"]) == "0.200001"  # 100 W × (120 min + 20 ms) = 0.20000056 kWh
    assert str(session["savings"]) == "0.04"


def test_new_york_window_closing_in_the_repeated_hour() -> None:
    site = make_site("America/New_York", {"C001": {"hours": {"sun": "00:00-01:30"}}})
    start = dt.datetime(2025, 11, 2, 5, 0, tzinfo=UTC)  # 01:00 EDT
    rows = [(iso(start + dt.timedelta(minutes=15 * k)), 100) for k in range(7)]
    rows.append((iso(start + dt.timedelta(minutes=105)), 0))  # 06:45 UTC = 01:45 EST
    (line,) = ref(recs(rows), site).lines
    assert iso(line["start"]) == "2025-11-02T01:30:00-04:00"
    assert iso(line["end"]) == "2025-11-02T01:45:00-05:00"
    assert str(line["minutes"]) == "75.000"


def test_sydney_window_opening_in_the_spring_gap() -> None:
    site = make_site("Australia/Sydney", {"C001": {"hours": {"sun": "02:30-06:00"}}})
    start = dt.datetime(2025, 10, 4, 16, 0, tzinfo=UTC)  # 03:00 AEDT on Sunday 2025-10-05
    rows = [(iso(start + dt.timedelta(minutes=15 * k)), 100) for k in range(3)]
    rows.append((iso(start + dt.timedelta(minutes=45)), 0))
    (line,) = ref(recs(rows), site).lines
    assert iso(line["start"]) == "2025-10-05T03:00:00+11:00" and str(line["date"]) == "2025-10-05"
    assert str(line["minutes"]) == "30.000"


def test_kolkata_midnight_is_at_half_past_the_utc_hour() -> None:
    site = make_site("Asia/Kolkata")
    rows = [
        ("2025-06-13T18:20:00+00:00", 100),  # 23:50 IST Friday
        ("2025-06-13T18:35:00+00:00", 100),
        ("2025-06-13T18:50:00+00:00", 0),
    ]
    lines = ref(recs(rows), site).lines
    assert [(str(x["date"]), str(x["minutes"])) for x in lines] == [
        ("2025-06-13", "10.000"),
        ("2025-06-14", "20.000"),
    ]


@pytest.mark.parametrize("cleaning", [False, True])
def test_money_is_rounded_from_the_exact_energy_not_the_six_decimals(cleaning: bool) -> None:
    # 1 W for 17,998.56 s = 0.0049996 kWh: shown as 0.005000, but worth 0.00 at 1.00 a kWh, not 0.01.
    site = make_site(
        sampling={"on_threshold_w": 1, "max_gap_minutes": 720},
        billing={"energy_rate": "1.00"},
        cleaning={"expected_minutes": [0, 0], "energy_price": "1.00"},
    )
    rows = [("2025-06-13T19:00:00+00:00", 1, cleaning), ("2025-06-13T23:59:58.560+00:00", 0, cleaning)]
    result = ref(recs(rows), site)
    if cleaning:
        (session,) = result.cleaning_sessions
        assert str(session["wasted_kwh"]) == "0.005000" and str(session["savings"]) == "0.00"
    else:
        (line,) = result.lines
        assert str(line["energy_kwh"]) == "0.005000" and str(line["energy_charge"]) == "0.00"


def test_exact_duplicates_keep_the_later_row() -> None:
    rows = recs(
        [
            ("2025-06-13T20:00:00+00:00", 100, False),
            ("2025-06-13T20:00:00+00:00", 100, True),
            ("2025-06-13T20:00:00+00:00", 200, False),
        ]
    )
    kept, dropped = drop_exact_duplicates(rows)
    assert dropped == 1 and [r.input_order for r in kept] == [3, 4]


# --- engine against reference --------------------------------------------------------------------

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC", "Asia/Kolkata")
ANCHORS: dict[str, list[dt.date]] = {
    "Europe/Berlin": [dt.date(2025, 3, 30), dt.date(2025, 10, 26)],
    "America/New_York": [dt.date(2025, 3, 9), dt.date(2025, 11, 2)],
    "Australia/Sydney": [dt.date(2025, 4, 6), dt.date(2025, 10, 5)],
    "UTC": [dt.date(2025, 3, 30)],
    "Asia/Kolkata": [dt.date(2025, 10, 26)],
}
ORDINARY = [dt.date(2025, 6, 13), dt.date(2025, 1, 31)]  # a Friday; a month end (two invoices)
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MS_MIN = 60_000
#: Wall times near DST changes (01:00–03:30), the day's ends, and office hours.
EDGE_MINUTES = (0, 60, 90, 120, 135, 150, 180, 210, 420, 480, 1080, 1320, 1425, 1440)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def windows(draw: st.DrawFn) -> str:
    minute = st.one_of(st.sampled_from(EDGE_MINUTES), st.integers(0, 1440))
    a, b = draw(minute), draw(minute)
    if a == b:
        b = 1440 if a < 1440 else 0
    return f"{_clock(min(a, b))}-{_clock(max(a, b))}"


@st.composite
def client_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if draw(st.integers(0, 7)) == 0:
        body["hours"] = "24/7"
    else:
        body["hours"] = {
            day: draw(windows()) for day in DAY_KEYS if draw(st.integers(0, 4)) > 0
        }  # about one day in five closed
    if draw(st.booleans()):
        body["grace_minutes"] = draw(st.sampled_from([0, 5, 15, 60]) | st.integers(0, 60))
    if draw(st.booleans()):
        body["work_on_holidays"] = draw(st.booleans())
    if draw(st.booleans()):
        body["hourly_rate"] = f"{draw(st.integers(0, 9999)) / 100:.2f}"
    if draw(st.booleans()):
        body["energy_rate"] = f"{draw(st.integers(0, 999)) / 100:.2f}"
    return body


@st.composite
def sites(draw: st.DrawFn) -> tuple[SiteConfig, dict[str, Any]]:
    tz = draw(st.sampled_from(ZONES))
    anchors = ANCHORS[tz] + ORDINARY
    n_clients = draw(st.integers(1, 3))
    clients = {f"C00{i + 1}": draw(client_bodies()) for i in range(n_clients)}
    holiday_dates = draw(
        st.lists(st.sampled_from(anchors + [a + dt.timedelta(days=1) for a in anchors]), max_size=2)
    )
    hi = draw(st.sampled_from([0, 15, 60, 90]))
    raw = {
        "site": {
            "timezone": tz,
            "currency": "EUR",
            "holidays": {"dates": [str(d) for d in holiday_dates]},
        },
        "sampling": {
            "on_threshold_w": draw(st.sampled_from([0, 1, 5, 7.5, 20, 0.0015])),
            "max_gap_minutes": draw(st.sampled_from([5, 15, 60, 240, 720])),
        },
        "billing": {
            "hourly_rate": f"{draw(st.integers(0, 5000)) / 100:.2f}",
            "energy_rate": f"{draw(st.integers(0, 100)) / 100:.2f}",
            "block_minutes": draw(st.sampled_from([1, 5, 15, 30, 60])),
            "grace_minutes": draw(st.sampled_from([0, 0, 10, 15])),
        },
        "cleaning": {
            "expected_minutes": [min(30, hi), hi],
            "flag_after_minutes": draw(st.sampled_from([30, 90, 180])),
            "energy_price": f"{draw(st.integers(0, 100)) / 100:.2f}",
        },
        "clients": clients,
    }
    return parse_site(raw), {"anchors": anchors}


def _powers(threshold: float) -> st.SearchStrategy[float]:
    near = [threshold, threshold - 0.001, threshold + 0.001, threshold - 1e-9, threshold + 1e-9]
    return st.one_of(
        st.just(0.0),
        st.sampled_from([max(0.0, p) for p in near]),
        st.integers(0, 3000).map(float),
        st.floats(0, 5000, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0005, 1.2345, 2.0005, 4.9995, 1234.5675]),  # mW rounding ties
    )


_STEP_MS = st.one_of(
    st.just(0),  # the same instant: the later row stands
    st.integers(1, 999),  # milliseconds
    st.integers(1, 600).map(lambda s: s * 1000),  # seconds
    st.sampled_from([1, 5, 15, 30, 60]).map(lambda m: m * MS_MIN),  # periodic
    st.integers(1, 180).map(lambda m: m * MS_MIN),  # minutes
    st.integers(1, 14).map(lambda h: h * 60 * MS_MIN),  # hours (beyond max_gap)
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[SiteConfig, list[dict[str, Any]]]:
    site, extra = draw(sites())
    tz = site.site.tz
    client_ids = sorted(site.clients)
    rows: list[dict[str, Any]] = []
    zones = ["HQ-F1-Z1", "HQ-F1-Z2", "North-Annex-F12-Z3", "HQ-F4-Z4"][: draw(st.integers(1, 4))]
    for zone in zones:
        anchor = draw(st.sampled_from(extra["anchors"]))
        t = wall_to_utc_ms(anchor, 0, tz) + draw(st.integers(-8 * 60, 22 * 60)) * MS_MIN
        t += draw(st.sampled_from([0, 0, 0, 1, 499, 59_999]))
        home = draw(st.sampled_from(client_ids))
        powers = _powers(site.sampling.on_threshold_w)
        for _ in range(draw(st.integers(1, 30))):
            t += draw(_STEP_MS)
            client = home if draw(st.integers(0, 9)) else draw(st.sampled_from(client_ids))
            row = {
                "ms": t,
                "zone_id": zone,
                "client_id": client,
                "power_w": draw(powers),
                "cleaning_staff": draw(st.booleans()),
            }
            rows.append(row)
            if draw(st.integers(0, 14)) == 0:  # an exact duplicate (maybe with another flag)
                rows.append({**row, "cleaning_staff": draw(st.booleans())})
    order = draw(st.permutations(range(len(rows))))
    as_text = draw(st.booleans())  # timestamps as ISO text with the site's offset, or as UTC datetimes
    return site, [{**rows[i], "as_text": as_text} for i in order]


def _frame(rows: list[dict[str, Any]], site: SiteConfig) -> pd.DataFrame:
    timestamps: Any = pd.to_datetime([r["ms"] for r in rows], unit="ms", utc=True)
    if rows and rows[0].get("as_text"):  # "2025-10-26T02:30:00.125+01:00"
        epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
        timestamps = [
            (epoch + dt.timedelta(milliseconds=r["ms"]))
            .astimezone(site.site.tz)
            .isoformat(timespec="milliseconds")
            for r in rows
        ]
    return pd.DataFrame(
        {
            "timestamp": timestamps,
            "zone_id": [r["zone_id"] for r in rows],
            "client_id": [r["client_id"] for r in rows],
            "power_w": [float(r["power_w"]) for r in rows],
            "cleaning_staff": [bool(r["cleaning_staff"]) for r in rows],
        }
    )


def _records(rows: list[dict[str, Any]]) -> list[Record]:
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    return [
        Record(
            epoch + dt.timedelta(milliseconds=r["ms"]),
            r["zone_id"],
            r["client_id"],
            float(r["power_w"]),
            bool(r["cleaning_staff"]),
            i + 2,  # the reader's `line` for a frame: row position + 2
        )
        for i, r in enumerate(rows)
    ]


def _ms(value: Any) -> int:
    return to_ms(pd.Timestamp(value).to_pydatetime())


def _same_instant_and_offset(engine_value: Any, reference_value: dt.datetime) -> bool:
    ts = pd.Timestamp(engine_value)
    return _ms(ts) == to_ms(reference_value) and ts.utcoffset() == reference_value.utcoffset()


def _check(problems: list[str], where: str, field: str, got: Any, want: Any, note: str = "") -> None:
    """Append a problem unless ``got`` is ``want``: Decimals must match in value and in decimals shown."""
    if isinstance(want, Decimal):
        ok = isinstance(got, Decimal) and str(got) == str(want)
    elif isinstance(want, dt.datetime):
        ok = _same_instant_and_offset(got, want)
        want = want.isoformat()
    elif isinstance(want, dt.date):
        ok = isinstance(got, dt.date) and not isinstance(got, dt.datetime) and got == want
    elif isinstance(want, bool):
        ok = bool(got) is want
    else:
        ok = got == want
    if not ok:
        problems.append(f"{where}: {field} {got!r} != {want!r}{note}")


def compare_lines(engine: pd.DataFrame, ref: list[dict[str, Any]]) -> list[str]:
    """Differences between the engine's invoice lines and the reference's, as readable strings."""
    problems: list[str] = []
    rows = engine.to_dict("records")
    key = lambda d: (d["zone_id"], _ms(d["start"]))  # noqa: E731
    rows.sort(key=key)
    ref = sorted(ref, key=key)
    if len(rows) != len(ref):
        problems.append(f"{len(rows)} engine lines, {len(ref)} reference lines")
    fields = (
        "invoice_id", "client_id", "zone_id", "date", "start", "end", "minutes", "billable_minutes",
        "energy_kwh", "hours_charge", "energy_charge", "amount", "currency", "adjusted",
    )  # fmt: skip
    for got, want in zip(rows, ref, strict=False):
        where = f"line {want['zone_id']} {want['start'].isoformat()}"
        note = f" (exact kWh {want['energy_exact']}, exact minutes {want['minutes_exact']})"
        for field in fields:
            _check(problems, where, field, got[field], want[field], note)
    # Within an invoice, lines are ordered by (date, zone, start).
    for invoice_id, group in engine.groupby("invoice_id", sort=False):
        order = [
            (d, z, _ms(s)) for d, z, s in zip(group["date"], group["zone_id"], group["start"], strict=True)
        ]
        if order != sorted(order):
            problems.append(f"{invoice_id}: lines not ordered by (date, zone, start)")
    return problems


def compare_invoices(engine: pd.DataFrame, ref: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    got = {r["invoice_id"]: r for r in engine.to_dict("records")}
    want = {r["invoice_id"]: r for r in ref}
    if set(got) != set(want):
        problems.append(f"invoices {sorted(got)} != {sorted(want)}")
    for invoice_id in sorted(set(got) & set(want)):
        g, w = got[invoice_id], want[invoice_id]
        note = f" (exact hours {w['billable_hours_exact']}, exact kWh {w['energy_kwh_exact']})"
        for field in ("client_id", "period", "lines", "currency", "total", "billable_hours", "energy_kwh"):
            _check(problems, invoice_id, field, g[field], w[field], note)
    return problems


def compare_cleaning(engine: pd.DataFrame, ref: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    rows = engine.to_dict("records")
    key = lambda d: (d["zone_id"], _ms(d["start"]))  # noqa: E731
    rows.sort(key=key)
    if len(rows) != len(ref):
        problems.append(f"{len(rows)} engine cleaning sessions, {len(ref)} reference sessions")
    fields = (
        "zone_id", "building", "date", "start", "end", "minutes", "flagged", "excess_minutes",
        "wasted_kwh", "savings", "inferred", "client_id",
    )  # fmt: skip
    for got, want in zip(rows, ref, strict=False):
        where = f"cleaning {want['zone_id']} {want['start'].isoformat()}"
        note = f" (exact minutes {want['minutes_exact']}, exact waste {want['wasted_exact']} kWh)"
        for field in fields:
            _check(problems, where, field, got.get(field), want[field], note)
        _check(problems, where, "floor", int(got["floor"]), want["floor"])
    return problems


def compare_readings(engine: pd.DataFrame, ref: ReferenceResult) -> list[str]:
    """Scored readings: covered time, and in_contract / is_on / usage_class at each reading's timestamp."""
    problems: list[str] = []
    columns = ["line", "covered_minutes", "in_contract", "is_on", "usage_class"]
    for line, minutes, in_contract, is_on, usage in engine[columns].itertuples(index=False):
        want = float(Fraction(ref.covered_ms[int(line)], MS_MIN))
        if float(minutes) != want:
            problems.append(f"line {line}: covered_minutes {minutes!r} != {want!r}")
        got = (bool(in_contract), bool(is_on), str(usage))
        if got != ref.at_timestamp[int(line)]:
            problems.append(
                f"line {line}: (in_contract, is_on, usage_class) {got} != {ref.at_timestamp[int(line)]}"
            )
    return problems


def engine_vs_reference(site: SiteConfig, rows: list[dict[str, Any]]) -> tuple[list[str], ReferenceResult]:
    readings = validate_frame(_frame(rows, site), site)
    records, duplicates = drop_exact_duplicates(_records(rows))
    problems = []
    if readings.report.rows_quarantined:
        problems.append(f"reader quarantined {readings.report.rows_quarantined} valid rows")
    if readings.report.rows_duplicate != duplicates:
        problems.append(f"reader dropped {readings.report.rows_duplicate} duplicates, expected {duplicates}")
    result = score(readings, site)
    ref = reference_score(records, site)
    problems += compare_lines(result.invoice_lines, ref.lines)
    problems += compare_invoices(result.invoices, ref.invoices)
    problems += compare_cleaning(result.cleaning_sessions, ref.cleaning_sessions)
    problems += compare_readings(result.readings.frame, ref)
    return problems, ref


def _describe(site: SiteConfig, rows: list[dict[str, Any]]) -> str:
    tz = site.site.tz
    out = [
        f"tz={site.site.timezone} sampling={site.sampling} billing={site.billing} cleaning={site.cleaning}"
    ]
    out += [
        f"  {c.client_id}: {c.hours_text()} grace={c.grace_minutes} woh={c.work_on_holidays}"
        for c in site.clients.values()
    ]
    out.append(f"  holidays={sorted(site.site.extra_holidays)}")
    for i, r in enumerate(rows):
        ts = (dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=r["ms"])).astimezone(tz)
        out.append(
            f"  line {i + 2}: {ts.isoformat()} {r['zone_id']} {r['client_id']}"
            f" {r['power_w']!r} {r['cleaning_staff']}"
        )
    return "\n".join(out)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_engine_matches_reference(scenario: tuple[SiteConfig, list[dict[str, Any]]]) -> None:
    site, rows = scenario
    problems, ref = engine_vs_reference(site, rows)
    event(f"invoice lines: {min(len(ref.lines), 3)}{'+' if len(ref.lines) >= 3 else ''}")
    event(f"cleaning sessions: {min(len(ref.cleaning_sessions), 3)}")
    pieces_per_reading = Counter(p["input_order"] for p in ref.pieces)
    event(f"a reading cut at a midnight or window edge: {max(pieces_per_reading.values(), default=0) > 1}")
    offsets = {
        (dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=r["ms"]))
        .astimezone(site.site.tz)
        .utcoffset()
        for r in rows
    }
    event(f"readings on both sides of a DST change: {len(offsets) > 1}")
    assert not problems, "\n".join(problems[:20]) + "\n" + _describe(site, rows)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_reference_is_self_consistent(scenario: tuple[SiteConfig, list[dict[str, Any]]]) -> None:
    """Pieces tile each reading's coverage; sessions add up; money is what the rules say."""
    site, rows = scenario
    records, _ = drop_exact_duplicates(_records(rows))
    ref = reference_score(records, site)
    per_reading: dict[int, int] = {}
    for piece in ref.pieces:
        assert piece["end"] > piece["start"]
        per_reading[piece["input_order"]] = (
            per_reading.get(piece["input_order"], 0) + piece["end"] - piece["start"]
        )
    assert per_reading == {k: v for k, v in ref.covered_ms.items() if v}
    for line in ref.lines:
        assert (
            line["billable_minutes"]
            >= line["minutes_exact"]
            > line["billable_minutes"] - site.billing.block_minutes
        )
        assert line["amount"] == line["hours_charge"] + line["energy_charge"]
        assert not site.clients[line["client_id"]].always_open
    assert sum(i["total"] for i in ref.invoices) == sum(line["amount"] for line in ref.lines)
    for s in ref.cleaning_sessions:
        assert s["wasted_exact"] <= sum(
            Fraction(p["power_mw"] * (p["end"] - p["start"]), 3_600_000_000_000)
            for p in ref.pieces
            if p["zone_id"] == s["zone_id"] and s["start_ms"] <= p["start"] < s["end_ms"]
        )

"""Overtime billing (SPEC §3, docs/billing-rules.md) on tiny inputs whose answers are worked out on paper.

Unless a test says otherwise the site is Europe/Berlin (UTC+1 in winter, UTC+2 in summer), a reading is on
at ≥ 5 W and stands for at most 15 minutes, overtime is 15.00 per zone-hour in 15-minute blocks and 0.20 per
kWh, and C001/C002 are contracted Mon–Fri 08:00–18:00. 2025-02-10 is a Monday.

The arithmetic beside each case is the whole derivation: covered minutes → blocks → hours charge, and
power × hours → kWh → energy charge, rounded half up to the cent.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from slem_ml.config.site import SiteConfig, parse_site
from slem_ml.io.reader import validate_frame
from slem_ml.scoring.result import ScoringResult
from slem_ml.scoring.score import score

D = Decimal
TZ = "Europe/Berlin"
ZONE = "HQ-F1-Z1"
ZONE2 = "HQ-F1-Z2"

SITE_RAW: dict[str, Any] = {
    "site": {"timezone": TZ, "currency": "EUR", "holidays": {"country": "DE"}},
    "sampling": {"on_threshold_w": 5, "max_gap_minutes": 15},
    "billing": {"hourly_rate": 15.00, "energy_rate": 0.20, "block_minutes": 15, "grace_minutes": 0},
    "cleaning": {"expected_minutes": [30, 60], "flag_after_minutes": 180, "energy_price": 0.20},
    "clients": {
        "C001": {"name": "Acme", "hours": {"mon-fri": "08:00-18:00"}},
        "C002": {"name": "Brightline", "hours": {"mon-fri": "08:00-18:00"}},
        "C004": {"name": "Delta", "hours": {"mon-sun": "06:00-22:00"}, "hourly_rate": 12.50},
        "C005": {"name": "Eastgate", "hours": "24/7"},
    },
}
SITE = parse_site(SITE_RAW)


def site_with(**changes: Any) -> SiteConfig:
    """SITE with dotted keys replaced, e.g. ``site_with(**{"billing.grace_minutes": 15})``."""
    raw = copy.deepcopy(SITE_RAW)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return parse_site(raw)


def run(rows: list[tuple[Any, ...]], site: SiteConfig = SITE) -> ScoringResult:
    """Score rows ``(timestamp, zone_id, client_id, power_w[, cleaning_staff])`` given in input order."""
    columns = ["timestamp", "zone_id", "client_id", "power_w", "cleaning_staff"]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns[: len(rows[0])])
    return score(validate_frame(frame, site), site)


def at(text: str) -> pd.Timestamp:
    """A Berlin wall time, or an exact instant when ``text`` carries an offset."""
    ts = pd.Timestamp(text)
    return ts.tz_convert(TZ) if ts.tzinfo is not None else ts.tz_localize(TZ)


def lines(result: ScoringResult) -> list[dict[str, Any]]:
    """The invoice lines as dicts, ordered by (client, date, zone, start) whatever the frame's order."""
    rows = [
        {
            "client": r.client_id,
            "zone": r.zone_id,
            "date": r.date,
            "start": r.start,
            "end": r.end,
            "minutes": float(r.minutes),
            "billable": r.billable_minutes,
            "kwh": r.energy_kwh,
            "hours_charge": r.hours_charge,
            "energy_charge": r.energy_charge,
            "amount": r.amount,
        }
        for r in result.invoice_lines.itertuples(index=False)
    ]
    return sorted(rows, key=lambda r: (r["client"], r["date"], r["zone"], r["start"]))


def line(
    start: str,
    end: str,
    minutes: float,
    billable: int,
    kwh: str,
    hours_charge: str,
    energy_charge: str,
    amount: str,
    *,
    client: str = "C001",
    zone: str = ZONE,
    date: str | None = None,
) -> dict[str, Any]:
    """The expected line; ``date`` defaults to the local date of ``start``."""
    return {
        "client": client,
        "zone": zone,
        "date": dt.date.fromisoformat(date) if date else at(start).date(),
        "start": at(start),
        "end": at(end),
        "minutes": pytest.approx(minutes, abs=1e-9),
        "billable": billable,
        "kwh": D(kwh),
        "hours_charge": D(hours_charge),
        "energy_charge": D(energy_charge),
        "amount": D(amount),
    }


def on_every_15_min(first: str, count: int, power: float, client: str = "C001", zone: str = ZONE):
    """``count`` on-readings 15 minutes apart from ``first`` (local wall time, no DST inside)."""
    t0 = pd.Timestamp(first)
    return [
        ((t0 + pd.Timedelta(minutes=15 * i)).strftime("%Y-%m-%d %H:%M"), zone, client, power)
        for i in range(count)
    ]


# --- blocks and grace (SPEC §3.2, §3.4) -----------------------------------------------------------


def test_40_minutes_bill_as_45() -> None:
    result = run(
        [
            ("2025-02-10 17:50", ZONE, "C001", 120.0),  # 17:50-18:00 contract
            ("2025-02-10 18:00", ZONE, "C001", 120.0),
            ("2025-02-10 18:10", ZONE, "C001", 120.0),
            ("2025-02-10 18:20", ZONE, "C001", 120.0),
            ("2025-02-10 18:30", ZONE, "C001", 120.0),
            ("2025-02-10 18:40", ZONE, "C001", 0.0),  # off
        ]
    )
    # 18:00-18:40 = 40 min → 3 blocks of 15 = 45 min → 45/60 × 15.00 = 11.25
    # 120 W × 40/60 h = 80 Wh = 0.08 kWh → 0.08 × 0.20 = 0.016 → 0.02
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:40", 40, 45, "0.08", "11.25", "0.02", "11.27")
    ]


def test_exactly_30_minutes_bill_as_30() -> None:
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),
            ("2025-02-10 18:15", ZONE, "C001", 600.0),
            ("2025-02-10 18:30", ZONE, "C001", 0.0),
        ]
    )
    # 18:00-18:30 = 30 min → 2 blocks = 30 min → 30/60 × 15.00 = 7.50
    # 600 W × 0.5 h = 0.3 kWh → 0.06
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:30", 30, 30, "0.3", "7.50", "0.06", "7.56")
    ]


ONE_MS_OVER = [
    ("2025-02-10 18:00:00.000", ZONE, "C001", 600.0),
    ("2025-02-10 18:10:00.000", ZONE, "C001", 600.0),
    ("2025-02-10 18:20:00.000", ZONE, "C001", 600.0),  # stands until the next reading
    ("2025-02-10 18:30:00.001", ZONE, "C001", 0.0),
]


def test_one_millisecond_over_a_block_bills_the_next_block() -> None:
    (got,) = lines(run(ONE_MS_OVER))
    # 18:00:00.000-18:30:00.001 = 30 min + 1 ms = 1,800,001 ms → ceil(1,800,001 / 900,000) = 3 blocks
    #   → 45 min → 45/60 × 15.00 = 11.25
    # 600 W × 1,800,001 ms = 1,080,000,600 W·ms / 3.6e9 = 0.300000166… kWh (0.300000 at 6 dp)
    #   → × 0.20 = 0.0600000333 → 0.06
    expected = line(
        "2025-02-10 18:00", "2025-02-10 18:30:00.001", 30, 45, "0.300000", "11.25", "0.06", "11.31"
    )
    del got["minutes"], expected["minutes"]  # see the next test
    assert got == expected


def test_minutes_is_the_exact_covered_time() -> None:
    (got,) = lines(run(ONE_MS_OVER))
    # SPEC §3.4 "minutes is the covered time (it may be fractional)"; billing-rules: minutes are
    # covered ms / 60,000 as a Decimal rounded half up to 3 decimals (ms precision would need 5).
    # 1,800,001 ms / 60,000 = 30.0000166… min → 30.000; billable minutes still see the extra ms.
    assert got["minutes"] == 30.0  # the Decimal 30.000
    assert got["billable"] == 45


def test_grace_keeps_ten_minutes_after_closing_in_contract() -> None:
    site = site_with(**{"billing.grace_minutes": 15})
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),
            ("2025-02-10 18:05", ZONE, "C001", 600.0),
            ("2025-02-10 18:10", ZONE, "C001", 0.0),
        ],
        site,
    )
    # window widened to 07:45-18:15; on 18:00-18:10 lies inside → contract, nothing billed
    assert lines(result) == []
    assert result.invoices.empty


def test_grace_bills_only_the_time_past_it() -> None:
    site = site_with(**{"billing.grace_minutes": 15})
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),
            ("2025-02-10 18:10", ZONE, "C001", 600.0),  # covers 18:10-18:20, cut at 18:15
            ("2025-02-10 18:20", ZONE, "C001", 0.0),
        ],
        site,
    )
    # window 07:45-18:15 → overtime 18:15-18:20 = 5 min → 1 block = 15 min → 15/60 × 15.00 = 3.75
    # 600 W × 5/60 h = 50 Wh = 0.05 kWh → 0.01
    assert lines(result) == [
        line("2025-02-10 18:15", "2025-02-10 18:20", 5, 15, "0.05", "3.75", "0.01", "3.76")
    ]


def test_grace_before_opening() -> None:
    site = site_with(**{"billing.grace_minutes": 15})
    result = run(
        [
            ("2025-02-10 07:30", ZONE, "C001", 600.0),
            ("2025-02-10 07:40", ZONE, "C001", 600.0),  # covers 07:40-07:50, cut at 07:45
            ("2025-02-10 07:50", ZONE, "C001", 600.0),
            ("2025-02-10 08:00", ZONE, "C001", 0.0),
        ],
        site,
    )
    # window 07:45-18:15 → overtime 07:30-07:45 = 15 min → 15 → 3.75; 600 W × 0.25 h = 0.15 kWh → 0.03
    assert lines(result) == [
        line("2025-02-10 07:30", "2025-02-10 07:45", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]


def test_per_client_grace_overrides_billing_grace() -> None:
    raw_grace = {"hours": {"mon-fri": "08:00-18:00"}, "grace_minutes": 30}
    site = site_with(**{"billing.grace_minutes": 15, "clients.C002": raw_grace})
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),
            ("2025-02-10 18:15", ZONE, "C001", 600.0),
            ("2025-02-10 18:30", ZONE, "C001", 0.0),
            ("2025-02-10 18:00", ZONE2, "C002", 600.0),
            ("2025-02-10 18:15", ZONE2, "C002", 600.0),
            ("2025-02-10 18:30", ZONE2, "C002", 0.0),
        ],
        site,
    )
    # C001 grace 15 → overtime 18:15-18:30 = 15 min → 3.75 + 0.15 kWh × 0.20 = 0.03
    # C002 grace 30 → window to 18:30 → on 18:00-18:30 all contract
    assert lines(result) == [
        line("2025-02-10 18:15", "2025-02-10 18:30", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]


# --- coverage: midnight, gaps (SPEC §3.1, §3.3) ----------------------------------------------------


def test_session_across_midnight_is_two_lines_on_two_dates() -> None:
    result = run(
        [
            ("2025-02-10 23:50", ZONE, "C001", 1200.0),  # Mon; covers 23:50-00:05
            ("2025-02-11 00:05", ZONE, "C001", 0.0),  # Tue
        ]
    )
    # cut at local midnight:
    # Mon 23:50-24:00 = 10 min → 15 → 3.75; 1200 W × 10/60 h = 0.2 kWh → 0.04 → 3.79
    # Tue 00:00-00:05 =  5 min → 15 → 3.75; 1200 W ×  5/60 h = 0.1 kWh → 0.02 → 3.77
    assert lines(result) == [
        line("2025-02-10 23:50", "2025-02-11 00:00", 10, 15, "0.2", "3.75", "0.04", "3.79"),
        line("2025-02-11 00:00", "2025-02-11 00:05", 5, 15, "0.1", "3.75", "0.02", "3.77"),
    ]
    assert [str(s.tz) for s in result.invoice_lines["start"]] == [TZ, TZ]


def test_a_reading_stands_only_max_gap_and_a_gap_breaks_the_session() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 600.0),  # covers 19:00-19:15 only (max_gap 15)
            ("2025-02-10 20:00", ZONE, "C001", 600.0),  # covers 20:00-20:15
            ("2025-02-10 20:30", ZONE, "C001", 0.0),
        ]
    )
    # 19:15-20:00 and 20:15-20:30 are covered by nothing → two sessions, not one of 75 min
    # each 15 min → 15 → 3.75; 600 W × 0.25 h = 0.15 kWh → 0.03 → 3.78
    assert lines(result) == [
        line("2025-02-10 19:00", "2025-02-10 19:15", 15, 15, "0.15", "3.75", "0.03", "3.78"),
        line("2025-02-10 20:00", "2025-02-10 20:15", 15, 15, "0.15", "3.75", "0.03", "3.78"),
    ]


def test_touching_readings_with_a_longer_max_gap_make_one_session() -> None:
    site = site_with(**{"sampling.max_gap_minutes": 60})
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 600.0),  # covers 19:00-19:40
            ("2025-02-10 19:40", ZONE, "C001", 300.0),  # covers 19:40-20:20
            ("2025-02-10 20:20", ZONE, "C001", 0.0),
        ],
        site,
    )
    # 19:00-20:20 = 80 min → 6 blocks = 90 min → 90/60 × 15.00 = 22.50
    # 600 W × 40/60 h + 300 W × 40/60 h = 400 Wh + 200 Wh = 0.6 kWh → 0.12
    assert lines(result) == [
        line("2025-02-10 19:00", "2025-02-10 20:20", 80, 90, "0.6", "22.50", "0.12", "22.62")
    ]


# --- daylight saving time (SPEC §3.3; billing-rules "Naive local times") ---------------------------


def test_spring_forward_reading_covers_true_minutes() -> None:
    result = run(
        [
            ("2025-03-30 01:45", ZONE, "C001", 600.0),  # CET  = 00:45 UTC
            ("2025-03-30 01:50", ZONE, "C001", 600.0),  # CET  = 00:50 UTC
            ("2025-03-30 01:55", ZONE, "C001", 600.0),  # CET  = 00:55 UTC
            ("2025-03-30 03:00", ZONE, "C001", 0.0),  # CEST = 01:00 UTC
        ]
    )
    # Sunday: C001 closed. 01:55 CET → 03:00 CEST is 5 true minutes (not 65, nor the 15 of max_gap)
    # 01:45-03:00 = 5 + 5 + 5 = 15 min → 15 → 3.75; 600 W × 0.25 h = 0.15 kWh → 0.03
    assert lines(result) == [
        line("2025-03-30 01:45", "2025-03-30 03:00", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]
    assert result.readings.frame["covered_minutes"].tolist() == pytest.approx([5, 5, 5, 15])


def test_spring_forward_wall_time_that_does_not_exist_is_quarantined() -> None:
    result = run(
        [
            ("2025-03-30 01:45", ZONE, "C001", 600.0),
            ("2025-03-30 02:30", ZONE, "C001", 600.0),  # the clock jumps 02:00 → 03:00
            ("2025-03-30 03:00", ZONE, "C001", 0.0),
        ]
    )
    assert result.report.rows_quarantined == 1
    assert result.quarantine["timestamp"].tolist() == ["2025-03-30 02:30"]
    assert "DST gap" in result.quarantine["reason"].iloc[0]
    # 01:45 CET (00:45 UTC) covers to 01:00 UTC (03:00 CEST) = 15 min → 3.75 + 0.03
    assert lines(result) == [
        line("2025-03-30 01:45", "2025-03-30 03:00", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]


def test_fall_back_with_offsets_is_exact() -> None:
    site = site_with(**{"sampling.max_gap_minutes": 180})
    result = run(
        [
            ("2025-10-26T01:30:00+02:00", ZONE, "C001", 600.0),  # 23:30 UTC (25 Oct)
            ("2025-10-26T02:30:00+01:00", ZONE, "C001", 0.0),  # 01:30 UTC: after the clock fell back
        ],
        site,
    )
    # Sunday, C001 closed. The wall clock says one hour; 23:30 → 01:30 UTC is 120 true minutes
    # 120 min → 8 blocks → 120/60 × 15.00 = 30.00; 600 W × 2 h = 1.2 kWh → 0.24
    assert lines(result) == [
        line(
            "2025-10-26T01:30:00+02:00",
            "2025-10-26T02:30:00+01:00",
            120,
            120,
            "1.2",
            "30.00",
            "0.24",
            "30.24",
        )
    ]


FALL_BACK_TWO_PASSES = [
    # first pass through 02:00-02:59: summer time (+02:00)
    ("2025-10-26 01:45", 600.0),  # 23:45 UTC
    ("2025-10-26 02:00", 600.0),  # 00:00 UTC
    ("2025-10-26 02:15", 600.0),  # 00:15 UTC
    ("2025-10-26 02:30", 600.0),  # 00:30 UTC
    ("2025-10-26 02:45", 600.0),  # 00:45 UTC
    # the zone's clock goes backwards: from here standard time (+01:00)
    ("2025-10-26 02:00", 800.0),  # 01:00 UTC
    ("2025-10-26 02:15", 800.0),  # 01:15 UTC
    ("2025-10-26 02:30", 800.0),  # 01:30 UTC
    ("2025-10-26 02:45", 800.0),  # 01:45 UTC
    ("2025-10-26 03:00", 0.0),  # 02:00 UTC, unambiguous
]


def test_fall_back_naive_two_passes_are_summer_then_standard_time() -> None:
    result = run([(t, ZONE, "C001", p) for t, p in FALL_BACK_TWO_PASSES])
    # nine on-readings, 15 min each, 23:45 → 02:00 UTC = 135 min → 9 blocks → 135/60 × 15.00 = 33.75
    # 600 W × 75/60 h + 800 W × 60/60 h = 750 Wh + 800 Wh = 1.55 kWh → 0.31
    assert lines(result) == [
        line(
            "2025-10-26T01:45:00+02:00",
            "2025-10-26T03:00:00+01:00",
            135,
            135,
            "1.55",
            "33.75",
            "0.31",
            "34.06",
        )
    ]
    assert result.report.rows_duplicate == 0


def test_fall_back_second_pass_with_equal_power_is_not_a_duplicate() -> None:
    # the same wall time and power twice, an hour apart in truth: two readings, not a duplicate
    result = run([(t, ZONE, "C001", 600.0 if p else 0.0) for t, p in FALL_BACK_TWO_PASSES])
    # 135 min → 33.75; 600 W × 135/60 h = 1.35 kWh → 0.27
    assert result.report.rows_duplicate == 0
    assert result.report.rows_valid == 10
    assert lines(result) == [
        line(
            "2025-10-26T01:45:00+02:00",
            "2025-10-26T03:00:00+01:00",
            135,
            135,
            "1.35",
            "33.75",
            "0.27",
            "34.02",
        )
    ]


def test_fall_back_naive_single_pass_is_summer_time() -> None:
    result = run(
        [
            ("2025-10-26 01:45", ZONE, "C001", 600.0),  # 23:45 UTC
            ("2025-10-26 02:00", ZONE, "C001", 600.0),  # 00:00 UTC (summer time)
            ("2025-10-26 02:15", ZONE, "C001", 600.0),  # 00:15 UTC
            ("2025-10-26 02:30", ZONE, "C001", 600.0),  # 00:30 UTC
            ("2025-10-26 02:45", ZONE, "C001", 600.0),  # 00:45 UTC, stands 15 min to 01:00 UTC
        ]
    )
    # one session 23:45 → 01:00 UTC = 75 min → 5 blocks → 75/60 × 15.00 = 18.75
    # (read as standard time, 02:00 would be 01:00 UTC and the session would break at 00:00 UTC)
    # 600 W × 1.25 h = 0.75 kWh → 0.15
    assert lines(result) == [
        line(
            "2025-10-26T01:45:00+02:00",
            "2025-10-26T02:00:00+01:00",
            75,
            75,
            "0.75",
            "18.75",
            "0.15",
            "18.90",
        )
    ]


# --- calendar and clients (SPEC §2, §3.2, §3.7) ----------------------------------------------------


CHRISTMAS_MORNING = [
    ("2025-12-25 10:00", ZONE, "C001", 600.0),  # Thursday, a public holiday in DE
    ("2025-12-25 10:15", ZONE, "C001", 600.0),
    ("2025-12-25 10:30", ZONE, "C001", 600.0),
    ("2025-12-25 10:45", ZONE, "C001", 600.0),
    ("2025-12-25 11:00", ZONE, "C001", 0.0),
]


def test_public_holiday_is_closed() -> None:
    result = run(CHRISTMAS_MORNING)
    # closed all day → 10:00-11:00 = 60 min → 60/60 × 15.00 = 15.00; 600 W × 1 h = 0.6 kWh → 0.12
    assert lines(result) == [
        line("2025-12-25 10:00", "2025-12-25 11:00", 60, 60, "0.6", "15.00", "0.12", "15.12")
    ]


def test_work_on_holidays_keeps_the_contract() -> None:
    site = site_with(**{"clients.C001.work_on_holidays": True})
    assert lines(run(CHRISTMAS_MORNING, site)) == []


def test_the_same_hours_on_an_ordinary_thursday_are_contract() -> None:
    ordinary = [(t.replace("12-25", "12-18"), z, c, p) for t, z, c, p in CHRISTMAS_MORNING]
    assert lines(run(ordinary)) == []


def test_extra_holiday_dates_are_closed() -> None:
    site = site_with(**{"site.holidays": {"country": "DE", "dates": ["2025-02-12"]}})
    result = run(
        [
            ("2025-02-12 10:00", ZONE, "C001", 600.0),  # Wednesday, declared a holiday
            ("2025-02-12 10:15", ZONE, "C001", 0.0),
        ],
        site,
    )
    # 15 min → 3.75; 0.15 kWh → 0.03
    assert lines(result) == [
        line("2025-02-12 10:00", "2025-02-12 10:15", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]


def test_per_client_hourly_rate() -> None:
    result = run(
        [
            ("2025-02-10 22:00", ZONE, "C004", 800.0),  # C004 closes 22:00, rate 12.50
            ("2025-02-10 22:15", ZONE, "C004", 800.0),
            ("2025-02-10 22:30", ZONE, "C004", 800.0),
            ("2025-02-10 22:45", ZONE, "C004", 0.0),
        ]
    )
    # 45 min → 45 → 45/60 × 12.50 = 9.375 → 9.38; 800 W × 0.75 h = 0.6 kWh → 0.12
    assert lines(result) == [
        line("2025-02-10 22:00", "2025-02-10 22:45", 45, 45, "0.6", "9.38", "0.12", "9.50", client="C004")
    ]


def test_per_client_energy_rate() -> None:
    site = site_with(**{"clients.C001.energy_rate": 0.30})
    result = run(
        on_every_15_min("2025-02-10 18:00", 3, 2000.0) + [("2025-02-10 18:45", ZONE, "C001", 0.0)], site
    )
    # 45 min → 11.25; 2000 W × 0.75 h = 1.5 kWh × 0.30 = 0.45 → 11.70
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:45", 45, 45, "1.5", "11.25", "0.45", "11.70")
    ]


def test_24_7_client_is_never_billed() -> None:
    result = run(
        [
            ("2025-02-09 02:00", ZONE, "C005", 900.0),  # Sunday night
            ("2025-02-09 02:15", ZONE, "C005", 900.0),
            ("2025-02-09 02:30", ZONE, "C005", 0.0),
            ("2025-12-25 02:00", ZONE, "C005", 900.0),  # a public holiday
            ("2025-12-25 02:15", ZONE, "C005", 0.0),
            ("2025-02-09 02:00", ZONE2, "C001", 600.0),  # C001 beside it is billed
            ("2025-02-09 02:15", ZONE2, "C001", 0.0),
        ]
    )
    assert lines(result) == [
        line("2025-02-09 02:00", "2025-02-09 02:15", 15, 15, "0.15", "3.75", "0.03", "3.78", zone=ZONE2)
    ]
    assert result.invoices["client_id"].tolist() == ["C001"]
    c005 = result.readings.frame[result.readings.frame["client_id"] == "C005"]
    assert c005["usage_class"].tolist() == ["contract", "contract", "off", "contract", "off"]


def test_zone_that_changes_client_bills_each_reading_to_its_own_client() -> None:
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),
            ("2025-02-10 18:10", ZONE, "C001", 600.0),
            ("2025-02-10 18:20", ZONE, "C002", 600.0),  # the zone is let to C002 from here
            ("2025-02-10 18:30", ZONE, "C002", 600.0),
            ("2025-02-10 18:40", ZONE, "C002", 0.0),
        ]
    )
    # the session breaks at the change of client (one 40-min session would bill 45 min in all):
    # C001 18:00-18:20 = 20 min → 30 → 7.50; 600 W × 20/60 h = 0.2 kWh → 0.04 → 7.54
    # C002 18:20-18:40 = 20 min → 30 → 7.50; 0.2 kWh → 0.04 → 7.54
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:20", 20, 30, "0.2", "7.50", "0.04", "7.54"),
        line("2025-02-10 18:20", "2025-02-10 18:40", 20, 30, "0.2", "7.50", "0.04", "7.54", client="C002"),
    ]
    assert result.invoices["invoice_id"].tolist() == ["INV-C001-202502", "INV-C002-202502"]


def test_off_readings_below_threshold_are_not_billed() -> None:
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 4.99),  # below 5 W: off
            ("2025-02-10 18:15", ZONE, "C001", 4.99),
            ("2025-02-10 18:30", ZONE, "C001", 0.0),
            ("2025-02-10 18:00", ZONE2, "C001", 5.0),  # exactly 5 W: on
            ("2025-02-10 18:15", ZONE2, "C001", 0.0),
        ]
    )
    # ZONE2: 15 min → 3.75; 5 W × 0.25 h = 1.25 Wh = 0.00125 kWh → × 0.20 = 0.00025 → 0.00
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:15", 15, 15, "0.00125", "3.75", "0.00", "3.75", zone=ZONE2)
    ]


def test_same_instant_the_later_row_stands() -> None:
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),  # covers nothing
            ("2025-02-10 18:00", ZONE, "C001", 0.0),  # stands: off
            ("2025-02-10 18:15", ZONE, "C001", 0.0),
            ("2025-02-10 18:00", ZONE2, "C001", 0.0),  # covers nothing
            ("2025-02-10 18:00", ZONE2, "C001", 600.0),  # stands: on 18:00-18:15
            ("2025-02-10 18:15", ZONE2, "C001", 0.0),
        ]
    )
    # ZONE: nothing billed. ZONE2: 15 min → 3.75; 0.15 kWh → 0.03
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:15", 15, 15, "0.15", "3.75", "0.03", "3.78", zone=ZONE2)
    ]
    assert result.report.rows_duplicate == 0
    zone2 = result.readings.frame[result.readings.frame["zone_id"] == ZONE2]
    assert zone2["power_w"].tolist() == [0.0, 600.0, 0.0]
    assert zone2["covered_minutes"].tolist() == pytest.approx([0, 15, 15])


def test_exact_duplicates_are_dropped_and_counted() -> None:
    result = run(
        [
            ("2025-02-10 18:00", ZONE, "C001", 600.0),
            ("2025-02-10 18:00", ZONE, "C001", 600.0),  # exact duplicate
            ("2025-02-10 18:15", ZONE, "C001", 0.0),
            ("2025-02-10 18:30", ZONE, "C001", -5.0),  # negative power: quarantined
            ("2025-02-10 18:45", ZONE, "C999", 600.0),  # unknown client: quarantined
        ]
    )
    report = result.report
    assert (report.rows_in, report.rows_valid, report.rows_quarantined, report.rows_duplicate) == (5, 2, 2, 1)
    assert report.rows_in == report.rows_valid + report.rows_quarantined + report.rows_duplicate
    assert sorted(result.quarantine["client_id"].tolist()) == ["C001", "C999"]
    # the kept reading counts once: 18:00-18:15 = 15 min → 3.75; 0.15 kWh → 0.03
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:15", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]


# --- money (SPEC §3.5, §3.6) ------------------------------------------------------------------------


def test_energy_kwh_and_energy_charge() -> None:
    result = run(on_every_15_min("2025-02-10 18:00", 3, 2000.0) + [("2025-02-10 18:45", ZONE, "C001", 0.0)])
    # 18:00-18:45 = 45 min → 11.25; 2000 W × 0.75 h = 1500 Wh = 1.5 kWh × 0.20 = 0.30
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:45", 45, 45, "1.5", "11.25", "0.30", "11.55")
    ]


def test_energy_of_mixed_powers() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 1000.0),
            ("2025-02-10 19:15", ZONE, "C001", 2000.0),
            ("2025-02-10 19:30", ZONE, "C001", 300.0),
            ("2025-02-10 19:45", ZONE, "C001", 0.0),
        ]
    )
    # 45 min → 11.25; (1000 + 2000 + 300) W × 0.25 h = 825 Wh = 0.825 kWh × 0.20 = 0.165 → 0.17 (half up)
    assert lines(result) == [
        line("2025-02-10 19:00", "2025-02-10 19:45", 45, 45, "0.825", "11.25", "0.17", "11.42")
    ]


def test_round_half_up_at_an_exact_half_cent() -> None:
    result = run(
        [
            ("2025-02-10 22:00", ZONE, "C004", 500.0),  # C004: 12.50 per hour
            ("2025-02-10 22:15", ZONE, "C004", 0.0),
            ("2025-02-10 18:00", ZONE2, "C001", 2900.0),
            ("2025-02-10 18:15", ZONE2, "C001", 0.0),
        ]
    )
    # C004: 15/60 × 12.50 = 3.125 → 3.13 (half-even would give 3.12)
    #       500 W × 0.25 h = 0.125 kWh × 0.20 = 0.025 → 0.03 (half-even 0.02) → 3.16
    # C001: 15 min → 3.75; 2900 W × 0.25 h = 0.725 kWh × 0.20 = 0.145 → 0.15
    #       (as binary floats 0.725 × 0.2 = 0.14499999… and would round to 0.14) → 3.90
    assert lines(result) == [
        line("2025-02-10 18:00", "2025-02-10 18:15", 15, 15, "0.725", "3.75", "0.15", "3.90", zone=ZONE2),
        line("2025-02-10 22:00", "2025-02-10 22:15", 15, 15, "0.125", "3.13", "0.03", "3.16", client="C004"),
    ]
    money = result.invoice_lines[["hours_charge", "energy_charge", "amount", "energy_kwh"]]
    assert all(isinstance(v, Decimal) for v in money.to_numpy().ravel())


# --- invoices (SPEC §3.7, §3.8) ---------------------------------------------------------------------

INVOICE_ROWS = [
    # Fri 31 Jan: 18:00-18:30 = 30 min → 7.50; 600 W × 0.5 h = 0.3 kWh → 0.06 → 7.56
    ("2025-01-31 18:00", ZONE, "C001", 600.0),
    ("2025-01-31 18:15", ZONE, "C001", 600.0),
    ("2025-01-31 18:30", ZONE, "C001", 0.0),
    # Mon 3 Feb: 18:00-18:15 = 15 min → 3.75; 0.15 kWh → 0.03 → 3.78
    ("2025-02-03 18:00", ZONE, "C001", 600.0),
    ("2025-02-03 18:15", ZONE, "C001", 0.0),
    # Tue 4 Feb: 19:00-19:30 = 30 min → 7.50; 0.3 kWh → 0.06 → 7.56
    ("2025-02-04 19:00", ZONE, "C001", 600.0),
    ("2025-02-04 19:15", ZONE, "C001", 600.0),
    ("2025-02-04 19:30", ZONE, "C001", 0.0),
    # Fri 28 Feb 23:50 → Sat 1 Mar 00:05, cut at midnight:
    #   28 Feb 23:50-24:00 = 10 min → 15 → 3.75; 600 W × 10/60 h = 0.1 kWh → 0.02 → 3.77 (February)
    #    1 Mar 00:00-00:05 =  5 min → 15 → 3.75; 600 W ×  5/60 h = 0.05 kWh → 0.01 → 3.76 (March)
    ("2025-02-28 23:50", ZONE, "C001", 600.0),
    ("2025-03-01 00:05", ZONE, "C001", 0.0),
    # C002 only within its contract: no overtime, no invoice
    ("2025-02-03 10:00", ZONE2, "C002", 600.0),
    ("2025-02-03 10:15", ZONE2, "C002", 0.0),
]


def test_one_invoice_per_client_and_month() -> None:
    result = run(INVOICE_ROWS)
    inv = result.invoices
    assert inv["invoice_id"].tolist() == ["INV-C001-202501", "INV-C001-202502", "INV-C001-202503"]
    assert inv["client_id"].tolist() == ["C001", "C001", "C001"]
    assert inv["period"].tolist() == ["2025-01", "2025-02", "2025-03"]
    assert inv["revision"].tolist() == [1, 1, 1]
    assert inv["lines"].tolist() == [1, 3, 1]
    # hours: Jan 30 min; Feb 15 + 30 + 15 = 60 min; Mar 15 min
    assert inv["billable_hours"].tolist() == [D("0.5"), D("1"), D("0.25")]
    # kWh: Jan 0.3; Feb 0.15 + 0.3 + 0.1 = 0.55; Mar 0.05
    assert inv["energy_kwh"].tolist() == [D("0.3"), D("0.55"), D("0.05")]
    # totals: Jan 7.56; Feb 3.78 + 7.56 + 3.77 = 15.11; Mar 3.76
    assert inv["total"].tolist() == [D("7.56"), D("15.11"), D("3.76")]
    assert inv["currency"].tolist() == ["EUR", "EUR", "EUR"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in inv["content_hash"])
    assert len(set(inv["content_hash"])) == 3

    lines_ = result.invoice_lines
    assert lines_["invoice_id"].tolist() == [
        "INV-C001-202501",
        "INV-C001-202502",
        "INV-C001-202502",
        "INV-C001-202502",
        "INV-C001-202503",
    ]
    assert lines_["date"].tolist() == [
        dt.date(2025, 1, 31),
        dt.date(2025, 2, 3),
        dt.date(2025, 2, 4),
        dt.date(2025, 2, 28),
        dt.date(2025, 3, 1),
    ]
    assert lines_["amount"].tolist() == [D("7.56"), D("3.78"), D("7.56"), D("3.77"), D("3.76")]
    assert set(lines_["currency"]) == {"EUR"}
    assert not lines_["adjusted"].any()


def test_client_with_no_overtime_gets_no_invoice() -> None:
    result = run(
        [
            ("2025-02-10 10:00", ZONE, "C001", 600.0),  # inside 08:00-18:00
            ("2025-02-10 10:15", ZONE, "C001", 600.0),
            ("2025-02-10 10:30", ZONE, "C001", 0.0),
            ("2025-02-10 19:00", ZONE, "C001", 0.0),  # after hours but off
        ]
    )
    assert result.invoice_lines.empty
    assert result.invoices.empty
    assert list(result.invoices.columns)[:10] == [
        "invoice_id",
        "client_id",
        "period",
        "revision",
        "lines",
        "billable_hours",
        "energy_kwh",
        "total",
        "currency",
        "content_hash",
    ]


def test_rescoring_identical_input_gives_identical_invoices() -> None:
    first = run(INVOICE_ROWS)
    second = run(INVOICE_ROWS)
    assert first.invoices["content_hash"].tolist() == second.invoices["content_hash"].tolist()
    pd.testing.assert_frame_equal(first.invoice_lines, second.invoice_lines)
    pd.testing.assert_frame_equal(first.invoices, second.invoices)


def test_row_order_does_not_change_invoices() -> None:
    # no two rows of a zone share an instant, so the order of the rows is not information
    shuffled = INVOICE_ROWS[::-1]
    assert (
        run(shuffled).invoices["content_hash"].tolist() == run(INVOICE_ROWS).invoices["content_hash"].tolist()
    )


def test_content_hash_follows_the_lines() -> None:
    changed = list(INVOICE_ROWS)
    changed[0] = ("2025-01-31 18:00", ZONE, "C001", 601.0)  # January's energy changes
    before = run(INVOICE_ROWS).invoices.set_index("invoice_id")["content_hash"]
    after = run(changed).invoices.set_index("invoice_id")["content_hash"]
    assert before["INV-C001-202501"] != after["INV-C001-202501"]
    assert before["INV-C001-202502"] == after["INV-C001-202502"]


# --- cleaning staff (SPEC §3.3) ---------------------------------------------------------------------


def test_cleaning_staff_outside_contract_is_not_billed() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 600.0, True),
            ("2025-02-10 19:15", ZONE, "C001", 600.0, True),
            ("2025-02-10 19:30", ZONE, "C001", 0.0, False),
            ("2025-02-10 19:00", ZONE2, "C001", 600.0, "Yes"),
            ("2025-02-10 19:15", ZONE2, "C001", 0.0, "No"),
        ]
    )
    assert result.invoice_lines.empty
    assert result.invoices.empty
    assert set(result.readings.frame.loc[result.readings.frame["power_w"] > 0, "usage_class"]) == {"cleaning"}


def test_missing_cleaning_value_is_billed() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 600.0, True),  # cleaning 19:00-19:15
            ("2025-02-10 19:15", ZONE, "C001", 600.0, None),  # unknown → false for billing
            ("2025-02-10 19:30", ZONE, "C001", 0.0, False),
        ]
    )
    # 19:15-19:30 = 15 min → 3.75; 0.15 kWh → 0.03
    assert lines(result) == [
        line("2025-02-10 19:15", "2025-02-10 19:30", 15, 15, "0.15", "3.75", "0.03", "3.78")
    ]

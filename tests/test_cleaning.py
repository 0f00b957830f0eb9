"""Cleaning sessions (SPEC §4, docs/billing-rules.md "Cleaning") on tiny inputs worked out on paper.

Site: Europe/Berlin, on at ≥ 5 W, a reading stands for at most 15 minutes, cleaning is expected to take
30–60 minutes and is flagged past 180, the operator pays 0.20 per kWh. C001/C002 are contracted
Mon–Fri 08:00–18:00. 2025-02-10 is a Monday.

``wasted_kwh`` is the energy after the session's first 60 minutes (``expected_minutes[1]``);
``savings = wasted_kwh × 0.20`` rounded half up to the cent.
"""

from __future__ import annotations

import copy
import datetime as dt
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

SITE_RAW: dict[str, Any] = {
    "site": {"timezone": TZ, "currency": "EUR", "holidays": {"country": "DE"}},
    "sampling": {"on_threshold_w": 5, "max_gap_minutes": 15},
    "billing": {"hourly_rate": 15.00, "energy_rate": 0.20, "block_minutes": 15, "grace_minutes": 0},
    "cleaning": {"expected_minutes": [30, 60], "flag_after_minutes": 180, "energy_price": 0.20},
    "clients": {
        "C001": {"name": "Acme", "hours": {"mon-fri": "08:00-18:00"}},
        "C002": {"name": "Brightline", "hours": {"mon-fri": "08:00-18:00"}},
    },
}
SITE = parse_site(SITE_RAW)


def run(rows: list[tuple[Any, ...]], site: SiteConfig = SITE) -> ScoringResult:
    """Score rows ``(timestamp, zone_id, client_id, power_w, cleaning_staff)`` given in input order."""
    frame = pd.DataFrame(rows, columns=["timestamp", "zone_id", "client_id", "power_w", "cleaning_staff"])
    return score(validate_frame(frame, site), site)


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_localize(TZ)


def cleaning_every_15_min(first: str, count: int, power: float, client: str = "C001") -> list[tuple]:
    """``count`` cleaning readings 15 minutes apart from ``first``, then an off reading."""
    t0 = pd.Timestamp(first)
    stamps = [(t0 + pd.Timedelta(minutes=15 * i)).strftime("%Y-%m-%d %H:%M") for i in range(count + 1)]
    rows = [(t, ZONE, client, power, True) for t in stamps[:-1]]
    return [*rows, (stamps[-1], ZONE, client, 0.0, False)]


def sessions(result: ScoringResult) -> list[dict[str, Any]]:
    return [
        {
            "date": dt.date.fromisoformat(str(r.date)[:10]),
            "start": r.start,
            "end": r.end,
            "minutes": float(r.minutes),
            "flagged": bool(r.flagged),
            "excess": float(r.excess_minutes),
            "wasted_kwh": r.wasted_kwh,
            "savings": r.savings,
        }
        for r in result.cleaning_sessions.itertuples(index=False)
    ]


def session(
    start: str, end: str, minutes: float, flagged: bool, excess: float, wasted_kwh: str, savings: str
) -> dict[str, Any]:
    """The expected session; its date is the local date of ``start``."""
    return {
        "date": at(start).date(),
        "start": at(start),
        "end": at(end),
        "minutes": pytest.approx(minutes, abs=1e-9),
        "flagged": flagged,
        "excess": pytest.approx(excess, abs=1e-9),
        "wasted_kwh": D(wasted_kwh),
        "savings": D(savings),
    }


def test_cleaning_under_the_threshold() -> None:
    result = run(cleaning_every_15_min("2025-02-10 19:00", 6, 1000.0))
    # 19:00-20:30 = 90 min ≤ 180 → not flagged; excess 90 − 60 = 30 min
    # wasted: 1000 W × 30/60 h (20:00-20:30) = 0.5 kWh → × 0.20 = 0.10
    assert sessions(result) == [session("2025-02-10 19:00", "2025-02-10 20:30", 90, False, 30, "0.5", "0.10")]
    row = result.cleaning_sessions.iloc[0]
    assert row["zone_id"] == ZONE
    assert row["building"] == "HQ"
    assert str(row["floor"]) == "1"
    assert not row["inferred"]
    # the operator's cost, never billed
    assert result.invoice_lines.empty


def test_cleaning_over_the_threshold_is_flagged() -> None:
    result = run(cleaning_every_15_min("2025-02-10 19:00", 14, 1000.0))
    # 19:00-22:30 = 210 min > 180 → flagged; excess 210 − 60 = 150 min
    # wasted: 1000 W × 150/60 h = 2.5 kWh → 0.50
    assert sessions(result) == [
        session("2025-02-10 19:00", "2025-02-10 22:30", 210, True, 150, "2.5", "0.50")
    ]


def test_exactly_at_the_threshold_is_not_flagged() -> None:
    result = run(cleaning_every_15_min("2025-02-10 19:00", 12, 1000.0))
    # 19:00-22:00 = 180 min, not > 180 → not flagged; excess 120; 1000 W × 2 h = 2 kWh → 0.40
    assert sessions(result) == [session("2025-02-10 19:00", "2025-02-10 22:00", 180, False, 120, "2", "0.40")]


def test_short_cleaning_wastes_nothing() -> None:
    result = run(cleaning_every_15_min("2025-02-10 19:00", 3, 1000.0))
    # 19:00-19:45 = 45 min < 60 → excess 0, wasted 0, savings 0
    assert sessions(result) == [session("2025-02-10 19:00", "2025-02-10 19:45", 45, False, 0, "0", "0")]


def test_wasted_energy_counts_the_later_part_of_a_straddling_reading() -> None:
    site = parse_site({**copy.deepcopy(SITE_RAW), "sampling": {"on_threshold_w": 5, "max_gap_minutes": 60}})
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 400.0, True),  # 19:00-19:30
            ("2025-02-10 19:30", ZONE, "C001", 1000.0, True),  # 19:30-20:15, straddles 20:00
            ("2025-02-10 20:15", ZONE, "C001", 2000.0, True),  # 20:15-20:45
            ("2025-02-10 20:45", ZONE, "C001", 0.0, False),
        ],
        site,
    )
    # 19:00-20:45 = 105 min; the first 60 minutes end at 20:00; excess 45
    # wasted: 1000 W × 15/60 h (20:00-20:15) + 2000 W × 30/60 h = 250 Wh + 1000 Wh = 1.25 kWh
    # savings: 1.25 × 0.20 = 0.25
    assert sessions(result) == [
        session("2025-02-10 19:00", "2025-02-10 20:45", 105, False, 45, "1.25", "0.25")
    ]


def test_savings_round_half_up() -> None:
    result = run(cleaning_every_15_min("2025-02-10 19:00", 5, 500.0))
    # 19:00-20:15 = 75 min; excess 15; wasted 500 W × 0.25 h = 0.125 kWh
    # savings 0.125 × 0.20 = 0.025 → 0.03 (half-even would give 0.02)
    assert sessions(result) == [
        session("2025-02-10 19:00", "2025-02-10 20:15", 75, False, 15, "0.125", "0.03")
    ]


def test_cleaning_across_midnight_is_one_session_dated_by_its_start() -> None:
    result = run(cleaning_every_15_min("2025-02-10 23:00", 6, 1000.0))
    # Mon 23:00 → Tue 00:30 = 90 min, one session dated Monday 2025-02-10
    # excess 30; wasted 1000 W × 30/60 h (00:00-00:30) = 0.5 kWh → 0.10
    assert sessions(result) == [session("2025-02-10 23:00", "2025-02-11 00:30", 90, False, 30, "0.5", "0.10")]
    assert result.invoice_lines.empty


def test_cleaning_inside_contract_hours_is_contract() -> None:
    result = run(
        [
            ("2025-02-10 10:00", ZONE, "C001", 1000.0, True),
            ("2025-02-10 10:15", ZONE, "C001", 1000.0, True),
            ("2025-02-10 10:30", ZONE, "C001", 0.0, False),
        ]
    )
    assert result.cleaning_sessions.empty
    assert result.invoice_lines.empty
    assert result.readings.frame["usage_class"].tolist() == ["contract", "contract", "off"]


def test_cleaning_that_runs_past_opening_ends_at_opening() -> None:
    result = run(
        [
            ("2025-02-10 07:30", ZONE, "C001", 1000.0, True),
            ("2025-02-10 07:45", ZONE, "C001", 1000.0, True),  # 07:45-08:00 cleaning
            ("2025-02-10 08:00", ZONE, "C001", 1000.0, True),  # contract from 08:00
            ("2025-02-10 08:15", ZONE, "C001", 0.0, False),
        ]
    )
    # 07:30-08:00 = 30 min; excess 0
    assert sessions(result) == [session("2025-02-10 07:30", "2025-02-10 08:00", 30, False, 0, "0", "0")]


def test_cleaning_then_tenant_overtime() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 1000.0, "Yes"),
            ("2025-02-10 19:15", ZONE, "C001", 1000.0, "yes"),
            ("2025-02-10 19:30", ZONE, "C001", 1000.0, "No"),  # the tenant, billed
            ("2025-02-10 19:45", ZONE, "C001", 0.0, "no"),
        ]
    )
    # cleaning 19:00-19:30 = 30 min, excess 0
    assert sessions(result) == [session("2025-02-10 19:00", "2025-02-10 19:30", 30, False, 0, "0", "0")]
    # overtime 19:30-19:45 = 15 min → 3.75; 1000 W × 0.25 h = 0.25 kWh → 0.05 → 3.80
    lines = result.invoice_lines
    assert len(lines) == 1
    assert (lines["start"].iloc[0], lines["end"].iloc[0]) == (at("2025-02-10 19:30"), at("2025-02-10 19:45"))
    assert (lines["billable_minutes"].iloc[0], lines["amount"].iloc[0]) == (15, D("3.80"))


def test_a_gap_splits_cleaning_sessions() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 1000.0, True),  # covers 19:00-19:15 only
            ("2025-02-10 20:00", ZONE, "C001", 1000.0, True),  # covers 20:00-20:15
            ("2025-02-10 20:30", ZONE, "C001", 0.0, False),
        ]
    )
    assert sessions(result) == [
        session("2025-02-10 19:00", "2025-02-10 19:15", 15, False, 0, "0", "0"),
        session("2025-02-10 20:00", "2025-02-10 20:15", 15, False, 0, "0", "0"),
    ]


def test_client_may_change_inside_a_cleaning_session() -> None:
    result = run(
        [
            ("2025-02-10 19:00", ZONE, "C001", 1000.0, True),
            ("2025-02-10 19:15", ZONE, "C001", 1000.0, True),
            ("2025-02-10 19:30", ZONE, "C002", 1000.0, True),
            ("2025-02-10 19:45", ZONE, "C002", 1000.0, True),
            ("2025-02-10 20:00", ZONE, "C002", 1000.0, True),
            ("2025-02-10 20:15", ZONE, "C002", 0.0, False),
        ]
    )
    # one session 19:00-20:15 = 75 min; excess 15; wasted 1000 W × 0.25 h = 0.25 kWh → 0.05
    assert sessions(result) == [
        session("2025-02-10 19:00", "2025-02-10 20:15", 75, False, 15, "0.25", "0.05")
    ]

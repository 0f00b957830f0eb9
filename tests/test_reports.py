"""Gathering and making reports (SPEC §10; slem_ml/reports/periods.py, scope.py, gather*.py, make.py,
slem_ml/cli/reports.py).

A tiny store is built by scoring a hand-made month of readings through the real pipeline (validate, score,
store, re-bill): three zones, two clients, a zone let to the other client on 10 March. Every figure below is
worked out by hand from those readings (SPEC §3: a reading covers until the next one of its zone, at most
15 minutes here).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from slem_ml.errors import InputError
from slem_ml.generator.generate import default_site
from slem_ml.io.reader import validate_frame
from slem_ml.outputs.report_content import ReportContent
from slem_ml.reports.co2 import COUNTRY_FACTORS, EU_AVERAGE, co2_factor
from slem_ml.reports.gather import gather
from slem_ml.reports.gather_models import peak_hours_table
from slem_ml.reports.make import make_report, write_report
from slem_ml.reports.periods import last_complete, parse_report_period
from slem_ml.reports.scope import parse_scope
from slem_ml.scoring.score import score
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.maintenance import record_action
from slem_ml.storage.reports import list_reports, report_file
from slem_ml.storage.tables import Alert
from slem_ml.storage.upload import store_upload
from tests.test_cli import slem as run_slem
from tests.test_oracle import make_site

REPO = Path(__file__).resolve().parents[1]
CLIENTS = {
    "C001": {"name": "Acme Logistics GmbH", "hours": {"mon-fri": "08:00-18:00"}},
    "C002": {"hours": {"mon-fri": "08:00-18:00"}},
}
SITE = make_site("Europe/Berlin", clients=CLIENTS)  # 15 EUR/h, 0.20 EUR/kWh, blocks of 15 min, price 0.20
NOW = dt.datetime(2025, 4, 2, 6, 0, tzinfo=dt.UTC)
CONTRACTS_YAML = """
site: {timezone: Europe/Berlin, currency: EUR}
sampling: {on_threshold_w: 5, max_gap_minutes: 15}
billing: {hourly_rate: 15.00, energy_rate: 0.20, block_minutes: 15, grace_minutes: 0}
cleaning: {expected_minutes: [30, 60], flag_after_minutes: 180, energy_price: 0.20}
clients:
  C001: {name: Acme Logistics GmbH, hours: {mon-fri: "08:00-18:00"}}
  C002: {hours: {mon-fri: "08:00-18:00"}}
"""


def _rows(zone: str, client: str, day: str, *readings: tuple[str, float], cleaning: bool = False) -> list:
    return [(f"{day}T{clock}", zone, client, power, "Yes" if cleaning else "No") for clock, power in readings]


def readings() -> pd.DataFrame:
    """The hand-made readings (local wall time)."""
    rows = [
        # February: 100 W for 15 min in contract = 0.025 kWh
        *_rows("HQ-F1-Z1", "C001", "2025-02-03", ("09:00", 100), ("09:15", 0)),
        # Mon 3 March: 2 × 15 min of 100 W in contract (0.05 kWh); 18:00-18:30 200 W overtime (0.1 kWh,
        # 30 min → 0.5 h × 15 = 7.50 + 0.1 kWh × 0.20 = 0.02 → 7.52)
        *_rows("HQ-F1-Z1", "C001", "2025-03-03", ("09:00", 100), ("09:15", 100), ("09:30", 0)),
        *_rows("HQ-F1-Z1", "C001", "2025-03-03", ("18:00", 200), ("18:15", 200), ("18:30", 0)),
        # Tue 4 March, C002: 400 W 20:00-20:15 overtime (0.1 kWh; 0.25 h × 15 = 3.75 + 0.02 → 3.77)
        *_rows("HQ-F1-Z2", "C002", "2025-03-04", ("20:00", 400), ("20:15", 0)),
        # Wed 5 March: 40 W 10:00-10:15 in contract (0.01 kWh)
        *_rows("Lab-F1-Z1", "C001", "2025-03-05", ("10:00", 40), ("10:15", 0)),
        # Thu 6 March: cleaning 80 W 19:00-19:15 (0.02 kWh)
        *_rows("HQ-F1-Z1", "C001", "2025-03-06", ("19:00", 80), ("19:15", 0), cleaning=True),
        # Fri 7 March: cleaning 80 W 19:00-23:00 = 240 min (over the 180 min limit), 16 × 0.02 = 0.32 kWh
        *_rows(
            "HQ-F1-Z1",
            "C001",
            "2025-03-07",
            *[(f"{19 + q // 4:02d}:{15 * (q % 4):02d}", 80.0) for q in range(16)],
            ("23:00", 0),
            cleaning=True,
        ),  # fmt: skip
        # Mon 10 March: HQ-F1-Z2 now let to C001: 400 W 20:00-20:15 overtime (0.1 kWh, 3.77)
        *_rows("HQ-F1-Z2", "C001", "2025-03-10", ("20:00", 400), ("20:15", 0)),
    ]
    return pd.DataFrame(rows, columns=["timestamp", "zone_id", "client_id", "power_w", "cleaning_staff"])


def build_store(engine: Engine, frame: pd.DataFrame, site: Any = SITE) -> None:
    """Validate, score and store the readings, as `slem score` does."""
    validated = validate_frame(frame, site)
    result = score(validated, site)
    with write_session(engine) as session:
        store_upload(session, result, [result.readings.frame], cleaning=result.cleaning_source, actor="test")


def report(engine: Engine, period: str, scope: str = "site", models: Any = None):
    return gather(engine, SITE, parse_report_period(period), parse_scope(scope, SITE), models=models, now=NOW)


def by_use(content) -> dict[str, float]:
    return {row.Use: round(row._2, 6) for row in content.by_use.itertuples()}


def headline(content, measure: str, column: str = "This period") -> Any:
    table = content.headline.set_index("Measure")
    return table.loc[measure, column]


# --- periods and scopes ----------------------------------------------------------------------------------


def test_periods_weeks_months_quarters() -> None:
    week = parse_report_period("2025-W01")  # ISO week 1 of 2025 starts on Monday 30 December 2024
    assert (week.start, week.end, week.kind) == (dt.date(2024, 12, 30), dt.date(2025, 1, 6), "week")
    assert week.label == "Week 1 of 2025 (30 December 2024 – 5 January 2025)"
    assert week.previous().text == "2024-W52" and week.previous().start == dt.date(2024, 12, 23)
    assert parse_report_period("2025-w10").label == "Week 10 of 2025 (3–9 March)"
    assert parse_report_period("2025-W18").label == "Week 18 of 2025 (28 April – 4 May)"
    w53 = parse_report_period("2020-W53")  # 2020 has 53 ISO weeks
    assert (w53.start, w53.next().text, w53.next().start) == (
        dt.date(2020, 12, 28),
        "2021-W01",
        dt.date(2021, 1, 4),
    )
    assert parse_report_period("2026-W53").year_earlier().text == "2025-W52"  # 2025 has 52
    assert parse_report_period("2025-W10").year_earlier().start == dt.date(2024, 3, 4)

    month = parse_report_period("2025-01")
    assert (month.label, month.previous().text, month.year_earlier().text) == (
        "January 2025",
        "2024-12",
        "2024-01",
    )
    assert parse_report_period("2024-12").next().text == "2025-01"
    quarter = parse_report_period("2025-Q1")
    assert (quarter.start, quarter.end, quarter.label) == (
        dt.date(2025, 1, 1), dt.date(2025, 4, 1), "Q1 2025 (January–March)"
    )  # fmt: skip
    assert quarter.previous().text == "2024-Q4" and quarter.previous().end == dt.date(2025, 1, 1)
    assert (
        quarter.year_earlier().text == "2024-Q1" and parse_report_period("2025-Q4").next().text == "2026-Q1"
    )

    assert last_complete("month", dt.date(2025, 3, 15)).text == "2025-02"
    assert last_complete("week", dt.date(2025, 3, 10)).text == "2025-W10"  # Mon 10 March: 3–9 March is over
    assert last_complete("quarter", dt.date(2025, 4, 1)).text == "2025-Q1"


@pytest.mark.parametrize("text", ["2025-13", "2025-W53", "2025-Q5", "March", "", "2025-W00"])
def test_bad_periods_say_the_accepted_forms(text: str) -> None:
    with pytest.raises(InputError, match="2025-W10"):
        parse_report_period(text)


def test_scopes() -> None:
    assert parse_scope("site", SITE).label == "Whole site"
    hq = parse_scope("building:HQ", SITE)
    assert (hq.text, hq.label, hq.slug) == ("building:HQ", "Building HQ", "building-HQ")
    assert parse_scope("client:C001", SITE).label == "Acme Logistics GmbH (C001)"
    assert parse_scope("client:C002", SITE).label == "Client C002"  # no name in the contracts
    with pytest.raises(InputError, match="no client 'C999'.*C001, C002"):
        parse_scope("client:C999", SITE)
    with pytest.raises(InputError, match="building:HQ"):
        parse_scope("everything", SITE)


def test_co2_factor_from_site_else_country_else_eu() -> None:
    own = co2_factor(make_site("Europe/Berlin", site={"co2_kg_per_kwh": 0.3}))
    assert (own.kg_per_kwh, own.source) == (0.3, "site configuration (co2_kg_per_kwh)")
    german = co2_factor(make_site("Europe/Berlin", site={"holidays": {"country": "DE"}}))
    assert german == COUNTRY_FACTORS["DE"] and german.year is not None and "Umweltbundesamt" in german.source
    assert co2_factor(SITE) == EU_AVERAGE
    for factor in (*COUNTRY_FACTORS.values(), EU_AVERAGE):  # the report prints "<source>, <year>"
        assert str(factor.year) not in factor.source, factor.source


# --- figures against the hand-made store -------------------------------------------------------------------


def test_month_site_figures(engine: Engine) -> None:
    build_store(engine, readings())
    record_action(
        engine,
        "HQ-F1-Z1",
        "relamped",
        "new LED tubes",
        "maria",
        at=dt.datetime(2025, 3, 5, 12, tzinfo=dt.UTC),
    )
    content = report(engine, "2025-03")
    assert content.title == "Energy report — Whole site — March 2025"
    assert by_use(content) == {"Contracted hours": 0.06, "Overtime": 0.3, "Cleaning": 0.34, "Lights off": 0.0}
    assert content.energy_kwh == pytest.approx(0.70) and content.cost == Decimal("0.14")
    assert list(content.by_use["Cost [EUR]"]) == [
        Decimal("0.01"),
        Decimal("0.06"),
        Decimal("0.07"),
        Decimal("0.00"),
    ]
    # ranked by energy: HQ-F1-Z1 0.05 + 0.1 + 0.34 = 0.49, HQ-F1-Z2 0.2 (both clients), Lab-F1-Z1 0.01
    assert list(content.by_place["Zone"]) == ["HQ-F1-Z1", "HQ-F1-Z2", "Lab-F1-Z1"]
    assert content.by_place["Energy [kWh]"].round(6).tolist() == [0.49, 0.2, 0.01]
    assert content.by_place["Client"].iloc[1] == "Acme Logistics GmbH (C001), Client C002"
    assert content.by_building["Energy [kWh]"].round(6).tolist() == [0.69, 0.01]  # HQ 1, Lab 1
    daily = content.daily.set_index("Date")
    assert len(daily) == 10  # 1 to 10 March, the last day with readings
    assert daily.loc[dt.date(2025, 3, 3)].round(6).tolist() == [0.05, 0.1, 0.0, 0.0]
    assert daily.loc[dt.date(2025, 3, 1)].sum() == 0.0
    # Mondays with readings: 3 and 10 March; 0.15 + 0.1 kWh over two Mondays
    assert content.by_weekday.set_index("Weekday").loc["Monday", "Energy [kWh/day]"] == pytest.approx(0.125)
    # 18:00 on weekdays: 0.1 kWh on one of the 6 weekdays with readings (3, 4, 5, 6, 7, 10 March)
    assert content.by_hour.set_index("Hour").loc[18, "Weekdays [kWh/h]"] == pytest.approx(0.1 / 6)

    overtime = content.overtime.set_index("Client")
    assert overtime.loc["Acme Logistics GmbH (C001)", "Billed [EUR]"] == Decimal("11.29")  # 7.52 + 3.77
    assert overtime.loc["Client C002", "Billed [EUR]"] == Decimal("3.77")
    assert overtime.loc["Acme Logistics GmbH (C001)", "Sessions"] == 2
    assert overtime.loc["Acme Logistics GmbH (C001)", "Hours [h]"] == 0.75
    assert headline(content, "Overtime billed [EUR]") == Decimal("15.06")

    assert (
        list(content.cleaning["Zone"]) == ["HQ-F1-Z1"] and content.cleaning["Duration [min]"].iloc[0] == 240.0
    )
    assert content.cleaning["Start"].iloc[0] == "19:00"
    assert headline(content, "Cleaning sessions over the limit") == 1
    # maintenance on 5 March 13:00 local: lit readings the week before 100, 100, 200, 200 W (mean 150),
    # after 80 W (17 readings): -47 %
    assert content.maintenance["Effect"].iloc[0] == (
        "mean lit power 150 W before, 80 W after (-47%): lower draw after the fix"
    )
    # readings on 6 of March's 31 days (3–7 and 10 March), February's on 1 of 28: neither is compared
    assert content.days_with_readings == 6
    assert headline(content, "Energy [kWh]", "Previous period") is None
    assert headline(content, "Energy [kWh]", "Change vs previous [%]") is None
    assert headline(content, "Energy [kWh]", "Year earlier") is None
    assert "March 2025: readings on 6 of 31 days; not compared with others." in content.notes
    assert "The previous period (February 2025): readings on 1 of 28 days; not compared." in content.notes
    assert "The year earlier (March 2024): no readings; not compared." in content.notes
    assert headline(content, "CO₂ [kg]") == pytest.approx(0.70 * EU_AVERAGE.kg_per_kwh)
    assert content.forecast.empty and any("No champion model" in note for note in content.notes)


def test_client_scope_has_nothing_of_other_clients(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        build_store(engine, readings())
        mine = report(engine, "2025-03", "client:C001")
        theirs = report(engine, "2025-03", "client:C002")
        building = report(engine, "2025-03", "building:HQ")
        week = report(engine, "2025-W10")
        missing = report(engine, "2025-W12", "building:Lab")  # a building stored, silent that week
        with pytest.raises(InputError, match=r"no building 'Nowhere' \(buildings: HQ, Lab\)"):
            report(engine, "2025-03", "building:Nowhere")
    finally:
        engine.dispose()
    # C001: HQ-F1-Z1 all, Lab-F1-Z1, and HQ-F1-Z2 only from 10 March
    assert by_use(mine) == {"Contracted hours": 0.06, "Overtime": 0.2, "Cleaning": 0.34, "Lights off": 0.0}
    assert set(mine.by_place["Client"]) == {"Acme Logistics GmbH (C001)"}
    assert list(mine.overtime["Client"]) == ["Acme Logistics GmbH (C001)"]
    assert mine.overtime["Billed [EUR]"].iloc[0] == Decimal("11.29")
    assert headline(mine, "Energy [kWh]", "Previous period") is None  # February: 1 of 28 days
    assert by_use(theirs) == {"Contracted hours": 0.0, "Overtime": 0.1, "Cleaning": 0.0, "Lights off": 0.0}
    assert list(theirs.by_place["Zone"]) == ["HQ-F1-Z2"] and theirs.cleaning.empty
    assert list(theirs.overtime["Billed [EUR]"]) == [Decimal("3.77")]
    assert headline(theirs, "Energy [kWh]", "Previous period") is None  # C002 had nothing in February
    assert building.energy_kwh == pytest.approx(0.69) and set(building.by_place["Building"]) == {"HQ"}
    # week 10 (3–9 March): the 10 March session is not in it
    assert by_use(week) == {"Contracted hours": 0.06, "Overtime": 0.2, "Cleaning": 0.34, "Lights off": 0.0}
    assert week.overtime.set_index("Client")["Billed [EUR]"].to_dict() == {
        "Acme Logistics GmbH (C001)": Decimal("7.52"),
        "Client C002": Decimal("3.77"),
    }
    assert missing.empty


# --- partly stored periods, a period's last readings, alerts, held overtime ------------------------------


def whole_weeks() -> pd.DataFrame:
    """HQ-F1-Z1 read every day of weeks 9 and 10 of 2025 (weekdays 12:00–12:15 lit), two days of week 11 and
    one Sunday of week 10 of 2024; the last reading of week 10 (Sun 9 March 23:50, 100 W) is followed 10
    minutes later by the first of week 11."""
    rows: list = []
    for first, watts in ((dt.date(2025, 2, 24), 100.0), (dt.date(2025, 3, 3), 200.0)):
        for offset in range(7):
            day = first + dt.timedelta(days=offset)
            lit = (("12:00", watts), ("12:15", 0.0)) if day.weekday() < 5 else (("12:00", 0.0),)
            rows += _rows("HQ-F1-Z1", "C001", day.isoformat(), *lit)
    rows += _rows("HQ-F1-Z1", "C001", "2025-03-09", ("23:50", 100.0))
    rows += _rows("HQ-F1-Z1", "C001", "2025-03-10", ("00:00", 0.0), ("12:00", 100.0), ("12:15", 0.0))
    rows += _rows("HQ-F1-Z1", "C001", "2025-03-11", ("12:00", 100.0), ("12:15", 0.0))
    rows += _rows("HQ-F1-Z1", "C001", "2024-03-10", ("12:00", 0.0))  # Sunday of week 10 of 2024
    return pd.DataFrame(rows, columns=["timestamp", "zone_id", "client_id", "power_w", "cleaning_staff"])


def test_partly_stored_periods_are_not_compared_and_the_last_reading_covers_as_scored(
    tmp_path: Path,
) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        build_store(engine, whole_weeks())
        week10, week11 = report(engine, "2025-W10"), report(engine, "2025-W11")
    finally:
        engine.dispose()
    # week 10: 5 × 200 W × 15 min = 0.25 kWh, and Sunday 23:50 100 W until the next reading at 00:00 (10
    # min, not max_gap's 15): 1/60 kWh — what scoring gives for the same readings
    assert week10.energy_kwh == pytest.approx(0.25 + 1 / 60)
    scored = score(validate_frame(whole_weeks(), SITE), SITE).readings.frame
    assert scored is not None
    start, end = (pd.Timestamp(f"2025-03-{d:02d}", tz="Europe/Berlin") for d in (3, 10))
    in_week = (scored["timestamp"] >= start) & (scored["timestamp"] < end)
    wh = (scored["power_w"] * scored["covered_minutes"] / 60.0)[in_week].sum()
    assert week10.energy_kwh == pytest.approx(wh / 1000.0)
    # week 9 complete (7 of 7 days): 5 × 100 W × 15 min = 0.125 kWh → (0.26667 / 0.125 − 1) = +113.3 %
    assert week10.days_with_readings == 7
    assert headline(week10, "Energy [kWh]", "Previous period") == pytest.approx(0.125)
    assert headline(week10, "Energy [kWh]", "Change vs previous [%]") == 113.3
    # a year earlier: one Sunday of 4–10 March 2024 stored: not compared
    assert headline(week10, "Energy [kWh]", "Year earlier") is None
    assert headline(week10, "Energy [kWh]", "Change vs year earlier [%]") is None
    assert "The year earlier (Week 10 of 2024 (4–10 March)): readings on 1 of 7 days; not compared." in (
        week10.notes
    )
    # week 11: readings on 10 and 11 March only: week 10 is shown, but no change is worked out
    assert week11.days_with_readings == 2
    assert week11.energy_kwh == pytest.approx(2 * 0.025)
    assert headline(week11, "Energy [kWh]", "Previous period") == pytest.approx(0.25 + 1 / 60)
    assert headline(week11, "Energy [kWh]", "Change vs previous [%]") is None
    assert "Week 11 of 2025 (10–16 March): readings on 2 of 7 days; not compared with others." in week11.notes


def _alert(kind: str, zone: str, severity: str, first: str, last: str, status: str, **more: Any) -> Alert:
    first_seen, last_seen = (dt.datetime.fromisoformat(f"{t}+00:00") for t in (first, last))  # UTC
    return Alert(
        alert_id=f"{kind}:{zone}:{first}", zone_id=zone, kind=kind, severity=severity, status=status,
        detected_at=first_seen, first_seen=first_seen, last_seen=last_seen, score=1.0, detail=f"{kind} here",
        **more,
    )  # fmt: skip


def test_alerts_counted_by_status_most_severe_first_and_held_overtime(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        build_store(engine, readings())
        with write_session(engine) as session:
            session.add_all(
                [
                    # ended in scoring (no resolved_at); overlaps the 3 March 18:00 overtime (17:00 UTC)
                    _alert(
                        "stuck_on", "HQ-F1-Z1", "high", "2025-03-03T16:00", "2025-03-03T18:00", "resolved"
                    ),
                    _alert("spike", "HQ-F1-Z2", "low", "2025-03-04T19:00", "2025-03-04T19:15", "resolved"),
                    _alert("dropout", "Lab-F1-Z1", "medium", "2025-03-20T00:00", "2025-03-21T00:00", "open"),
                    _alert(  # raised in February, resolved by a person on 2 March
                        "spike",
                        "HQ-F1-Z1",
                        "low",
                        "2025-02-25T10:00",
                        "2025-02-26T10:00",
                        "resolved",
                        resolved_by="mia",
                        resolved_at=dt.datetime(2025, 3, 2, 10, tzinfo=dt.UTC),
                    ),  # fmt: skip
                    _alert("drift", "HQ-F1-Z1", "high", "2025-04-02T00:00", "2025-04-02T01:00", "open"),
                ]
            )
        content = report(engine, "2025-03")
    finally:
        engine.dispose()
    alerts = content.alerts.set_index("Kind")
    assert alerts.to_dict("index") == {
        "Lights stuck on": {"Raised": 1, "Open": 0, "Resolved": 1},
        "No readings": {"Raised": 1, "Open": 1, "Resolved": 0},
        "Power spike": {"Raised": 1, "Open": 0, "Resolved": 2},
    }
    assert headline(content, "Alerts raised") == 3
    listed = content.alert_list
    assert list(zip(listed["Kind"], listed["First seen"], strict=True)) == [
        ("Lights stuck on", "2025-03-03 17:00"),  # high
        ("No readings", "2025-03-20 01:00"),  # medium
        ("Power spike", "2025-03-04 20:00"),  # low, newest first
        ("Power spike", "2025-02-25 11:00"),
    ]
    assert list(listed["Status"]) == ["resolved", "open", "resolved", "resolved"]
    # the stuck-on episode holds C001's 3 March line (7.52 EUR): billed is 10 March's 3.77 only
    overtime = content.overtime.set_index("Client")
    assert list(content.overtime.columns)[-1] == "Held [EUR]"
    assert overtime.loc["Acme Logistics GmbH (C001)", "Billed [EUR]"] == Decimal("3.77")
    assert overtime.loc["Acme Logistics GmbH (C001)", "Held [EUR]"] == Decimal("7.52")
    assert overtime.loc["Acme Logistics GmbH (C001)", "Sessions"] == 1
    assert overtime.loc["Client C002", "Held [EUR]"] == Decimal("0.00")
    assert headline(content, "Overtime billed [EUR]") == Decimal("7.54")  # 3.77 + 3.77
    assert (
        "Overtime held on a fault (lights stuck on), not in the billed figures until released: "
        "7.52 EUR of Acme Logistics GmbH (C001)."
    ) in content.notes


def test_a_day_with_no_lighting_has_no_peak_hour() -> None:
    # Monday peaks at 09:00 with 2,000 W; Tuesday at 10:00 with 150 W (7.5 % of Monday's: shown);
    # Saturday's highest is 60 W (3 % of 2,000 W), Sunday's 2 W (below the 5 W threshold): no lighting
    typical = pd.DataFrame(
        {
            "weekday": [0, 0, 1, 1, 5, 5, 6],
            "hour": [9, 10, 9, 10, 0, 3, 0],
            "expected_power_w": [2000.0, 1500.0, 100.0, 150.0, 60.0, 10.0, 2.0],
        }
    )
    table = peak_hours_table(typical, on_threshold_w=5.0)
    assert table["Weekday"].tolist() == ["Monday", "Tuesday", "Saturday", "Sunday"]
    assert table["Peak hour"].tolist() == ["09:00", "10:00", "no lighting expected", "no lighting expected"]
    assert table["Expected power [kW]"].iloc[:2].tolist() == [2.0, 0.15]
    assert table["Expected power [kW]"].iloc[2:].isna().all()


# --- with a champion: the next period's forecast ----------------------------------------------------------


def gathered_with_champion(tmp_path: Path, training_data, run, period: str) -> ReportContent:
    """The site's report content of ``period`` from a store of the training data (6 January to 2 February
    2025, the generator's site) with the trained champion."""
    site = default_site()
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        build_store(engine, training_data.readings, site)
        return gather(
            engine, site, parse_report_period(period), parse_scope("site", site), models=run.bundle, now=NOW
        )
    finally:
        engine.dispose()


def test_forecast_of_the_next_week_with_a_champion(tmp_path: Path, training_data, run) -> None:
    content = gathered_with_champion(tmp_path, training_data, run, "2025-W05")
    forecast = content.forecast
    assert forecast["Date"].tolist() == [dt.date(2025, 2, 3) + dt.timedelta(days=d) for d in range(7)]
    assert (forecast["Low [kWh]"] <= forecast["Expected energy [kWh]"]).all()
    assert (forecast["Expected energy [kWh]"] <= forecast["High [kWh]"]).all()
    assert (forecast["Expected energy [kWh]"] > 0).all()
    assert content.peak_hours["Weekday"].tolist()[0] == "Monday" and len(content.peak_hours) == 7
    assert content.co2 == COUNTRY_FACTORS["DE"]  # the generator's site keeps German holidays


def test_a_month_forecast_is_the_models_first_week_repeated_by_weekday(
    tmp_path: Path, training_data, run
) -> None:
    content = gathered_with_champion(tmp_path, training_data, run, "2025-01")
    forecast = content.forecast.set_index("Date")
    february = [dt.date(2025, 2, 1) + dt.timedelta(days=d) for d in range(28)]
    assert list(forecast.index) == february
    first_week = forecast.iloc[:7]
    for day in february[7:]:  # no public holiday in February in Germany: every later day is its weekday's
        same = first_week[[d.weekday() == day.weekday() for d in first_week.index]].iloc[0]
        assert forecast.loc[day].tolist() == same.tolist()
    assert len(set(first_week["Expected energy [kWh]"])) > 2  # weekdays and the weekend differ
    assert any("repeat that week by weekday" in note for note in content.notes)


# --- making the files and the command line ----------------------------------------------------------------


def test_make_report_files_and_refusal(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        build_store(engine, readings())
        made = make_report(
            engine, SITE, "2025-W10", "client:C001", models=None, formats=("xlsx", "html"), now=NOW
        )
        with pytest.raises(InputError, match="no readings of Client C002 in Week 12 of 2025"):
            make_report(engine, SITE, "2025-W12", "client:C002", models=None, now=NOW)
        with pytest.raises(InputError, match="unknown format docx"):
            make_report(engine, SITE, "2025-03", "site", models=None, formats=("docx",), now=NOW)
    finally:
        engine.dispose()
    assert {fmt: name for fmt, (name, _) in made.files.items()} == {
        "html": "slem-report-client-C001-2025-W10.html",
        "xlsx": "slem-report-client-C001-2025-W10.xlsx",
    }
    written = write_report(made, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(name for name, _ in made.files.values())
    assert (tmp_path / "out" / "slem-report-client-C001-2025-W10.xlsx").read_bytes()[:2] == b"PK"
    assert (
        "Acme Logistics GmbH (C001)"
        in (tmp_path / "out" / "slem-report-client-C001-2025-W10.html").read_text()
    )


def test_cli_report_writes_files_and_refuses_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    engine = open_database(url)
    try:
        build_store(engine, readings())
    finally:
        engine.dispose()
    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(CONTRACTS_YAML, encoding="utf-8")
    common = ["--contracts", str(contracts), "--db", url, "--models-dir", str(tmp_path / "models"),
              "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]  # fmt: skip
    out = tmp_path / "out"
    done = run_slem("report", "--period", "2025-03", "--out", str(out), *common, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "slem-report-site-2025-03.html", "slem-report-site-2025-03.pdf", "slem-report-site-2025-03.xlsx"
    ]  # fmt: skip
    assert (out / "slem-report-site-2025-03.pdf").read_bytes()[:5] == b"%PDF-"
    assert (
        "0.7 kWh, 0.14 EUR, not compared with the previous period (see the report's notes)" in done.stdout
    )  # 6 of 31 days
    engine = open_database(url)
    try:  # kept in the store for the app's Reports tab, the same bytes as written
        (kept,) = list_reports(engine).itertuples()
        name, pdf = report_file(engine, kept.report_id, "pdf")
    finally:
        engine.dispose()
    assert (kept.period, kept.scope, kept.created_by) == ("2025-03", "site", "slem report")
    assert f"kept as report {kept.report_id}" in done.stdout
    assert pdf == (out / name).read_bytes()

    nowhere = ["--scope", "building:Nowhere", "--out", str(tmp_path / "o2")]
    refused = run_slem("report", "--period", "2025-03", *nowhere, *common, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: scope 'building:Nowhere': the store has no building 'Nowhere' (buildings: HQ, Lab)"
    )
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())
    bad = run_slem("report", "--period", "2025-W99", "--out", str(out), *common, cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "2025-Q1" in bad.stderr

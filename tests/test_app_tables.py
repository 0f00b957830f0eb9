"""Tables for people, alert severity and downloads in the manager app (issue 14 items 7, 9, 10).

The formatter on hand values; then a real SQLite store in ``tmp_path`` with a generated upload (no models:
no champion, so the app scores as ``score(..., models=None)`` does): every manager table titled in words and
free of content hashes, the Billing zone filter, the ZIP of printable invoices for a manager and a client,
and the severity rule on hand-made episodes.
"""

from __future__ import annotations

import os
import re
import zipfile
from decimal import Decimal

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from slem_ml.app import charts, invoicing
from slem_ml.app.maintenance import alerts_shown
from slem_ml.app.tables import COLUMNS, for_people, kwh_text, money_text, scope_words
from slem_ml.app.ui import Handlers
from slem_ml.app.workspace import AppConfig
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.generator.generate import GeneratorConfig, generate, write_generated
from slem_ml.models.alerts import SEVERITIES, render_alerts, severity_rank
from slem_ml.storage import open_database
from slem_ml.storage.users import add_user

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
PASSWORD = "correct horse battery"
HOUR_MS = 3_600_000


def request(name: str) -> gr.Request:
    return gr.Request(username=name)


# --- the formatter ----------------------------------------------------------------------------------------


def test_money_and_energy_are_written_for_people() -> None:
    assert money_text([Decimal("1234.5"), 1234.5, Decimal("0.005"), Decimal("-12.345"), None]) == [
        "1,234.50",
        "1,234.50",
        "0.00",
        "-12.34",
        "—",
    ]  # fmt: skip  (half to even: 0.005 → 0.00, −12.345 → −12.34)
    assert kwh_text([0.04, 12345.6, 99.94, 100.0, 5.2, float("nan"), None]) == [
        "0.04", "12,346", "99.9", "100", "5.20", "—", "—",
    ]  # fmt: skip
    assert scope_words("building:HQ") == "Building HQ" and scope_words("client:C001") == "Client C001"
    assert scope_words("site") == "Site" and scope_words("HQ-F1-Z1") == "HQ-F1-Z1"


def test_for_people_titles_and_formats_by_kind() -> None:
    frame = pd.DataFrame(
        {
            "zone_id": ["HQ-F1-Z1", "HQ-F1-Z2"],
            "minutes": [90.0, 7.5],
            "energy_kwh": [0.5, 1234.4],
            "amount": [Decimal("1234.56"), None],
            "adjusted": [True, False],
            "start": pd.to_datetime(["2025-03-04 21:15", "2025-03-05 06:00"]).tz_localize("Europe/Berlin"),
            "content_hash": ["ab" * 32, "cd" * 32],  # not named in the list: left out
        }
    )
    names = ("zone_id", "start", "minutes", "energy_kwh", "amount", "adjusted", "no_such_column")
    shown = for_people(frame, names, "EUR")
    assert list(shown.columns) == [
        "Zone", "Started", "Duration [min]", "Energy [kWh]", "Amount [EUR]", "Spike-adjusted",
    ]  # fmt: skip
    assert shown.to_numpy().tolist() == [
        ["HQ-F1-Z1", "2025-03-04 21:15", "90", "0.50", "1,234.56", "yes"],
        ["HQ-F1-Z2", "2025-03-05 06:00", "7.5", "1,234", "—", "no"],
    ]


# --- the app on a real store -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Handlers, AppConfig]:
    """Eight days of 12 zones uploaded by a manager; a viewer of client C003."""
    tmp = tmp_path_factory.mktemp("tables")
    readings = tmp / "readings.csv"
    write_generated(generate(GeneratorConfig(days=8, zones=12, step_minutes=15, seed=11)), readings)
    url = f"sqlite:///{tmp / 'slem.db'}"
    engine = open_database(url)
    try:
        add_user(engine, "mgr", PASSWORD, "manager")
        add_user(engine, "view3", PASSWORD, "viewer", client_id="C003")
    finally:
        engine.dispose()
    config = AppConfig(
        database_url=url, contracts=SAMPLE_CONTRACTS, models_dir=tmp / "models",
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", runs_dir=tmp / "app_runs",
    )  # fmt: skip
    handlers = Handlers(config)
    handlers.upload(str(readings), None, request("mgr"))
    return handlers, config


def test_manager_tables_are_titled_in_words_without_hashes(app: tuple[Handlers, AppConfig]) -> None:
    h, _ = app
    board = h.load(request("mgr"))
    invoice = board.invoice_ids[0]
    tables = {
        "invoices": board.invoices, "lines": board.lines, "cleaning": board.cleaning,
        "ranking": board.cleaning_ranking, "alerts": board.alerts, "uploads": board.uploads,
        "filtered lines": h.lines(invoice, None, False, request("mgr")),
        "zone alerts": h.zone(board.zones[0], request("mgr")).alerts,
        "training runs": h.models(request("mgr"))[1],
    }  # fmt: skip
    words = {title.format(currency="EUR") for title, _ in COLUMNS.values()}
    for name, table in tables.items():
        assert not [c for c in table.columns if re.search("hash", c, re.I)], name
        assert set(table.columns) <= words, f"{name}: {set(table.columns) - words}"
    assert len(board.invoices) and "Total [EUR]" in board.invoices.columns
    # money as the tables show it, summed back, is the headline's overtime amount
    total = sum((Decimal(t.replace(",", "")) for t in board.invoices["Total [EUR]"]), Decimal(0))
    assert f"**{total:,.2f} EUR**" in board.tiles
    history = h.revisions(invoice, request("mgr"))  # the revision history is where hashes stay
    assert "Content hash" in history.columns


def test_the_zone_filter_lists_the_chosen_invoices_zones(app: tuple[Handlers, AppConfig]) -> None:
    h, config = app
    board = h.load(request("mgr"))
    lines = pd.read_csv(config.runs_dir / "run-1" / "invoice_lines.csv", dtype=str)  # the run's own file
    narrower = False
    for invoice in board.invoice_ids:
        zones = sorted(set(lines.loc[lines["invoice_id"] == invoice, "zone_id"]))
        assert h.zone_choices(invoice, request("mgr")) == zones
        narrower |= set(zones) < set(board.zones)
    assert narrower, "the test needs an invoice with fewer zones than the month"
    assert h.zone_choices(None, request("mgr")) == board.zones


def test_the_zip_holds_exactly_the_invoices_the_user_may_see(app: tuple[Handlers, AppConfig]) -> None:
    h, _ = app
    everyone = h.load(request("mgr")).invoice_ids
    mine = h.load(request("view3")).invoice_ids
    assert mine == ["INV-C003-202501"] and len(everyone) > 1
    for user, ids in (("mgr", everyone), ("view3", mine)):
        path = invoicing.invoices_zip(h.config, user)
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == sorted(f"{i}.pdf" for i in ids)  # January is over: final
            for invoice in ids:  # each as the single-invoice download makes it
                single = invoicing.invoice_file(h.config, user, invoice).read_bytes()
                assert archive.read(f"{invoice}.pdf") == single and single.startswith(b"%PDF")


def test_the_runs_files_are_offered_to_managers_only(app: tuple[Handlers, AppConfig]) -> None:
    h, _ = app
    manager = h.load(request("mgr")).downloads
    names = [p.name for p in manager]
    assert names == [
        "invoices.csv", "invoice_lines.csv", "cleaning_sessions.csv", "alerts.csv", "quarantine.csv",
        "validation_report.md",
    ]  # fmt: skip
    assert manager[-1].read_text(encoding="utf-8").startswith("**Validation report**")
    assert h.load(request("view3")).downloads == []


# --- severity by consequence ------------------------------------------------------------------------------


def _episodes(rows: list[dict[str, float]]) -> pd.DataFrame:
    start = 1_738_690_000_000  # 2025-02-04 17:26:40 UTC
    return pd.DataFrame(
        [
            {"zone_id": f"HQ-F1-Z{i + 1}", "first_ms": start, "detected_ms": start + 12 * HOUR_MS,
             "last_ms": start + int(r["hours"] * HOUR_MS), "open": False, "score": r["hours"], **r}
            for i, r in enumerate(rows)
        ]
    )  # fmt: skip


def test_severity_follows_consequence() -> None:
    stuck = render_alerts(
        "stuck_on",
        _episodes([
            {"hours": 13.0, "energy_kwh": 5.2, "mean_w": 400.0},  # medium: every stuck-on is at least that
            {"hours": 13.0, "energy_kwh": 13.0, "mean_w": 1000.0},  # high: 10 kWh or more wasted
            {"hours": 30.0, "energy_kwh": 3.0, "mean_w": 100.0},  # high: a day or more
        ]),
        "Europe/Berlin",
    )  # fmt: skip
    gaps = render_alerts(
        "dropout",
        _episodes([{"hours": 25.0, "interval_minutes": 15.0}, {"hours": 200.0, "interval_minutes": 15.0}]),
        "Europe/Berlin",
    )
    assert stuck["severity"].tolist() == ["medium", "high", "high"]
    assert gaps["severity"].tolist() == ["low", "medium"]  # a data gap is never high
    assert severity_rank(stuck["severity"]).iloc[0] > severity_rank(gaps["severity"]).iloc[0]
    assert severity_rank(pd.Series(["high", "low", "warning"])).tolist() == [2, 0, -1]
    assert SEVERITIES == ("low", "medium", "high")

    # the app's alerts table: the 13 h stuck-on above the short data gap, most severe first
    both = pd.concat([gaps.iloc[:1], stuck.iloc[:1]], ignore_index=True)
    both = both.assign(acknowledged_by=None, resolved_by=None, note=None)
    shown = alerts_shown(both, "Europe/Berlin")
    assert shown["Kind"].tolist() == ["Lights stuck on", "No readings"]
    assert shown["Severity"].tolist() == ["medium", "low"]


# --- the overtime chart -----------------------------------------------------------------------------------


def test_the_overtime_chart_names_the_top_ten_zones_and_adds_up_the_rest() -> None:
    zones = [f"HQ-F1-Z{i:02d}" for i in range(15)]  # zone i bills i + 1 EUR
    lines = pd.DataFrame(
        {
            "client_id": ["C1"] * 10 + ["C2"] * 5,
            "zone_id": zones,
            "amount": [Decimal(i + 1) for i in range(15)],
        }
    )
    fig = charts.overtime_by_client(lines, "EUR")
    names = [trace.name for trace in fig.data]
    assert names == [*zones[::-1][:10], "other zones"]  # largest first, the rest last
    other = next(t for t in fig.data if t.name == "other zones")
    assert dict(zip(other.x, other.y, strict=True)) == {"C2": 0.0, "C1": 15.0}  # zones 0-4: 1+2+3+4+5
    assert list(fig.data[0].x) == ["C2", "C1"]  # C2 bills 11+...+15 = 65, C1 1+...+10 = 55
    assert fig.layout.showlegend is not False
    assert np.isclose(sum(float(sum(t.y)) for t in fig.data), 120.0)  # nothing lost
    # issue 14 review item 8: ten zones in ten colours of their own, the rest grey
    colours = [t.marker.color for t in fig.data]
    assert len(set(colours)) == 11 and colours[-1] == charts.OTHER_COLOUR
    assert charts.OTHER_COLOUR not in colours[:-1] and len(charts.PALETTE) >= 11


def test_the_overtime_chart_shows_what_the_invoices_bill() -> None:
    """A held line is not in its invoice's total (SPEC §8.4), so not in the chart; a released one is."""
    lines = pd.DataFrame(
        {
            "client_id": ["C1", "C1", "C1", "C2"],
            "zone_id": ["Z1", "Z2", "Z3", "Z4"],
            "amount": [Decimal("10.00"), Decimal("210.14"), Decimal("5.00"), Decimal("7.00")],
            "status": ["billed", "held", "released", "waived"],
        }
    )
    fig = charts.overtime_by_client(lines, "EUR")
    shown = {(x, t.name): y for t in fig.data for x, y in zip(t.x, t.y, strict=True) if y}
    assert shown == {("C1", "Z1"): 10.0, ("C1", "Z3"): 5.0}


def test_the_trend_names_the_uses_in_words_as_the_reports_do() -> None:
    """Issue 14 review item 9: two days, kWh per use added up per local day, legend in the reports' words."""
    times = pd.to_datetime(
        ["2025-03-03 08:00", "2025-03-03 20:00", "2025-03-03 21:00", "2025-03-04 02:00", "2025-03-04 09:00"]
    ).tz_localize("Europe/Berlin")
    energy = pd.DataFrame(
        {
            "local_time": times,
            "usage_class": ["contract", "overtime", "overtime", "off", "contract"],
            "kwh": [2.0, 0.5, 0.25, 0.1, 3.0],
        }
    )
    fig = charts.energy_trend(energy)
    bars = {t.name: [float(y) for y in t.y] for t in fig.data}
    assert list(bars) == ["Contracted hours", "Overtime", "Lights off"]  # no cleaning: none that month
    assert bars == {"Contracted hours": [2.0, 3.0], "Overtime": [0.75, 0.0], "Lights off": [0.0, 0.1]}


def test_an_acknowledged_open_alert_reads_acknowledged() -> None:
    """Issue 14 review item 11: the shown status says at once that someone has taken an open alert on."""
    at = pd.Timestamp("2025-03-04 21:00", tz="UTC")
    alerts = pd.DataFrame(
        {
            "alert_id": ["a1", "a2", "a3"],
            "zone_id": ["HQ-F1-Z1"] * 3,
            "kind": ["stuck_on", "dropout", "spike"],
            "severity": ["high", "low", "medium"],
            "status": ["open", "open", "ongoing"],
            "detected_at": [at] * 3,
            "first_seen": [at] * 3,
            "last_seen": [at] * 3,
            "acknowledged_by": ["mia", None, "mia"],
            "resolved_by": [None] * 3,
            "note": [None] * 3,
            "detail": ["d1", "d2", "d3"],
        }
    )
    shown = alerts_shown(alerts, "Europe/Berlin")
    assert dict(zip(shown["Alert id"], shown["Status"], strict=True)) == {
        "a1": "acknowledged", "a3": "ongoing, acknowledged", "a2": "open",
    }  # fmt: skip
    assert shown["Acknowledged by"].tolist() == ["mia", "mia", "—"]

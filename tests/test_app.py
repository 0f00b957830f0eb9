"""The manager app's handlers, called directly with ``gr.Request(username=...)`` (issue 4).

A real SQLite database and real files in ``tmp_path``: a manager uploads generated readings, then each role
sees and does what it may — a viewer tied to a client sees that client's invoices and nothing of others.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from slem_ml.app import invoicing, service
from slem_ml.app.ui import Handlers
from slem_ml.app.workspace import AppConfig
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.errors import SlemError
from slem_ml.generator.generate import GeneratorConfig, generate, write_generated
from slem_ml.io import schema as S
from slem_ml.io.reader import read_readings
from slem_ml.models.bundle import save_bundle
from slem_ml.scoring.score import score
from slem_ml.storage import audit_log, open_database
from slem_ml.storage.maintenance import maintenance_history
from slem_ml.storage.users import add_user
from tests.conftest import SITE

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CONTRACTS = SAMPLE_CONTRACTS
PASSWORD = "correct horse battery"


def request(name: str | None) -> gr.Request:
    return gr.Request(username=name)


def money(text: str) -> Decimal:
    """A money cell as the tables show it (``1,234.50``) back as a decimal."""
    return Decimal(text.replace(",", ""))


@pytest.fixture(scope="module")
def readings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of 12 zones with faults, as a CSV like a manager would upload."""
    path = tmp_path_factory.mktemp("upload") / "readings.csv"
    write_generated(generate(GeneratorConfig(days=10, zones=12, step_minutes=15, seed=11)), path)
    return path


@pytest.fixture
def config(tmp_path: Path, run) -> AppConfig:
    """An app on a fresh SQLite database with users of every role, and the session's trained models."""
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    engine = open_database(url)
    try:
        add_user(engine, "mgr", PASSWORD, "manager")
        add_user(engine, "ds", PASSWORD, "data_scientist")
        add_user(engine, "view3", PASSWORD, "viewer", client_id="C003")
        add_user(engine, "boss", PASSWORD, "admin")
    finally:
        engine.dispose()
    save_bundle(run.bundle, tmp_path / "models")
    return AppConfig(
        database_url=url,
        contracts=CONTRACTS,
        models_dir=tmp_path / "models",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        runs_dir=tmp_path / "app_runs",
    )


@pytest.fixture
def uploaded(config: AppConfig, readings_file: Path) -> Handlers:
    handlers = Handlers(config)
    handlers.upload(str(readings_file), None, request("mgr"))
    return handlers


def test_upload_shows_the_library_result(uploaded: Handlers, readings_file: Path, run) -> None:
    board = uploaded.load(request("mgr"))
    expected = score(read_readings(readings_file, SITE), SITE, models=run.bundle)
    assert list(board.invoices["Invoice"]) == list(expected.invoices["invoice_id"])
    totals = dict(zip(board.invoices["Invoice"], board.invoices["Total [EUR]"], strict=True))
    for invoice in expected.invoices.itertuples(index=False):
        assert totals[invoice.invoice_id] == f"{invoice.total:,.2f}"  # thousands separated, to the cent
    assert len(board.lines) == len(expected.invoice_lines)
    assert len(board.alerts) > 0  # the generator's faults, found by the trained models
    assert set(board.alerts["Zone"]) <= set(board.zones)
    assert {p.name for p in board.downloads} == {
        "invoices.csv", "invoice_lines.csv", "cleaning_sessions.csv", "alerts.csv", "quarantine.csv",
        "validation_report.md",
    }  # fmt: skip
    assert f"{board.tiles}".count("kWh") >= 1 and "Overtime" in board.tiles
    assert "Validation report" in board.notes and f"| {expected.report.rows_in:,} |" in board.notes


def test_latest_run_survives_a_reload(uploaded: Handlers, config: AppConfig) -> None:
    """A new app process on the same database shows the run without uploading again."""
    again = Handlers(AppConfig(**{**config.__dict__})).load(request("boss"))
    first = uploaded.load(request("boss"))
    assert again is not None and first is not None
    assert again.headline == first.headline
    pd.testing.assert_frame_equal(again.invoices, first.invoices)


def test_a_viewer_tied_to_a_client_sees_that_client_only(uploaded: Handlers) -> None:
    everyone = uploaded.load(request("mgr"))
    assert set(everyone.invoices["Client"]) > {"C003"}, "the test needs other clients' invoices"
    mine = uploaded.load(request("view3"))
    assert set(mine.invoices["Client"]) == {"C003"}
    assert set(mine.lines["Client"]) == {"C003"}
    other = next(i for i in everyone.invoice_ids if "C003" not in i)
    assert other not in mine.invoice_ids
    with pytest.raises(SlemError, match="your invoices"):
        invoicing.invoice_file(uploaded.config, "view3", other)
    with pytest.raises(gr.Error, match="your invoices"):
        uploaded.revisions(other, request("view3"))
    assert set(uploaded.lines(None, None, False, request("view3"))["Client"]) == {"C003"}
    # nothing of others: zones, cleaning and alerts hold only C003's; the run's files (every client's
    # rows) are for managers only
    assert set(mine.zones) < set(everyone.zones)
    assert set(mine.cleaning["Zone"]) <= set(mine.zones)
    assert set(mine.alerts["Zone"]) <= set(mine.zones)
    assert mine.downloads == [] and everyone.downloads
    with pytest.raises(gr.Error, match="no zone"):
        uploaded.zone(next(z for z in everyone.zones if z not in mine.zones), request("view3"))


def test_roles_limit_what_users_may_do(uploaded: Handlers, readings_file: Path) -> None:
    with pytest.raises(gr.Error, match="may not upload"):
        uploaded.upload(str(readings_file), None, request("view3"))
    with pytest.raises(gr.Error, match="may not upload"):
        uploaded.upload(str(readings_file), None, request("ds"))
    alert = uploaded.load(request("mgr")).alerts["Alert id"].iloc[0]
    with pytest.raises(gr.Error, match="may not acknowledge"):
        uploaded.acknowledge(alert, "looked at it", request("ds"))
    with pytest.raises(gr.Error, match="may not retrain"):
        uploaded.retrain(request("mgr"))
    with pytest.raises(gr.Error, match="no user"):
        uploaded.load(request("mallory"))


def test_acknowledge_and_resolve_are_stored_and_audited(uploaded: Handlers, config: AppConfig) -> None:
    alerts = uploaded.load(request("mgr")).alerts
    alert_id, zone = alerts["Alert id"].iloc[0], alerts["Zone"].iloc[0]
    still_open = uploaded.acknowledge(alert_id, "electrician booked", request("mgr"))
    assert alert_id in set(still_open["Alert id"])
    with pytest.raises(gr.Error, match="note"):
        uploaded.resolve(alert_id, "", request("mgr"))
    after = uploaded.resolve(alert_id, "replaced the driver", request("mgr"))
    assert alert_id not in set(after["Alert id"])
    engine = open_database(config.database_url)
    try:
        history = maintenance_history(engine, zone)
        entries = audit_log(engine, entity="alert", entity_id=alert_id)
    finally:
        engine.dispose()
    assert list(history["action"]) == ["repaired", "acknowledged"]
    assert set(history["user_name"]) == {"mgr"}
    assert {"alert.acknowledged", "alert.resolved"} <= {e.action for e in entries}
    detail = uploaded.zone(zone, request("mgr"))
    assert "repaired" in set(detail.history["Action"])
    assert set(detail.history["Verdict"]) <= {
        "lower draw after the fix", "no change", "higher draw after the fix", "not enough readings",
    }  # fmt: skip


def test_zone_chart_has_actual_expected_and_band(uploaded: Handlers) -> None:
    zone = uploaded.load(request("mgr")).zones[0]
    detail = uploaded.zone(zone, request("mgr"))
    names = {trace.name for trace in detail.chart.data}
    assert {"actual", "expected", "expected 80 % band"} <= names
    actual = next(t for t in detail.chart.data if t.name == "actual")
    assert len(actual.y) >= 24 * 9  # hourly over ten days (less the hours without readings)


def test_forecast_of_a_zone_and_a_building(uploaded: Handlers) -> None:
    board = uploaded.load(request("mgr"))
    chart, peaks = uploaded.forecast(board.zones[0], request("mgr"))
    expected = next(t for t in chart.data if t.name == "expected")
    assert len(expected.y) == 7 * 24
    assert len(peaks) == 3
    # energy per hour [kWh] as on the Overview: the hour's mean power [W] / 1000, and the peaks show both
    top_w = float(peaks["Expected power [W]"].iloc[0].replace(",", ""))
    assert max(expected.y) * 1000 == pytest.approx(top_w, abs=0.5)
    assert chart.layout.yaxis.title.text == "Energy per hour [kWh]"
    building = board.buildings[0]
    assert (f"Building {building}", f"building:{building}") in board.targets
    chart, peaks = uploaded.forecast(f"building:{building}", request("mgr"))
    assert set(peaks["Building"]) == {building}
    assert chart.layout.title.text.startswith(f"Building {building}: next 7 days")


def test_occupancy_forecast_of_a_zone_and_a_building(uploaded: Handlers, config: AppConfig) -> None:
    """The Forecast tab's expected occupancy (issue 16): a zone's chance of use per hour [%] with its peak
    hours, a building's share of its zones in use with the zones expected."""
    board = uploaded.load(request("mgr"))
    chart, peaks = service.occupancy_for(config, "mgr", board.zones[0])
    line = next(t for t in chart.data if t.name == "expected occupancy")
    assert len(line.y) == 7 * 24 and min(line.y) >= 0 and max(line.y) <= 100
    assert list(peaks.columns) == ["Zone", "Rank", "Hour", "Expected occupancy [%]"] and len(peaks) == 3
    assert float(peaks["Expected occupancy [%]"].iloc[0]) == pytest.approx(max(line.y), abs=0.5)
    building = board.buildings[0]
    chart, peaks = service.occupancy_for(config, "mgr", f"building:{building}")
    assert set(peaks["Building"]) == {building} and "Zones in use expected" in peaks
    assert chart.layout.yaxis.title.text == "Expected occupancy [%]"
    with pytest.raises(SlemError, match="no zone"):
        service.occupancy_for(config, "mgr", "Nowhere-F1-Z1")


def test_lines_filters(uploaded: Handlers) -> None:
    board = uploaded.load(request("mgr"))
    invoice = board.invoice_ids[0]
    only = uploaded.lines(invoice, None, False, request("mgr"))
    assert len(only) and set(only["Invoice"]) == {invoice}
    zone = only["Zone"].iloc[0]
    both = uploaded.lines(invoice, zone, False, request("mgr"))
    assert set(both["Zone"]) == {zone} and len(both) <= len(only)
    adjusted = uploaded.lines(None, None, True, request("mgr"))
    assert set(adjusted["Spike-adjusted"]) <= {"yes"}
    assert len(adjusted) == (board.lines["Spike-adjusted"] == "yes").sum()  # all of them, no other


def test_printable_invoice_and_revisions(uploaded: Handlers) -> None:
    invoice = uploaded.load(request("mgr")).invoice_ids[0]
    pdf = invoicing.invoice_file(uploaded.config, "mgr", invoice)
    assert pdf.name == f"{invoice}.pdf" and pdf.read_bytes().startswith(b"%PDF")
    # every line of it as CSV beside the print (what a long invoice's summary points to)
    lines = invoicing.invoice_file(uploaded.config, "mgr", invoice, "lines")
    rows = pd.read_csv(lines, dtype=str)
    shown = uploaded.lines(invoice, None, False, request("mgr"))
    assert lines.name == f"{invoice}.lines.csv" and set(rows["invoice_id"]) == {invoice}
    assert len(rows) == len(shown) > 0
    revisions = uploaded.revisions(invoice, request("mgr"))
    assert list(revisions["Revision"]) == [1]
    assert revisions["Content hash"].str.fullmatch(r"[0-9a-f]{16}…").all()  # the one view with hashes


def test_bad_uploads_get_a_readable_message(config: AppConfig, tmp_path: Path) -> None:
    handlers = Handlers(config)
    binary = tmp_path / "photo.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(gr.Error) as error:
        handlers.upload(str(binary), None, request("mgr"))
    assert "Traceback" not in str(error.value) and len(str(error.value).splitlines()) == 1
    with pytest.raises(gr.Error, match="choose a readings file"):
        handlers.upload(None, None, request("mgr"))
    small = Handlers(AppConfig(**{**config.__dict__, "max_upload_mb": 0.001}))
    with pytest.raises(gr.Error, match="limited to"):
        small.upload(str(binary), None, request("mgr"))
    assert handlers.load(request("mgr")) is None  # nothing was stored


def test_open_local_mode_acts_as_a_local_admin(
    config: AppConfig, readings_file: Path, tmp_path: Path
) -> None:
    """No user in the database (``slem serve`` on loopback before ``slem users add``): a local admin."""
    nobody = {"database_url": f"sqlite:///{tmp_path / 'open.db'}", "runs_dir": tmp_path / "open_runs"}
    handlers = Handlers(AppConfig(**{**config.__dict__, **nobody, "open_user": "local"}))
    board = handlers.upload(str(readings_file), None, request(None))
    assert "local" in board.headline and board.invoice_ids
    with pytest.raises(gr.Error, match="sign in"):
        Handlers(config).load(request(None))


def test_the_open_local_mode_ends_when_users_exist(config: AppConfig) -> None:
    """``config`` already has users: a server started in the open mode before they were added refuses."""
    with pytest.raises(gr.Error, match="restart"):
        Handlers(AppConfig(**{**config.__dict__, "open_user": "local"})).load(request(None))


def test_fix_effect_compares_lit_power_before_and_after() -> None:
    from slem_ml.app.analysis import fix_effects

    hours = pd.date_range("2025-03-01", periods=24 * 20, freq="h")
    power = pd.Series(100.0, index=range(len(hours)))
    power[hours >= pd.Timestamp("2025-03-10")] = 80.0  # the fix lowered the draw by 20 %
    series = pd.DataFrame({"hour": hours, "actual_w": power, "lit": True})
    at = pd.Timestamp("2025-03-10", tz="Europe/Berlin").tz_convert("UTC")
    actions = pd.DataFrame({"zone_id": ["Z"], "at": [at], "action": ["relamped"]})
    effect = fix_effects(series, actions, "Europe/Berlin")
    assert effect["before_w"].iloc[0] == 100.0 and effect["after_w"].iloc[0] == 80.0
    assert effect["verdict"].iloc[0] == "lower draw after the fix"
    late = actions.assign(at=[at + dt.timedelta(days=30)])
    assert fix_effects(series, late, "Europe/Berlin")["verdict"].iloc[0] == "not enough readings"


def test_serve_refuses_a_public_address_without_users(tmp_path: Path) -> None:
    import subprocess
    import sys

    from slem_ml.cli.serve import is_loopback

    done = subprocess.run(
        [sys.executable, "-m", "slem_ml", "serve", "--host", "0.0.0.0", "--port", "7999"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SLEM_DATABASE_URL": f"sqlite:///{tmp_path / 'slem.db'}"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: refusing to serve on 0.0.0.0 with no users")
    assert len(done.stderr.strip().splitlines()) == 1
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")


def test_a_user_tied_to_a_client_cannot_change_the_run(
    uploaded: Handlers, config: AppConfig, readings_file: Path
) -> None:
    """A client's manager may not upload (a run bills every client) or retrain, and sees no run-wide counts
    or notes (they name other clients' zones)."""
    engine = open_database(config.database_url)
    try:
        add_user(engine, "tenant", PASSWORD, "manager", client_id="C001")
    finally:
        engine.dispose()
    with pytest.raises(gr.Error, match="may not upload"):
        uploaded.upload(str(readings_file), None, request("tenant"))
    board = uploaded.load(request("tenant"))
    assert "readings scored" not in board.headline and board.notes == ""
    assert "readings scored" in uploaded.load(request("mgr")).headline
    everyone = uploaded.load(request("mgr"))
    shared = [
        b
        for b in board.buildings
        if any(z.startswith(b + "-") and z not in board.zones for z in everyone.zones)
    ]
    assert shared, "the test needs a building the tenant shares with other clients"
    chart, peaks = uploaded.forecast(f"building:{shared[0]}", request("tenant"))
    whole, _ = uploaded.forecast(f"building:{shared[0]}", request("mgr"))
    mine, theirs = (next(t for t in c.data if t.name == "expected") for c in (chart, whole))
    assert max(mine.y) < max(theirs.y)  # the tenant's zones only
    top = float(peaks.loc[peaks["Rank"] == "1", "Expected power [W]"].iloc[0].replace(",", ""))
    assert top == pytest.approx(max(mine.y) * 1000, abs=0.5)  # and the peak hours are those zones' peaks


# --- months, not runs (issue 12) ------------------------------------------------------------------------


def test_two_uploads_of_one_month_show_as_the_whole(
    config: AppConfig, readings_file: Path, tmp_path: Path, run
) -> None:
    """The halves of the file uploaded one after the other: the month shows the invoices of the whole
    file, the upload panel says what each upload changed, and the history lists both (not to a client)."""
    frame = pd.read_csv(readings_file)
    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    middle = stamps.min() + (stamps.max() - stamps.min()) / 2
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    frame[stamps < middle].to_csv(first, index=False)
    frame[stamps >= middle].to_csv(second, index=False)
    handlers = Handlers(config)
    handlers.upload(str(second), None, request("mgr"))
    board = handlers.upload(str(first), None, request("mgr"))
    assert board.changes.startswith(f"added {(stamps < middle).sum():,} readings, 0 corrected")
    assert " rev 2 (" in board.changes  # the second upload revised the month's invoices
    expected = score(read_readings(readings_file, SITE), SITE, models=run.bundle)
    shown = {
        i: money(t) for i, t in zip(board.invoices["Invoice"], board.invoices["Total [EUR]"], strict=True)
    }
    whole = dict(zip(expected.invoices["invoice_id"], expected.invoices["total"], strict=True))
    month = board.period
    assert shown == {i: t for i, t in whole.items() if i.endswith(month.replace("-", ""))}
    assert board.periods[0] == month and len(board.uploads) == 2
    client = handlers.load(request("view3"), month)
    assert set(client.invoices["Client"]) <= {"C003"} and client.uploads.empty


def test_a_manager_holds_and_releases_a_line_a_viewer_may_not(uploaded: Handlers) -> None:
    board = uploaded.load(request("mgr"))
    invoice = board.invoice_ids[0]
    choices = uploaded.line_choices(invoice, request("mgr"))
    statuses = [label.split(" · ")[0] for label, _ in choices]
    assert statuses == sorted(statuses, key=lambda s: s != "held")  # held lines first
    line = next(value for label, value in choices if label.startswith("billed · "))
    before = board.invoices[board.invoices["Invoice"] == invoice].iloc[0]
    total, held_before = money(before["Total [EUR]"]), money(before["Held [EUR]"])
    with pytest.raises(gr.Error, match="may not hold, release or waive"):
        uploaded.decide("hold", invoice, line, "check the meter", request("view3"))
    with pytest.raises(gr.Error, match="needs a note"):
        uploaded.decide("hold", invoice, line, "", request("mgr"))
    lines = uploaded.decide("hold", invoice, line, "check the meter", request("mgr"))
    zone, start = line.split("|")
    chosen = lines[(lines["Zone"] == zone) & (lines["Started"] == start[:16].replace("T", " "))]
    assert chosen["Status"].tolist() == ["held"]
    amount = money(chosen["Amount [EUR]"].iloc[0])
    after = uploaded.load(request("mgr"))
    row = after.invoices[after.invoices["Invoice"] == invoice].iloc[0]
    assert money(row["Total [EUR]"]) == total - amount  # out of the total ...
    assert money(row["Held [EUR]"]) == held_before + amount  # ... and into the held total
    released = uploaded.decide("release", invoice, line, "tenant confirmed", request("mgr"))
    assert "released" in set(released["Status"])
    history = uploaded.revisions(invoice, request("mgr"))
    assert list(history["Revision"]) == [1, 2, 3]


def test_the_zone_status_says_which_detectors_judge_it(uploaded: Handlers, config: AppConfig, run) -> None:
    """SPEC §8.5: a detector with too little history for a zone says so in the zone's status."""
    from slem_ml.app.analysis import detector_status
    from slem_ml.app.views import period_view, zone_readings
    from slem_ml.storage.users import get_user

    zone = uploaded.load(request("mgr")).zones[0]
    detail = uploaded.zone(zone, request("mgr"))
    assert detail.status == f"**{zone}** — stuck-on and dropout rules: on; spikes: on; drift: on."
    engine = open_database(config.database_url)
    try:
        user = get_user(engine, "mgr")
    finally:
        engine.dispose()
    view = period_view(config, user)
    readings = zone_readings(config, view, zone)
    first_two_days = readings[readings[S.TIMESTAMP] < readings[S.TIMESTAMP].min() + pd.Timedelta(days=2)]
    short = detector_status(view, zone, first_two_days.reset_index(drop=True), run.bundle)
    assert "drift: not judged yet (fewer than 3 complete lit days of this zone in" in short
    assert detector_status(view, zone, readings, None).endswith("spikes and drift: off (no trained models).")

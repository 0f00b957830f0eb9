"""The app's flows as wired on the page (issue 14 items 3, 5, 7, 8), without a browser.

The page is built with :func:`slem_ml.app.ui.build_app` on a real SQLite store holding a generated upload;
its events' functions are called as Gradio calls them (``gr.Request`` with a user name), so a refusal is
seen exactly as the page gets it: the other outputs unchanged and the reason in the panel's status line.
The Reports tab's actions (:mod:`slem_ml.app.reports`) make real reports (no models) and keep them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import os
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from slem_ml.app import reports
from slem_ml.app.ui import Handlers, build_app
from slem_ml.app.ui_alerts import alert_explanation, chosen_alert
from slem_ml.app.ui_status import abilities, guarded
from slem_ml.app.workspace import AppConfig
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.errors import InputError, SlemError
from slem_ml.generator.generate import GeneratorConfig, generate, write_generated
from slem_ml.storage import open_database
from slem_ml.storage.reports import keep_report, list_reports, record_send, report_file
from slem_ml.storage.users import add_user

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
PASSWORD = "correct horse battery"
NOW = dt.datetime(2025, 3, 20, 12, 0, tzinfo=dt.UTC)


def request(name: str) -> gr.Request:
    return gr.Request(username=name)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> AppConfig:
    """Ten days of 12 zones (6–15 January 2025) uploaded by a manager; users of every role; no models."""
    work = tmp_path_factory.mktemp("flows")
    readings = work / "readings.csv"
    write_generated(generate(GeneratorConfig(days=10, zones=12, step_minutes=15, seed=11)), readings)
    url = f"sqlite:///{work / 'slem.db'}"
    engine = open_database(url)
    try:
        add_user(engine, "mgr", PASSWORD, "manager")
        add_user(engine, "ds", PASSWORD, "data_scientist")
        add_user(engine, "view", PASSWORD, "viewer")
        add_user(engine, "view3", PASSWORD, "viewer", client_id="C003")
        add_user(engine, "boss", PASSWORD, "admin")
    finally:
        engine.dispose()
    config = AppConfig(
        database_url=url,
        contracts=SAMPLE_CONTRACTS,
        models_dir=work / "models",  # empty: no champion
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        runs_dir=work / "app_runs",
    )
    Handlers(config).upload(str(readings), None, request("mgr"))
    return config


@pytest.fixture(scope="module")
def page(store: AppConfig) -> dict[str, Any]:
    """The page's event functions by name (as Gradio calls them)."""

    async def built() -> (
        gr.Blocks
    ):  # in a running loop: Gradio's queue would open (and leak) loops of its own
        return build_app(store)

    app = asyncio.run(built())
    return {getattr(block.fn, "__name__", ""): block.fn for block in app.fns.values()}


def is_unchanged(value: Any) -> bool:
    return isinstance(value, dict) and value == {"__type__": "update"}


# --- item 5: a refusal stays in its panel -------------------------------------------------------------


def test_a_refused_upload_leaves_every_other_output_as_it_was(page: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,zone\nbad,row\n", encoding="utf-8")
    out = page["on_upload"](str(bad), None, request("mgr"))
    *board, status = out
    assert len(board) == 22 and all(is_unchanged(v) for v in board)  # headline, tables, charts untouched
    assert status.startswith("⚠️ **Not done:**") and "bad.csv: missing required column zone_id" in status
    # a viewer's crafted upload of a good file is refused the same way, by the server
    out = page["on_upload"](str(bad), None, request("view3"))
    assert all(is_unchanged(v) for v in out[:-1])
    assert "view3 (viewer) may not upload readings" in out[-1]


def test_the_page_loads_and_a_working_action_clears_the_status_line(page: dict[str, Any]) -> None:
    *board, status = page["on_load"](request("mgr"))
    assert status == ""
    assert "January 2025" in board[0] and "Signed in as **mgr**" in board[0]


def test_guarded_passes_values_through_and_turns_refusals_and_bugs_into_words() -> None:
    def works(a: int, b: int) -> list[int]:
        return [a + b, a * b]

    def refuses() -> None:
        raise gr.Error("choose an alert first")

    def slem_refuses() -> None:
        raise SlemError("no such invoice")

    def breaks() -> None:
        raise KeyError("x")

    assert guarded(works, 2)(2, 3) == [5, 6, ""]
    assert guarded(works, 2).__wrapped__ is works  # type: ignore[attr-defined]  # Gradio reads its signature
    assert guarded(refuses)() == [{"__type__": "update"}, "⚠️ **Not done:** choose an alert first"]
    assert guarded(slem_refuses)()[-1] == "⚠️ **Not done:** no such invoice"
    assert "something went wrong on the server" in guarded(breaks, 3)()[-1]


# --- item 7: alerts chosen by their row ---------------------------------------------------------------


def test_an_alert_is_chosen_by_clicking_any_cell_of_its_row() -> None:
    rows = pd.DataFrame(
        {
            "Alert id": ["spike:Z1:1", "stuck_on:Z2:2"],
            "Zone": ["Z1", "Z2"],
            "Severity": ["high", "medium"],
            "Note": ["", ""],
            "What happened": ["Z1 drew 328 W, 4.7× its usual 70 W", "Z2 stayed lit 13 h"],
        }
    )
    clicked = gr.SelectData(None, {"index": [1, 2], "value": "medium", "row_value": list(rows.iloc[1])})
    assert chosen_alert(rows, clicked) == "stuck_on:Z2:2"
    # an older front end sends no row: the index finds it
    assert chosen_alert(rows, gr.SelectData(None, {"index": [0, 4], "value": "x"})) == "spike:Z1:1"
    text = alert_explanation(rows, "stuck_on:Z2:2")
    assert text.startswith("#### Alert stuck_on:Z2:2\n\nZ2 stayed lit 13 h\n\n")
    assert "Severity: **medium**" in text and "Note" not in text  # empty cells are left out
    assert alert_explanation(rows, "gone:1") == "Alert gone:1 is no longer open."


def test_acknowledging_without_choosing_is_refused_in_the_maintenance_panel(page: dict[str, Any]) -> None:
    table, status = page["acknowledge"]("", "checked", request("mgr"), "2025-01")
    assert is_unchanged(table)
    assert "choose an alert of this month first" in status


# --- item 8: who sees what ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "upload", "retrain", "maintain"),
    [("mgr", True, False, True), ("ds", False, True, False), ("boss", True, True, True),
     ("view", False, False, False), ("view3", False, False, False)],
)  # fmt: skip
def test_controls_are_shown_by_role(
    store: AppConfig, page: dict[str, Any], user: str, upload: bool, retrain: bool, maintain: bool
) -> None:
    may = abilities(store, user)
    assert (may.upload, may.retrain, may.maintain) == (upload, retrain, maintain)
    tab, button, ack, resolve = page["on_abilities"](request(user))
    assert (tab.visible, button.visible) == (upload, retrain)
    # issue 14 review item 10: Acknowledge and Resolve only for who may act on alerts
    assert (ack.visible, resolve.visible) == (maintain, maintain)


# --- items 3 and 4: the Reports tab -------------------------------------------------------------------


def test_periods_offered_from_the_store_months() -> None:
    offered = reports.report_period_choices(["2025-03", "2025-02"], dt.date(2025, 6, 1))
    values = [value for _, value in offered]
    # months, then quarters, then the ISO weeks of the three latest months, newest first (1 February
    # 2025 is a Saturday of W05)
    assert values[:3] == ["2025-03", "2025-02", "2025-Q1"]
    assert values[3:] == [f"2025-W{w:02d}" for w in range(14, 4, -1)]  # 1 March is in W09, 31 March in W14
    assert offered[0] == ("March 2025", "2025-03")
    assert offered[2] == ("Q1 2025 (January–March)", "2025-Q1")
    assert all("to date" not in label for label, _ in offered)  # all over by June


def test_the_period_picker_offers_no_future_and_proposes_the_latest_complete_month() -> None:
    """Issue 14 review item 6, on the reviewer's day: Monday 7 December 2026, data to the 7th."""
    today = dt.date(2026, 12, 7)
    months = ["2026-12", "2026-11", "2026-10", "2026-09", "2027-01"]  # a stray future month too
    offered = dict((value, label) for label, value in reports.report_period_choices(months, today))
    assert "2027-01" not in offered and "2027-Q1" not in offered  # not started
    assert offered["2026-12"] == "December 2026 (to date)" and offered["2026-11"] == "November 2026"
    assert offered["2026-Q4"] == "Q4 2026 (October–December) (to date)"
    assert offered["2026-Q3"] == "Q3 2026 (July–September)"
    weeks = sorted(v for v in offered if "-W" in v)
    # the weeks of December to November's and October's: 28 September (W40, holds 1 October) to 7
    # December (W50, started today, to date); W51–W53 have not started
    assert weeks == [f"2026-W{w}" for w in range(40, 51)]
    assert offered["2026-W50"].endswith("(to date)") and not offered["2026-W49"].endswith("(to date)")
    assert reports.default_period(months, today) == "2026-11"
    assert reports.default_period(["2026-12"], today) == "2026-12"  # nothing over yet: the month so far
    assert reports.default_period([], today) is None


def test_a_manager_generates_lists_views_and_downloads_a_report(store: AppConfig) -> None:
    choices = reports.report_choices(store, "mgr", today=dt.date(2025, 1, 20))
    scopes = [value for _, value in choices.scopes]
    assert scopes[0] == "site" and "client:C003" in scopes and any(s.startswith("building:") for s in scopes)
    assert choices.may_generate and ("January 2025 (to date)", "2025-01") in choices.periods
    assert choices.default_period == "2025-01"  # the only month stored, not over on the 20th
    later = reports.report_choices(store, "mgr", today=dt.date(2025, 3, 20))
    assert ("January 2025", "2025-01") in later.periods and later.default_period == "2025-01"
    report_id, said = reports.generate_report(store, "mgr", "2025-01", "site", now=NOW)
    assert said.startswith(f"Report {report_id} made: ") and "slem-report-site-2025-01.pdf" in said
    listed = reports.reports_table(store, "mgr")
    assert list(listed.columns) == ["Report", "Period", "Scope", "Made (UTC)", "By", "Mailed"]
    assert listed.iloc[0].tolist() == [
        str(report_id),
        "January 2025",
        "Whole site",
        "2025-03-20 12:00",
        "mgr",
        "",
    ]
    # the download is the kept file, byte for byte, written once under the app's runs folder
    engine = open_database(store.database_url)
    try:
        name, kept = report_file(engine, report_id, "pdf")
    finally:
        engine.dispose()
    path = reports.download_report(store, "mgr", str(report_id), "pdf")
    assert path.name == name == "slem-report-site-2025-01.pdf" and path.read_bytes() == kept
    assert kept.startswith(b"%PDF-")
    assert path.is_relative_to(store.runs_dir)  # never a world-readable temporary folder
    assert reports.download_report(store, "mgr", str(report_id), "pdf") == path  # written once
    frame = reports.view_report(store, "view", report_id)  # a viewer of the whole site may view it
    assert frame.startswith('<iframe title="Report') and 'srcdoc="' in frame
    shown = html.unescape(frame.split('srcdoc="', 1)[1].rsplit('" style=', 1)[0])
    assert shown.startswith("<!DOCTYPE html>") or shown.lstrip().lower().startswith("<!doctype html")


def test_the_list_names_scopes_schedules_and_failed_mail_and_a_report_without_html(store: AppConfig) -> None:
    """Issue 14 review items 5 and 7: a scheduled report kept as PDF and XLSX only (as schedules kept them
    before), mailed to nobody because the server refused; another mailed; the list says so in words."""
    files = {"pdf": ("r.pdf", b"%PDF-1.4 x"), "xlsx": ("r.xlsx", b"PK x")}
    engine = open_database(store.database_url)
    try:
        failed = keep_report(
            engine, files, scope="client:C001", period="2025-W02", title="t", created_by="schedule",
            schedule="weekly", mail_to=["a@example.com"], now=NOW,
        )  # fmt: skip
        record_send(engine, failed, at=NOW, sent=False, error="the mail server refused the sign-in")
        mailed = keep_report(
            engine, files, scope="building:B1", period="2025-Q1", title="t", created_by="schedule",
            schedule="quarterly", mail_to=["a@example.com", "b@example.com"], now=NOW,
        )  # fmt: skip
        record_send(engine, mailed, at=NOW + dt.timedelta(minutes=5), sent=True, error=None)
    finally:
        engine.dispose()
    listed = reports.reports_table(store, "mgr").set_index("Report")
    assert set(listed["By"]) == {"mgr", "schedule weekly", "schedule quarterly"}  # None is not "nan"
    assert listed.loc[str(failed)].tolist() == [
        "Week 2 of 2025 (6–12 January)", "Acme Logistics GmbH (C001)", "2025-03-20 12:00", "schedule weekly",
        "⚠️ not sent: the mail server refused the sign-in",
    ]  # fmt: skip
    assert listed.loc[str(mailed)].tolist() == [
        "Q1 2025 (January–March)", "Building B1", "2025-03-20 12:00", "schedule quarterly",
        "a@example.com, b@example.com (2025-03-20 12:05)",
    ]  # fmt: skip
    with pytest.raises(InputError, match=rf"^Report {failed} was kept as PDF and XLSX only: download it$"):
        reports.view_report(store, "mgr", failed)
    with pytest.raises(InputError, match="no such report"):  # not C003's: it stays unseen
        reports.view_report(store, "view3", failed)
    with pytest.raises(InputError, match="no such report"):
        reports.view_report(store, "mgr", 99_999)
    assert reports.download_report(store, "mgr", failed, "xlsx").read_bytes() == b"PK x"


def test_a_client_user_gets_its_own_scope_and_reports_only(store: AppConfig) -> None:
    mine = reports.report_choices(store, "view3")
    assert mine.scopes == [(mine.scopes[0][0], "client:C003")] and mine.may_generate
    # the server refuses another scope whatever the page offered
    with pytest.raises(SlemError, match="view3 may generate reports of client C003 only"):
        reports.generate_report(store, "view3", "2025-01", "site")
    with pytest.raises(SlemError, match="client C003 only"):
        reports.generate_report(store, "view3", "2025-01", "client:C001")
    site_id, _ = reports.generate_report(store, "mgr", "2025-W02", "site", now=NOW)
    own_id, _ = reports.generate_report(store, "view3", "2025-01", "client:C003", now=NOW)
    listed = reports.reports_table(store, "view3")
    assert set(listed["Scope"]) == {mine.scopes[0][0]} and str(own_id) in set(listed["Report"])
    with pytest.raises(InputError, match="no such report"):
        reports.download_report(store, "view3", site_id, "pdf")
    with pytest.raises(InputError, match="no such report"):
        reports.view_report(store, "view3", site_id)
    assert (
        reports.download_report(store, "view3", own_id, "xlsx").name == "slem-report-client-C003-2025-01.xlsx"
    )
    engine = open_database(store.database_url)
    try:
        assert set(list_reports(engine)["report_id"]) >= {site_id, own_id}
    finally:
        engine.dispose()


def test_viewers_of_the_whole_site_may_not_generate(store: AppConfig, page: dict[str, Any]) -> None:
    assert not reports.report_choices(store, "view").may_generate
    with pytest.raises(SlemError, match=r"view \(viewer\) may not generate reports"):
        reports.generate_report(store, "view", "2025-01", "site")
    with pytest.raises(SlemError, match=r"ds \(data_scientist\) may not generate reports"):
        reports.generate_report(store, "ds", "2025-01", "site")
    status, *rest = page["on_generate"]("2025-01", "site", request("view"))
    assert "may not generate reports" in status and all(is_unchanged(v) for v in rest)
    with pytest.raises(InputError, match="use 2025-03 \\(a month\\)"):
        reports.generate_report(store, "mgr", "March", "site")
    with pytest.raises(InputError, match="choose a report first"):
        reports.download_report(store, "mgr", "", "pdf")


@pytest.mark.parametrize("site_file", [SAMPLE_CONTRACTS, None])
def test_the_upload_form_says_whether_contracts_are_needed(store: AppConfig, site_file: Path | None) -> None:
    async def built() -> gr.Blocks:
        return build_app(AppConfig(**{**store.__dict__, "contracts": site_file}))

    blocks = asyncio.run(built()).blocks.values()
    texts = {b.value for b in blocks if isinstance(b, gr.Markdown)}
    (contracts,) = [b for b in blocks if isinstance(b, gr.File) and str(b.label).startswith("Contracts")]
    if site_file is None:
        assert "Upload the site's contracts.yaml with the readings." in texts and contracts.visible
    else:
        assert "This server's site configuration (contracts.yaml) is used." in texts and not contracts.visible

"""The manager app end to end, as a manager meets it: headless Chromium against a real ``slem serve``.

One test: a manager made with ``slem users add --password-stdin`` signs in through Gradio's login form,
uploads the legacy sample export, scores it, finds the invoices on the Billing tab and downloads a printable
invoice and ``invoices.csv``; the invoice's total must be the library's own total for the same file. Then
the Live tab shows zones the live state holds (written into the server's database as ``slem ingest`` would)
and, by its own timer, a change to them.

Drives Debian's ``/usr/bin/chromium`` through Playwright (no browser download); skipped without it. Run just
this test with ``pytest -m browser``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.tables import LiveZone, StoreZone

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "legacy_sample.csv"
CONTRACTS = SAMPLE_CONTRACTS
CHROMIUM = Path("/usr/bin/chromium")
USER, PASSWORD = "mia", "a-long-test-passphrase"
VIEWER, CLIENT = "cleo", "C001"  # a viewer tied to one client, on the same server
TIMEOUT_MS = 30_000  # any one step: scoring the sample takes about 2 s

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The legacy export sample; where ../shared/data is not beside the clone, a generated export in the
    same layout (ten days of the same site), so the test still runs the whole way."""
    if SAMPLE.exists():
        return SAMPLE
    path = tmp_path_factory.mktemp("sample") / "legacy_sample.csv"
    made = subprocess.run(
        [sys.executable, "-m", "slem_ml", "generate", "--out", str(path), "--format", "legacy",
         "--days", "10"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slem_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(work / "gradio"),  # uploads and served copies stay in the test's folder
    }


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 45) -> None:
    """Poll ``url`` until it answers; fail with the server's output if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"slem serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"slem serve did not answer on {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``slem serve`` in ``tmp_path`` with its own SQLite database and one manager; yields its URL."""
    env = slem_env(tmp_path)
    db = f"sqlite:///{tmp_path / 'slem.db'}"
    for user in ([USER, "--role", "manager"], [VIEWER, "--role", "viewer", "--client", CLIENT]):
        added = subprocess.run(
            [sys.executable, "-m", "slem_ml", "users", "add", *user, "--password-stdin", "--db", db],
            input=PASSWORD,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--contracts", str(CONTRACTS), "--db", db, "--models-dir", str(tmp_path / "models")]
            + ["--runs-dir", str(tmp_path / "app_runs")],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        print(f"--- slem serve output ---\n{log.read_text()[-3000:]}")  # shown by pytest on failure


def library_totals(sample: Path) -> dict[str, Decimal]:
    """The invoice totals ``slem_ml`` itself computes for the sample (no models, as the server has none)."""
    from slem_ml.config.site import load_site
    from slem_ml.io.reader import read_readings
    from slem_ml.scoring.score import score

    site = load_site(CONTRACTS)
    invoices = score(read_readings(sample, site), site).invoices
    return {str(i): Decimal(t) for i, t in zip(invoices["invoice_id"], invoices["total"], strict=True)}


def live_state(db: str, zones: dict[str, dict[str, object]]) -> None:
    """``live_zones`` rows for stored zones (as ``slem ingest`` keeps them), or new values for them."""
    engine = open_database(db)
    try:
        with write_session(engine) as session:
            keys = dict(session.execute(select(StoreZone.zone_id, StoreZone.id)).all())
            known = set(session.execute(select(LiveZone.zone_key)).scalars())
            for zone_id, values in zones.items():
                key = keys[zone_id]
                if key in known:
                    session.execute(update(LiveZone).where(LiveZone.zone_key == key).values(**values))
                    continue
                row = {
                    "zone_key": key,
                    "client_id": "C001",
                    "power_w": 0.0,
                    "lit": False,
                    "in_contract": False,
                    "cleaning": False,
                    "interval_ms": 60_000,
                    "run_start_ms": None,
                    "run_energy_wh": 0.0,
                    "spike_first_ms": None,
                    "spike_last_ms": None,
                    "updated_at": dt.datetime.now(dt.UTC),
                }
                session.execute(insert(LiveZone).values(**{**row, **values}))  # fmt: skip
    finally:
        engine.dispose()


def signed_in(browser: Any, url: str, user: str) -> Any:
    """A fresh page of ``user`` signed in through Gradio's login form, the page loaded."""
    from playwright.sync_api import expect

    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text(f"Signed in as {user}", exact=False)).to_be_visible()
    return page


def no_error_badges(page: Any) -> None:
    """No output is marked failed (Gradio's red "Error" badge over a component)."""
    from playwright.sync_api import expect

    expect(page.locator(".error").filter(has_text=re.compile(r"^\s*Error\s*$"))).to_have_count(0)


def refused_upload_leaves_the_page_usable(page: Any, work: Path) -> None:
    """Issue 14 item 5: a manager's invalid upload says why in the upload panel; the headline stays, no
    badge or overlay, and another tab answers at once."""
    from playwright.sync_api import expect

    bad = work / "not-readings.csv"
    bad.write_text("when,where\nyesterday,here\n", encoding="utf-8")
    headline = page.get_by_text(f"Signed in as {USER}", exact=False)
    before = headline.inner_text()
    page.get_by_role("tab", name="Upload").click()
    readings = page.locator(".block").filter(has_text="Readings (CSV or Parquet)")
    readings.get_by_role("button", name="Clear").first.click()
    readings.locator("input[type=file]").set_input_files(bad)
    expect(readings.get_by_role("row", name=re.compile(r"^not-readings\.csv"))).to_be_visible()
    page.get_by_role("button", name="Score readings").click()
    expect(
        page.get_by_text("Not done: not-readings.csv: missing required column", exact=False)
    ).to_be_visible()
    assert headline.inner_text() == before
    no_error_badges(page)
    page.get_by_role("tab", name="Billing").click(timeout=3_000)  # nothing covers the page
    expect(page.get_by_role("grid", name="Invoices").get_by_role("row").first).to_be_visible(timeout=3_000)


def manager_walks_the_tabs_and_makes_a_report(page: Any) -> None:
    """Every other tab answers; Reports: generate the month's site report, view it, download its PDF."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Overview").click()
    expect(
        page.locator(".block").filter(has_text="Hour × weekday").locator(".js-plotly-plot")
    ).to_be_visible()
    page.get_by_role("tab", name="Cleaning").click()
    expect(page.get_by_role("grid", name="Waste by building and floor")).to_be_visible()
    page.get_by_role("tab", name="Maintenance").click()
    expect(page.get_by_text("Click an alert's row", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge", exact=True)).to_be_visible()  # a manager's
    page.get_by_role("tab", name="Forecast").click()
    expect(page.get_by_role("combobox", name="Zone or building", exact=True)).to_be_visible()
    page.get_by_role("tab", name="Models").click()
    expect(page.get_by_text("No champion yet", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Retrain"))).to_have_count(0)  # data scientists'
    page.get_by_role("tab", name="Reports").click()
    expect(page.get_by_role("combobox", name="Scope", exact=True)).to_have_value("Whole site")
    # the latest complete month with data (review item 6): the sample's months are long over
    expect(page.get_by_role("combobox", name="Period", exact=True)).to_have_value(re.compile(r"^\w+ 2025$"))
    page.get_by_role("button", name="Generate now").click()
    expect(
        page.get_by_text(re.compile(r"Report 1 made: Energy report — Whole site — \w+ 2025"))
    ).to_be_visible()
    kept = page.get_by_role("grid", name=re.compile("^Kept reports"))
    kept.get_by_role("gridcell", name="Whole site", exact=True).click()  # scopes in words (review item 7)
    expect(page.get_by_label("Chosen report")).to_have_value("1")
    page.get_by_role("button", name="View here").click()
    frame = page.frame_locator("iframe[title='Report 1']")
    expect(frame.get_by_role("heading", name=re.compile("^Energy report — Whole site"))).to_be_visible()
    page.get_by_role("button", name="Download").click()
    link = page.locator(".slem-downloads").filter(has_text="Report file").get_by_role("link")
    with page.expect_download() as done:
        link.click()
    assert done.value.suggested_filename.startswith("slem-report-site-2025-")
    assert Path(done.value.path()).read_bytes().startswith(b"%PDF-")


def client_viewer_walks_the_tabs(browser: Any, url: str, work: Path, managers_link: str) -> None:
    """Issue 14 items 4 and 8: a viewer tied to a client sees no Upload tab nor Retrain, every tab answers
    with its own client's data only, its Reports tab offers its own scope and lists none of the site's; a
    crafted upload is refused by the server before it is stored, and so is the manager's download link
    (issue 15 item 2); Sign out ends the session."""
    from playwright.sync_api import expect

    page = signed_in(browser, url, VIEWER)
    expect(page.get_by_role("tab", name="Reports")).to_be_visible()
    expect(page.get_by_role("tab", name="Upload")).to_have_count(0)
    page.get_by_role("tab", name="Billing").click()
    invoices = page.get_by_role("grid", name="Invoices")
    expect(invoices.get_by_role("gridcell", name=re.compile(rf"^INV-{CLIENT}-")).first).to_be_visible()
    expect(invoices.get_by_role("gridcell", name=re.compile(r"^INV-(?!C001)"))).to_have_count(0)
    for tab in ("Overview", "Live", "Cleaning", "Maintenance", "Forecast", "Models"):
        page.get_by_role("tab", name=tab).click()
    expect(page.get_by_role("button", name=re.compile("^Retrain"))).to_have_count(0)
    for action in ("Acknowledge", "Resolve"):  # a viewer may not act on alerts (review item 10)
        expect(page.get_by_role("button", name=action, exact=True)).to_have_count(0)
    page.get_by_role("tab", name="Reports").click()
    scope = page.get_by_role("combobox", name="Scope", exact=True)
    expect(scope).to_have_value(re.compile(rf"\({CLIENT}\)$|^Client {CLIENT}$"))
    kept = page.get_by_role("grid", name=re.compile("^Kept reports"))
    expect(kept.get_by_role("gridcell", name="Whole site", exact=True)).to_have_count(0)  # the manager's
    page.get_by_role("button", name="Generate now").click()
    expect(kept.get_by_role("gridcell", name=re.compile(rf"\({CLIENT}\)$|^Client {CLIENT}$"))).to_be_visible()
    no_error_badges(page)
    # the Upload tab is hidden, and the server refuses a crafted upload all the same, at the HTTP level
    bad = work / "not-readings.csv"
    crafted = page.request.post(
        f"{url}/gradio_api/upload",
        multipart={"files": {"name": bad.name, "mimeType": "text/csv", "buffer": bad.read_bytes()}},
    )
    assert crafted.status == 403 and "may not upload" in crafted.text()
    # a link the manager was given is the manager's only: the viewer's session gets a refusal
    stolen = page.request.get(f"{url.rstrip('/')}/{managers_link}")
    assert stolen.status == 403 and "another user" in stolen.text()
    page.get_by_text("Sign out", exact=True).click()  # a link to Gradio's /logout
    expect(page.get_by_label("username")).to_be_visible()


def test_manager_scores_an_upload_and_downloads_an_invoice(server: str, sample: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expected = library_totals(sample)
    assert expected, "the sample should bill some overtime"
    # the app shows a month: after an upload, the latest month it touched (the legacy sample's February;
    # its January is one pick away)
    months = sorted({i.rsplit("-", 1)[1] for i in expected})
    by_month = {m: {i: t for i, t in expected.items() if i.endswith(f"-{m}")} for m in months}
    latest, earlier = months[-1], (months[0] if len(months) > 1 else None)
    shown = by_month[latest]
    # the invoice with the largest total, so that a wrong pick or a wrong row shows
    invoice_id = max(shown, key=lambda i: shown[i])
    chosen = shown[invoice_id]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            page = context.new_page()
            page.goto(server)

            # sign in through Gradio's login form
            page.get_by_label("username").fill(USER)
            page.get_by_label("password").fill(PASSWORD)
            page.get_by_role("button", name="Login").click()
            expect(page.get_by_role("tab", name="Upload")).to_be_visible()

            # upload and score
            page.get_by_role("tab", name="Upload").click()
            readings = page.locator(".block").filter(has_text="Readings (CSV or Parquet)")
            readings.locator("input[type=file]").set_input_files(sample)
            uploaded = readings.get_by_role("row", name=re.compile(r"^legacy_sample\.csv")).get_by_role(
                "link"
            )
            expect(uploaded).to_have_attribute("href", re.compile("/gradio_api/file="))  # on the server
            page.get_by_role("button", name="Score readings").click()
            results = page.locator(".slem-downloads").filter(has_text="Results (CSV)")
            invoices_csv = results.get_by_role("link", name="invoices.csv", exact=True)
            expect(invoices_csv).to_be_visible()
            expect(page.get_by_text(f"Signed in as {USER}", exact=False)).to_be_visible()

            # the Results' invoices.csv, downloaded as the user would
            with page.expect_download() as done:
                invoices_csv.click()
            rows = list(csv.DictReader(io.StringIO(Path(done.value.path()).read_text(encoding="utf-8"))))
            assert {r["invoice_id"]: Decimal(r["total"]) for r in rows} == expected

            # Billing: the invoice table shows the month's invoices with the library's totals; the month
            # picker shows the other month's
            page.get_by_role("tab", name="Billing").click()
            table = page.get_by_role("grid", name="Invoices")
            expect(table.get_by_role("row")).to_have_count(len(shown) + 1)  # and the header
            month = page.get_by_role("combobox", name="Month", exact=True)
            expect(month).to_have_value(f"{latest[:4]}-{latest[4:]}")
            if earlier is not None:
                month.click()
                page.get_by_role("option", name=f"{earlier[:4]}-{earlier[4:]}", exact=True).click()
                expect(table.get_by_role("row")).to_have_count(len(by_month[earlier]) + 1)
                month.click()
                page.get_by_role("option", name=f"{latest[:4]}-{latest[4:]}", exact=True).click()
                expect(table.get_by_role("row")).to_have_count(len(shown) + 1)
            cell = page.get_by_role("gridcell", name=invoice_id, exact=True)
            row = table.get_by_role("row").filter(has=cell)
            expect(row.get_by_role("gridcell", name=f"{chosen:,.2f}", exact=True)).to_be_visible()

            # choose the invoice and download its printable PDF
            pick = page.get_by_role("combobox", name="Invoice", exact=True)
            pick.click()
            page.get_by_role("option", name=invoice_id, exact=True).click()
            expect(pick).to_have_value(invoice_id)
            page.get_by_role("button", name="Printable invoice (PDF)").click()
            printable = page.locator(".slem-downloads").filter(has_text="Printable invoice")
            pdf_link = printable.get_by_role("link", name=f"{invoice_id}.pdf", exact=True)
            managers_link = str(pdf_link.get_attribute("href"))
            assert managers_link.startswith("files/")  # never Gradio's shared cache
            with page.expect_download() as done:
                pdf_link.click()
            pdf = Path(done.value.path()).read_bytes()
            assert done.value.suggested_filename == f"{invoice_id}.pdf"

            # Live: two zones of the sample as the live stream left them — one in overtime, one silent
            # for two hours (the server has no models: it says which detectors are off)
            now_ms = int(time.time() * 1000)
            db = f"sqlite:///{tmp_path / 'slem.db'}"
            live_state(db, {
                "HQ-F2-Z4": {"last_ms": now_ms - 60_000, "power_w": 40.0, "lit": True,
                             "run_start_ms": now_ms - 1_800_000, "run_energy_wh": 20.0},
                "R&D-F1-Z5": {"last_ms": now_ms - 7_200_000},
            })  # fmt: skip
            page.get_by_role("tab", name="Live").click()
            expect(page.get_by_text("2 zones", exact=False)).to_be_visible()
            expect(page.get_by_text("1 overtime now · 1 silent", exact=False)).to_be_visible()
            expect(page.get_by_text("Spike and drift detectors are off", exact=False)).to_be_visible()
            for label in ("Zones by building and floor", "Building power today"):
                plot = page.locator(".block").filter(has_text=label).locator(".js-plotly-plot")
                expect(plot.first).to_be_visible()
            overtime = page.get_by_role("grid", name="Overtime running now (estimated cost so far)")
            expect(overtime.get_by_role("gridcell", name="HQ-F2-Z4", exact=True)).to_be_visible()
            stale = page.get_by_role("grid", name="Stale zones (silent)")
            expect(stale.get_by_role("gridcell", name="R&D-F1-Z5", exact=True)).to_be_visible()
            # the silent zone reports again, lit in its contract: the tab's timer shows it, no click
            back = {"last_ms": int(time.time() * 1000), "lit": True, "in_contract": True, "power_w": 30.0}
            live_state(db, {"R&D-F1-Z5": back})
            expect(page.get_by_text("1 lit in contract · 1 overtime now", exact=False)).to_be_visible()
            expect(stale.get_by_role("gridcell", name="R&D-F1-Z5", exact=True)).to_have_count(0)

            refused_upload_leaves_the_page_usable(page, tmp_path)
            manager_walks_the_tabs_and_makes_a_report(page)
            client_viewer_walks_the_tabs(browser, server, tmp_path, managers_link)
        finally:
            browser.close()

    # the PDF is the run's printable invoice; the HTML rendered beside it carries the same total
    (run,) = (tmp_path / "app_runs").glob("run-*")
    assert pdf.startswith(b"%PDF-")
    assert pdf == (run / "invoices" / f"{invoice_id}.pdf").read_bytes()
    html = (run / "invoices" / f"{invoice_id}.html").read_text(encoding="utf-8")
    grand = re.search(r'<tr class="grand"><th>Total</th><td>([\d,.]+) EUR</td>', html)
    assert grand is not None, "no grand total in the printable invoice"
    assert Decimal(grand.group(1).replace(",", "")) == chosen  # 1,110.36 EUR

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
    added = subprocess.run(
        [sys.executable, "-m", "slem_ml", "users", "add", USER, "--role", "manager", "--password-stdin"]
        + ["--db", db],
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
            results = page.locator(".block").filter(has_text="Results (CSV)")
            invoices_csv = results.get_by_role("row", name=re.compile(r"^invoices\.csv"))
            expect(invoices_csv).to_be_visible()
            expect(page.get_by_text(f"Signed in as {USER}", exact=False)).to_be_visible()

            # the Results' invoices.csv, downloaded as the user would
            with page.expect_download() as done:
                invoices_csv.get_by_role("link").click()
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
            expect(row.get_by_role("gridcell", name=f"{chosen:.2f}", exact=True)).to_be_visible()

            # choose the invoice and download its printable PDF
            pick = page.get_by_role("combobox", name="Invoice", exact=True)
            pick.click()
            page.get_by_role("option", name=invoice_id, exact=True).click()
            expect(pick).to_have_value(invoice_id)
            page.get_by_role("button", name="Printable invoice (PDF)").click()
            pdf_row = page.get_by_role("row", name=re.compile(rf"^{invoice_id}\.pdf"))
            printable = page.locator(".block").filter(has_text="Printable invoice").filter(has=pdf_row)
            with page.expect_download() as done:
                printable.get_by_role("link").click()
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

"""Screenshots of every tab of the manager app and of a report's first two PDF pages, for docs/screenshots/.

Run from the repository root: ``.venv/bin/python benchmarks/screenshots.py [--out docs/screenshots]``
(about two minutes: a minute to generate, train and score, half a minute of live feed, the rest in the
browser). In a scratch folder it generates February and March 2025 of 24 zones with faults from early
March (``slem generate``), trains the models on February (``slem train``: March's drift then shows and
stays open), serves the app with ``--readings`` so that the data is scored before the page opens (open
local mode: no users; the app shows March), and drives headless Chromium (``/usr/bin/chromium``)
through every tab in order:

- Overview; Upload (the run's result files and upload history);
- Billing with the largest invoice chosen, its printable PDF made and its revision history shown;
- Cleaning; Maintenance with the open alert of the highest score chosen by clicking its row, so that
  the explanation panel shows, and its zone's chart; Forecast of the first building; Models with the champion;
- Reports after "Generate now" of the latest month's site report, the report viewed in the page; its PDF
  is downloaded and its first two pages rendered with pypdfium2 (``report-page-1.png``, ``-2.png``);
- Live last (so that today's live readings do not change the other tabs' month): when an MQTT broker
  answers on ``--broker`` (127.0.0.1:1883), ``slem ingest`` stores on the app's database what
  ``slem simulate`` publishes of today's building at 2000x until the feed has caught up with the clock;
  with no broker, the Live tab is shot as it is and a line says so.

Each tab is saved as a full-page PNG 1400 px wide, the report pages 1000 px wide, all reduced to a
256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app_server import CONTRACTS, REPO, browser, env, serving, slem

from slem_ml.config.site import load_site

TABS = ["Overview", "Upload", "Billing", "Cleaning", "Maintenance", "Forecast", "Models", "Reports"]
LIVE = "Live"  # shot last, after the live feed
ORDER = ["Overview", "Live", "Upload", "Billing", "Cleaning", "Maintenance", "Forecast", "Models", "Reports"]
WIDTH = 1400
PDF_WIDTH = 1000  # [px] of a rendered report page
PDF_PAGES = 2
TIMEOUT_MS = 60_000
PERIOD = "2025-03"  # the generated data's last complete month (see GENERATE)
GENERATE = ["--start", "2025-02-01", "--days", "59", "--zones", "24", "--seed", "7", "--faults-after", "0.5"]
TRAIN_UNTIL = "2025-03-01"  # the models learn from the data before this day (site time): no faults yet
SPEED = 2000  # how much faster than real time the live feed replays today's past hours
FEED_ZONES = 24


def settled(page: Any, plots: int = 0) -> None:
    """Wait until no event runs (every status tracker hidden) and the shown tab has ``plots`` Plotly charts
    drawn; stop on an error message (a toast, or Gradio's red "Error" badge on an output)."""
    page.wait_for_function(
        """plots => {
            const busy = [...document.querySelectorAll('[data-testid=status-tracker]')]
                .some(s => !s.classList.contains('hide'));
            const panel = [...document.querySelectorAll('[role=tabpanel]')].find(p => p.offsetParent);
            const drawn = panel ? [...panel.querySelectorAll('.js-plotly-plot')] : [];
            return !busy && drawn.length >= plots && drawn.every(p => p._fullLayout);
        }""",
        arg=plots,
    )
    page.wait_for_timeout(600)  # the tab's redraw after showing (a resize 60 ms after select) has run
    toasts = page.get_by_test_id("toast-body")
    if toasts.count():
        raise SystemExit(f"the app shows an error: {toasts.first.inner_text()}")
    badges = page.locator(".error").filter(has_text=re.compile(r"^\s*Error\s*$"))
    if badges.count():
        raise SystemExit("the app marks an output failed (a red Error badge)")


def choose(page: Any, label: str, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` (the first matching) in the dropdown labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).first.click()


def open_alert(run: Path) -> tuple[str, str]:
    """The zone and id of the run's open alert with the highest score (for drift: the largest rise)."""
    with (run / "alerts.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] in ("open", "ongoing")]
    if not rows:
        raise SystemExit("the generated data left no alert open: nothing to choose on Maintenance")
    top = max(rows, key=lambda r: float(r["score"] or 0))
    return top["zone_id"], top["alert_id"]


def largest_invoice(run: Path) -> str:
    """The id of the run's invoice with the largest total (of the latest month: the one the app shows)."""
    with (run / "invoices.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["invoice_id"].endswith(PERIOD.replace("-", ""))]
    if not rows:
        raise SystemExit(f"the generated data bills nothing in {PERIOD}: nothing to show on Billing")
    return max(rows, key=lambda r: float(r["total"]))["invoice_id"]


def show_tab(page: Any, tab: str, zone: str, alert: str, invoice: str) -> None:
    """Open ``tab``, make it show something (a choice where it needs one) and wait until it has."""
    # lazy: Playwright is only needed once the app serves (a missing browser says so first)
    from playwright.sync_api import expect

    page.get_by_role("tab", name=tab, exact=True).click()
    panel = page.get_by_role("tabpanel")
    if tab == "Overview":
        settled(page, 3)
    elif tab == "Live":
        expect(panel.get_by_text(re.compile(r"^As of "))).to_be_visible()
        settled(page, 2)
    elif tab == "Upload":
        expect(panel.get_by_role("link", name="invoices.csv", exact=True)).to_be_visible()
        settled(page)
    elif tab == "Billing":
        choose(page, "Invoice", invoice)
        expect(panel.get_by_role("grid", name="Invoice lines").get_by_role("gridcell").first).to_be_visible()
        settled(page)
        page.get_by_role("button", name="Printable invoice (PDF)").click()
        expect(panel.get_by_role("link", name=f"{invoice}.pdf", exact=True)).to_be_visible()
        page.get_by_role("button", name="Revision history").click()
        revisions = panel.get_by_role("grid", name="Revisions of the invoice")
        expect(revisions.get_by_role("gridcell").first).to_be_visible()
        settled(page, 1)
    elif tab == "Cleaning":
        settled(page, 2)
    elif tab == "Maintenance":
        choose(page, "Zone", zone)
        zone_alerts = panel.get_by_role("grid", name="Alerts of the zone")
        expect(zone_alerts.get_by_role("gridcell", name=zone, exact=True).first).to_be_visible()
        settled(page, 1)
        alerts = panel.get_by_role("grid", name="Open alerts (click a row)")
        row = alerts.get_by_role("row").filter(has=page.get_by_role("gridcell", name=alert, exact=True))
        row.get_by_role("gridcell", name=zone, exact=True).click()
        expect(
            page.locator("#alert-explanation").get_by_role("heading", name=f"Alert {alert}")
        ).to_be_visible()
        settled(page, 1)
    elif tab == "Forecast":
        choose(page, "Zone or building", re.compile("^Building "))
        expect(panel.get_by_role("grid", name="Peak hours").get_by_role("gridcell").first).to_be_visible()
        settled(page, 1)
    elif tab == "Models":
        expect(panel.get_by_text(re.compile("^Champion"))).to_be_visible()
        settled(page)
    elif tab == "Reports":
        expect(page.get_by_role("combobox", name="Period", exact=True)).to_have_value(
            re.compile(r"^\w+ \d{4}$|^\d{4}-\d{2}$")
        )
        expect(page.get_by_role("combobox", name="Scope", exact=True)).to_have_value("Whole site")
        page.get_by_role("button", name="Generate now").click()
        expect(page.get_by_text(re.compile(r"Report \d+ made: Energy report — Whole site"))).to_be_visible()
        kept = page.get_by_role("grid", name=re.compile("^Kept reports"))
        kept.get_by_role("gridcell", name="Whole site", exact=True).first.click()
        expect(page.get_by_label("Chosen report")).to_have_value(re.compile(r"^\d+$"))
        page.get_by_role("button", name="View here").click()
        frame = page.frame_locator("iframe[title^='Report ']")
        expect(frame.get_by_role("heading", name=re.compile("^Energy report — Whole site"))).to_be_visible()
        page.get_by_label("PDF", exact=True).check()
        page.get_by_role("button", name="Download").click()
        offered = page.locator(".slem-downloads").filter(has_text="Report file")
        expect(offered.get_by_role("link", name=re.compile(r"^slem-report-\S+\.pdf$"))).to_be_visible()
        settled(page)


def snap(page: Any, path: Path) -> Path:
    """Save the page as a full-page PNG at ``path``."""
    page.mouse.move(0, 0)  # no hover tooltip on the picture
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


def report_pdf(page: Any, out: Path) -> Path:
    """Save the report file the Reports tab offers (its PDF, see :func:`show_tab`) into ``out``."""
    link = page.locator(".slem-downloads").filter(has_text="Report file").get_by_role("link")
    with page.expect_download() as done:
        link.click()
    path = out / done.value.suggested_filename
    done.value.save_as(path)
    if not path.read_bytes().startswith(b"%PDF-"):
        raise SystemExit(f"the report download {path.name} is not a PDF")
    return path


def broker_answers(broker: str) -> bool:
    host, _, port = broker.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), 3):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def live_feed(work: Path, db: str, broker: str) -> Iterator[str]:
    """``slem ingest`` on ``db`` and ``slem simulate`` of today's building on ``broker`` (logs in ``work``);
    yields once the feed has replayed today's hours so far, with a line saying what was fed."""
    python = [sys.executable, "-m", "slem_ml"]
    common = ["--mqtt", f"mqtt://{broker}", "--contracts", str(CONTRACTS)]
    started: list[subprocess.Popen[bytes]] = []
    ingest_log, simulate_log = work / "ingest.log", work / "simulate.log"
    try:
        with ingest_log.open("wb") as out:
            ingest = subprocess.Popen(
                [*python, "ingest", *common, "--db", db, "--models-dir", str(work / "models"),
                 "--client-id", f"slem-screenshots-{os.getpid()}"],
                cwd=work, env=env(work), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(ingest)
        deadline = time.monotonic() + 60
        while "connected to" not in ingest_log.read_text(errors="replace"):
            if ingest.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"slem ingest did not connect:\n{ingest_log.read_text()[-3000:]}")
            time.sleep(0.25)
        with simulate_log.open("wb") as out:
            simulate = subprocess.Popen(
                [*python, "simulate", *common, "--zones", str(FEED_ZONES), "--speed", str(SPEED)],
                cwd=work, env=env(work), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(simulate)
        # today's hours so far (site time) at SPEED, then a little live time
        now = dt.datetime.now(load_site(CONTRACTS).site.tz)
        since_midnight = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        replay = since_midnight / SPEED + 8  # [s]
        time.sleep(replay)
        if simulate.poll() is not None or ingest.poll() is not None:
            logs = f"{simulate_log.read_text()[-1500:]}\n{ingest_log.read_text()[-1500:]}"
            raise SystemExit(f"the live feed stopped:\n{logs}")
        yield f"live feed: {FEED_ZONES} zones of today at {SPEED}x for {replay:.0f} s (mqtt://{broker})"
    finally:
        for process in reversed(started):
            _stop(process)


def render_pdf(pdf: Path, out: Path) -> list[Path]:
    """The first pages of ``pdf`` as PNGs ``report-page-N.png`` in ``out``, :data:`PDF_WIDTH` px wide."""
    # lazy: pypdfium2 is needed only here
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        if len(document) < PDF_PAGES:
            raise SystemExit(f"the report has {len(document)} page(s), fewer than {PDF_PAGES}")
        saved = []
        for number in range(PDF_PAGES):
            page = document[number]
            image = page.render(scale=PDF_WIDTH / page.get_width()).to_pil()
            path = out / f"report-page-{number + 1}.png"
            image.save(path)
            saved.append(path)
        return saved
    finally:
        document.close()


def shoot(url: str, run: Path, out: Path, work: Path, db: str, broker: str | None) -> list[Path]:
    """Open the app at ``url`` and save one full-page screenshot per tab into ``out`` (the Live tab last,
    fed by ``broker`` when given), and the report's first pages."""
    # lazy: Playwright is only needed once the app serves
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    (zone, alert), invoice = open_alert(run), largest_invoice(run)
    saved: dict[str, Path] = {}
    with browser() as chromium:
        context = chromium.new_context(accept_downloads=True, viewport={"width": WIDTH, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(url)
        expect(page.get_by_text(re.compile(r"Last upload: run \d+"))).to_be_visible()
        for tab in TABS:
            show_tab(page, tab, zone, alert, invoice)
            saved[tab] = snap(page, out / f"{tab.lower()}.png")
        pdf = report_pdf(page, work)
        if broker is None:
            print("no MQTT broker answers: the Live tab is shot without a live feed")
            show_tab(page, LIVE, zone, alert, invoice)
            saved[LIVE] = snap(page, out / "live.png")
        else:
            with live_feed(work, db, broker) as fed:
                print(fed)
                show_tab(page, LIVE, zone, alert, invoice)
                expect(page.get_by_text(re.compile(rf"^{FEED_ZONES} zones"))).to_be_visible()
                settled(page, 2)
                saved[LIVE] = snap(page, out / "live.png")
        context.close()
    return [saved[tab] for tab in ORDER] + render_pdf(pdf, out)


def first_month(data: Path) -> Path:
    """The readings of February (before any fault), beside ``data``: the models learn the zones as they
    were, so that March's drift shows and stays open at the end of the data."""
    # lazy: pandas only for this cut
    import pandas as pd

    readings = pd.read_parquet(data)
    stamps = readings["timestamp"]
    cut = readings[stamps < pd.Timestamp(TRAIN_UNTIL, tz=stamps.dt.tz)]
    path = data.with_name("february.parquet")
    cut.to_parquet(path, index=False)
    return path


def shrink(path: Path) -> None:
    """Re-save as a 256-colour palette PNG (a UI has few colours; a third of the size or less)."""
    # lazy: Pillow is needed only once the pictures exist
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker HOST:PORT of the live feed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slem-shots-") as tmp:
        work = Path(tmp)
        data = work / "readings.parquet"
        db = f"sqlite:///{work / 'slem.db'}"
        slem("generate", *GENERATE, "--out", str(data), cwd=work)
        slem("train", str(first_month(data)), "--contracts", str(CONTRACTS), cwd=work)
        broker = args.broker if broker_answers(args.broker) else None
        serve = ["--readings", str(data), "--contracts", str(CONTRACTS), "--db", db, "--models-dir", "models"]
        with serving(work, *serve) as url:
            (run,) = (work / "app_runs").glob("run-*")
            saved = shoot(url, run, args.out, work, db, broker)
    for path in saved:
        shrink(path)
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")
    print(f"took {time.perf_counter() - started:.0f} s on {dt.date.today()}")


if __name__ == "__main__":
    main()

"""Screenshots of every tab of the manager app showing scored data, for docs/screenshots/.

Run from the repository root: ``.venv/bin/python benchmarks/screenshots.py [--out docs/screenshots]``
(about a minute). In a scratch folder it generates five weeks of 24 zones with faults in the second half
(``slem generate``), trains the models on them (``slem train``), serves the app with ``--readings`` so that
the data is scored before the page opens (open local mode: no users), and drives headless Chromium
(``/usr/bin/chromium``) through the tabs: an invoice chosen on Billing, the zone with the most alerts on
Maintenance, a building on Forecast. Each tab is saved as a full-page PNG 1400 px wide, reduced to a
256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app_server import CONTRACTS, REPO, browser, serving, slem

TABS = ["Overview", "Upload", "Billing", "Cleaning", "Maintenance", "Forecast", "Models"]
WIDTH = 1400
TIMEOUT_MS = 60_000


def settled(page: Any, plots: int = 0) -> None:
    """Wait until no event runs (every status tracker hidden) and the shown tab has ``plots`` Plotly charts
    drawn; stop on an error message."""
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
    toasts = page.get_by_test_id("toast-body")
    if toasts.count():
        raise SystemExit(f"the app shows an error: {toasts.first.inner_text()}")


def choose(page: Any, label: str, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` (the first matching) in the dropdown labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).first.click()


def busiest_zone(run: Path) -> str:
    """The zone with the most alerts in the run's alerts.csv."""
    with (run / "alerts.csv").open(newline="", encoding="utf-8") as handle:
        counts = Counter(row["zone_id"] for row in csv.DictReader(handle))
    if not counts:
        raise SystemExit("the generated data raised no alerts: nothing to show on Maintenance")
    return counts.most_common(1)[0][0]


def show_tab(page: Any, tab: str, zone: str) -> None:
    """Open ``tab``, make it show something (a choice where it needs one) and wait until it has."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name=tab, exact=True).click()
    panel = page.get_by_role("tabpanel")
    if tab == "Overview":
        settled(page, 3)
    elif tab == "Upload":
        expect(panel.get_by_role("row", name=re.compile(r"^invoices\.csv"))).to_be_visible()
        settled(page)
    elif tab == "Billing":
        invoice = panel.get_by_role("grid", name="Invoices").get_by_role("gridcell").first.inner_text()
        choose(page, "Invoice", invoice)
        settled(page)
        page.get_by_role("button", name="Printable invoice (PDF)").click()
        expect(panel.get_by_role("row", name=re.compile(rf"^{invoice}\.pdf"))).to_be_visible()
        page.get_by_role("button", name="Revision history").click()
        revisions = panel.get_by_role("grid", name="Revisions of the invoice")
        expect(revisions.get_by_role("columnheader", name="content_hash")).to_be_visible()
        settled(page, 1)
    elif tab == "Cleaning":
        settled(page, 2)
    elif tab == "Maintenance":
        choose(page, "Zone", zone)
        alerts = panel.get_by_role("grid", name="Alerts of the zone")
        expect(alerts.get_by_role("gridcell", name=zone, exact=True).first).to_be_visible()
        settled(page, 1)
    elif tab == "Forecast":
        choose(page, "Zone or building", re.compile("^building:"))
        expect(panel.get_by_role("grid", name="Peak hours").get_by_role("gridcell").first).to_be_visible()
        settled(page, 1)
    elif tab == "Models":
        expect(panel.get_by_text(re.compile("^Champion"))).to_be_visible()
        settled(page)


def shoot(url: str, run: Path, out: Path) -> list[Path]:
    """Open the app at ``url`` and save one full-page screenshot per tab into ``out``."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    zone = busiest_zone(run)
    saved = []
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        expect(page.get_by_text(re.compile(r"^Run \d+$"))).to_be_visible()
        for tab in TABS:
            show_tab(page, tab, zone)
            path = out / f"{tab.lower()}.png"
            page.mouse.move(0, 0)  # no hover tooltip on the picture
            page.screenshot(path=path, full_page=True, animations="disabled")
            saved.append(path)
    return saved


def shrink(path: Path) -> None:
    """Re-save as a 256-colour palette PNG (a UI has few colours; a third of the size or less)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=0)
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slem-shots-") as tmp:
        work = Path(tmp)
        data = work / "readings.parquet"
        slem("generate", *["--days", "35", "--zones", "24", "--seed", "7", "--faults-after", "0.5"],
             "--out", str(data), cwd=work)  # fmt: skip
        slem("train", str(data), "--contracts", str(CONTRACTS), cwd=work)
        with serving(work, "--readings", str(data), "--contracts", str(CONTRACTS)) as url:
            (run,) = (work / "app_runs").glob("run-*")
            saved = shoot(url, run, args.out)
    for path in saved:
        shrink(path)
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

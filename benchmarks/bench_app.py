"""The manager app from upload to results, at 100k and 1M readings: through the handler and in a browser.

Run from the repository root: ``.venv/bin/python benchmarks/bench_app.py [--sizes 100000 1000000]
[--formats parquet csv] [--repeat 3] [--models]`` (about two minutes; add one for ``--models``).

Inputs come from ``slem generate`` (periodic, 5-minute readings of 200 zones from 2025-01-06, as in
``bench_score.py``), one file per repetition (seeds 1, 2, …) so that every upload is a new run. Two paths:

* **handler** — ``slem_ml.app.ui.Handlers(config).upload(path, None, request)`` in this process with a
  ``gradio.Request`` for a manager made by ``slem_ml.storage.users.add_user`` (SQLite database), after one
  warm-up upload: what the server does for a click, without HTTP or the browser.
* **browser** — a real ``slem serve`` (signed in as a manager through the login form) driven by headless
  Chromium (``/usr/bin/chromium``, Playwright): *upload* is from setting the file input until the file shows
  in it (the HTTP upload to Gradio); *score* is from clicking "Score readings" until the Billing tab's
  invoice table shows the new run's rows (scoring, storing, the dashboard's frames and charts, sending and
  drawing them).

``--models`` first trains models (``slem train``) on four other weeks of the same 200 zones, so that scoring
also computes expected power, spike checks and alerts, as in daily use. Prints the machine's load average
and a markdown table: median and best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app_server import CONTRACTS, browser, serving, slem

ZONES = 200
PER_DAY = 288  # 5-minute readings per zone and day
USER, PASSWORD = "bench", "a-long-bench-passphrase"
TARGETS = {100_000: 5.0, 1_000_000: 20.0}  # [s] upload to results, both paths
TIMEOUT_MS = 120_000


@dataclass
class Case:
    """One size and format: its input files (one per repetition) and the times measured."""

    rows: int
    fmt: str
    files: list[Path]
    rows_in: int = 0
    times: dict[str, list[float]] = field(default_factory=dict)


def generate(work: Path, rows: int, fmt: str, repeat: int) -> Case:
    days = max(1, round(rows / (ZONES * PER_DAY)))
    case = Case(rows, fmt, [])
    for seed in range(1, repeat + 1):
        path = work / f"readings-{rows}-{seed}.{fmt}"
        case.rows_in = generate_file(path, days=days, zones=ZONES, seed=seed)
        case.files.append(path)
    return case


def generate_file(path: Path, *, days: int, zones: int, seed: int) -> int:
    """``slem generate`` into ``path``; the number of readings written."""
    said = slem("generate", "--out", str(path), "--days", str(days), "--zones", str(zones),
                "--seed", str(seed), "--start", "2025-01-06", cwd=path.parent)  # fmt: skip
    written = re.search(r"wrote ([\d,]+)", said)
    assert written is not None, said
    return int(written.group(1).replace(",", ""))


def train(work: Path) -> list[str]:
    """Train models on four weeks of the same zones before the benchmark's period; ``slem serve`` options."""
    history = work / "history.parquet"
    slem("generate", "--out", str(history), "--days", "28", "--zones", str(ZONES), "--seed", "99",
         "--start", "2024-12-09", "--step-minutes", "15", cwd=work)  # fmt: skip
    slem("train", str(history), "--contracts", str(CONTRACTS), cwd=work)
    return ["--models-dir", str(work / "models"), "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]


# --- (a) the handler ------------------------------------------------------------------------------------


def bench_handler(work: Path, cases: list[Case], warm_up: Path, models: bool) -> None:
    import gradio as gr

    from slem_ml.app.ui import Handlers
    from slem_ml.app.workspace import AppConfig
    from slem_ml.storage import open_database
    from slem_ml.storage.users import add_user

    url = f"sqlite:///{work / 'handler.db'}"
    engine = open_database(url)
    try:
        add_user(engine, USER, PASSWORD, "manager", actor="bench")
    finally:
        engine.dispose()
    config = AppConfig(
        database_url=url,
        contracts=CONTRACTS,
        models_dir=work / ("models" if models else "no-models"),
        tracking_uri=f"sqlite:///{work / ('mlflow.db' if models else 'no-mlflow.db')}",
        runs_dir=work / "handler_runs",
    )
    handlers = Handlers(config)
    request = gr.Request(username=USER)
    handlers.upload(str(warm_up), None, request)  # imports, first use of the database
    for case in cases:
        for path in case.files:
            started = time.perf_counter()
            board = handlers.upload(str(path), None, request)
            case.times.setdefault("handler", []).append(time.perf_counter() - started)
            assert len(board.invoices), f"no invoices for {path.name}"


# --- (b) the browser ------------------------------------------------------------------------------------

NEW_RUN_SHOWN = """([old]) => {
    const run = document.body.innerText.match(/\\bRun (\\d+)\\b/);
    const table = document.querySelector('[role=grid][aria-label="Invoices"]');
    return run !== null && run[1] !== old && table !== null
        && table.querySelectorAll('[role=gridcell]').length > 0;
}"""


def bench_browser(work: Path, cases: list[Case], warm_up: Path, serve_args: list[str]) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    db = f"sqlite:///{work / 'browser.db'}"
    slem("users", "add", USER, "--role", "manager", "--password-stdin", "--db", db, cwd=work, stdin=PASSWORD)
    args = ["--contracts", str(CONTRACTS), "--db", db, "--runs-dir", str(work / "browser_runs"), *serve_args]
    with serving(work, *args) as url, browser() as chromium:
        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_label("username").fill(USER)
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_role("tab", name="Upload")).to_be_visible()
        upload_and_score(page, warm_up)  # the server's imports, first use of the database
        for case in cases:
            for path in case.files:
                upload, scored = upload_and_score(page, path)
                case.times.setdefault("upload", []).append(upload)
                case.times.setdefault("browser", []).append(scored)


def upload_and_score(page: Any, path: Path) -> tuple[float, float]:
    """Seconds to upload ``path`` into the Readings input, and from "Score readings" to the invoice rows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Upload").click()
    readings = page.locator(".block").filter(has_text="Readings (CSV or Parquet)")
    clear = readings.get_by_role("button", name="Clear")
    if clear.count():
        clear.click()
    old = re.search(r"\bRun (\d+)\b", page.locator("body").inner_text())
    started = time.perf_counter()
    readings.locator("input[type=file]").set_input_files(path)
    shown = readings.get_by_role("row", name=re.compile(rf"^{re.escape(path.name)}"))
    expect(shown.get_by_role("link")).to_have_attribute("href", re.compile("/gradio_api/file="))  # uploaded
    upload = time.perf_counter() - started
    page.get_by_role("button", name="Score readings").click()
    started = time.perf_counter()
    page.get_by_role("tab", name="Billing").click()
    try:
        page.wait_for_function(NEW_RUN_SHOWN, arg=[old.group(1) if old else None], polling="raf")
    except PlaywrightTimeout:
        shot = path.with_suffix(".timeout.png")
        page.screenshot(path=shot, full_page=True)
        headline = page.get_by_text(re.compile(r"^Run \d+$")).all_inner_texts()
        raise SystemExit(f"no new run's invoices for {path.name}; shown: {headline} (page: {shot})") from None
    scored = time.perf_counter() - started
    errors = page.get_by_test_id("toast-body")
    if errors.count():
        raise SystemExit(f"the app shows an error for {path.name}: {errors.first.inner_text()}")
    return upload, scored


def check_models(work: Path, models: bool) -> None:
    """Stop if any run was scored with models when it should not have been, or without when it should."""
    for summary in sorted(work.glob("*_runs/run-*/summary.json")):
        used = bool(json.loads(summary.read_text(encoding="utf-8")).get("model_versions"))
        if used != models:
            raise SystemExit(f"{summary.parent.name} was scored {'with' if used else 'without'} models")


# --- the report -----------------------------------------------------------------------------------------


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def report(cases: list[Case], models: bool) -> None:
    print()
    print(
        f"Models: {'trained on 4 other weeks of the same zones' if models else 'none (billing and cleaning)'}"
    )
    print()
    print(
        "| path | input | readings | upload median [s] | to results median [s] | best [s] | runs | target |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for path in ("handler", "browser"):
        for case in cases:
            times = case.times.get(path)
            if not times:
                continue
            uploads = case.times.get("upload") if path == "browser" else None
            upload = f"{statistics.median(uploads):.2f}" if uploads else "–"
            median = statistics.median(times)
            target = TARGETS.get(case.rows)
            verdict = "–" if target is None else f"≤ {target:.0f} s {'met' if median <= target else 'MISSED'}"
            print(
                f"| {path} | {case.fmt} | {case.rows_in:,} | {upload} | {median:.2f} | {min(times):.2f} "
                f"| {len(times)} | {verdict} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", nargs="+", choices=["parquet", "csv"], default=["parquet", "csv"])
    parser.add_argument("--repeat", type=int, default=3, help="runs (files) per size and format")
    parser.add_argument("--models", action="store_true", help="train models first and score with them")
    parser.add_argument("--skip", choices=["handler", "browser"], help="leave one path out")
    args = parser.parse_args()
    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"load average (1 / 5 / 15 min) at start: {load()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="slem-bench-app-"))
    try:
        os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
        cases = [generate(work, rows, fmt, args.repeat) for rows in args.sizes for fmt in args.formats]
        warm_up = work / "warm-up.parquet"  # a small file no case uploads: a new run, like every case
        generate_file(warm_up, days=1, zones=10, seed=0)
        serve_args = train(work) if args.models else []
        if args.skip != "handler":
            bench_handler(work, cases, warm_up, args.models)
            print(f"load average after the handler runs: {load()}", flush=True)
        if args.skip != "browser":
            bench_browser(work, cases, warm_up, serve_args)
            print(f"load average after the browser runs: {load()}", flush=True)
        check_models(work, args.models)
        report(cases, args.models)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

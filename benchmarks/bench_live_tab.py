"""One refresh of the app's Live tab on a site of 2,000 live zones (issue 13, SPEC §9), SQLite and PostgreSQL.

Builds a store with only the live state the tab reads — ``--zones`` zones in ``--buildings`` buildings of
five floors, each with a ``live_zones`` row (dark, lit in contract, overtime now, cleaning now or silent,
with last readings up to a minute old, the silent ones hours old), ``--history-days`` days of
``live_power`` per building up to now, the same days of hourly ``live_bands`` per zone, ``--open-alerts``
open alerts among ``--resolved-alerts`` resolved ones — then times what the server does when the tab's
timer ticks: ``Handlers(config).live(request)`` (who is signed in, one snapshot of the live tables, the
states, the overtime estimate, both figures and the three tables), after one warm-up call that also asks
for the champion model once and sums today's bands. Also timed apart: the SELECTs alone (``read_live``)
with the bands kept by a ``BandCache`` as the tab keeps them, and with the bands summed again (the first
refresh of a day, or after the worker writes them), and Gradio's ``postprocess`` of the two figures (what is
sent to the browser). Prints the median and best of
``--runs`` refreshes per backend.

PostgreSQL: the local server (``--pg``, default ``postgresql://postgres@127.0.0.1:5432``, trust auth), in
a database created for the run and dropped after it.

    .venv/bin/python benchmarks/bench_live_tab.py [--zones 2000] [--runs 15] [--backends sqlite pg]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import psycopg
from sqlalchemy import Engine, insert

from slem_ml.app.live import live_board
from slem_ml.app.ui import Handlers
from slem_ml.app.workspace import AppConfig
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.live_view import BandCache, read_live
from slem_ml.storage.tables import Alert, LiveBand, LivePower, LiveZone, StoreZone

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
FLOORS = 5
CLIENTS = ("C001", "C002", "C003", "C004", "C006")  # the sample contracts' clients that have closing hours


def build(engine: Engine, args: argparse.Namespace, now_ms: int, rng: np.random.Generator) -> None:
    """The live state of ``args.zones`` zones at ``now_ms`` (module docstring), in one transaction."""
    per_floor = -(-args.zones // (args.buildings * FLOORS))
    zones = []
    for i in range(args.zones):
        building, rest = divmod(i, FLOORS * per_floor)
        floor, zone = divmod(rest, per_floor)
        zones.append({"id": i + 1, "zone_id": f"B{building + 1:02d}-F{floor + 1}-Z{zone + 1}",
                      "building": f"B{building + 1:02d}", "floor": str(floor + 1)})  # fmt: skip
    kind = rng.choice(5, size=args.zones, p=[0.55, 0.27, 0.08, 0.05, 0.05])  # dark, lit, over, clean, silent
    live = []
    for z, k in zip(zones, kind.tolist(), strict=True):
        last = now_ms - int(rng.integers(0, MINUTE)) - (int(rng.integers(2, 48)) * HOUR if k == 4 else 0)
        run_start = last - int(rng.integers(10, 240)) * MINUTE if k == 2 else None
        live.append({
            "zone_key": z["id"], "last_ms": last, "power_w": 0.0 if k == 0 else float(rng.uniform(20, 60)),
            "client_id": CLIENTS[z["id"] % len(CLIENTS)], "lit": k in (1, 2, 3), "in_contract": k == 1,
            "cleaning": k == 3, "interval_ms": MINUTE, "run_start_ms": run_start,
            "run_energy_wh": 0.0 if run_start is None else (last - run_start) / HOUR * 40.0,
            "spike_first_ms": None, "spike_last_ms": None, "updated_at": dt.datetime.now(dt.UTC),
        })  # fmt: skip
    first_day = now_ms // DAY * DAY - (args.history_days - 1) * DAY
    buckets = np.arange(first_day, now_ms, 15 * MINUTE)
    power = [
        {"building": f"B{b + 1:02d}", "bucket_ms": int(t), "energy_wh": float(rng.uniform(500, 4000))}
        for b in range(args.buildings)
        for t in buckets
    ]
    hours = np.arange(first_day, first_day + args.history_days * DAY, HOUR)
    bands = [
        {"zone_key": z["id"], "hour_ms": int(t), "expected_w": 30.0, "lower_w": 10.0, "upper_w": 50.0}
        for z in zones
        for t in hours
    ]
    alerted = rng.choice(args.zones, size=args.open_alerts + args.resolved_alerts)
    alerts = []
    for n, z in enumerate(alerted.tolist()):
        at = dt.datetime.fromtimestamp((now_ms - int(rng.integers(0, 90 * DAY))) / 1000, dt.UTC)
        alerts.append({
            "alert_id": f"bench-{n}", "zone_id": zones[z]["zone_id"], "kind": "spike", "severity": "warning",
            "status": "open" if n < args.open_alerts else "resolved", "detected_at": at, "first_seen": at,
            "last_seen": at, "score": 1.0, "detail": "a bench alert", "run_id": None, "last_run_id": None,
        })  # fmt: skip
    with write_session(engine) as session:
        connection = session.connection()
        for table, rows in ((StoreZone, zones), (LiveZone, live), (LivePower, power), (LiveBand, bands),
                            (Alert, alerts)):  # fmt: skip
            for at in range(0, len(rows), 20_000):
                connection.execute(insert(table), rows[at : at + 20_000])
    print(f"  store: {len(zones):,} zones, {len(power):,} live_power rows, {len(bands):,} live_bands rows, "
          f"{len(alerts):,} alerts ({args.open_alerts:,} open)")  # fmt: skip


def timed(call: Any, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def measure(url: str, args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    engine = open_database(url)
    now_ms = int(time.time() * 1000)
    try:
        build(engine, args, now_ms, np.random.default_rng(7))
        day = now_ms // DAY * DAY  # the SELECTs alone, for a UTC day: the tab asks for the site's
        summed = timed(lambda: read_live(engine, day, day + DAY), args.runs)
        cache = BandCache()
        read_live(engine, day, day + DAY, cache=cache)
        cached = timed(lambda: read_live(engine, day, day + DAY, cache=cache), args.runs)
    finally:
        engine.dispose()
    config = AppConfig(
        database_url=url, contracts=SAMPLE_CONTRACTS, models_dir=work / "models",
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}", runs_dir=work / "app_runs", open_user="bench",
    )  # fmt: skip
    handlers, request = Handlers(config), gr.Request(username="bench")
    board = handlers.live(request)  # warm-up: imports, the site's contracts, the champion asked once
    assert board.overtime.shape[0] > 0 and board.stale.shape[0] > 0, "the bench store should show both"
    refresh = timed(lambda: handlers.live(request), args.runs)
    plot = gr.Plot()
    board = live_board(config, "bench")
    send = timed(lambda: (plot.postprocess(board.floors), plot.postprocess(board.power)), args.runs)
    return {
        "handler (one refresh)": refresh,
        "SELECTs alone (read_live, bands kept)": cached,
        "SELECTs alone, bands summed (a day's first refresh)": summed,
        "figures to JSON (Gradio's postprocess)": send,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument("--buildings", type=int, default=10)
    parser.add_argument("--history-days", type=int, default=30, help="days of live_power and live_bands")
    parser.add_argument("--open-alerts", type=int, default=150)
    parser.add_argument("--resolved-alerts", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "pg"], choices=["sqlite", "pg"])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    results: dict[str, dict[str, list[float]]] = {}
    for backend in args.backends:
        print(f"{backend}:")
        with tempfile.TemporaryDirectory(prefix="bench_live_tab_") as folder:
            work = Path(folder)
            if backend == "sqlite":
                results[backend] = measure(f"sqlite:///{work / 'slem.db'}", args, work)
                continue
            name = f"bench_live_tab_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(f"{args.pg}/test", autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            try:
                url = args.pg.replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
                results[backend] = measure(url, args, work)
            finally:
                with psycopg.connect(f"{args.pg}/test", autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print("\n| backend | what | median [ms] | best [ms] | runs |\n|---|---|---|---|---|")
    for backend, parts in results.items():
        for what, times in parts.items():
            median, best = statistics.median(times), min(times)
            print(f"| {backend} | {what} | {median:.1f} | {best:.1f} | {len(times)} |")


if __name__ == "__main__":
    main()

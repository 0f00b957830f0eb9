"""One huge invoice (issue 15, item 6): peak memory and time of ``slem score`` and of its storing and writing
stages, for an invoice of 100,000 and 1,000,000 lines.

    .venv/bin/python benchmarks/bench_big_invoice.py                       # 100k and 1M lines, SQLite
    .venv/bin/python benchmarks/bench_big_invoice.py --lines 100000 --shape sessions
    .venv/bin/python benchmarks/bench_big_invoice.py --tree /tmp/bench-tree  # the code of a worktree

The input is a CSV in the shape the issue reported: ``--shape zones`` (default) gives N zones of client
C001 (sample contracts, Europe/Berlin, Mon–Fri 08:00–18:00) with one 100 W reading each on Monday
2025-02-10 at 20:00, so N one-hour overtime sessions, all on INV-C001-202502; ``--shape sessions`` gives
1,000 zones with 5-minute sessions every 10 minutes outside contracted hours through February (2 readings a
session: up to 2M readings are scored in one piece, more in batches). Each size is scored by a fresh
``python -m slem_ml score`` into a new SQLite database (or ``--db``, a PostgreSQL URL whose schema the script
empties first) with no models, its progress line read through a pseudo-terminal to know the stage. Memory
is the proportional set size (PSS, from ``/proc/PID/smaps_rollup``: pages a forked child shares with its
parent count once) of the process and its children, sampled every 0.1 s: the peak over the run and within
the ``storing`` stage (readings into the store, billing from it, the run and its invoice stored) and the
``writing`` stage (every output file). The figures print as a markdown table, with the date and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import pty
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "slem_ml" / "data" / "contracts.yaml"
STAGE = re.compile(r"\d+% (\S+)")


def readings(lines: int, shape: str) -> pd.DataFrame:
    """A readings frame that bills ``lines`` overtime sessions to INV-C001-202502 (module docstring)."""
    if shape == "zones":
        number = pd.Series(np.arange(lines))  # B{building}-F{floor}-Z{zone}: 1,000 zones a floor
        zones = "B" + (number // 100_000).astype(str) + "-F" + (number // 1000 % 100 + 1).astype(str)
        zones = zones + "-Z" + (number % 1000 + 1).astype(str)
        stamps = np.full(lines, "2025-02-10T20:00:00+01:00", dtype=object)
        power = np.full(lines, 100.0)
        return pd.DataFrame({"timestamp": stamps, "zone_id": zones, "client_id": "C001", "power_w": power})
    zones = 1_000
    per_zone = -(-lines // zones)
    # outside 08:00-18:00 on weekdays, every 10 minutes: 84 a weekday, 144 a weekend day
    minutes = pd.date_range("2025-02-01", "2025-02-28 23:50", freq="10min", tz="Europe/Berlin").as_unit("ms")
    open_hours = (minutes.day_of_week < 5) & (minutes.hour >= 8) & (minutes.hour < 18)
    starts = minutes[~open_hours][:per_zone]
    if len(starts) < per_zone:
        raise SystemExit(f"--shape sessions holds at most {zones * len(minutes[~open_hours]):,} lines")
    lit = np.tile(starts.asi8, zones)  # [ms]
    dark = lit + 5 * 60_000
    zone = np.repeat([f"HQ-F{z // 100 + 1}-Z{z % 100 + 1}" for z in range(zones)], len(starts))
    stamps = pd.DatetimeIndex(np.r_[lit, dark].astype("datetime64[ms]")).tz_localize("UTC")
    stamps = stamps.tz_convert("Europe/Berlin")
    frame = pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "zone_id": np.r_[zone, zone],
            "client_id": "C001",
            "power_w": np.r_[np.full(len(lit), 100.0), np.zeros(len(dark))],
        }
    )
    return frame.sort_values(["zone_id", "timestamp"], kind="stable", ignore_index=True)


class TreePss:
    """Peak PSS of a process and its descendants [bytes], overall and per stage, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.stage = "starting"
        self.peaks: dict[str, int] = {}
        self.entered: dict[str, float] = {}
        self.start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def enter(self, stage: str) -> None:
        if stage != self.stage:
            self.stage = stage
            self.entered.setdefault(stage, time.perf_counter() - self.start)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = sum(_pss(process.pid) for process in tree)
            stage = self.stage
            self.peaks[stage] = max(self.peaks.get(stage, 0), total)
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _span(memory: TreePss, stage: str, wall: float) -> float:
    """How long ``stage`` lasted [s]: until the next stage began, or the process ended."""
    begun = memory.entered.get(stage)
    if begun is None:
        return float("nan")
    later = [at for at in memory.entered.values() if at > begun]
    return (min(later) if later else wall) - begun


def _pss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


def score(path: Path, out: Path, db: str, work: Path, tree: Path) -> tuple[float, TreePss, str]:
    """``slem score`` of ``path``: wall time [s], its memory, its output."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(tree), "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    command = [
        sys.executable, "-m", "slem_ml", "score", str(path), "--contracts", str(CONTRACTS), "--out", str(out),
        "--db", db, "--models-dir", str(work / "no-models"),
        "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}",
    ]  # fmt: skip
    clock = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    memory = TreePss(process.pid)

    said: list[str] = []

    def follow() -> None:  # the progress line: "\r[####      ]  40% storing   1.2 s"
        pending = ""
        while True:
            try:
                block = os.read(master, 4096).decode("utf-8", "replace")
            except OSError:
                return
            if not block:
                return
            pending = (pending + block)[-400:]
            said.append(block)
            for found in STAGE.finditer(pending):
                memory.enter(found.group(1))

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    output, _ = process.communicate()
    wall = time.perf_counter() - clock
    memory.stop()
    reader.join(timeout=5)
    os.close(master)
    if process.returncode != 0:
        raise SystemExit(
            f"slem score failed ({process.returncode}):\n{output[-2000:]}{''.join(said)[-2000:]}"
        )
    return wall, memory, output


def _empty_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text  # lazy: only with --db postgresql

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shape", choices=["zones", "sessions"], default="zones")
    parser.add_argument("--db", default=None, help="A PostgreSQL URL (its public schema is emptied first).")
    parser.add_argument("--tree", type=Path, default=REPO, help="The slem code to run (default: this one).")
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    args = parser.parse_args()
    memory_gib = psutil.virtual_memory().total / 2**30
    print(
        f"{dt.date.today()} · {platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} cores · {memory_gib:.0f} GiB · Python {platform.python_version()} · "
        f"{'PostgreSQL' if args.db else 'SQLite'} · shape {args.shape}\n"
    )
    heads = ["invoice lines", "readings", "`slem score` [s]", "storing [s]", "writing [s]", "peak PSS [GiB]"]
    heads += ["storing peak", "writing peak", "printed PDF", "lines CSV [MB]"]
    print("| " + " | ".join(heads) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="slem-bench-big-", dir=args.work) as tmp:
        work = Path(tmp)
        for lines in args.lines:
            data = readings(lines, args.shape)
            path = work / f"readings-{lines}.csv"
            data.to_csv(path, index=False)
            db = args.db or f"sqlite:///{work / f'slem-{lines}.db'}"
            if args.db:
                _empty_postgres(args.db)
            wall, memory, _ = score(path, work / f"out-{lines}", db, work, args.tree)
            names = [stage for stage, _ in sorted(memory.entered.items(), key=lambda kv: kv[1])]
            invoices = work / f"out-{lines}" / "invoices"
            pdf = next(invoices.glob("*.pdf"))
            pages = len(re.findall(rb"/Type /Page\b", pdf.read_bytes()))
            csv = sum(p.stat().st_size for p in invoices.glob("*.lines.csv")) / 1e6
            gib = 2**30
            print(
                f"| {lines:,} | {len(data):,} | {wall:.1f} | {_span(memory, 'storing', wall):.1f} | "
                f"{_span(memory, 'writing', wall):.1f} | "
                f"{max(memory.peaks.values()) / gib:.2f} | {memory.peaks.get('storing', 0) / gib:.2f} | "
                f"{memory.peaks.get('writing', 0) / gib:.2f} | {pages} page{'s' * (pages != 1)} | "
                f"{csv:.1f} |",
                flush=True,
            )
            peaks = ", ".join(f"{stage} {memory.peaks.get(stage, 0) / gib:.2f}" for stage in names)
            print(f"<!-- {lines:,} lines, peak PSS by stage [GiB]: {peaks} -->", flush=True)


if __name__ == "__main__":
    main()

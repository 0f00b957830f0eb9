"""Scoring at scale (issue 5): wall time and peak memory of every process, local engine and Dask.

    python benchmarks/bench_scale.py --points 1000000 10000000          # local and dask at each size
    python benchmarks/bench_scale.py --points 50000000 --engines local  # the 50 M run

Each point is a Parquet file (up to 2 M readings) or a folder of daily Parquet files from ``slem generate``
(5-minute readings; zones × days chosen to reach the size), scored by a fresh ``python -m slem_ml score``
process with the champion trained once on four weeks of the same zones at 15 minutes. Memory is sampled
every 0.1 s over the whole process tree (psutil, proportional set size: pages a forked child shares with
its parent count once): the peak of the sum (what the machine must hold) and the largest single process.
The Dask runs use a LocalCluster of 2 single-threaded worker processes (``--engine dask``, no scheduler
given). Results print as a markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from slem_ml.config import SAMPLE_CONTRACTS

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = SAMPLE_CONTRACTS
START = dt.date(2025, 1, 6)


def slem(*args: str) -> list[str]:
    return [sys.executable, "-m", "slem_ml", *args]


def shape(readings: int) -> tuple[int, int]:
    """Zones and days of 5-minute readings that make about ``readings`` (up to 180 days)."""
    zones = max(40, -(-readings // (288 * 180)))
    zones = max(zones, 200) if readings >= 5_000_000 else zones
    days = max(1, round(readings / (zones * 288)))
    return zones, days


class TreeMemory:
    """Peak resident memory of a process and all its descendants, sampled in a thread [bytes]."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_single = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for process in tree:
                try:  # PSS: pages shared with a forked child count once, split between them
                    sizes.append(process.memory_full_info().pss)
                except psutil.NoSuchProcess:
                    continue
            if sizes:
                self.peak_total = max(self.peak_total, sum(sizes))
                self.peak_single = max(self.peak_single, max(sizes))
                self.processes = max(self.processes, len(sizes))
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(cmd: list[str], cwd: Path) -> tuple[float, TreeMemory, str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "SLEM_DATABASE_URL": "sqlite:///slem.db"}
    clock = time.perf_counter()
    process = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    memory = TreeMemory(process.pid)
    out, err = process.communicate()
    wall = time.perf_counter() - clock
    memory.stop()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return wall, memory, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["local", "dask"], choices=["local", "dask"])
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    args = parser.parse_args()
    memory_gib = psutil.virtual_memory().total / 2**30
    print(
        f"machine: {platform.node()} · {os.cpu_count()} cores · {memory_gib:.0f} GiB · "
        f"Python {platform.python_version()}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="slem-bench-scale-", dir=args.work) as tmp:
        work = Path(tmp)
        for point in args.points:
            zones, days = shape(point)
            # up to 2 M readings one Parquet file (the local engine scores it in one piece), above that a
            # folder of daily files (scored in batches)
            data = work / (f"readings-{point}.parquet" if point <= 2_000_000 else f"readings-{point}")
            clock = time.perf_counter()
            subprocess.run(
                slem("generate", "--out", str(data) if data.suffix else f"{data}/", "--zones", str(zones),
                     "--days", str(days),
                     "--start", START.isoformat(), "--seed", "1", "--faults-after", "0.5"),
                check=True, capture_output=True,
            )  # fmt: skip
            generated = time.perf_counter() - clock
            history = work / f"history-{zones}.parquet"
            if not history.exists():
                subprocess.run(
                    slem("generate", "--out", str(history), "--zones", str(zones), "--days", "28",
                         "--start", (START - dt.timedelta(days=28)).isoformat(), "--step-minutes", "15",
                         "--seed", "2"),
                    check=True, capture_output=True,
                )  # fmt: skip
                models = work / f"models-{zones}"
                models.mkdir()
                subprocess.run(
                    slem("train", str(history), "--contracts", str(CONTRACTS)), cwd=models, check=True,
                    capture_output=True,
                )  # fmt: skip
            models = work / f"models-{zones}"
            for engine in args.engines:
                out = work / f"out-{point}-{engine}"
                wall, memory, stdout = run(
                    slem("score", str(data), "--contracts", str(CONTRACTS), "--out", str(out),
                         "--engine", engine),
                    cwd=models,
                )  # fmt: skip
                scored = re.search(r"scored ([\d,]+)", stdout)
                total, single = memory.peak_total / 2**30, memory.peak_single / 2**30
                rows.append(
                    f"| {scored.group(1) if scored else '?'} | {zones} × {days} | {engine} | {wall:.1f} | "
                    f"{total:.2f} | {single:.2f} | {memory.processes} | {generated:.0f} |"
                )
                print(rows[-1], flush=True)
    print(
        "\n| readings | zones × days | engine | wall [s] | peak memory, all processes [GiB] | "
        "largest process [GiB] | processes | generate [s] |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""End-to-end ``slem score`` (read, validate, bill, clean, write every output, store) at several sizes.

Each size is generated once with ``slem generate`` (200 zones; days chosen for the row count), then scored
by a fresh ``python -m slem_ml score`` process under ``/usr/bin/time``, which reports the wall time and the
peak resident memory of that process. Prints a markdown table for docs/benchmarks.md.

    python benchmarks/bench_score.py                      # 100k, 1M (periodic CSV and Parquet; legacy CSV)
    python benchmarks/bench_score.py --sizes 100000 1000000 3000000 10000000

Every run stores into a copy of a database that already has slem's schema (as in daily use: the schema
is created once), so each run is a new run, not an identical one. Sizes up to 1M are run ``--repeat``
times (median and best wall reported); the peak RSS is the scoring process's (the forked store and PDF
children are smaller: they share the parent's pages).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from slem_ml.config import SAMPLE_CONTRACTS

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = SAMPLE_CONTRACTS
ZONES = 200
PER_DAY = {"periodic": 288, "legacy": 48}  # readings per zone and day (legacy: 1-3 an hour, about 2)


def run(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS [MB] and stdout of one process."""
    timed = ["/usr/bin/time", "-f", "TIME %e %M", *cmd]
    done = subprocess.run(timed, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    match = re.search(r"TIME ([\d.]+) (\d+)", done.stderr)
    assert match, done.stderr
    return float(match.group(1)), int(match.group(2)) / 1024, done.stdout


def generate(fmt: str, rows: int, path: Path) -> int:
    days = max(1, round(rows / (ZONES * PER_DAY[fmt])))
    cmd = [sys.executable, "-m", "slem_ml", "generate", "--out", str(path), "--format", fmt]
    cmd += ["--days", str(days), "--zones", str(ZONES), "--seed", "1", "--start", "2025-01-06"]
    subprocess.run(cmd, check=True, capture_output=True)
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", nargs="+", default=["periodic.csv", "periodic.parquet", "legacy.csv"])
    parser.add_argument("--repeat", type=int, default=5, help="runs per size up to 1M rows")
    args = parser.parse_args()
    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print()
    print(
        "| input | rows in | days | wall median [s] | wall best [s] | runs | peak RSS [MB] "
        "| read [s] | coverage [s] | bill [s] | clean [s] | invoice lines | cleaning sessions |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="slem-bench-") as tmp:
        work = Path(tmp)
        template = work / "template.db"
        subprocess.run(  # a database with slem's schema and nothing else
            [
                sys.executable,
                "-c",
                f"from slem_ml.storage import open_database; open_database('sqlite:///{template}').dispose()",
            ],
            check=True,
        )
        for size in args.sizes:
            for spec in args.formats:
                fmt, suffix = spec.split(".")
                data = work / f"{fmt}-{size}.{suffix}"
                days = generate(fmt, size, data)
                out = work / f"out-{fmt}-{size}-{suffix}"
                walls, peaks = [], []
                for _ in range(args.repeat if size <= 1_000_000 else 1):
                    db = work / "bench.db"
                    shutil.copyfile(template, db)
                    cmd = [sys.executable, "-m", "slem_ml", "score", str(data), "--contracts", str(CONTRACTS)]
                    cmd += ["--out", str(out), "--db", f"sqlite:///{db}"]
                    wall, rss, _ = run(cmd, work)
                    walls.append(wall)
                    peaks.append(rss)
                summary = json.loads((out / "summary.json").read_text())
                t = summary["timings"]
                print(
                    f"| {fmt} {suffix} | {summary['rows_in']:,} | {days} | {statistics.median(walls):.2f} "
                    f"| {min(walls):.2f} | {len(walls)} | {max(peaks):,.0f} | {t.get('read_s', 0):.2f} "
                    f"| {t.get('coverage_s', 0):.2f} | {t.get('billing_s', 0):.2f} "
                    f"| {t.get('cleaning_s', 0):.2f} | {summary['totals']['lines']:,} "
                    f"| {summary['cleaning']['sessions']:,} |",
                    flush=True,
                )
                data.unlink()


if __name__ == "__main__":
    main()

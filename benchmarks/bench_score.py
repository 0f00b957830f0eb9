"""End-to-end ``slem score`` (read, validate, bill, clean, write every output, store) at several sizes.

Each size is generated once with ``slem generate`` (200 zones; days chosen for the row count), then scored
by a fresh ``python -m slem_ml score`` process under ``/usr/bin/time``, which reports the wall time and the
peak resident memory of that process. Prints a markdown table for docs/benchmarks.md.

    python benchmarks/bench_score.py                      # 100k, 1M (periodic CSV and Parquet; legacy CSV)
    python benchmarks/bench_score.py --sizes 100000 1000000 3000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "slem_ml" / "data" / "contracts.yaml"
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
    args = parser.parse_args()
    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print()
    print("| input | rows in | days | wall [s] | peak RSS [MB] | read | bill | clean | store | lines |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="slem-bench-") as tmp:
        work = Path(tmp)
        for size in args.sizes:
            for spec in args.formats:
                fmt, suffix = spec.split(".")
                data = work / f"{fmt}-{size}.{suffix}"
                days = generate(fmt, size, data)
                out = work / f"out-{fmt}-{size}-{suffix}"
                cmd = [sys.executable, "-m", "slem_ml", "score", str(data), "--contracts", str(CONTRACTS)]
                cmd += ["--out", str(out), "--db", f"sqlite:///{work / 'bench.db'}"]
                wall, rss, _ = run(cmd, work)
                summary = json.loads((out / "summary.json").read_text())
                t = summary["timings"]
                lines = sum(c.get("lines", 0) for c in summary.get("clients", {}).values())
                print(
                    f"| {fmt} {suffix} | {summary['rows_in']:,} | {days} | {wall:.2f} | {rss:,.0f} "
                    f"| {t.get('read_s', 0):.2f} | {t.get('billing_s', 0):.2f} "
                    f"| {t.get('cleaning_s', 0):.2f} | {t.get('store_s', 0):.2f} | {lines:,} |",
                    flush=True,
                )
                data.unlink()


if __name__ == "__main__":
    main()

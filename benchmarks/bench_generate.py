"""How fast the generator makes a year of readings: 12 months × 200 zones × 5 min (≈ 21 M rows).

Run from the repository root: ``.venv/bin/python benchmarks/bench_generate.py [--days N] [--zones Z]
[--step M] [--seed S] [--csv]``. Times generation and Parquet writing separately (and CSV writing with
``--csv``), reports the process's peak RSS (``resource.getrusage``) and prints a markdown table row.
The files go to a temporary folder that is removed afterwards; nothing is appended to the docs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slem_ml.generator.generate import GeneratorConfig, default_site, generate, write_generated  # noqa: E402


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far [GB] (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if platform.system() == "Darwin" else peak * 1024 / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--zones", type=int, default=200)
    parser.add_argument("--step", type=int, default=5, help="reading interval [min]")
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", action="store_true", help="also time writing CSV (slow and large)")
    args = parser.parse_args()

    site = default_site()  # loaded before the clock starts: it is the CLI's job, not the generator's
    config = GeneratorConfig(
        start=dt.date.fromisoformat(args.start),
        days=args.days,
        zones=args.zones,
        step_minutes=args.step,
        seed=args.seed,
        site=site,
    )
    rss_before = peak_rss_gb()
    clock = time.perf_counter()
    data = generate(config)
    generate_s = time.perf_counter() - clock
    rss_generate = peak_rss_gb()
    rows = len(data.readings)

    with tempfile.TemporaryDirectory(prefix="bench_generate-") as folder:
        out = Path(folder) / "readings.parquet"
        clock = time.perf_counter()
        write_generated(data, out, Path(folder) / "labels.parquet")
        parquet_s = time.perf_counter() - clock
        parquet_mb = out.stat().st_size / 1e6
        csv_cell = ""
        if args.csv:
            clock = time.perf_counter()
            write_generated(data, Path(folder) / "readings.csv")
            csv_cell = f" {time.perf_counter() - clock:.1f} |"
    rss_total = peak_rss_gb()

    kinds = data.labels["kind"].value_counts()
    print(
        f"labels: {len(data.labels):,} ("
        + ", ".join(f"{k} {n:,}" for k, n in kinds.items())
        + f"); peak RSS before generating {rss_before:.2f} GB",
        file=sys.stderr,
    )
    header = (
        "| rows | zones × days × step | generate [s] | write Parquet [s] | generate + write [s] "
        "| Parquet [MB] | peak RSS after generate [GB] | peak RSS [GB] |"
        + (" write CSV [s] |" if args.csv else "")
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    print(
        f"| {rows:,} | {args.zones} × {args.days} × {args.step} min | {generate_s:.1f} | {parquet_s:.1f} "
        f"| {generate_s + parquet_s:.1f} | {parquet_mb:.0f} | {rss_generate:.2f} | {rss_total:.2f} |"
        + csv_cell
    )


if __name__ == "__main__":
    main()

"""slem beside the legacy system on the legacy system's own data (issue 16, item 1), in the same run.

The legacy system came with its own generator and rules-only processing script (``../shared/peers/``, kept as
written). This script generates their file (``seed_generator.py ROWS SEED``: 66 zones over two months, 3 % of
readings planted at 2.5–4× their value), trains a champion on it once (``slem train``, its own MLflow store
and ``models/``), then runs, ``--repeat`` times and alternating so that both meet the same machine:

- the legacy script (``seed_processing.py``: contracted hours, late cleaning, power > 2 × the zone mean,
  row-wise ``apply``; writes ``processed_sensor_data.csv``);
- ``slem score`` with the champion (read, validate, bill, clean, every alert, every output file and the run
  stored), on the same file with the legacy script's contracted hours (``seed_contracts.yaml``), into a
  copy of a SQLite database that has slem's schema and nothing else (as in daily use: the schema is made
  once), so that every reading is new.

Each is one fresh process under ``/usr/bin/time`` (wall time, peak RSS). Prints a markdown table for
docs/benchmarks.md with the machine and date; the goal is slem at least 5× faster than the legacy script::

    .venv/bin/python benchmarks/bench_legacy.py                       # 1 M rows, 3 runs each: about 3 min
    .venv/bin/python benchmarks/bench_legacy.py --rows 100000 --repeat 1   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
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

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO.parent / "shared" / "peers"
DATA = "company_sensor_data.csv"
Runs = list[tuple[float, float]]  # (wall [s], peak RSS [MB]) of each run


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS [MB] of one process; stops the benchmark if it fails."""
    done = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M", *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    match = re.search(r"TIME ([\d.]+) (\d+)", done.stderr)
    assert match, done.stderr
    return float(match.group(1)), int(match.group(2)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows the legacy generator writes")
    parser.add_argument("--seed", type=int, default=7, help="the legacy generator's random seed")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--peers", type=Path, default=PEERS, help="folder of the legacy scripts")
    args = parser.parse_args()
    for name in ("seed_generator.py", "seed_processing.py", "seed_contracts.yaml"):
        if not (args.peers / name).is_file():
            raise SystemExit(f"{args.peers / name} not found (--peers names the legacy scripts' folder)")
    python = sys.executable
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    env.pop("SLEM_DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="slem-legacy-") as tmp:
        work = Path(tmp)
        contracts = work / "seed_contracts.yaml"
        shutil.copyfile(args.peers / "seed_contracts.yaml", contracts)
        wall, _ = timed(
            [python, str(args.peers / "seed_generator.py"), str(args.rows), str(args.seed)], work, env
        )
        print(f"legacy generator: {args.rows:,} rows (seed {args.seed}) in {wall:.1f} s", flush=True)
        train = [python, "-m", "slem_ml", "train", DATA, "--contracts", str(contracts)]
        wall, rss = timed(train, work, env)
        print(
            f"slem train on it: {wall:.1f} s, peak {rss:,.0f} MB (the champion slem scores with)", flush=True
        )
        template = work / "template.db"  # slem's schema, nothing else
        schema = f"from slem_ml.storage import open_database; open_database('sqlite:///{template}').dispose()"
        subprocess.run([python, "-c", schema], check=True, env=env)
        legacy: Runs = []
        slem: Runs = []
        for run in range(args.repeat):
            legacy.append(timed([python, str(args.peers / "seed_processing.py")], work, env))
            db = work / "bench.db"
            shutil.copyfile(template, db)
            score = [python, "-m", "slem_ml", "score", DATA, "--contracts", str(contracts), "--out", "out"]
            slem.append(timed([*score, "--db", f"sqlite:///{db}"], work, env))
            print(f"run {run + 1}: legacy {legacy[-1][0]:.2f} s, slem {slem[-1][0]:.2f} s", flush=True)
        summary = json.loads((work / "out" / "summary.json").read_text())
    _table(legacy, slem, summary, args)


def _table(
    legacy: list[tuple[float, float]],
    slem: list[tuple[float, float]],
    summary: dict,
    args: argparse.Namespace,
) -> None:
    legacy_s = statistics.median(w for w, _ in legacy)
    slem_s = statistics.median(w for w, _ in slem)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print()
    print(f"{when} · {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"legacy generator's file: {args.rows:,} rows, seed {args.seed}; median of {len(slem)} runs each")
    print()
    print("| | wall median [s] | runs [s] | peak RSS [MB] |")
    print("|---|---:|---|---:|")
    for name, runs, wall in (
        ("legacy `seed_processing.py`", legacy, legacy_s),
        ("`slem score`", slem, slem_s),
    ):
        shown = " / ".join(f"{w:.2f}" for w, _ in runs)
        print(f"| {name} | {wall:.2f} | {shown} | {max(m for _, m in runs):,.0f} |")
    print()
    timings = ", ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in summary["timings"].items())
    ratio = legacy_s / slem_s
    said = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
    print(
        f"slem is {said} than the legacy script (goal: at least 5x faster); last run's stages [s]: {timings}."
    )
    print(
        f"It scored {summary['rows_scored']:,} readings into {summary['totals']['lines']:,} invoice lines, "
        f"{summary['cleaning']['sessions']:,} cleaning sessions and {summary['alerts']['count']:,} alerts."
    )


if __name__ == "__main__":
    main()

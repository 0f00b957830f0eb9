"""What the models cost: ``slem train`` on 500 zones × 90 days of 15-minute readings, and the time the models
add to ``slem score`` of 1,000,000 readings (issue 3: ≤ 3 min and ≤ 3 s on this machine).

Each command is a fresh ``python -m slem_ml`` process under ``/usr/bin/time`` (wall time, peak RSS), in a
scratch working directory with its own MLflow store (``sqlite:///mlflow.db``, ``./mlruns``) and ``models/``.

    python benchmarks/bench_models.py                  # train 500 × 90, then score 1M with and without models
    python benchmarks/bench_models.py --zones 100 --days 30 --repeat 1   # a quick look

Scoring is timed three ways, ``--repeat`` times each (median reported): without models (no store, no
``models/``), with the champion from the registry, and from the ``models/`` export alone (no store).
"""

from __future__ import annotations

import argparse
import datetime as dt
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


def run(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS [MB] and stdout of one process."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "SLEM_DATABASE_URL": "sqlite:///slem.db"}
    env.pop("MLFLOW_TRACKING_URI", None)
    timed = ["/usr/bin/time", "-f", "TIME %e %M", *cmd]
    done = subprocess.run(timed, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    match = re.search(r"TIME ([\d.]+) (\d+)", done.stderr)
    assert match, done.stderr
    return float(match.group(1)), int(match.group(2)) / 1024, done.stdout


def slem(*args: str) -> list[str]:
    return [sys.executable, "-m", "slem_ml", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--score-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="slem-bench-models-") as tmp:
        work = Path(tmp)
        train_file = work / "train.parquet"
        gen = ["generate", "--out", str(train_file), "--zones", str(args.zones), "--days", str(args.days)]
        first = dt.date(2025, 2, 1)
        gen += ["--start", first.isoformat(), "--step-minutes", "15", "--seed", "1"]
        subprocess.run(slem(*gen), check=True, capture_output=True)
        wall, rss, out = run(slem("train", str(train_file), "--contracts", str(CONTRACTS)), work)
        print(
            f"\n`slem train` {args.zones} zones × {args.days} days at 15 min: {wall:.1f} s, peak {rss:.0f} MB"
        )
        print("\n".join("    " + line for line in out.splitlines()))

        # 1M readings of the same zones at 5 minutes, right after the training period
        days = max(1, round(args.score_rows / (args.zones * 288)))
        score_file = work / "score.parquet"
        gen = ["generate", "--out", str(score_file), "--zones", str(args.zones), "--days", str(days)]
        start = first + dt.timedelta(days=args.days)
        subprocess.run(
            slem(*gen, "--seed", "2", "--start", start.isoformat()), check=True, capture_output=True
        )
        bare = work / "bare"
        bare.mkdir()
        exported = work / "exported"
        exported.mkdir()
        shutil.copytree(work / "models", exported / "models")
        cases = {
            "without models": bare,
            "champion from the registry": work,
            "champion from models/": exported,
        }
        print(f"\n`slem score` of {days} days × {args.zones} zones at 5 min ({args.repeat} runs each):\n")
        print("| models | wall median [s] | wall runs [s] | peak RSS [MB] |")
        print("|---|---:|---:|---:|")
        medians = {}
        for name, cwd in cases.items():
            walls, peaks = [], []
            for i in range(args.repeat):
                (cwd / "slem.db").unlink(missing_ok=True)
                wall, rss, out = run(
                    slem("score", str(score_file), "--contracts", str(CONTRACTS), "--out", f"res{i}"), cwd
                )
                walls.append(wall)
                peaks.append(rss)
                assert ("models: slem v1" in out) == (name != "without models"), out
            medians[name] = statistics.median(walls)
            runs = " / ".join(f"{w:.1f}" for w in walls)
            print(f"| {name} | {medians[name]:.2f} | {runs} | {max(peaks):.0f} |")
        for name in list(cases)[1:]:
            print(f"\nadded by the models ({name}): {medians[name] - medians['without models']:+.2f} s")


if __name__ == "__main__":
    main()

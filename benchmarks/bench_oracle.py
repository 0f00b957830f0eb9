"""Engine against the slow reference on ~100k periodic readings: identical results, and how much faster.

Run from the repository root: ``.venv/bin/python benchmarks/bench_oracle.py [--rows N] [--seed S]``.
Prints a markdown table row: readings, engine seconds (``score``: coverage, billing, cleaning), reference
seconds (``tests/reference.py``, including turning the validated frame into records), speed ratio; best of
``--repeat`` runs each. Exits non-zero if any invoice line, invoice, cleaning session or covered time differs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slem_ml.config import SAMPLE_CONTRACTS  # noqa: E402
from slem_ml.config.site import SiteConfig, load_site  # noqa: E402
from slem_ml.io.reader import validate_frame  # noqa: E402
from slem_ml.scoring.score import score  # noqa: E402
from tests.reference import Record, reference_score  # noqa: E402
from tests.test_oracle import (  # noqa: E402
    compare_cleaning,
    compare_invoices,
    compare_lines,
    compare_readings,
)

CONTRACTS = SAMPLE_CONTRACTS  # Europe/Berlin, DE holidays, six clients
START = "2025-10-20T00:00:00+02:00"  # the period holds the autumn DST change (2025-10-26)


def synthetic_readings(rows: int, seed: int, site: SiteConfig) -> pd.DataFrame:
    """Periodic 5-minute readings: lit in office hours, some evenings of overtime or cleaning, jitter."""
    rng = np.random.default_rng(seed)
    zones = 40
    per_zone = -(-rows // zones)
    clients = sorted(site.clients)
    start = pd.Timestamp(START).tz_convert("UTC")
    frames = []
    for z in range(zones):
        step = pd.to_timedelta(np.arange(per_zone) * 300_000 + rng.integers(0, 2_000, per_zone), unit="ms")
        ts = start + step
        local_hour = ts.tz_convert(site.site.timezone).hour.to_numpy()
        weekday = ts.tz_convert(site.site.timezone).day_of_week.to_numpy()
        office = (local_hour >= 7) & (local_hour < 19) & (weekday < 5)
        evening = (local_hour >= 19) & (local_hour < 23) & (rng.random(per_zone) < 0.35)
        lit = office | evening | (rng.random(per_zone) < 0.03)
        power = np.where(lit, rng.normal(180.0, 25.0, per_zone).clip(20.0), rng.uniform(0.0, 3.0, per_zone))
        power = np.round(power, 3)
        cleaning = evening & (local_hour >= 21)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": ts,
                    "zone_id": f"HQ-F{z // 8 + 1}-Z{z % 8 + 1}",
                    "client_id": clients[z % len(clients)],
                    "power_w": power,
                    "cleaning_staff": cleaning,
                }
            )
        )
    return pd.concat(frames, ignore_index=True).iloc[:rows]


def generated_readings(rows: int, seed: int, site: SiteConfig) -> pd.DataFrame | None:
    """Periodic 5-minute readings from the generator (35 zones × 10 days), or ``None`` without it."""
    try:
        from slem_ml.generator.generate import GeneratorConfig, generate
    except ImportError:
        return None
    zones = 35
    days = -(-rows // (zones * 288)) + 1  # a few rows go missing in dropouts
    start = dt.date.fromisoformat(START[:10])
    config = GeneratorConfig(start=start, days=days, zones=zones, step_minutes=5, seed=seed, site=site)
    return generate(config).readings.iloc[:rows].reset_index(drop=True)


def records_of(frame: pd.DataFrame) -> list[Record]:
    """The reader's validated frame as reference records (input order = source line)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ms = (frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return [
        Record(epoch + dt.timedelta(milliseconds=int(m)), str(z), str(c), float(p), bool(k), int(line))
        for m, z, c, p, k, line in zip(
            ms,
            frame["zone_id"],
            frame["client_id"],
            frame["power_w"],
            frame["cleaning_staff"],
            frame["line"],
            strict=True,
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best one counts")
    parser.add_argument(
        "--synthetic", action="store_true", help="own simple readings, not slem_ml.generator.generate"
    )
    args = parser.parse_args()

    site = load_site(CONTRACTS)
    raw = None if args.synthetic else generated_readings(args.rows, args.seed, site)
    source = "slem_ml.generator.generate"
    if raw is None:
        raw, source = synthetic_readings(args.rows, args.seed, site), "synthetic"
    readings = validate_frame(raw, site)

    engine_s = reference_s = float("inf")
    for _ in range(args.repeat):  # best of N: the least disturbed run of each
        t0 = time.perf_counter()
        result = score(readings, site)
        engine_s = min(engine_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = reference_score(records_of(readings.frame), site)
        reference_s = min(reference_s, time.perf_counter() - t0)

    problems = (
        compare_lines(result.invoice_lines, ref.lines)
        + compare_invoices(result.invoices, ref.invoices)
        + compare_cleaning(result.cleaning_sessions, ref.cleaning_sessions)
        + compare_readings(result.readings.frame, ref)
    )
    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        raise SystemExit(f"engine and reference disagree ({len(problems)} differences)")

    rows = len(readings.frame)
    print(
        f"<!-- {source} readings, {len(ref.lines)} invoice lines, {len(ref.invoices)} invoices, "
        f"{len(ref.cleaning_sessions)} cleaning sessions: identical -->"
    )
    print("| readings | engine [s] | reference [s] | speed-up |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {rows:,} | {engine_s:.3f} | {reference_s:.2f} | {reference_s / engine_s:.0f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

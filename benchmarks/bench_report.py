"""Report generation for a month of a large site (issue 14, SPEC §10): ``make_report`` on 500 zones.

A standalone script (not imported by slem_ml, not a test). It generates ``--zones`` zones at 15 minutes
for ``--days`` days from ``--start`` (the generator of ``slem generate``), scores and stores them in a new
SQLite store (as ``slem score`` does), then times :func:`slem_ml.reports.make.make_report` for the month
``--period`` of the whole site: all three formats, and the PDF alone, without a champion and with one
(trained here on ``--train-zones`` of the zones' first four weeks, as ``slem train`` would, then passed in
directly). Each configuration runs ``--repeat`` times in this process; the phases (gather, charts, html,
pdf, xlsx) come from :attr:`MadeReport.timings`, best of the repeats::

    .venv/bin/python benchmarks/bench_report.py                 # about 3 min here
    .venv/bin/python benchmarks/bench_report.py --zones 50 --repeat 1   # a quick look

The goal (issue 14): the PDF of a month of 500 zones in under 10 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from slem_ml.generator.generate import GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.training import TrainingConfig, train_models
from slem_ml.reports.make import make_report
from slem_ml.scoring.score import score
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.upload import store_upload

PHASES = ("gather", "charts", "html", "pdf", "xlsx")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2025, 2, 17))
    parser.add_argument("--period", default="2025-03")
    parser.add_argument("--train-zones", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    site = default_site()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; work: {work}")
    try:
        clock = time.perf_counter()
        generated = generate(
            GeneratorConfig(start=args.start, days=args.days, zones=args.zones, step_minutes=15, seed=7)
        )
        frame = generated.readings
        print(
            f"generated {len(frame):,} readings of {args.zones} zones in {time.perf_counter() - clock:.1f} s"
        )

        clock = time.perf_counter()
        engine = open_database(f"sqlite:///{work / 'slem.db'}")
        validated = validate_frame(frame, site)
        result = score(validated, site)
        with write_session(engine) as session:
            store_upload(
                session, result, [result.readings.frame], cleaning=result.cleaning_source, actor="bench"
            )
        print(f"scored and stored in {time.perf_counter() - clock:.1f} s")

        clock = time.perf_counter()
        zones = sorted(frame[S.ZONE_ID].astype(str).unique())[: args.train_zones]
        first = frame[S.TIMESTAMP].min()
        train = frame[
            frame[S.ZONE_ID].astype(str).isin(zones) & (frame[S.TIMESTAMP] < first + dt.timedelta(days=28))
        ]
        bundle = train_models(
            validate_frame(train, site), site, TrainingConfig(forecaster={"n_estimators": 40})
        ).bundle
        print(f"champion trained on {len(zones)} zones × 28 days in {time.perf_counter() - clock:.1f} s")

        rows = []
        for label, models in (("no champion", None), ("champion", bundle)):
            for formats in (("html", "pdf", "xlsx"), ("pdf",)):
                best: dict[str, float] | None = None
                for _ in range(args.repeat):
                    clock = time.perf_counter()
                    made = make_report(engine, site, args.period, "site", models=models, formats=formats)
                    total = time.perf_counter() - clock
                    timings = {**made.timings, "total": total}
                    if best is None or total < best["total"]:
                        best = timings
                        sizes = {fmt: len(data) for fmt, (_, data) in made.files.items()}
                assert best is not None
                rows.append((label, "+".join(formats), best, sizes))
        engine.dispose()

        print(f"\nmake_report, {args.period}, whole site, {args.zones} zones (best of {args.repeat}) [s]:")
        print(
            f"{'models':<12} {'formats':<14} " + " ".join(f"{p:>7}" for p in (*PHASES, "total")) + "  sizes"
        )
        for label, formats, timings, sizes in rows:
            cells = " ".join(
                f"{timings[p]:>7.2f}" if p in timings else f"{'–':>7}" for p in (*PHASES, "total")
            )
            size_text = ", ".join(f"{fmt} {size / 1024:,.0f} KiB" for fmt, size in sizes.items())
            print(f"{label:<12} {formats:<14} {cells}  {size_text}")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

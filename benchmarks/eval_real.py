"""Evaluate slem's zone forecaster on two real lighting series (the protocol of docs/models-research.md).

Data (``--data``, default ``../shared/data/real/`` relative to the repository):

* CU-BEMS floor 4 zone 1 — ``sum_light(kW)`` every 15 minutes, Bangkok local time, Thai public holidays;
  one client open Mon–Fri 08:00–18:00; "on" = at least 500 W (the research's 0.5 kW threshold).
* UCI appliances, house lights — ``lights`` in Wh per 10 minutes (× 6 = mean W), Brussels local time,
  Belgian public holidays; one client open 24/7; default on threshold (5 W, i.e. any light).

Each series becomes canonical slem readings (tz-aware timestamps, ``zone_id``, ``client_id`` C1,
``power_w`` [W]), is validated with :func:`slem_ml.io.reader.validate_frame` against a site made by
:func:`slem_ml.config.site.parse_site`, and is aggregated with ``zone_hours`` + ``add_features`` (hourly mean
power [W] = the research's hourly energy [Wh]).

Protocol: test = the last 8 weeks before ``end`` (the end of the last complete hour), 8 weekly origins
``end − 8 w … end − 1 w``; at each origin the forecaster is trained as ``slem train`` trains it (default
parameters, global strategy): a backtest on the hours before the origin (8 weeks for one zone,
:func:`slem_ml.models.backtest.backtest_days_for`), then a fit on every hour before the origin with what that
backtest taught — the zone's weight of the level-scaled hour-of-week profile in the point forecast, the
on-probability's calibration, the interval's margins per state
(:func:`~slem_ml.models.backtest.fit_backtested`) — and it forecasts the next 168 hours. Nothing is tuned
on the test weeks. Baselines: seasonal-naive, the 4-week hour-of-week median and the level-scaled 12-week
profile (``profile_w``, :mod:`slem_ml.models.profile`), plus the all-zero forecast for reference;
"LightGBM alone" is the forecaster's own model before the profile is mixed in.

Measures, pooled over the 8 × 168 test hours: WAPE, CV(RMSE), NMBE, daily WAPE (sums per local day), the
80 % interval coverage (overall, lit and dark hours; also without the margins), the mean interval width,
and the Brier score of ``p_on`` against ``lit`` (calibrated, and the classifier's own; reference: the 4-week
same-hour-of-week lit frequency), with its reliability table (10 bins).

Run: ``.venv/bin/python benchmarks/eval_real.py [--data ../shared/data/real] [--only cubems|uci]
[--weeks-before 8]`` (the last option tests the 8 weeks before the test weeks instead: the validation weeks
on which, with generated data of other seeds, the settings of issue 16 were chosen).
Prints Markdown (pasted into docs/benchmarks.md). Fits run one after the other (LightGBM with 2 threads):
never run two of these at once on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import compute_coverage
from slem_ml.config.site import SiteConfig, parse_site
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.backtest import backtest, backtest_days_for, fit_backtested
from slem_ml.models.features import HOUR_MS, LIT, add_features, lagged, seasonal_baselines, zone_hours
from slem_ml.models.metrics import brier, coverage, cv_rmse, nmbe, reliability, wape

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real"
WEEK_MS = 168 * HOUR_MS
TEST_WEEKS = 8


@dataclass(frozen=True)
class Dataset:
    """One real series and how it becomes slem readings."""

    key: str
    label: str
    path: str  # relative to --data
    time_column: str
    column: str
    to_watts: float  # value × to_watts = mean power over the reading's interval [W]
    step_minutes: int
    zone_id: str
    site: dict[str, Any] = field(hash=False)


DATASETS = (
    Dataset(
        key="cubems",
        label="CU-BEMS floor 4 zone 1",
        path="cu-bems-floor4-zone1/cubems_floor4_zone1_15min.csv.gz",
        time_column="Date",
        column="sum_light(kW)",
        to_watts=1000.0,  # kW → W
        step_minutes=15,
        zone_id="CUBEMS-F4-Z1",
        site={
            "site": {"timezone": "Asia/Bangkok", "currency": "THB", "holidays": {"country": "TH"}},
            "sampling": {"on_threshold_w": 500, "max_gap_minutes": 15},
            "clients": {"C1": {"name": "office", "hours": {"mon-fri": "08:00-18:00"}}},
        },
    ),
    Dataset(
        key="uci",
        label="UCI appliances, house lights",
        path="uci-appliances/energydata_complete.csv.gz",
        time_column="date",
        column="lights",
        to_watts=6.0,  # Wh per 10 minutes → mean W
        step_minutes=10,
        zone_id="UCIHOUSE-F1-Z1",
        site={
            "site": {"timezone": "Europe/Brussels", "currency": "EUR", "holidays": {"country": "BE"}},
            "sampling": {"max_gap_minutes": 10},
            "clients": {"C1": {"name": "household", "hours": "24/7"}},
        },
    ),
)

#: Point forecasts compared: label → column of the pooled test frame.
METHODS = {
    "forecaster": S.EXPECTED_POWER_W,
    "LightGBM alone": "model_w",
    "level-scaled 12-week profile": "profile_w",
    "seasonal-naive": "seasonal_naive_w",
    "4-week hour-of-week median": "how_median_4w_w",
    "zero forecast": "zero_w",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the real datasets")
    parser.add_argument("--only", choices=[d.key for d in DATASETS], help="evaluate one dataset only")
    parser.add_argument(
        "--weeks-before",
        type=int,
        default=0,
        help="test the 8 weeks that end this many weeks before the data's end (8: the validation weeks)",
    )
    args = parser.parse_args()
    chosen = [d for d in DATASETS if args.only in (None, d.key)]
    missing = [str(args.data / d.path) for d in chosen if not (args.data / d.path).is_file()]
    if missing:
        sys.exit(
            "eval_real: real data not found: " + ", ".join(missing) + "\n"
            "  pass --data FOLDER (holding cu-bems-floor4-zone1/ and uci-appliances/)"
        )
    clock = time.perf_counter()
    load = os.getloadavg()[0]
    results = [evaluate(d, args.data, args.weeks_before) for d in chosen]
    total = time.perf_counter() - clock

    print()
    print(
        "| dataset | model | WAPE | CV(RMSE) | NMBE | WAPE_day | 80 % coverage all / lit / dark "
        "| Brier p_on |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for result in results:
        for line in result["rows"]:
            print(line)
    print()
    for result in results:
        for note in result["notes"]:
            print(f"* {note}")
    print()
    print("Reliability of p_on on the test weeks (hours, mean p_on → share lit, per bin):")
    print()
    print("| dataset | " + " | ".join(f"{b / 10:.1f}–{(b + 1) / 10:.1f}" for b in range(10)) + " |")
    print("|---|" + "---:|" * 10)
    for result in results:
        table = result["reliability"].set_index("bin_low")
        cells = []
        for b in range(10):
            row = table.loc[b / 10] if b / 10 in table.index else None
            cells.append(
                "–" if row is None else f"{int(row['hours'])}: {row['mean_p']:.2f} → {row['observed']:.2f}"
            )
        print(f"| {result['label']} | " + " | ".join(cells) + " |")
    print()
    parts = ", ".join(f"{r['label']} {r['seconds']:.0f} s" for r in results)
    print(
        f"Machine: {_cpus()} CPUs ({_cpu_model()}), load average {load:.1f} at start; "
        f"total run time {total:.0f} s ({parts}), load average {os.getloadavg()[0]:.1f} at the end."
    )


# --- data ------------------------------------------------------------------------------------------


def readings_of(dataset: Dataset, data: Path, site: SiteConfig) -> tuple[pd.DataFrame, int]:
    """Canonical readings of ``dataset``, and how many were dropped (local time in a DST gap or repeated)."""
    raw = pd.read_csv(data / dataset.path, usecols=[dataset.time_column, dataset.column])
    naive = pd.to_datetime(raw[dataset.time_column], format="%Y-%m-%d %H:%M:%S")
    local = naive.dt.tz_localize(site.site.timezone, ambiguous="NaT", nonexistent="NaT")
    keep = local.notna().to_numpy()
    frame = pd.DataFrame(
        {
            S.TIMESTAMP: local[keep].reset_index(drop=True),
            S.ZONE_ID: dataset.zone_id,
            S.CLIENT_ID: "C1",
            S.POWER_W: raw[dataset.column].to_numpy(dtype=float)[keep] * dataset.to_watts,
        }
    )
    return frame, int((~keep).sum())


def test_origins(hours: pd.DataFrame, step_minutes: int, weeks_before: int = 0) -> tuple[int, list[int]]:
    """``end`` [UTC ms] of the tested weeks (the end of the last complete hour, ``weeks_before`` weeks
    earlier) and the test origins, earliest first."""
    complete = hours.loc[hours["readings"] == 60 // step_minutes, "hour_ms"]
    end = int(complete.max()) + HOUR_MS - weeks_before * WEEK_MS
    return end, [end - k * WEEK_MS for k in range(TEST_WEEKS, 0, -1)]


# --- evaluation ------------------------------------------------------------------------------------


def evaluate(dataset: Dataset, data: Path, weeks_before: int = 0) -> dict[str, Any]:
    """Run the protocol on one dataset; Markdown table rows and notes."""
    clock = time.perf_counter()
    site = parse_site(dataset.site, source=f"{dataset.key} site")
    frame, in_gap = readings_of(dataset, data, site)
    readings = validate_frame(frame, site, source=dataset.path)
    report = readings.report
    hours = add_features(zone_hours(readings.frame, compute_coverage(readings.frame, site).is_on), site)
    hour_ms = hours["hour_ms"].to_numpy(dtype=np.int64)
    end, origins = test_origins(hours, dataset.step_minutes, weeks_before)
    tz = site.site.timezone

    weeks: list[pd.DataFrame] = []
    margins: list[str] = []
    chosen: list[str] = []
    fit_seconds = 0.0
    for i, origin in enumerate(origins):
        train = hours[hour_ms < origin]
        test = hours[(hour_ms >= origin) & (hour_ms < origin + WEEK_MS) & hours[S.POWER_W].notna()]
        t = time.perf_counter()
        result = backtest(train, {"strategy": "global"}, days=backtest_days_for(train))[0]
        model = fit_backtested(train, {"strategy": "global"}, result)
        fit_seconds += time.perf_counter() - t
        scale = max(model.zone_scale_w_[dataset.zone_id], 1.0)
        margins.append("/".join(f"{lo * scale:.3g},{hi * scale:.3g}" for lo, hi in
                                (model.margins_["lit"], model.margins_["dark"])))  # fmt: skip
        chosen.append(f"{model.profile_weights_.get(dataset.zone_id, model.profile_default_):g}")
        predicted = model.predict(test)
        week = pd.concat(
            [
                test[[S.ZONE_ID, "hour_ms", "hour_start", S.POWER_W, LIT]],
                predicted.drop(columns=[S.ZONE_ID, "hour_start"]),
                seasonal_baselines(test, hours),
            ],
            axis=1,
        )
        week["origin"] = i
        weeks.append(week)
    table = pd.concat(weeks, ignore_index=True)
    table["zero_w"] = 0.0
    table["lit_freq_4w"] = _lit_frequency(table, hours)
    table["local_day"] = table["hour_start"].dt.tz_convert(tz).dt.date

    y = table[S.POWER_W].to_numpy(dtype=float)
    lit = table[LIT].to_numpy(dtype=bool)
    daily = table.groupby("local_day")[[S.POWER_W, *METHODS.values()]].sum()
    rows = []
    for i, (name, column) in enumerate(METHODS.items()):
        f = table[column].to_numpy(dtype=float)
        cells = [
            dataset.label if i == 0 else "",
            name,
            f"{wape(y, f):.3f}",
            f"{cv_rmse(y, f):.3f}",
            f"{nmbe(y, f):+.3f}",
            f"{wape(daily[S.POWER_W].to_numpy(), daily[column].to_numpy()):.3f}",
        ]
        if name == "forecaster":
            cells.append(" / ".join(f"{_coverage(table, m, '_w'):.3f}" for m in (None, True, False)))
            calibrated = brier(lit.astype(float), table["p_on"].to_numpy())
            cells.append(
                f"{calibrated:.3f} (classifier {brier(lit.astype(float), table['p_on_raw'].to_numpy()):.3f})"
            )
        elif name == "4-week hour-of-week median":
            cells += ["–", f"{brier(lit.astype(float), table['lit_freq_4w'].to_numpy()):.3f} (lit frequency)"]
        else:
            cells += ["–", "–"]
        rows.append("| " + " | ".join(cells) + " |")

    local_origins = [pd.Timestamp(o, unit="ms", tz="UTC").tz_convert(tz) for o in origins]
    first_day = local_origins[0].date()
    last_day = (pd.Timestamp(end - HOUR_MS, unit="ms", tz="UTC").tz_convert(tz)).date()
    holidays = sorted(site.site.holidays_between(first_day, last_day))
    errors = table.assign(err=(table[S.EXPECTED_POWER_W] - table[S.POWER_W]).abs())
    sums = errors.groupby("origin")[["err", S.POWER_W]].sum()
    per_week = sums["err"] / sums[S.POWER_W]
    width = (table["upper_w"] - table["lower_w"]).mean() / y.mean()
    seconds = time.perf_counter() - clock
    notes = [
        f"**{dataset.label}**: {report.rows_valid:,} readings valid of {report.rows_in + in_gap:,} "
        f"({in_gap} at non-existent local times dropped, {report.rows_quarantined} quarantined); "
        f"{len(hours):,} hours; "
        f"test origins {local_origins[0]:%Y-%m-%d %H:%M} … {local_origins[-1]:%Y-%m-%d %H:%M} {tz} "
        f"(end {pd.Timestamp(end, unit='ms', tz='UTC').tz_convert(tz):%Y-%m-%d %H:%M}); "
        f"{len(table):,} test hours, mean {y.mean():.0f} W, {lit.mean():.0%} lit, "
        f"{(y == 0).mean():.0%} zero; "
        f"public holidays in the test: {', '.join(f'{d:%m-%d}' for d in holidays) or 'none'}.",
        f"{dataset.label}: forecaster WAPE per test week "
        f"{', '.join(f'{v:.3f}' for v in per_week.to_numpy())}; profile weight per test origin "
        f"{', '.join(chosen)}; margins per test origin (lower,upper [W] predicted lit / predicted dark) "
        f"{'; '.join(margins)}; coverage without the margins "
        + " / ".join(f"{_coverage(table, m, '_raw_w'):.3f}" for m in (None, True, False))
        + f" (all / lit / dark); mean interval width {width:.2f} × mean y; "
        f"mean p_on {table['p_on'].mean():.3f} vs lit share {lit.mean():.3f}; "
        f"{len(origins)} trainings (backtest and fit) {fit_seconds:.0f} s, dataset total {seconds:.0f} s.",
    ]
    table_p = reliability(table["p_on"].to_numpy(), lit.astype(float))
    return {"label": dataset.label, "rows": rows, "notes": notes, "seconds": seconds, "reliability": table_p}


def _coverage(table: pd.DataFrame, lit: bool | None, suffix: str) -> float:
    """Interval coverage over all hours (``lit`` None), lit hours or dark hours; ``suffix`` "_w" (the band)
    or "_raw_w" (without the margins)."""
    rows = table if lit is None else table[table[LIT].to_numpy(dtype=bool) == lit]
    y = rows[S.POWER_W].to_numpy()
    return coverage(y, rows[f"lower{suffix}"].to_numpy(), rows[f"upper{suffix}"].to_numpy())


def _lit_frequency(table: pd.DataFrame, hours: pd.DataFrame) -> np.ndarray:
    """Share of the same hour of the week lit over the last four weeks (the p_on reference)."""
    past = hours[[S.ZONE_ID, "hour_ms", LIT]]
    weeks = np.column_stack([lagged(table, past, LIT, k * WEEK_MS) for k in range(1, 5)])
    return np.nanmean(weeks, axis=1)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()

"""Evaluate every model of SPEC §5 on generated data against the generator's ground truth (issue 3 figures).

Protocol: ``slem generate`` data (default 200 zones × 120 days at 15 minutes, faults only in the last 40 %);
models trained with :func:`~slem_ml.models.training.train_models` on the first 60 % of the readings
(fault-free),
then applied to everything after that cut:

* forecaster — the fixed model forecasts every hour of the test period from features that look back at
  least a week (so every hour is a ≤ 7-day-ahead forecast made with observed history), against
  seasonal-naive, the 4-week hour-of-week median and the level-scaled 12-week hour-of-week profile
  (issue 16), and its own LightGBM model before the profile is mixed in: median per-zone WAPE, pooled
  WAPE, building-total CV(RMSE) and NMBE, 80 % interval coverage (all, lit and dark hours), Brier of the
  on-probability (the expected occupancy) with and without its calibration, and its reliability table;
* spikes — scored readings flagged ``is_anomaly`` vs the spike labels (one per spiked reading);
* drift — a drift label is found when a drift alert of its zone is detected after its onset; delay =
  ``detected_at − onset``;
* stuck-on and dropout — a label is found when an alert of its kind and zone overlaps it;
* false alerts — alerts of any kind on zones with no fault label, per 100 zone-weeks of the test period;
* cleaning inference — the session classifier on the test period with the flag hidden, session and
  reading F1 against the true flags.

Run: ``.venv/bin/python benchmarks/eval_models.py [--zones 200 --days 120 --seed 1 --drift-share 0.03]``;
``--faults-after 0`` puts faults in the training period too (as ``slem generate`` does by default).
Prints a Markdown table (pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import compute_coverage
from slem_ml.generator.generate import FaultRates, GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.models.features import add_features, seasonal_baselines, zone_hours
from slem_ml.models.metrics import brier, coverage, cv_rmse, nmbe, per_group_wape, reliability, wape
from slem_ml.models.session_classifier import cleaning_match_scores
from slem_ml.models.training import train_models
from slem_ml.scoring.score import score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=200)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drift-share", type=float, default=0.03, help="share of zones that drift")
    parser.add_argument(
        "--drift-rate", type=float, default=None, help="every drift rises this much a day (0.01: +1 %%/day)"
    )
    parser.add_argument(
        "--faults-after", type=float, default=0.6, help="faults only after this share of the days (0: all)"
    )
    args = parser.parse_args()
    site = default_site()
    clock = time.perf_counter()
    drift = (0.005, 0.02) if args.drift_rate is None else (args.drift_rate, args.drift_rate)
    rates = FaultRates(drift_zone_share=args.drift_share, drift_per_day=drift)
    config = GeneratorConfig(
        days=args.days,
        zones=args.zones,
        step_minutes=15,
        seed=args.seed,
        faults_after=args.faults_after,
        fault_rates=rates,
    )
    data = generate(config)
    raw = data.readings
    cut = raw[S.TIMESTAMP].min() + pd.Timedelta(days=round(0.6 * args.days))
    train = validate_frame(raw[raw[S.TIMESTAMP] < cut].reset_index(drop=True), site)
    everything = validate_frame(raw, site)
    print(f"generated {len(raw):,} readings; training on {len(train.frame):,} before {cut.date()}")

    t = time.perf_counter()
    run = train_models(train, site)
    train_s = time.perf_counter() - t
    bundle = run.bundle
    t = time.perf_counter()
    result = score(everything, site, models=bundle)
    score_s = time.perf_counter() - t
    rows: list[tuple[str, str, str]] = []
    rows += _forecaster(everything, site, bundle, cut)
    rows += _detectors(result, data.labels, cut, site)
    rows += _cleaning(raw, cut, site, bundle)
    print()
    print(f"| measure (test period after {cut.date()}) | value | target |")
    print("|---|---:|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    print()
    print(
        f"train_models on {len(train.frame):,} readings: {train_s:.1f} s (strategy: {run.strategy_reason}); "
        f"score with models on {len(everything.frame):,} readings: {score_s:.1f} s; total "
        f"{time.perf_counter() - clock:.0f} s on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()})"
    )


def _forecaster(readings, site, bundle, cut) -> list[tuple[str, str, str]]:
    frame = readings.frame
    hours = add_features(zone_hours(frame, compute_coverage(frame, site).is_on), site)
    test = hours[(hours["hour_start"] >= cut) & hours[S.POWER_W].notna()]
    predicted = bundle.forecaster.predict(test)
    table = pd.concat(
        [
            test[[S.ZONE_ID, S.BUILDING, "hour_start", S.POWER_W, "lit"]],
            predicted.drop(columns=[S.ZONE_ID, "hour_start"]),
         seasonal_baselines(test, hours)], axis=1,
    )  # fmt: skip
    methods = (S.EXPECTED_POWER_W, "model_w", "profile_w", "seasonal_naive_w", "how_median_4w_w")
    zone = {c: per_group_wape(table, S.ZONE_ID, S.POWER_W, c).median() for c in methods}
    totals = table.groupby([S.BUILDING, "hour_start"], observed=True)[[S.POWER_W, S.EXPECTED_POWER_W]].sum()
    y = table[S.POWER_W].to_numpy()
    lit = table["lit"].to_numpy(dtype=bool)
    gain = 1 - zone[S.EXPECTED_POWER_W] / zone["seasonal_naive_w"]
    band = [coverage(y[m], table["lower_w"].to_numpy()[m], table["upper_w"].to_numpy()[m])
            for m in (np.ones(len(y), dtype=bool), lit, ~lit)]  # fmt: skip
    weights = bundle.forecaster.profile_weights_
    mixes = pd.Series(list(weights.values())).value_counts().to_dict()
    table_p = reliability(table["p_on"].to_numpy(), lit.astype(float))
    bins = "; ".join(f"{r.bin_low:.1f}–{r.bin_high:.1f}: {r.hours:,} h, {r.mean_p:.2f} → {r.observed:.2f}"
                     for r in table_p.itertuples(index=False))  # fmt: skip
    return [
        ("forecaster median per-zone WAPE", f"{zone[S.EXPECTED_POWER_W]:.3f}", "≤ profile"),
        ("… its LightGBM model alone", f"{zone['model_w']:.3f}", ""),
        ("level-scaled 12-week hour-of-week profile median per-zone WAPE", f"{zone['profile_w']:.3f}", ""),
        ("seasonal-naive median per-zone WAPE", f"{zone['seasonal_naive_w']:.3f}", ""),
        ("4-week hour-of-week median per-zone WAPE", f"{zone['how_median_4w_w']:.3f}", "forecaster lower"),
        ("forecaster WAPE reduction vs seasonal-naive", f"{gain:.0%}", "≥ 25 %"),
        ("pooled WAPE: forecaster / LightGBM / profile / seasonal-naive / 4-week", " / ".join(
            f"{wape(y, table[c].to_numpy()):.3f}" for c in methods), ""),
        ("profile weight per zone (0 model, 0.5 mix, 1 profile)",
         ", ".join(f"{w:g}: {n}" for w, n in sorted(mixes.items())), ""),
        ("building totals hourly CV(RMSE)",
         f"{cv_rmse(totals[S.POWER_W], totals[S.EXPECTED_POWER_W]):.3f}", "≤ 0.30"),
        ("building totals NMBE", f"{nmbe(totals[S.POWER_W], totals[S.EXPECTED_POWER_W]):+.3f}", "|·| ≤ 0.10"),
        ("80 % interval coverage all / lit / dark", " / ".join(f"{c:.3f}" for c in band), "0.75–0.85 each"),
        ("Brier score of p_on (expected occupancy): calibrated / classifier",
         f"{brier(lit.astype(float), table['p_on']):.4f} / {brier(lit.astype(float), table['p_on_raw']):.4f}",
         ""),
        ("reliability of p_on (bin: hours, mean p_on → share lit)", bins, ""),
    ]  # fmt: skip


def _detectors(result, labels: pd.DataFrame, cut, site) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    scored = result.readings.frame
    alerts = result.alerts
    # spikes: reading level
    spikes = labels[labels["kind"] == "spike"]
    truth = set(zip(spikes[S.ZONE_ID].astype(str), spikes["start"].dt.tz_convert("UTC"), strict=True))
    flagged = scored[scored[S.IS_ANOMALY].fillna(False).to_numpy(dtype=bool)]
    found = set(zip(flagged[S.ZONE_ID].astype(str), flagged[S.TIMESTAMP], strict=True))
    hits = len(truth & found)
    out.append(("spike precision / recall",
                f"{hits / max(len(found), 1):.3f} / {hits / max(len(truth), 1):.3f}"
                f" ({len(truth)} spikes)", "≥ 0.9 / ≥ 0.9"))  # fmt: skip
    # drift: detected after onset, delay in days
    drift = labels[labels["kind"] == "drift"]
    delays = []
    for row in drift.itertuples(index=False):
        mine = alerts[(alerts["kind"] == "drift") & (alerts[S.ZONE_ID] == row.zone_id)]
        mine = mine[mine["detected_at"] >= row.start]
        if len(mine):
            delays.append((mine["detected_at"].min() - row.start) / pd.Timedelta(days=1))
    rate = drift["magnitude"]
    out.append(("drift recall", f"{len(delays) / max(len(drift), 1):.3f} ({len(drift)} zones, "
                f"{rate.min():.1%}–{rate.max():.1%}/day)", "≥ 0.9"))  # fmt: skip
    out.append(
        ("drift median delay after onset [days]", f"{np.median(delays):.1f}" if delays else "–", "≤ 7")
    )
    for kind in ("stuck_on", "dropout"):
        events = labels[labels["kind"] == kind]
        got = 0
        for row in events.itertuples(index=False):
            mine = alerts[(alerts["kind"] == kind) & (alerts[S.ZONE_ID] == row.zone_id)]
            got += bool(((mine["first_seen"] <= row.end) & (mine["last_seen"] >= row.start)).any())
        out.append((f"{kind} recall", f"{got / max(len(events), 1):.3f} ({len(events)} events)", "≥ 0.95"))
    faulty = set(labels.loc[labels["is_fault"].astype(bool), S.ZONE_ID].astype(str))
    zones = set(scored[S.ZONE_ID].astype(str))
    clean = zones - faulty
    test_alerts = alerts[(alerts["detected_at"] >= cut) & alerts[S.ZONE_ID].isin(clean)]
    weeks = (scored[S.TIMESTAMP].max() - cut) / pd.Timedelta(weeks=1)
    per100 = 100 * len(test_alerts) / max(len(clean) * weeks, 1e-9)
    kinds = ", ".join(f"{n} {k}" for k, n in test_alerts["kind"].value_counts().items()) or "none"
    out.append(
        (
            "alerts on fault-free zones per 100 zone-weeks",
            f"{per100:.2f} ({kinds}; {len(clean)} zones)",
            "≤ 1",
        )
    )
    return out


def _cleaning(raw: pd.DataFrame, cut, site, bundle) -> list[tuple[str, str, str]]:
    later = raw[raw[S.TIMESTAMP] >= cut].reset_index(drop=True)
    truth = validate_frame(later, site).frame
    blind = truth.assign(**{S.CLEANING_STAFF: False})
    scores = cleaning_match_scores(truth, bundle.sessions.predict_cleaning(blind, site), site)
    return [
        (
            "cleaning inference F1 (sessions / readings)",
            f"{scores['session_f1']:.3f} / {scores['reading_f1']:.3f}",
            "≥ 0.9",
        ),
    ]


if __name__ == "__main__":
    main()

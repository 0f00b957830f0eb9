"""Rolling-origin backtest of the zone forecaster over the last 14 days (SPEC §5).

Two origins at local midnight, 14 and 7 days before the end of the data; at each, a forecaster is fitted on
every hour before the origin and forecasts the next 7 days (features only look back ≥ 7 days, so nothing
after the origin is used). Each fold's interval margin is calibrated on the *other* fold's out-of-sample
forecasts (cross-conformal), so the reported coverage is never measured on the data that set it.

Scores, against seasonal-naive (same hour one week earlier) and the 4-week hour-of-week median, per zone and
on building totals: WAPE, MAE, CV(RMSE), NMBE; the Brier score of the on-probability; interval coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.io import schema as S
from slem_ml.models.features import HOUR_MS, LIT, seasonal_baselines
from slem_ml.models.forecaster import ZoneForecaster
from slem_ml.models.metrics import brier, coverage, forecast_metrics, per_group_wape

__all__ = ["BacktestResult", "backtest", "choose_strategy"]

_DAY_MS = 24 * HOUR_MS
#: Forecast columns compared in the backtest: the model and the two baselines.
METHODS = {
    "model": S.EXPECTED_POWER_W,
    "seasonal_naive": "seasonal_naive_w",
    "how_median_4w": "how_median_4w_w",
}


@dataclass(frozen=True)
class BacktestResult:
    """Out-of-sample forecasts of the last 14 days and their scores.

    ``forecasts`` has one row per zone-hour of the two test weeks: ``fold``, ``zone_id``, ``building``,
    ``hour_start``, ``power_w`` (actual) and ``lit``, the model's columns (:meth:`ZoneForecaster.predict`)
    and the baselines. ``metrics`` is flat (``model_wape``, ``seasonal_naive_wape``, …, ``building_*``,
    ``brier``, ``coverage``, ``median_zone_wape_*``) so it can be logged as is; ``margins`` are the
    conformal margins learnt from each fold, for the final model.
    """

    strategy: str
    forecasts: pd.DataFrame
    metrics: dict[str, float]
    margins: list[float] = field(default_factory=list)


def fold_origins(hours: pd.DataFrame, *, days: int = 14, fold_days: int = 7) -> list[int]:
    """UTC instants [ms] of the backtest origins.

    Local midnights ``days``, ``days − fold_days``, … days before the end of the data.
    """
    local_day = hours["local_day"].to_numpy(dtype=np.int64)
    hour_ms = hours["hour_ms"].to_numpy(dtype=np.int64)
    end_day = int(local_day.max()) + 1
    origins = []
    for start_day in range(end_day - days, end_day, fold_days):
        starts = hour_ms[local_day == start_day]
        if starts.size:
            origins.append(int(starts.min()))
    return origins


def backtest(hours: pd.DataFrame, params: dict[str, Any], *, days: int = 14) -> list[BacktestResult]:
    """Fit and forecast each fold with ``ZoneForecaster(**params)``; score model and baselines.

    ``hours`` are the hourly feature rows of the whole training data
    (:func:`~slem_ml.models.features.add_features`). With ``strategy="per_zone"`` the same fitted folds are
    scored twice, with and without the per-zone models, so two results come back (per_zone, global);
    otherwise one.
    """
    origins = fold_origins(hours, days=days)
    if not origins:
        raise ValueError("not enough history for a backtest")
    hour_ms = hours["hour_ms"].to_numpy(dtype=np.int64)
    folds: list[tuple[ZoneForecaster, pd.DataFrame, pd.DataFrame]] = []
    for fold, origin in enumerate(origins):
        train = hours[hour_ms < origin]
        test = hours[(hour_ms >= origin) & (hour_ms < origin + 7 * _DAY_MS) & hours[S.POWER_W].notna()]
        if train[S.POWER_W].notna().sum() == 0 or test.empty:
            continue
        model = ZoneForecaster(**params).fit(train)
        base = seasonal_baselines(test, hours)
        known = test[[S.ZONE_ID, S.BUILDING, "hour_start", S.POWER_W, LIT]]

        def frame_of(
            predicted: pd.DataFrame, fold: int = fold, known: pd.DataFrame = known, base: pd.DataFrame = base
        ) -> pd.DataFrame:
            out = pd.concat([known, predicted.drop(columns=[S.ZONE_ID, "hour_start"]), base], axis=1)
            out.insert(0, "fold", fold)
            return out

        folds.append((model, frame_of(model.predict(test)), frame_of(model.predict_global(test))))
    if not folds:
        raise ValueError("not enough history for a backtest")
    strategy = str(params.get("strategy", "global"))
    results = []
    for name, own_models in ((strategy, True), ("global", False)):
        chosen = [(model, own if own_models else glob) for model, own, glob in folds]
        margins = _cross_conformal(chosen)
        forecasts = pd.concat([f for _, f in chosen], ignore_index=True)
        results.append(BacktestResult(name, forecasts, score_forecasts(forecasts), margins))
        if strategy == "global":
            break
    return results


def _cross_conformal(folds: list[tuple[ZoneForecaster, pd.DataFrame]]) -> list[float]:
    """Each fold's interval widened by the margin learnt on the other folds (in place); the margins."""
    margins = []
    for i, (model, frame) in enumerate(folds):
        others = [f for j, (_, f) in enumerate(folds) if j != i] or [frame]
        calib = pd.concat(others, ignore_index=True)
        model.calibrate(calib, calib[S.POWER_W].to_numpy())
        margins.append(model.margin_)
        scale = model._scales(frame[S.ZONE_ID])
        frame["lower_w"] = np.clip(
            np.minimum(frame["lower_raw_w"] - model.margin_ * scale, frame[S.EXPECTED_POWER_W]), 0.0, None
        )
        frame["upper_w"] = np.maximum(frame["upper_raw_w"] + model.margin_ * scale, frame[S.EXPECTED_POWER_W])
    return margins


def score_forecasts(forecasts: pd.DataFrame) -> dict[str, float]:
    """Every backtest metric of a forecasts frame (see :class:`BacktestResult`)."""
    metrics: dict[str, float] = {}
    y = forecasts[S.POWER_W].to_numpy(dtype=float)
    totals = forecasts.groupby([S.BUILDING, "hour_start"], observed=True)[[S.POWER_W, *METHODS.values()]].sum(
        min_count=1
    )
    for name, column in METHODS.items():
        for metric, value in forecast_metrics(y, forecasts[column].to_numpy(dtype=float)).items():
            metrics[f"{name}_{metric}"] = value
        for metric, value in forecast_metrics(
            totals[S.POWER_W].to_numpy(), totals[column].to_numpy()
        ).items():
            metrics[f"building_{name}_{metric}"] = value
        per_zone = per_group_wape(forecasts, S.ZONE_ID, S.POWER_W, column)
        metrics[f"median_zone_wape_{name}"] = float(per_zone.median())
    metrics["brier"] = brier(forecasts[LIT].to_numpy(dtype=float), forecasts["p_on"].to_numpy())
    metrics["coverage"] = coverage(y, forecasts["lower_w"].to_numpy(), forecasts["upper_w"].to_numpy())
    return metrics


def choose_strategy(results: list[BacktestResult]) -> tuple[BacktestResult, str]:
    """The result with the lowest pooled model WAPE, and a sentence saying why it was chosen."""
    ranked = sorted(results, key=lambda r: r.metrics["model_wape"])
    best = ranked[0]
    if len(ranked) == 1:
        return best, f"{best.strategy}: the only strategy backtested (WAPE {best.metrics['model_wape']:.3f})"
    others = ", ".join(f"{r.strategy} {r.metrics['model_wape']:.3f}" for r in ranked[1:])
    return best, f"{best.strategy} has the lowest backtest WAPE ({best.metrics['model_wape']:.3f}; {others})"

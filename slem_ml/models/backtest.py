"""Rolling-origin backtest of the zone forecaster over the last 14 days (SPEC §5).

Two origins at local midnight, 14 and 7 days before the end of the data; at each, a forecaster is fitted on
every hour before the origin and forecasts the next 7 days (features only look back ≥ 7 days, so nothing
after the origin is used). What the forecaster learns from out-of-sample hours — the zones the level-scaled
hour-of-week profile forecasts better, the on-probability's calibration and the interval's margins per
state (:mod:`slem_ml.models.calibration`) — is learnt for each fold on the *other* fold's forecasts
(cross-fitting), so the reported scores are never measured on the hours that set them.

Scores, against seasonal-naive (same hour one week earlier), the 4-week hour-of-week median and the
level-scaled 12-week profile, per zone and on building totals: WAPE, MAE, CV(RMSE), NMBE; the Brier score of
the on-probability (with and without calibration); interval coverage, overall and on lit and dark hours.
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

__all__ = ["BacktestResult", "backtest", "backtest_days_for", "choose_strategy", "fit_backtested"]

_DAY_MS = 24 * HOUR_MS
#: Zone-hours a backtest should hold at least: what is learnt from it (an 80 % quantile of each state's
#: errors, the on-probability's calibration, each zone's choice) needs them. A site of many zones has them in
#: two weeks; a small one backtests more weeks, up to :data:`MAX_BACKTEST_WEEKS`.
MIN_BACKTEST_HOURS = 5_000
MAX_BACKTEST_WEEKS = 8
_MIN_FIRST_TRAIN_DAYS = 21  # [days] of history the first fold is fitted on, at least
#: Forecast columns compared in the backtest: the model and the two baselines.
METHODS = {
    "model": S.EXPECTED_POWER_W,  # the forecaster as it forecasts: the profile for the zones it chose
    "lightgbm": "model_w",  # the LightGBM point model alone
    "profile": "profile_w",  # the level-scaled 12-week hour-of-week median
    "seasonal_naive": "seasonal_naive_w",
    "how_median_4w": "how_median_4w_w",
}
#: Columns :meth:`ZoneForecaster.finish` recomputes once a fold's model has learnt from the other folds.
_FINISHED = (S.EXPECTED_POWER_W, "p_on", "lower_w", "upper_w")


@dataclass(frozen=True)
class BacktestResult:
    """Out-of-sample forecasts of the last 14 days and their scores.

    ``forecasts`` has one row per zone-hour of the two test weeks: ``fold``, ``zone_id``, ``building``,
    ``hour_start``, ``power_w`` (actual) and ``lit``, the model's columns (:meth:`ZoneForecaster.predict`,
    cross-fitted) and the baselines. ``metrics`` is flat (``model_wape``, ``seasonal_naive_wape``, …,
    ``building_*``, ``brier``, ``brier_raw``, ``coverage``, ``coverage_lit``, ``coverage_dark``,
    ``median_zone_wape_*``, ``on_calibrated``) so it can be logged as is; ``margins``
    are the widest interval margins learnt for each fold.
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


def backtest_days_for(hours: pd.DataFrame) -> int:
    """Days to backtest ``hours`` over: whole weeks, at least 2, enough for :data:`MIN_BACKTEST_HOURS`
    zone-hours (at most :data:`MAX_BACKTEST_WEEKS`), leaving the first fold
    ``_MIN_FIRST_TRAIN_DAYS`` of history."""
    zones = max(int(hours[S.ZONE_ID].nunique()), 1)
    weeks = int(np.ceil(MIN_BACKTEST_HOURS / (168 * zones)))
    span = int(hours["local_day"].max() - hours["local_day"].min() + 1) if len(hours) else 0
    weeks = min(weeks, MAX_BACKTEST_WEEKS, (span - _MIN_FIRST_TRAIN_DAYS) // 7)
    return 7 * max(weeks, 2)


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
        on_calibrated = _cross_fit(chosen)
        forecasts = pd.concat([f for _, f in chosen], ignore_index=True)
        metrics = score_forecasts(forecasts) | {"on_calibrated": float(on_calibrated)}
        results.append(BacktestResult(name, forecasts, metrics, [m.margin_ for m, _ in chosen]))
        if strategy == "global":
            break
    return results


def _cross_fit(folds: list[tuple[ZoneForecaster, pd.DataFrame]]) -> bool:
    """Each fold's forecasts finished (in place) with what its model learnt from the other folds' hours
    (:meth:`ZoneForecaster.learn_from_backtest`); whether the on-probability is calibrated.

    The calibration of the on-probability is kept only when it lowers the cross-fitted Brier score.
    """

    def others(i: int) -> pd.DataFrame:
        rest = [f for j, (_, f) in enumerate(folds) if j != i] or [folds[i][1]]
        return pd.concat(rest, ignore_index=True)

    calibrated, raw = [], []
    for i, (model, frame) in enumerate(folds):
        calib = others(i)
        model.calibrate_on(calib["p_on_raw"].to_numpy(dtype=float), calib[LIT].to_numpy(dtype=bool))
        calibrated.append(model.on_probability(frame["p_on_raw"].to_numpy(dtype=float)))
        raw.append(frame["p_on_raw"].to_numpy(dtype=float))
    lit = np.concatenate([f[LIT].to_numpy(dtype=float) for _, f in folds])
    use = brier(lit, np.concatenate(calibrated)) < brier(lit, np.concatenate(raw))
    for i, (model, frame) in enumerate(folds):
        model.on_map_ = None
        model.learn_from_backtest(others(i), calibrate_on=use)
        frame[list(_FINISHED)] = model.finish(frame)[list(_FINISHED)].to_numpy()
    return bool(use)


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
    lit = forecasts[LIT].to_numpy(dtype=bool)
    metrics["brier"] = brier(lit.astype(float), forecasts["p_on"].to_numpy())
    metrics["brier_raw"] = brier(lit.astype(float), forecasts["p_on_raw"].to_numpy())
    lower, upper = forecasts["lower_w"].to_numpy(), forecasts["upper_w"].to_numpy()
    metrics["coverage"] = coverage(y, lower, upper)
    metrics["coverage_lit"] = coverage(y[lit], lower[lit], upper[lit])
    metrics["coverage_dark"] = coverage(y[~lit], lower[~lit], upper[~lit])
    return metrics


def choose_strategy(results: list[BacktestResult]) -> tuple[BacktestResult, str]:
    """The result with the lowest pooled model WAPE, and a sentence saying why it was chosen."""
    ranked = sorted(results, key=lambda r: r.metrics["model_wape"])
    best = ranked[0]
    if len(ranked) == 1:
        return best, f"{best.strategy}: the only strategy backtested (WAPE {best.metrics['model_wape']:.3f})"
    others = ", ".join(f"{r.strategy} {r.metrics['model_wape']:.3f}" for r in ranked[1:])
    return best, f"{best.strategy} has the lowest backtest WAPE ({best.metrics['model_wape']:.3f}; {others})"


def fit_backtested(hours: pd.DataFrame, params: dict[str, Any], chosen: BacktestResult) -> ZoneForecaster:
    """``ZoneForecaster(**params)`` of ``chosen``'s strategy fitted on every hour, with what ``chosen``'s
    out-of-sample forecasts taught (:meth:`ZoneForecaster.learn_from_backtest`)."""
    model = ZoneForecaster(**(params | {"strategy": chosen.strategy})).fit(hours)
    return model.learn_from_backtest(chosen.forecasts, calibrate_on=bool(chosen.metrics["on_calibrated"]))

"""Fit every model of SPEC §5 on validated readings: the library half of ``slem train`` (no MLflow here).

:func:`train_models` backtests the forecaster strategies over the last 14 days (more for a site of a few
zones), keeps the better one (and says why), refits it on all the data with what the backtest's
out-of-sample forecasts taught (each zone's mix of model and hour-of-week profile, the on-probability's
calibration, the interval's margins per state), then fits the spike and drift detectors and — when the
data carries the cleaning flag — the session classifier. Tracking and the registry are
:mod:`slem_ml.models.tracking`'s job.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import classified_readings, compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.readings import Readings
from slem_ml.models.anomaly import SpikeDetector
from slem_ml.models.backtest import (
    BacktestResult,
    backtest,
    backtest_days_for,
    choose_strategy,
    fit_backtested,
)
from slem_ml.models.bundle import SCHEMA_VERSION, ModelBundle
from slem_ml.models.drift import DriftDetector
from slem_ml.models.features import FORECAST_FEATURES, add_features, zone_hours
from slem_ml.models.forecaster import ZoneForecaster
from slem_ml.models.session_classifier import SessionClassifier, cleaning_match_scores
from slem_ml.progress import Progress, no_progress

__all__ = ["TrainingConfig", "TrainingRun", "data_fingerprint", "train_models"]


@dataclass(frozen=True)
class TrainingConfig:
    """How to train. ``strategies`` are backtested (``per_zone`` only when some zone has
    ``per_zone_min_days`` of history) over ``backtest_days`` (default: 14, more for a site of a few zones,
    :func:`~slem_ml.models.backtest.backtest_days_for`); ``forecaster`` overrides :class:`ZoneForecaster`
    defaults."""

    strategies: tuple[str, ...] = ("global", "per_zone")
    backtest_days: int | None = None
    min_days: int = 21  # [days] below this there is too little history to backtest a week-ahead model
    forecaster: dict[str, Any] = field(default_factory=dict)
    random_state: int = 0


@dataclass(frozen=True)
class TrainingRun:
    """The fitted bundle, the backtest that chose its forecaster and what the tracking layer logs."""

    bundle: ModelBundle
    backtest: BacktestResult
    candidates: tuple[BacktestResult, ...]
    strategy_reason: str
    params: dict[str, Any]
    hours: pd.DataFrame  # hourly feature rows of the training data (input examples, plots)
    timings: dict[str, float]
    session_metrics: dict[str, float] = field(default_factory=dict)  # held-out cleaning inference scores


def data_fingerprint(readings: Readings) -> str:
    """sha256 of the validated readings (zone, instant, power): the same data gives the same fingerprint,
    whatever file format or column order it came in."""
    frame = readings.frame
    digest = hashlib.sha256()
    digest.update(np.asarray(frame[S.ZONE_ID].astype(str).to_numpy(), dtype="U").tobytes())
    digest.update(frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64).tobytes())
    digest.update(np.ascontiguousarray(frame[S.POWER_W].to_numpy(dtype=float)).tobytes())
    digest.update(frame[S.CLEANING_STAFF].to_numpy(dtype=bool).tobytes())
    return digest.hexdigest()


def train_models(
    readings: Readings,
    site: SiteConfig,
    config: TrainingConfig | None = None,
    *,
    progress: Progress = no_progress,
) -> TrainingRun:
    """Backtest, choose and fit every model on ``readings`` (see the module docstring)."""
    config = config or TrainingConfig()
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    progress("features", 0.0)
    scored = classified_readings(readings.frame, compute_coverage(readings.frame, site))
    hours = add_features(zone_hours(readings.frame, scored[S.IS_ON].to_numpy()), site)
    days = int(hours["local_day"].max() - hours["local_day"].min() + 1) if len(hours) else 0
    if days < config.min_days:
        raise ValueError(
            f"the readings span {days} days; training needs at least {config.min_days} "
            "(two backtest weeks and a week of history before them)"
        )
    timings["features_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("backtest", 0.1)
    params = {"random_state": config.random_state} | config.forecaster
    per_zone_days = int(params.get("per_zone_min_days", ZoneForecaster().per_zone_min_days))
    zone_days = hours.groupby(S.ZONE_ID, observed=True)["local_day"].nunique()
    strategy = (
        "per_zone" if "per_zone" in config.strategies and (zone_days >= per_zone_days).any() else "global"
    )
    backtest_days = config.backtest_days or backtest_days_for(hours)
    candidates = backtest(hours, params | {"strategy": strategy}, days=backtest_days)
    chosen, reason = choose_strategy(candidates)
    if strategy == "global" and "per_zone" in config.strategies:
        reason += f"; per_zone not tried: no zone has {per_zone_days} days of history"
    timings["backtest_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("forecaster", 0.6)
    forecaster = fit_backtested(hours, params, chosen)
    timings["forecaster_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    progress("detectors", 0.8)
    spike = SpikeDetector().fit(scored, site)
    drift = DriftDetector().fit(scored, site)
    sessions, sessions_note = None, "the input has no cleaning flag to learn from"
    session_metrics: dict[str, float] = {}
    if readings.has_cleaning_flag:
        try:
            session_metrics = _holdout_session_scores(readings.frame, site, config.backtest_days or 14)
            sessions, sessions_note = SessionClassifier().fit(readings.frame, site), "fitted"
        except ValueError as exc:  # e.g. only cleaning or only tenant sessions: nothing to tell apart
            sessions_note = f"not fitted: {exc}"
    timings["detectors_s"] = time.perf_counter() - clock
    progress("trained", 1.0)

    first, last = readings.report.first_timestamp, readings.report.last_timestamp
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "features": list(FORECAST_FEATURES),
        "strategy": chosen.strategy,
        "strategy_reason": reason,
        "forecaster_params": forecaster.get_params(),
        "interval_margin": forecaster.margin_,
        "interval_margins": {k: list(v) for k, v in forecaster.margins_.items()},
        "on_probability_calibrated": forecaster.on_map_ is not None,
        "profile_weight_default": forecaster.profile_default_,
        "profile_weights": {  # the zones that do not take the default mix
            z: w for z, w in forecaster.profile_weights_.items() if w != forecaster.profile_default_
        },
        "data_fingerprint": data_fingerprint(readings),
        "input_sha256": readings.report.input_sha256,
        "trained_from": None if first is None else first.isoformat(),
        "trained_to": None if last is None else last.isoformat(),
        "zones": sorted(forecaster.categories_[S.ZONE_ID]),
        "rows": len(readings.frame),
        "session_classifier": sessions is not None,
        "session_classifier_note": sessions_note,
        "metrics": {k: float(v) for k, v in (chosen.metrics | session_metrics).items()},
    }
    bundle = ModelBundle(
        forecaster=forecaster, spike=spike, drift=drift, sessions=sessions, manifest=manifest
    )
    return TrainingRun(bundle, chosen, tuple(candidates), reason, params, hours, timings, session_metrics)


def _holdout_session_scores(frame: pd.DataFrame, site: SiteConfig, days: int) -> dict[str, float]:
    """F1 of the session classifier fitted before the last ``days`` days and judged on them (flags hidden)."""
    t = frame[S.TIMESTAMP]
    cut = t.max() - pd.Timedelta(days=days)
    before, after = frame[t < cut], frame[t >= cut].reset_index(drop=True)
    model = SessionClassifier().fit(before, site)
    blind = after.assign(**{S.CLEANING_STAFF: False})
    scores = cleaning_match_scores(after, model.predict_cleaning(blind, site), site)
    return {f"cleaning_{k}": float(v) for k, v in scores.items()}

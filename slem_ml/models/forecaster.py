"""The zone forecaster (SPEC §5): expected power, on-probability and an 80 % interval per zone and hour.

Four LightGBM models over the hourly features of :mod:`slem_ml.models.features`:

* the point forecast, trained with the L1 objective: it forecasts the conditional *median*, i.e. "lit at
  this level" or "dark", where an L2 model forecasts the mean of a lit/dark mixture that matches neither
  (docs/models-research.md: WAPE 0.197 → 0.160 on the CU-BEMS zone);
* two quantile models (``(1 − coverage) / 2`` and ``(1 + coverage) / 2``) for the interval, widened by a
  conformal margin learnt on out-of-sample forecasts (CQR): :meth:`ZoneForecaster.calibrate`;
* a classifier for the probability that the lights are on for most of the hour.

``strategy="global"`` fits one model across zones (zone, floor and building are categorical features);
``strategy="per_zone"`` adds a point model per zone with at least ``per_zone_min_days`` days of history
and uses the global one for the others. Training decides between them on the backtest
(:mod:`slem_ml.models.backtest`). A zone never seen in training is forecast by the global model with its zone
unknown (from floor, building, calendar and its own lags); ``known_zone`` says which rows those are.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.io import schema as S
from slem_ml.models.cores import cores
from slem_ml.models.features import CATEGORICAL, FORECAST_FEATURES, LIT

__all__ = ["ZoneForecaster"]

STRATEGIES = ("global", "per_zone")
#: Threads per prediction: rows are independent, so any number gives the same answer (fits use ``n_jobs``).
_PREDICT_THREADS = cores()


class ZoneForecaster:
    """Expected power [W], on-probability and interval [W] per zone and hour (scikit-learn contract).

    Parameters
    ----------
    strategy : "global" or "per_zone" (see the module docstring).
    n_estimators, learning_rate, num_leaves : LightGBM settings shared by the four models.
    coverage : stated coverage of ``[lower_w, upper_w]`` (0.8 = 80 %).
    per_zone_min_days : history a zone needs for a model of its own [days].
    random_state : seed of every model.
    n_jobs : models fitted at once, each on one thread (default: the machine's cores). One thread per
        model gives the same models whatever ``n_jobs`` is, and unlike LightGBM's own threads it does not
        slow to a crawl when another process holds a core.
    """

    def __init__(
        self,
        *,
        strategy: str = "global",
        n_estimators: int = 100,
        learning_rate: float = 0.15,
        num_leaves: int = 63,
        coverage: float = 0.8,
        per_zone_min_days: int = 56,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.coverage = coverage
        self.per_zone_min_days = per_zone_min_days
        self.random_state = random_state
        self.n_jobs = n_jobs

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters (scikit-learn convention)."""
        return {
            "strategy": self.strategy,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "coverage": self.coverage,
            "per_zone_min_days": self.per_zone_min_days,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
        }

    # --- fitting ----------------------------------------------------------------------------------

    def fit(self, hours: pd.DataFrame) -> ZoneForecaster:
        """Fit on hourly rows with features (:func:`slem_ml.models.features.add_features`) and targets.

        Hours without readings (``power_w`` NaN) are skipped. The conformal margin starts at 0 until
        :meth:`calibrate` is called with out-of-sample forecasts.
        """
        import lightgbm as lgb  # lazy: 1 s of import time

        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {self.strategy!r}")
        rows = hours[hours[S.POWER_W].notna()]
        if rows.empty:
            raise ValueError("no hours with readings to fit on")
        self.categories_ = {c: sorted(rows[c].astype(str).unique()) for c in CATEGORICAL}
        self.features_ = list(FORECAST_FEATURES)
        X = self._matrix(rows)
        y = rows[S.POWER_W].to_numpy(dtype=float)
        low, high = (1 - self.coverage) / 2, (1 + self.coverage) / 2
        common = self._lgb_params()
        # The band and the on-probability need less detail than the point forecast (the band is widened by
        # the conformal margin anyway): a third of the trees at twice the rate, for a third of the time.
        aux = common | {
            "n_estimators": max(20, self.n_estimators // 3),
            "learning_rate": min(0.3, 2 * self.learning_rate),
        }
        lit = rows[LIT].to_numpy(dtype=bool)
        one_class = bool(lit.all() or not lit.any())  # then a constant probability
        models = {
            "point": (lgb.LGBMRegressor(objective="l1", **common), y),
            "lower": (lgb.LGBMRegressor(objective="quantile", alpha=low, **aux), y),
            "upper": (lgb.LGBMRegressor(objective="quantile", alpha=high, **aux), y),
        }
        if not one_class:
            models["on"] = (lgb.LGBMClassifier(**aux), lit)
        fitted = self._fit_each({name: (model, X, target) for name, (model, target) in models.items()})
        self.point_, self.lower_, self.upper_ = fitted["point"], fitted["lower"], fitted["upper"]
        self.on_ = fitted.get("on")
        self.on_constant_ = float(lit.mean()) if one_class else float("nan")
        self.zone_scale_w_ = rows.groupby(S.ZONE_ID, observed=True)[S.POWER_W].mean().astype(float).to_dict()
        self.scale_w_ = float(np.nanmean(y))
        self.margin_ = 0.0
        self.zone_models_: dict[str, Any] = {}
        if self.strategy == "per_zone":
            self._fit_per_zone(rows, X, y)
        return self

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": 20,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.9,
            "random_state": self.random_state,
            "n_jobs": 1,  # one thread per model; models run side by side (_fit_each)
            "verbose": -1,
        }

    def _fit_per_zone(self, rows: pd.DataFrame, X: pd.DataFrame, y: np.ndarray) -> None:
        import lightgbm as lgb  # lazy: 1 s; scoring without models never needs it

        days = rows.groupby(S.ZONE_ID, observed=True)["local_day"].nunique()
        long = set(days.index[days >= self.per_zone_min_days].astype(str))
        params = self._lgb_params() | {"n_estimators": max(30, self.n_estimators // 2), "num_leaves": 15}
        zone = rows[S.ZONE_ID].astype(str).to_numpy()
        jobs = {
            str(zone_id): (lgb.LGBMRegressor(objective="l1", **params), X.iloc[at], y[at])
            for zone_id, at in pd.Series(zone).groupby(zone, sort=True).indices.items()
            if zone_id in long
        }
        self.zone_models_ = self._fit_each(jobs)

    def _fit_each(self, jobs: dict[str, tuple[Any, Any, np.ndarray]]) -> dict[str, Any]:
        """Fit ``{name: (model, X, y)}``, ``n_jobs`` at a time (LightGBM lets go of the GIL while it fits)."""
        workers = self.n_jobs or os.cpu_count() or 1
        if workers == 1 or len(jobs) == 1:
            return {name: model.fit(X, y) for name, (model, X, y) in jobs.items()}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {name: pool.submit(model.fit, X, y) for name, (model, X, y) in jobs.items()}
            return {name: future.result() for name, future in futures.items()}

    def calibrate(self, forecasts: pd.DataFrame, actual_w: np.ndarray) -> ZoneForecaster:
        """Learn the conformal margin from out-of-sample forecasts (CQR, normalised per zone).

        ``forecasts`` are rows of :meth:`predict` *without* margin for hours the model was not fitted on,
        ``actual_w`` the observed mean power [W] of those hours. The margin is the ``coverage`` quantile of
        ``max(lower − y, y − upper) / zone scale``.
        """
        y = np.asarray(actual_w, dtype=float)
        keep = ~np.isnan(y)
        scale = self._scales(forecasts[S.ZONE_ID])[keep]
        lower = forecasts["lower_raw_w"].to_numpy(dtype=float)[keep]
        upper = forecasts["upper_raw_w"].to_numpy(dtype=float)[keep]
        conformity = np.maximum(lower - y[keep], y[keep] - upper) / scale
        if conformity.size:
            level = min(1.0, np.ceil((conformity.size + 1) * self.coverage) / conformity.size)
            self.margin_ = float(np.quantile(conformity, level))
        return self

    # --- prediction --------------------------------------------------------------------------------

    def predict(self, hours: pd.DataFrame) -> pd.DataFrame:
        """Forecasts for hourly feature rows, in the same order (per-zone point models where fitted)."""
        return self._predict(hours, self.zone_models_)

    def predict_point(self, hours: pd.DataFrame) -> np.ndarray:
        """Expected power [W] alone, per row (what scoring needs: a quarter of :meth:`predict`'s work)."""
        zone = hours[S.ZONE_ID].astype(str).to_numpy()
        return np.clip(self._point(self._matrix(hours), zone, self.zone_models_), 0.0, None)

    def predict_global(self, hours: pd.DataFrame) -> pd.DataFrame:
        """As :meth:`predict`, with the global point model for every zone (to compare strategies)."""
        return self._predict(hours, {})

    def _predict(self, hours: pd.DataFrame, zone_models: dict[str, Any]) -> pd.DataFrame:
        """Forecasts for hourly feature rows, in the same order.

        Columns: ``zone_id``, ``hour_start``, ``expected_power_w`` [W], ``p_on`` [0..1], ``lower_w``,
        ``upper_w`` [W] (interval with the conformal margin), ``lower_raw_w``/``upper_raw_w`` (without),
        ``known_zone`` (the zone was in the training data).
        """
        X = self._matrix(hours)
        zone = hours[S.ZONE_ID].astype(str).to_numpy()
        point = self._point(X, zone, zone_models)
        lower = self.lower_.predict(X, num_threads=_PREDICT_THREADS)
        upper = self.upper_.predict(X, num_threads=_PREDICT_THREADS)
        lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
        if self.on_ is None:
            p_on = np.full(len(hours), self.on_constant_)
        else:
            p_on = np.asarray(self.on_.predict_proba(X, num_threads=_PREDICT_THREADS))[:, 1]
        margin = self.margin_ * self._scales(hours[S.ZONE_ID])
        point = np.clip(point, 0.0, None)
        return pd.DataFrame(
            {
                S.ZONE_ID: zone,
                "hour_start": hours["hour_start"].to_numpy(),
                S.EXPECTED_POWER_W: point,
                "p_on": p_on,
                "lower_w": np.clip(np.minimum(lower - margin, point), 0.0, None),
                "upper_w": np.maximum(upper + margin, point),
                "lower_raw_w": np.clip(lower, 0.0, None),
                "upper_raw_w": upper,
                "known_zone": np.isin(zone, self.categories_[S.ZONE_ID]),
            },
            index=hours.index,
        )

    def _point(self, X: pd.DataFrame, zone: np.ndarray, zone_models: dict[str, Any]) -> np.ndarray:
        """The point model's forecast [W], by the zone's own model where it has one."""
        point = np.asarray(self.point_.predict(X, num_threads=_PREDICT_THREADS), dtype=float)
        if zone_models:
            for zone_id, rows in pd.Series(zone).groupby(zone, sort=False).indices.items():
                model = zone_models.get(str(zone_id))
                if model is not None:
                    point[rows] = model.predict(X.iloc[rows])
        return point

    def _scales(self, zone: pd.Series) -> np.ndarray:
        """Each row's zone scale [W] (its mean training power; the overall mean for unseen zones)."""
        scale = zone.astype(str).map(self.zone_scale_w_).to_numpy(dtype=float)
        scale = np.where(np.isnan(scale), self.scale_w_, scale)
        return np.maximum(scale, 1.0)

    def _matrix(self, hours: pd.DataFrame) -> pd.DataFrame:
        """The feature matrix: categoricals with the training categories (unseen → missing)."""
        X = hours.loc[:, self.features_].copy()
        for column in CATEGORICAL:
            known = pd.Index(self.categories_[column])
            codes = known.get_indexer(X[column].astype(str).to_numpy())  # unseen → -1 → missing
            X[column] = pd.Categorical.from_codes(codes, categories=known)
        for column in X.columns:
            if X[column].dtype == bool:
                X[column] = X[column].astype(np.int8)
        return X

    def feature_importance(self) -> pd.Series:
        """Gain importance of the point model's features, largest first."""
        booster = self.point_.booster_
        gain = booster.feature_importance(importance_type="gain")
        return pd.Series(gain, index=booster.feature_name()).sort_values(ascending=False)

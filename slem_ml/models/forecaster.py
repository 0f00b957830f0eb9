"""The zone forecaster (SPEC §5): expected power, on-probability and an 80 % interval per zone and hour.

Four LightGBM models over the hourly features of :mod:`slem_ml.models.features`:

* the point forecast, trained with the L1 objective: it forecasts the conditional *median*, i.e. "lit at
  this level" or "dark", where an L2 model forecasts the mean of a lit/dark mixture that matches neither
  (docs/models-research.md: WAPE 0.197 → 0.160 on the CU-BEMS zone);
* two quantile models (``(1 − coverage) / 2`` and ``(1 + coverage) / 2``) for the interval, widened by
  margins learnt on out-of-sample forecasts per predicted state, so that it holds ``coverage`` of the lit
  hours and of the dark hours (CQR): :meth:`ZoneForecaster.calibrate`;
* a classifier for the probability that the lights are on for most of the hour (the zone's expected
  occupancy), calibrated on out-of-sample hours when that lowers their Brier score
  (:meth:`ZoneForecaster.calibrate_on`).

The point forecast a zone gets mixes the model with the level-scaled 12-week hour-of-week profile
(:mod:`slem_ml.models.profile`, also one of the model's features): half and half, or either alone where the
backtest showed it clearly better for that zone (:meth:`ZoneForecaster.choose_profile`).
:meth:`ZoneForecaster.learn_from_backtest` learns all three from the backtest.

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
from slem_ml.models.calibration import DEFAULT_PROFILE_WEIGHT, isotonic_map, profile_weights, state_margins
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
        self.margins_: dict[str, tuple[float, float]] = {}
        self.on_map_: tuple[np.ndarray, np.ndarray] | None = None
        self.profile_weights_: dict[str, float] = {}
        self.profile_default_ = DEFAULT_PROFILE_WEIGHT
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

    def calibrate(
        self, forecasts: pd.DataFrame, actual_w: np.ndarray, actual_lit: np.ndarray | None = None
    ) -> ZoneForecaster:
        """Learn the interval's margins from out-of-sample forecasts (CQR per state, normalised per zone).

        ``forecasts`` are rows of :meth:`predict` for hours the model was not fitted on, ``actual_w`` the
        observed mean power [W] of those hours and ``actual_lit`` whether they were lit (default: treated
        as one state). For hours predicted lit and hours predicted dark, a lower and an upper margin are
        chosen so that the band holds ``coverage`` of the lit hours and of the dark hours
        (:func:`slem_ml.models.calibration.state_margins`). ``margin_`` is the widest of them.
        """
        y = np.asarray(actual_w, dtype=float)
        lit = np.ones(len(y), dtype=bool) if actual_lit is None else np.asarray(actual_lit, dtype=bool)
        frame = forecasts[[S.ZONE_ID, "lower_raw_w", "upper_raw_w"]].assign(**{S.POWER_W: y, LIT: lit})
        p_on = self.on_probability(forecasts["p_on_raw"].to_numpy(dtype=float))
        self.margins_ = state_margins(frame, self._scales(forecasts[S.ZONE_ID]), p_on, self.coverage)
        self.margin_ = float(max(max(pair) for pair in self.margins_.values()))
        return self

    def calibrate_on(self, p_on_raw: np.ndarray, actual_lit: np.ndarray) -> ZoneForecaster:
        """Calibrate the on-probability on out-of-sample hours: an isotonic map from the classifier's
        probability to the lit frequency observed (:func:`slem_ml.models.calibration.isotonic_map`)."""
        self.on_map_ = isotonic_map(p_on_raw, actual_lit)
        return self

    def choose_profile(self, forecasts: pd.DataFrame, actual_w: np.ndarray) -> ZoneForecaster:
        """Learn each zone's weight of the level-scaled hour-of-week profile (``profile_w``) against the
        model (``model_w``) from these out-of-sample hours (``profile_weights_``: 0, 0.5 or 1;
        :func:`slem_ml.models.calibration.profile_weights`). Zones not among them take the default mix."""
        frame = forecasts[[S.ZONE_ID, "model_w", "profile_w"]].assign(**{S.POWER_W: actual_w})
        self.profile_weights_ = profile_weights(frame, model="model_w", profile="profile_w")
        self.profile_default_ = DEFAULT_PROFILE_WEIGHT
        return self

    def learn_from_backtest(self, forecasts: pd.DataFrame, *, calibrate_on: bool) -> ZoneForecaster:
        """All three of :meth:`choose_profile`, :meth:`calibrate_on` (when ``calibrate_on``) and
        :meth:`calibrate` from backtest forecasts (their ``power_w`` and ``lit`` are the actuals)."""
        y = forecasts[S.POWER_W].to_numpy(dtype=float)
        lit = forecasts[LIT].to_numpy(dtype=bool)
        self.choose_profile(forecasts, y)
        if calibrate_on:
            self.calibrate_on(forecasts["p_on_raw"].to_numpy(dtype=float), lit)
        return self.calibrate(forecasts, y, lit)

    # --- prediction --------------------------------------------------------------------------------

    def predict(self, hours: pd.DataFrame) -> pd.DataFrame:
        """Forecasts for hourly feature rows, in the same order (per-zone point models where fitted)."""
        return self._predict(hours, self.zone_models_)

    def predict_point(self, hours: pd.DataFrame) -> np.ndarray:
        """Expected power [W] alone, per row (what scoring needs: a quarter of :meth:`predict`'s work)."""
        zone = hours[S.ZONE_ID].astype(str).to_numpy()
        point = self._point(_numeric(self._matrix(hours)), zone, self.zone_models_)
        return self._chosen_point(np.clip(point, 0.0, None), zone, self._profile_of(hours))

    def predict_global(self, hours: pd.DataFrame) -> pd.DataFrame:
        """As :meth:`predict`, with the global point model for every zone (to compare strategies)."""
        return self._predict(hours, {})

    def _predict(self, hours: pd.DataFrame, zone_models: dict[str, Any]) -> pd.DataFrame:
        """Forecasts for hourly feature rows, in the same order.

        Columns: ``zone_id``, ``hour_start``, ``expected_power_w`` [W] (each zone's mix of the model's and
        the profile's), ``p_on`` [0..1] (calibrated), ``lower_w``, ``upper_w`` [W]
        (interval with the margins), ``lower_raw_w``/``upper_raw_w`` (without), ``known_zone`` (the zone was
        in the training data), ``model_w`` (the model's point [W]), ``profile_w`` [W] and ``p_on_raw`` (the
        classifier's probability).
        """
        X = _numeric(self._matrix(hours))
        zone = hours[S.ZONE_ID].astype(str).to_numpy()
        lower, upper = _predicted(self.lower_, X), _predicted(self.upper_, X)
        lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
        # a binary classifier's booster gives the probability of the positive class (predict_proba's [:, 1])
        p_on = np.full(len(hours), self.on_constant_) if self.on_ is None else _predicted(self.on_, X)
        raw = pd.DataFrame(
            {
                S.ZONE_ID: zone,
                "hour_start": hours["hour_start"].to_numpy(),
                "model_w": np.clip(self._point(X, zone, zone_models), 0.0, None),
                "profile_w": self._profile_of(hours),
                "p_on_raw": p_on,
                "lower_raw_w": np.clip(lower, 0.0, None),
                "upper_raw_w": upper,
                "known_zone": np.isin(zone, self.categories_[S.ZONE_ID]),
            },
            index=hours.index,
        )
        return self.finish(raw)

    def finish(self, raw: pd.DataFrame) -> pd.DataFrame:
        """``expected_power_w``, ``p_on``, ``lower_w`` and ``upper_w`` of forecasts from their raw columns
        (``model_w``, ``profile_w``, ``p_on_raw``, ``lower_raw_w``, ``upper_raw_w``) with what this model
        learnt from out-of-sample hours: each zone's weight of the profile, the on-probability's
        calibration and the margins per predicted state. A new frame, columns in :meth:`predict`'s order."""
        zone = raw[S.ZONE_ID].astype(str).to_numpy()
        point = self._chosen_point(
            raw["model_w"].to_numpy(dtype=float), zone, raw["profile_w"].to_numpy(dtype=float)
        )
        p_on = self.on_probability(raw["p_on_raw"].to_numpy(dtype=float))
        margins = getattr(self, "margins_", None) or {"lit": (self.margin_,) * 2, "dark": (self.margin_,) * 2}
        lit = p_on >= 0.5
        scale = self._scales(raw[S.ZONE_ID])
        low_margin = np.where(lit, margins["lit"][0], margins["dark"][0]) * scale
        high_margin = np.where(lit, margins["lit"][1], margins["dark"][1]) * scale
        lower = raw["lower_raw_w"].to_numpy(dtype=float)
        upper = raw["upper_raw_w"].to_numpy(dtype=float)
        out = pd.DataFrame(
            {
                S.ZONE_ID: zone,
                "hour_start": raw["hour_start"].to_numpy(),
                S.EXPECTED_POWER_W: point,
                "p_on": p_on,
                "lower_w": np.clip(np.minimum(lower - low_margin, point), 0.0, None),
                "upper_w": np.maximum(upper + high_margin, point),
            },
            index=raw.index,
        )
        rest = ["lower_raw_w", "upper_raw_w", "known_zone", "model_w", "profile_w", "p_on_raw"]
        return pd.concat([out, raw[rest]], axis=1)

    def _profile_of(self, hours: pd.DataFrame) -> np.ndarray:
        """The rows' level-scaled hour-of-week profile [W] (NaN where the rows do not carry it)."""
        if "profile_w" not in hours:
            return np.full(len(hours), np.nan)
        return hours["profile_w"].to_numpy(dtype=float)

    def _chosen_point(self, model_w: np.ndarray, zone: np.ndarray, profile_w: np.ndarray) -> np.ndarray:
        """The point forecast [W]: each zone's mix of the profile and the model (``profile_weights_``, else
        ``profile_default_``), the model's alone where the profile is unknown. A forecaster pickled before
        issue 16 has neither and forecasts with its model, as it was backtested."""
        default = float(getattr(self, "profile_default_", 0.0))
        chosen = getattr(self, "profile_weights_", {})
        weight = pd.Series(zone).map(chosen).fillna(default).to_numpy(dtype=float) if chosen else default
        weight = np.where(np.isnan(profile_w), 0.0, weight)
        return weight * np.clip(np.nan_to_num(profile_w), 0.0, None) + (1.0 - weight) * model_w

    def on_probability(self, p_on_raw: np.ndarray) -> np.ndarray:
        """The calibrated on-probability of the classifier's ``p_on_raw`` (unchanged where no calibration
        was learnt)."""
        knots = getattr(self, "on_map_", None)
        if knots is None:
            return p_on_raw
        return np.interp(p_on_raw, knots[0], knots[1])

    def _point(self, X: np.ndarray, zone: np.ndarray, zone_models: dict[str, Any]) -> np.ndarray:
        """The point model's forecast [W] of the :func:`_numeric` rows ``X``, by the zone's own model where
        it has one."""
        point = np.empty(len(X))
        shared = np.ones(len(X), dtype=bool)  # rows of zones without a model of their own
        if zone_models:
            for zone_id, rows in pd.Series(zone).groupby(zone, sort=False).indices.items():
                model = zone_models.get(str(zone_id))
                if model is not None:
                    point[rows] = _predicted(model, X[rows], threads=1)
                    shared[rows] = False
        if shared.any():
            point[shared] = _predicted(self.point_, X[shared])
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


def _numeric(X: pd.DataFrame) -> np.ndarray:
    """``X`` (:meth:`ZoneForecaster._matrix`) as LightGBM turns a frame into numbers before predicting:
    categoricals as their codes (missing: NaN), every column in one dtype (``np.result_type`` of the
    columns and float32, as ``lightgbm.basic._data_from_pandas``). Predicting on it gives the frame's
    results without converting the frame again for each model (67 models for 66 zones: 0.3 s)."""
    columns = {
        name: (
            np.where(values.cat.codes.to_numpy() < 0, np.nan, values.cat.codes.to_numpy())
            if isinstance(values.dtype, pd.CategoricalDtype)
            else values.to_numpy()
        )
        for name, values in X.items()
    }
    dtype = np.result_type(*(c.dtype for c in columns.values()), np.float32)
    matrix = np.empty((len(X), len(columns)), dtype=dtype)
    for i, values in enumerate(columns.values()):
        matrix[:, i] = values
    return matrix


def _predicted(model: Any, X: np.ndarray, threads: int = _PREDICT_THREADS) -> np.ndarray:
    """A fitted LightGBM model's prediction of :func:`_numeric` rows, from its booster (the scikit-learn
    wrapper's checks and conversions are for frames): a regressor's value, a binary classifier's
    probability of the positive class."""
    return np.asarray(model.booster_.predict(X, num_threads=threads), dtype=float)

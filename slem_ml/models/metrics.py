"""Forecast metrics (SPEC §5), each a pure function of actual and forecast arrays.

Sign and scale conventions: WAPE = Σ|ŷ − y| / Σy; CV(RMSE) = RMSE / mean(y); NMBE = Σ(ŷ − y) / Σy (positive
= over-forecast; ASHRAE Guideline 14 uses the opposite sign, the magnitude is what it limits); Brier =
mean((p − o)²) of the on-probability. Rows where the actual is NaN are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "brier",
    "coverage",
    "cv_rmse",
    "forecast_metrics",
    "mae",
    "nmbe",
    "per_group_wape",
    "reliability",
    "wape",
]


def _pair(actual: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    keep = ~np.isnan(y) & ~np.isnan(f)
    return y[keep], f[keep]


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error [fraction]; NaN when Σy is 0."""
    y, f = _pair(actual, forecast)
    total = y.sum()
    return float(np.abs(f - y).sum() / total) if total > 0 else float("nan")


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error [units of the input, W here]."""
    y, f = _pair(actual, forecast)
    return float(np.abs(f - y).mean()) if y.size else float("nan")


def cv_rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Coefficient of variation of the RMSE [fraction]."""
    y, f = _pair(actual, forecast)
    mean = y.mean() if y.size else 0.0
    return float(np.sqrt(np.mean((f - y) ** 2)) / mean) if mean > 0 else float("nan")


def nmbe(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Normalised mean bias error [fraction]; positive = over-forecast."""
    y, f = _pair(actual, forecast)
    total = y.sum()
    return float((f - y).sum() / total) if total > 0 else float("nan")


def brier(outcome: np.ndarray, probability: np.ndarray) -> float:
    """Brier score of probabilities against 0/1 outcomes (lower is better)."""
    o, p = _pair(np.asarray(outcome, dtype=float), probability)
    return float(np.mean((p - o) ** 2)) if o.size else float("nan")


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside ``[lower, upper]`` [fraction]."""
    y = np.asarray(actual, dtype=float)
    keep = ~np.isnan(y)
    inside = (np.asarray(lower)[keep] <= y[keep]) & (y[keep] <= np.asarray(upper)[keep])
    return float(inside.mean()) if inside.size else float("nan")


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """WAPE, MAE, CV(RMSE) and NMBE of one forecast."""
    return {
        "wape": wape(actual, forecast),
        "mae": mae(actual, forecast),
        "cv_rmse": cv_rmse(actual, forecast),
        "nmbe": nmbe(actual, forecast),
    }


def per_group_wape(frame: pd.DataFrame, group: str, actual: str, forecast: str) -> pd.Series:
    """WAPE per group (e.g. per zone), NaN for groups whose actuals sum to 0."""
    err = (frame[forecast] - frame[actual]).abs()
    parts = pd.DataFrame({group: frame[group], "err": err, "y": frame[actual]}).dropna()
    sums = parts.groupby(group, observed=True)[["err", "y"]].sum()
    return (sums["err"] / sums["y"].where(sums["y"] > 0)).rename("wape")


def reliability(probability: np.ndarray, outcome: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """The reliability (calibration) table of probabilities against 0/1 outcomes.

    Equal-width bins of the probability, ``[0, 0.1)`` … ``[0.9, 1]``: ``bin_low``, ``bin_high``, ``hours``
    (count), ``mean_p`` (mean forecast probability) and ``observed`` (share of outcomes that were 1); empty
    bins are left out. A reliable forecast has ``observed ≈ mean_p`` in every bin.
    """
    p = np.asarray(probability, dtype=float)
    o = np.asarray(outcome, dtype=float)
    keep = ~np.isnan(p) & ~np.isnan(o)
    p, o = p[keep], o[keep]
    which = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    hours = np.bincount(which, minlength=bins)
    sum_p = np.bincount(which, weights=p, minlength=bins)
    sum_o = np.bincount(which, weights=o, minlength=bins)
    used = hours > 0
    edges = np.arange(bins + 1) / bins
    return pd.DataFrame(
        {
            "bin_low": edges[:-1][used],
            "bin_high": edges[1:][used],
            "hours": hours[used],
            "mean_p": sum_p[used] / hours[used],
            "observed": sum_o[used] / hours[used],
        }
    )

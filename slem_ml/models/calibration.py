"""What the forecaster learns from its own out-of-sample forecasts (issue 16), as pure functions.

Three things, each learnt on backtest forecasts — hours the models that made them were not fitted on:

* **the interval's margins per state** (:func:`state_margins`). A zone-hour is lit or dark, and one
  conformal margin for both left the 80 % band too narrow on lit hours (CU-BEMS: 67.5 %) and too wide on
  dark ones. Hours predicted lit (``p_on`` ≥ 0.5) and hours predicted dark each get a lower and an upper
  margin, the four chosen together as the narrowest band that still holds ``coverage`` of the actually lit
  hours **and** of the actually dark hours (conformalised quantile regression, with a small search in
  place of one quantile);
* **the on-probability's calibration** (:func:`isotonic_map`): an isotonic map from the classifier's
  probability to the observed lit frequency, applied with ``np.interp``;
* **how much of the level-scaled hour-of-week profile each zone's point forecast takes**
  (:func:`profile_weights`): the even mix of profile and model, or either alone where the backtest says it
  is clearly better for that zone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slem_ml.io import schema as S

__all__ = [
    "DEFAULT_PROFILE_WEIGHT",
    "MIN_GROUP_ROWS",
    "MIN_STATE_ROWS",
    "PROFILE_MARGIN",
    "isotonic_map",
    "profile_weights",
    "state_margins",
]

#: A predicted state with fewer backtest hours than this shares the other's margins.
MIN_GROUP_ROWS = 100
#: An actual state with fewer hours than this sets no coverage constraint (too few to take a quantile of).
MIN_STATE_ROWS = 20
#: The point forecast of a zone is this mix of the profile and the model unless the backtest says otherwise:
#: the absolute error of a mean is at most the mean of the absolute errors, and on every data set of
#: issue 16 the even mix was about as good as the better of the two, often better than both.
DEFAULT_PROFILE_WEIGHT = 0.5
#: The model alone or the profile alone replaces the mix for a zone only when its backtest error is this
#: much lower [fraction]: two weeks of one zone are a noisy judge, and a switch on noise costs more than it
#: gains.
PROFILE_MARGIN = 0.1
_CANDIDATES = 51  # margins tried per side and predicted state: quantiles of the hours' scores


def state_margins(
    frame: pd.DataFrame, scale: np.ndarray, p_on: np.ndarray, coverage: float
) -> dict[str, tuple[float, float]]:
    """Margins (lower, upper) [multiples of the zone scale] for hours predicted ``"lit"`` (``p_on`` ≥ 0.5)
    and ``"dark"``: the narrowest band that holds ``coverage`` of the actually lit hours and of the actually
    dark hours.

    ``frame`` holds out-of-sample forecasts: ``power_w`` (actual [W]), ``lit`` (actual state),
    ``lower_raw_w``, ``upper_raw_w`` [W]; ``scale`` is each row's zone scale [W]. An hour is inside the band
    widened by (m_l, m_u) when ``(lower − y) / scale ≤ m_l`` and ``(y − upper) / scale ≤ m_u``. Each
    predicted state tries :data:`_CANDIDATES` quantiles of its hours' scores for either margin; the pair of
    options (one per predicted state) with the smallest total width [W] whose hours inside reach
    ``⌈(n + 1) · coverage⌉`` of each actual state's n hours is chosen. A predicted state with fewer than
    :data:`MIN_GROUP_ROWS` hours shares the other's margins; an actual state with fewer than
    :data:`MIN_STATE_ROWS` hours sets no constraint.
    """
    y = frame[S.POWER_W].to_numpy(dtype=float)
    keep = ~np.isnan(y)
    lower = frame["lower_raw_w"].to_numpy(dtype=float)[keep]
    upper = frame["upper_raw_w"].to_numpy(dtype=float)[keep]
    y, scale = y[keep], np.asarray(scale, dtype=float)[keep]
    lit = frame["lit"].to_numpy(dtype=bool)[keep]
    predicted = np.asarray(p_on, dtype=float)[keep] >= 0.5
    if not len(y):
        return {"lit": (0.0, 0.0), "dark": (0.0, 0.0)}
    needed = []
    for state in (True, False):
        n = int(np.sum(lit == state))
        needed.append(min(n, int(np.ceil((n + 1) * coverage))) if n >= MIN_STATE_ROWS else 0)
    if not any(needed):  # too few hours of either state: one constraint on all hours
        needed = [min(len(y), int(np.ceil((len(y) + 1) * coverage))), 0]
        lit = np.ones(len(y), dtype=bool)
    below, above = (lower - y) / scale, (y - upper) / scale
    split = [predicted, ~predicted]
    if min(int(rows.sum()) for rows in split) < MIN_GROUP_ROWS:
        one = _options(below, above, scale, lower, lit)
        margins = _cheapest(one, _none(), needed)[0]
        return {"lit": margins, "dark": margins}
    options = [_options(below[r], above[r], scale[r], lower[r], lit[r]) for r in split]
    on, off = _cheapest(options[0], options[1], needed)
    return {"lit": on, "dark": off}


_Options = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _options(
    below: np.ndarray, above: np.ndarray, scale: np.ndarray, lower: np.ndarray, lit: np.ndarray
) -> _Options:
    """Every (m_l, m_u) pair of candidate margins for one predicted state, flattened: the margins, the
    lit and dark hours inside the band, and the band's total width beyond the raw band's [W]."""
    levels = np.linspace(0.0, 1.0, _CANDIDATES)
    lows, highs = np.quantile(below, levels), np.quantile(above, levels)
    counts = []
    for state in (True, False):
        rows = lit == state
        # hours inside for margins (lows[i], highs[j]) = those with below ≤ lows[i] and above ≤ highs[j]
        i = np.searchsorted(lows, below[rows], side="left")
        j = np.searchsorted(highs, above[rows], side="left")
        size = _CANDIDATES + 1
        grid = np.bincount(i * size + j, minlength=size * size).reshape(size, size)
        counts.append(np.cumsum(np.cumsum(grid, axis=0), axis=1)[:_CANDIDATES, :_CANDIDATES].ravel())
    # width added [W]: the upper bound moves by m_u · scale, the lower one by m_l · scale down to 0 W
    upper_cost = highs * float(np.sum(scale))
    lower_cost = np.array([-np.sum(np.clip(lower - m * scale, 0.0, None)) for m in lows])
    width = (lower_cost[:, None] + upper_cost[None, :]).ravel()
    low_margin = np.repeat(lows, _CANDIDATES)
    high_margin = np.tile(highs, _CANDIDATES)
    return low_margin, high_margin, counts[0], counts[1], width


def _none() -> _Options:
    """The options of an empty predicted state: no margins, nothing inside, no width."""
    zero = np.zeros(1)
    return zero, zero, zero, zero, zero


def _cheapest(first: _Options, second: _Options, needed: list[int]) -> tuple[tuple[float, float], ...]:
    """The margins of the cheapest pair of options (one of each) holding ``needed`` lit and dark hours
    (the widest candidates when none does)."""
    lit_in = first[2][:, None] + second[2][None, :]
    dark_in = first[3][:, None] + second[3][None, :]
    width = np.where(
        (lit_in >= needed[0]) & (dark_in >= needed[1]), first[4][:, None] + second[4][None, :], np.inf
    )
    a, b = (int(k) for k in np.unravel_index(int(np.argmin(width)), width.shape))
    if not np.isfinite(width[a, b]):  # unreachable: the last candidates hold every hour
        a, b = len(first[0]) - 1, len(second[0]) - 1
    return (float(first[0][a]), float(first[1][a])), (float(second[0][b]), float(second[1][b]))


def isotonic_map(probability: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x, y) of the isotonic regression of 0/1 ``outcome`` on ``probability``: calibrated
    probabilities are ``np.interp(p, x, y)`` (flat beyond the ends)."""
    from sklearn.isotonic import IsotonicRegression  # lazy: training only; predicting uses np.interp

    p = np.asarray(probability, dtype=float)
    o = np.asarray(outcome, dtype=float)
    keep = ~np.isnan(p) & ~np.isnan(o)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[keep], o[keep])
    return np.asarray(fitted.X_thresholds_, dtype=float), np.asarray(fitted.y_thresholds_, dtype=float)


def profile_weights(frame: pd.DataFrame, *, model: str, profile: str) -> dict[str, float]:
    """Each zone's weight of the profile in its point forecast: 0 (the model), 0.5 (their mean) or 1 (the
    profile).

    ``frame``: out-of-sample forecasts with ``zone_id``, ``power_w`` and the two forecast columns [W]; where
    the profile is missing (too little history) the model's forecast stands in for it, as when
    forecasting. A zone keeps :data:`DEFAULT_PROFILE_WEIGHT` unless the model alone or the profile alone
    had an absolute error at least :data:`PROFILE_MARGIN` lower than the mean's.
    """
    y = frame[S.POWER_W].to_numpy(dtype=float)
    fitted = frame[model].to_numpy(dtype=float)
    alternative = frame[profile].to_numpy(dtype=float)
    alternative = np.where(np.isnan(alternative), fitted, alternative)
    keep = ~np.isnan(y)
    weights = (0.0, DEFAULT_PROFILE_WEIGHT, 1.0)
    errors = (
        pd.DataFrame(
            {
                S.ZONE_ID: frame[S.ZONE_ID].astype(str).to_numpy()[keep],
                **{str(w): np.abs(w * alternative + (1 - w) * fitted - y)[keep] for w in weights},
            }
        )
        .groupby(S.ZONE_ID, sort=True)
        .sum()
    )
    best = errors.idxmin(axis=1).astype(float)
    clearly = errors.min(axis=1) < (1.0 - PROFILE_MARGIN) * errors[str(DEFAULT_PROFILE_WEIGHT)]
    chosen = best.where(clearly, DEFAULT_PROFILE_WEIGHT)
    return {str(z): float(w) for z, w in chosen.items()}

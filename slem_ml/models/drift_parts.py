"""The arithmetic behind :class:`slem_ml.models.drift.DriftDetector`: its runs and days, the two CUSUMs, and
small per-zone statistics. Units as there: levels and every CUSUM quantity are natural logs of a power [log W]
or of a power ratio; instants int64 UTC [ms].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.models.alerts import ZonedReadings

__all__ = ["KEY", "Cusum", "Days", "Runs", "cusum", "days_of", "noise", "recent_max", "steady_share"]

KEY = np.int64(1 << 32)  # (zone, local day) sort keys: zone * KEY + day


@dataclass(frozen=True)
class Runs:
    """Completed steady runs in (zone, time) order: zone code, local day, level [log W], known_ms [UTC ms];
    and of each run's zone-day: day_last_ms [UTC ms] (its last reading so far), day_complete (the zone
    reports on a later day)."""

    zone: np.ndarray
    day: np.ndarray
    level: np.ndarray
    known_ms: np.ndarray
    day_last_ms: np.ndarray
    day_complete: np.ndarray
    steady: np.ndarray  # per reading (not per run): it belongs to a steady run

    @property
    def key(self) -> np.ndarray:
        return self.zone * KEY + self.day


@dataclass(frozen=True)
class Days:
    """Zone-days with a completed steady run: zone code, local day, level [log W] (the highest run level),
    last_ms [UTC ms] (the day's last reading so far), complete (the zone reports on a later day)."""

    zone: np.ndarray
    day: np.ndarray
    level: np.ndarray
    last_ms: np.ndarray
    complete: np.ndarray


@dataclass(frozen=True)
class Cusum:
    """The CUSUM's settings (the detector's parameters of the same names)."""

    allowance: float
    threshold: float
    floor: float
    cap: float
    onset_allowance: float
    resolve_days: int


def cusum(
    settings: Cusum, over_ceiling: np.ndarray, over_base: np.ndarray, complete: np.ndarray, recent: np.ndarray
) -> tuple[list[tuple[int, int, int, float]], dict[tuple[int, int], int]]:
    """Alerts raised as (zone row, day column, onset column, C before that day) and, per raised alert,
    its last day column with a positive CUSUM once it has ended. ``recent`` is ≥ 0 on the days an alert
    may be raised (the brightest of the zone's last 7 judged days is far enough over its ceiling).

    The recursion runs over days, vectorised over zones: a clipped CUSUM has no closed form, and there
    are only as many iterations as days. Only complete days change what later days see.
    """
    Z, D = over_ceiling.shape
    limit = settings.cap * settings.threshold
    c = np.zeros(Z)
    onset_c = np.zeros(Z)
    active = np.zeros(Z, dtype=bool)
    quiet = np.zeros(Z, dtype=np.int64)
    last_zero = np.full(Z, -1)
    first_judged = np.full(Z, -1)
    last_positive = np.full(Z, -1)
    since = np.full(Z, -1)  # day column at which the open alert was raised
    raised: list[tuple[int, int, int, float]] = []
    ended: dict[tuple[int, int], int] = {}
    for j in range(D):
        x = over_ceiling[:, j]
        judged = ~np.isnan(x)
        full = judged & complete[:, j]
        before = c
        c = np.where(
            judged,
            np.clip(c + (np.maximum(np.nan_to_num(x), -settings.floor) - settings.allowance), 0.0, limit),
            c,
        )
        new = ~active & (c > settings.threshold) & (recent[:, j] >= 0.0)
        for row in np.flatnonzero(new):
            onset = last_zero[row] + 1 if last_zero[row] >= 0 else first_judged[row]
            raised.append((int(row), j, int(j if onset < 0 else min(onset, j)), float(before[row])))
        since = np.where(new, j, since)
        active |= new
        onset_c = np.where(
            full,
            np.maximum(onset_c + np.nan_to_num(over_base[:, j]) - settings.onset_allowance, 0.0),
            onset_c,
        )
        last_zero = np.where(full & (onset_c == 0.0), j, last_zero)
        first_judged = np.where((first_judged < 0) & full, j, first_judged)
        last_positive = np.where(full & (c > 0.0), j, last_positive)
        quiet = np.where(full, np.where(c > 0.0, 0, quiet + 1), np.where(new, 0, quiet))
        done = active & (quiet >= settings.resolve_days)
        for row in np.flatnonzero(done):
            ended[(int(row), int(since[row]))] = int(last_positive[row])
        active &= ~done
    return raised, ended


def steady_share(z: ZonedReadings, steady: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Per zone code: the share of its readings in ``among`` that belong to a steady run (0: none)."""
    total = np.bincount(z.zone[among], minlength=len(z.names))
    inside = np.bincount(z.zone[among & steady], minlength=len(z.names))
    return inside / np.maximum(total, 1)


def recent_max(over: np.ndarray, days: int) -> np.ndarray:
    """Per zone row and day column: the largest of the row's last ``days`` values that are not NaN, up to
    and with that column (NaN before the first)."""
    rows, cols = np.nonzero(~np.isnan(over))  # row-major: each row's judged days in order
    rolled = pd.Series(over[rows, cols]).groupby(rows).rolling(days, min_periods=1).max()
    out = np.full(over.shape, np.nan)
    out[rows, cols] = rolled.to_numpy()
    return pd.DataFrame(out).ffill(axis=1).to_numpy()


def noise(z: ZonedReadings, breaks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """Pooled standard deviation of log power between the readings of lit runs (natural log)."""
    _, log_p, new = breaks
    if len(log_p) == 0:
        return 0.0
    run = np.cumsum(new) - 1
    count = np.bincount(run, weights=z.on.astype(float))
    mean = np.bincount(run, weights=np.where(z.on, log_p, 0.0)) / np.maximum(count, 1)
    squares = np.bincount(run, weights=np.where(z.on, (log_p - mean[run]) ** 2, 0.0))
    pairs = count >= 2
    return float(np.sqrt(squares[pairs].sum() / max((count[pairs] - 1).sum(), 1)))


def days_of(runs: Runs) -> Days:
    """The daily levels of the runs' zone-days."""
    days, first, inverse = np.unique(runs.key, return_index=True, return_inverse=True)
    level = np.full(len(days), -np.inf)
    np.maximum.at(level, inverse, runs.level)
    return Days(runs.zone[first], runs.day[first], level, runs.day_last_ms[first], runs.day_complete[first])

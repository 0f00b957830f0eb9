"""Spikes (SPEC §5 ``spike``): :class:`SpikeDetector`, single lit readings far above what their zone draws.

Input is the scored readings frame of :mod:`slem_ml.models.anomaly` (``timestamp`` tz-aware UTC, ``zone_id``,
``power_w`` [W], ``is_on``, ``in_contract``). Power [W]; instants int64 UTC [ms]; log ratios are natural logs.

A lit reading is a spike when all of these hold (each is causal: it needs readings up to the next one only):

Level
    It is at least ``min_ratio`` times its *reference*: the ``reference_quantile`` (0.9) of the power of the
    zone's previous ``window`` lit readings **in the same contract state** (inside or outside contracted
    hours) — the most the zone usually draws when lit in that state. A zone's lights are brighter in
    contracted hours than after them, so one level for both would call every bright working-hour reading a
    spike of the evening, or miss the evening's. The quantile is robust: up to a tenth of those readings
    may be spikes themselves (the legacy export plants 3 %). It comes from the readings being scored, so it
    follows the zone's own level, a season and a slow drift (drift is :mod:`slem_ml.models.drift`'s job);
    a zone-state is judged once it has ``min_history`` earlier lit readings, and while they are few (n) the
    factor is ``min_ratio`` × (1 + ``short_margin`` / n): the top of a few readings is uncertain. Nothing
    learnt in training stands in before that: a champion trained on another site's zones of the same names
    (the sample site's champion scoring a legacy export) would judge them by a stranger's level.
Neighbours
    It is at least ``neighbour_ratio`` times the zone's previous lit reading and its next reading (when that
    one is lit): a single reading, not a level that rose and stays. It is confirmed by the next reading of
    its zone, whose time is ``detected_at``.
Forest
    The IsolationForest (SPEC §5) scores the readings that pass both tests on ``SPIKE_FEATURES``; the score
    is ``anomaly_score`` (higher = more anomalous; NaN for every other reading). A candidate the forest finds
    less isolated than ``score_quantile`` of the training readings is not a spike. Scoring only candidates
    keeps the forest off the million ordinary readings of a file.

A spike's energy is billed at the mean of its lit neighbours (SPEC §3.9), at most its reference. Two spiked
readings in a row hide each other: neither is ``neighbour_ratio`` times the other.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.models.alerts import ZonedReadings, zoned_readings
from slem_ml.models.cores import cores

__all__ = ["SPIKE_FEATURES", "SpikeDetector", "SpikeFindings", "spike_episodes"]

#: Columns of the forest's feature matrix (log ratios are natural logs; hour is local, 0–24).
SPIKE_FEATURES: tuple[str, ...] = ("log_ratio_prev", "log_ratio_next", "log_ratio_level", "hour")
_TINY_W = 1e-3  # keeps log ratios finite where a reading is 0 W


@dataclass(frozen=True)
class SpikeFindings:
    """Per frame row: ``score`` (the forest's anomaly score, higher = more anomalous; NaN for readings the
    level and neighbour tests let go), ``is_spike`` (bool) and ``reference_w`` (the power to bill a spike at
    [W], NaN where not a spike)."""

    score: np.ndarray
    is_spike: np.ndarray
    reference_w: np.ndarray


@dataclass(frozen=True)
class _Evidence:
    """Per lit reading (``rows``: their sorted positions): the forest's features and the tests' inputs."""

    rows: np.ndarray
    X: np.ndarray  # (len(rows), 4) SPIKE_FEATURES
    top_w: np.ndarray  # [W] the reference (NaN: not judged)
    history: np.ndarray  # earlier lit readings the reference stands on
    prev_w: np.ndarray  # [W] previous lit reading of the zone (NaN: none)
    next_w: np.ndarray  # [W] next reading when lit (NaN: none or dark)
    inside: np.ndarray  # bool, in contracted hours


@dataclass(frozen=True)
class _Found:
    """Sorted-order results: score, is_spike, billing reference [W]; and per spike its evidence."""

    score: np.ndarray
    is_spike: np.ndarray
    billed_w: np.ndarray
    top_w: np.ndarray  # [W] the reference of each reading (NaN: none)
    prev_w: np.ndarray
    next_w: np.ndarray
    inside: np.ndarray


class _Before(BaseIndexer):
    """Windows of the ``window`` positions before each one, never reaching before its group's start."""

    def __init__(self, group_start: np.ndarray, window: int) -> None:
        super().__init__()
        self.group_start = group_start
        self.span = window

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        end = np.arange(num_values, dtype=np.int64)
        return np.maximum(self.group_start[:num_values], end - self.span).astype(np.int64), end


class SpikeDetector(BaseEstimator):
    """Single lit readings far above what their zone draws (SPEC §5 ``spike``; scikit-learn contract).

    See the module docstring for the three tests.

    Parameters
    ----------
    min_ratio : a spike is at least this many times its reference [×].
    reference_quantile : the reference is this quantile of the zone-state's earlier lit readings.
    window : ... of at most this many earlier lit readings of the zone in the same contract state.
    min_history : earlier lit readings a zone-state needs here before it is judged at all.
    short_margin : with n earlier lit readings behind the reference, a spike is ``min_ratio`` ×
        (1 + short_margin / n) times it: the top of a few readings is an uncertain top (2 days of a legacy
        export: a zone-state's 5th reading needs 2.2 ×, its 100th 1.29 ×).
    neighbour_ratio : a spike is at least this many times the previous lit reading and the next (lit) one.
    score_quantile : a spike's forest score is above this quantile of the training readings' scores.
    n_estimators, max_samples, random_state : of the IsolationForest.
    max_train_rows : the forest and its threshold learn from at most this many lit readings (a seeded sample).

    Attributes
    ----------
    on_level_w_ : pd.Series, the median lit power per zone id [W] (the live detectors' typical lit power).
    forest_ : the fitted IsolationForest.
    threshold_ : anomaly score at ``score_quantile`` of the training readings.
    """

    def __init__(
        self,
        *,
        min_ratio: float = 1.25,
        reference_quantile: float = 0.9,
        window: int = 256,
        min_history: int = 4,
        short_margin: float = 3.0,
        neighbour_ratio: float = 1.2,
        score_quantile: float = 0.5,
        n_estimators: int = 100,
        max_samples: int = 256,
        max_train_rows: int = 200_000,
        random_state: int = 0,
    ) -> None:
        self.min_ratio = min_ratio
        self.reference_quantile = reference_quantile
        self.window = window
        self.min_history = min_history
        self.short_margin = short_margin
        self.neighbour_ratio = neighbour_ratio
        self.score_quantile = score_quantile
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a detector pickled before a parameter existed takes its default. One pickled before
        the level test (issue 16) had its forest judge every lit reading, with a threshold at the 99th
        percentile: that threshold would now veto most candidates, so the rule alone decides for it
        (as the forest's median threshold does on every data set measured) until it is retrained."""
        super().__setstate__(state)
        if "window" not in state and "forest_" in state:
            self.threshold_ = -np.inf
        for name, default in _DEFAULTS.items():
            if name not in self.__dict__:
                setattr(self, name, default)

    def fit(self, frame: pd.DataFrame, site: SiteConfig) -> SpikeDetector:
        """Learn each zone's median lit power and the forest from (preferably fault-free) scored readings."""
        z = zoned_readings(frame, S.IN_CONTRACT)
        if not z.on.any():
            raise SlemError("the spike detector needs lit readings to learn from; these readings have none")
        lit = np.flatnonzero(z.on)
        names = pd.Index(z.names, dtype=object)
        level = pd.Series(z.power[lit]).groupby(z.zone[lit]).median()
        self.on_level_w_ = pd.Series(level.to_numpy(dtype=float), index=names[level.index.to_numpy()])
        X = self._evidence(z, site).X
        if len(X) > self.max_train_rows:
            pick = np.random.default_rng(self.random_state).choice(len(X), self.max_train_rows, replace=False)
            X = X[np.sort(pick)]
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(X)),
            random_state=self.random_state,
        )
        self.forest_ = forest.fit(X)
        self.threshold_ = float(np.quantile(-forest.score_samples(X), self.score_quantile))
        self.n_features_in_ = X.shape[1]
        return self

    def find(self, frame: pd.DataFrame, site: SiteConfig) -> SpikeFindings:
        """Scores, decisions and billing power of every reading, in frame-row order."""
        z = zoned_readings(frame, S.IN_CONTRACT)
        f = self.find_sorted(z, site)
        return SpikeFindings(z.scatter(f.score), z.scatter(f.is_spike), z.scatter(f.billed_w))

    def score_samples(self, frame: pd.DataFrame, site: SiteConfig) -> np.ndarray:
        """The forest's anomaly score of every lit reading, candidate or not (higher = more anomalous; NaN:
        off): what the forest alone would say. ``find`` scores only the candidates."""
        check_is_fitted(self, "forest_")
        z = zoned_readings(frame, S.IN_CONTRACT)
        ev = self._evidence(z, site)
        score = np.full(len(z.t), np.nan)
        score[ev.rows] = -_forest_scores(self.forest_, ev.X)
        return z.scatter(score)

    def predict(self, frame: pd.DataFrame, site: SiteConfig) -> np.ndarray:
        """True for the readings that are spikes."""
        return self.find(frame, site).is_spike

    def find_sorted(self, z: ZonedReadings, site: SiteConfig) -> _Found:
        """:meth:`find` in (zone, time) order, with each reading's evidence (``z`` needs ``in_contract``)."""
        check_is_fitted(self, "forest_")
        n = len(z.t)
        ev = self._evidence(z, site)
        power = z.power[ev.rows]
        log_nb = np.log(self.neighbour_ratio)
        candidate = (
            z.same_next[ev.rows]  # confirmed by the next reading
            & (power >= self.min_ratio * ev.top_w * (1.0 + self.short_margin / np.maximum(ev.history, 1)))
            & ~(ev.X[:, 0] < log_nb)  # the previous lit reading (none: passes)
            & ~(ev.X[:, 1] < log_nb)  # the next reading, when lit
        )
        picked = np.flatnonzero(candidate)
        row_score = -_forest_scores(self.forest_, ev.X[picked])
        score = np.full(n, np.nan)
        score[ev.rows[picked]] = row_score
        spikes = ev.rows[picked[row_score > self.threshold_]]
        keep = picked[row_score > self.threshold_]
        is_spike = np.zeros(n, dtype=bool)
        is_spike[spikes] = True
        prev_w, next_w = ev.prev_w[keep], ev.next_w[keep]
        beside = np.where(
            np.isnan(prev_w), next_w, np.where(np.isnan(next_w), prev_w, 0.5 * (prev_w + next_w))
        )
        billed = np.full(n, np.nan)
        billed[spikes] = np.fmin(beside, ev.top_w[keep])  # no lit neighbour: its reference
        return _Found(
            score,
            is_spike,
            billed,
            top_w=_spread(n, ev.rows, ev.top_w),
            prev_w=_spread(n, ev.rows, ev.prev_w),
            next_w=_spread(n, ev.rows, ev.next_w),
            inside=_spread(n, ev.rows, ev.inside).astype(bool),
        )

    def _evidence(self, z: ZonedReadings, site: SiteConfig) -> _Evidence:
        n = len(z.t)
        lit_pos = np.where(z.on, np.arange(n), -1)
        prev = np.maximum.accumulate(np.concatenate(([-1], lit_pos[:-1])))[:n]
        rows = np.flatnonzero(z.on)
        before = prev[rows]
        prev_w = np.where(before >= z.first[rows], z.power[np.maximum(before, 0)], np.nan)
        next_lit = z.same_next & np.append(z.on[1:], False)
        next_w = np.where(next_lit[rows], z.power[np.minimum(rows + 1, n - 1)], np.nan)
        inside = z.col(S.IN_CONTRACT, bool)[rows]
        top_w, history = self._references(z, rows, inside)
        power = np.maximum(z.power[rows], _TINY_W)
        lr_prev = np.log(power / np.maximum(prev_w, _TINY_W))
        lr_next = np.log(power / np.maximum(next_w, _TINY_W))
        fill = np.nan_to_num(np.fmin(lr_prev, lr_next), nan=0.0)  # a missing neighbour looks like the other
        lr_level = np.log(power / np.maximum(top_w, _TINY_W))
        X = np.column_stack(
            [
                np.where(np.isnan(lr_prev), fill, lr_prev),
                np.where(np.isnan(lr_next), fill, lr_next),
                np.where(np.isnan(lr_level), fill, lr_level),  # no reference: judged by its neighbours
                _local_hour(z.t[rows], site.site.timezone),
            ]
        )
        return _Evidence(rows, X, top_w, history, prev_w, next_w, inside)

    def _references(
        self, z: ZonedReadings, rows: np.ndarray, inside: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each lit reading's reference [W] — the zone-state's rolling quantile (NaN: too little history) —
        and how many earlier lit readings it stands on."""
        key = z.zone[rows] * 2 + inside
        order = np.argsort(key, kind="stable")  # (zone, state, time): rows are in (zone, time) order
        sorted_key = key[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = sorted_key[1:] != sorted_key[:-1]
        group_start = np.flatnonzero(new)[np.cumsum(new) - 1]
        power = pd.Series(z.power[rows][order])
        window = _Before(group_start, int(self.window))
        rolled = power.rolling(window, min_periods=int(self.min_history)).quantile(self.reference_quantile)
        own = np.empty(len(rows))
        own[order] = rolled.to_numpy(dtype=float)
        count = np.empty(len(rows))
        count[order] = np.minimum(np.arange(len(rows)) - group_start, self.window)
        return own, count


_DEFAULTS = SpikeDetector().get_params()


def _spread(n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(n, np.nan)
    out[rows] = values
    return out


def _local_hour(t_ms: np.ndarray, timezone: str) -> np.ndarray:
    wall = ms_to_local(t_ms, timezone)
    return wall.hour.to_numpy(dtype=float) + wall.minute.to_numpy(dtype=float) / 60.0


def _forest_scores(forest: IsolationForest, X: np.ndarray) -> np.ndarray:
    """``forest.score_samples(X)`` on every core: blocks of rows side by side (the trees let go of the GIL).

    Each row is still scored tree by tree in the same order, so the scores are those of one thread, bit for
    bit (sklearn's own ``n_jobs`` adds the trees' depths in whatever order the threads finish)."""
    workers = min(cores(), max(1, len(X) // 50_000))
    if workers == 1:
        return forest.score_samples(X) if len(X) else np.zeros(0)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(forest.score_samples, np.array_split(X, workers))))


def spike_episodes(z: ZonedReadings, found: _Found, merge_minutes: float) -> pd.DataFrame:
    """Spikes of a zone less than ``merge_minutes`` apart make one episode, detected at its first spike's
    next reading. It is open while its last spike is less than ``merge_minutes`` before the zone's last
    reading (more may come); its evidence is its largest spike's."""
    rows = np.flatnonzero(found.is_spike)
    if len(rows) == 0:
        return pd.DataFrame()
    merge_ms = merge_minutes * S.MS_PER_MINUTE
    zr, tr = z.zone[rows], z.t[rows]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (zr[1:] != zr[:-1]) | (tr[1:] - tr[:-1] >= merge_ms)
    firsts = np.flatnonzero(new)
    episode = np.cumsum(new) - 1
    factor = z.power[rows] / found.top_w[rows]
    largest = rows[np.lexsort((-factor, episode))][firsts]  # the first row of each episode after sorting
    lasts = np.append(firsts[1:], len(rows)) - 1
    zone_end = z.t[np.flatnonzero(~z.same_next)][np.searchsorted(np.flatnonzero(~z.same_next), rows[lasts])]
    if S.EXPECTED_POWER_W in z.frame.columns:
        expected = z.col(S.EXPECTED_POWER_W, float)[largest]
    else:
        expected = np.full(len(firsts), np.nan)
    return pd.DataFrame(
        {
            S.ZONE_ID: z.names[zr[firsts]],
            "first_ms": tr[firsts],
            "detected_ms": z.t[rows[firsts] + 1],
            "last_ms": tr[lasts],
            "open": zone_end - tr[lasts] < merge_ms,
            "score": np.fmax.reduceat(found.score[rows], firsts),
            "spikes": np.diff(np.append(firsts, len(rows))),
            "peak_ms": z.t[largest],
            "power_w": z.power[largest],
            "reference_w": found.top_w[largest],
            "prev_w": found.prev_w[largest],
            "next_w": found.next_w[largest],
            "in_contract": found.inside[largest],
            "expected_w": expected,
        }
    )

"""The learnt maintenance detectors (SPEC §5): spikes and drift of on-power, and :func:`maintenance_alerts`.

Input everywhere is the scored readings frame (``ScoringResult.readings.frame``: one row per
reading, ``timestamp`` tz-aware UTC, ``zone_id``, ``power_w`` [W], ``is_on``, ``in_contract``, optionally
``expected_power_w`` [W], which only ever appears in the words of an alert). Rows may come in any order;
per-row results follow the frame's rows.

``spike`` — :class:`SpikeDetector`
    A lit reading far above the lit readings beside it. Features, all relative to the zone itself: the log
    ratio of the power to the previous lit reading of the zone and to the next reading (when that is lit),
    to the zone's typical on-power (learnt in ``fit``) and the local hour. An IsolationForest scores them
    (``anomaly_score``: higher = more anomalous). Its ``contamination`` would flag a fixed share of *any*
    data, so a reading is a spike only when (1) it is at least ``min_ratio`` times both neighbours (a
    physical gate: tenants' levels change from day to day, a single reading does not triple and fall back)
    and at least ``min_level_ratio`` of the zone's typical on-power, and (2) its score is above a quantile of
    the scores of the training readings. A spike is confirmed by the next reading, so it is detected at
    that reading's time; its energy is billed at the reference power (SPEC §3.9), the mean of the lit
    readings beside it. Two spiked readings in a row hide each other: neither is twice its neighbour.
``drift`` — :class:`slem_ml.models.drift.DriftDetector`
    A one-sided CUSUM per zone on the ratio of a daily on-power level (the brightest steady lit run of the
    day) to the zone's normal full-brightness power; described in :mod:`slem_ml.models.drift`.
``stuck_on`` and ``dropout``
    Rules: :func:`slem_ml.models.alerts.stuck_on_alerts`, :func:`slem_ml.models.alerts.dropout_alerts`.

Detection is causal: an alert's ``detected_at`` is the time of the last reading its detector needed, and
appending later readings changes neither that time nor any earlier decision. The alerts table (ids,
severity, status, words) is described in :mod:`slem_ml.models.alerts`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local
from slem_ml.models.alerts import (
    ALERT_ORDER,
    DROPOUT_HOURS,
    REGULAR_HOURS,
    STUCK_ON_HOURS,
    ZonedReadings,
    dropout_episodes,
    empty_alerts,
    render_alerts,
    stuck_on_episodes,
    zoned_readings,
)
from slem_ml.models.cores import cores
from slem_ml.models.drift import DriftDetector

# DriftDetector lives in slem_ml.models.drift; it is re-exported here for bundles pickled before the split
__all__ = [
    "SPIKE_FEATURES",
    "DriftDetector",
    "MaintenanceFindings",
    "SpikeDetector",
    "SpikeFindings",
    "maintenance_alerts",
]

#: Columns of the spike model's feature matrix (log ratios are natural logs; hour is local, 0–24).
SPIKE_FEATURES: tuple[str, ...] = ("log_ratio_prev", "log_ratio_next", "log_ratio_level", "hour")
_TINY_W = 1e-3  # keeps log ratios finite where a reading is 0 W


@dataclass(frozen=True)
class SpikeFindings:
    """Per frame row: ``score`` (anomaly score, higher = more anomalous, NaN for readings that are off),
    ``is_spike`` (bool) and ``reference_w`` (the power to bill a spike at [W], NaN where not a spike)."""

    score: np.ndarray
    is_spike: np.ndarray
    reference_w: np.ndarray


@dataclass(frozen=True)
class MaintenanceFindings:
    """What :func:`maintenance_alerts` finds. Arrays have one entry per frame row, in frame order.

    ``anomaly_score`` and ``is_anomaly`` are the spike model's (SPEC §7 scored readings), ``reference_w``
    [W] is the power a spike is billed at (NaN elsewhere), ``alerts`` is
    :func:`~slem_ml.models.alerts.alert_columns`.
    """

    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    reference_w: np.ndarray
    alerts: pd.DataFrame
    #: zones the drift detector did not judge: too few days of readings (``DriftDetector.short_history``)
    short_history: tuple[str, ...] = ()


def _local_hour(t_ms: np.ndarray, timezone: str) -> np.ndarray:
    wall = ms_to_local(t_ms, timezone)
    return wall.hour.to_numpy(dtype=float) + wall.minute.to_numpy(dtype=float) / 60.0


def _per_zone(values: np.ndarray, zone: np.ndarray, names: np.ndarray, how: str) -> pd.Series:
    """A statistic of ``values`` per zone, indexed by zone id."""
    stat = pd.Series(values).groupby(zone).agg(how)
    return pd.Series(stat.to_numpy(dtype=float), index=pd.Index(names[stat.index.to_numpy()], dtype=object))


# --- spikes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SpikeEvidence:
    rows: np.ndarray  # sorted positions of the lit readings
    X: np.ndarray  # (len(rows), 4) SPIKE_FEATURES
    around: np.ndarray  # log ratio to the nearer neighbour (min over the available ones; NaN: none)
    prev_w: np.ndarray  # [W] previous lit reading of the zone (NaN: none)
    next_w: np.ndarray  # [W] next reading when lit (NaN: none or dark)
    level_w: np.ndarray  # [W] the zone's typical on-power (NaN: zone not seen in fit)


class SpikeDetector(BaseEstimator):
    """Single lit readings far above their neighbours (SPEC §5 ``spike``; scikit-learn contract).

    Parameters
    ----------
    min_ratio : a spike is at least this many times each neighbouring lit reading [×].
    min_level_ratio : ... and at least this share of the zone's typical on-power [×].
    score_quantile : quantile of the training readings' anomaly scores a spike must exceed.
    n_estimators, max_samples, random_state : of the IsolationForest.
    max_train_rows : the forest and its threshold learn from at most this many lit readings (a seeded sample).

    Attributes
    ----------
    on_level_w_ : pd.Series, the median lit power per zone id [W].
    forest_ : the fitted IsolationForest.
    threshold_ : anomaly score at ``score_quantile`` of the training readings.
    """

    def __init__(
        self,
        *,
        min_ratio: float = 2.0,
        min_level_ratio: float = 0.6,
        score_quantile: float = 0.99,
        n_estimators: int = 100,
        max_samples: int = 256,
        max_train_rows: int = 200_000,
        random_state: int = 0,
    ) -> None:
        self.min_ratio = min_ratio
        self.min_level_ratio = min_level_ratio
        self.score_quantile = score_quantile
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def fit(self, frame: pd.DataFrame, site: SiteConfig) -> SpikeDetector:
        """Learn each zone's on-power and the forest from (preferably fault-free) scored readings."""
        z = zoned_readings(frame)
        if not z.on.any():
            raise SlemError("the spike detector needs lit readings to learn from; these readings have none")
        lit = np.flatnonzero(z.on)
        self.on_level_w_ = _per_zone(z.power[lit], z.zone[lit], z.names, "median")
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
        """Scores, decisions and reference power of every reading, in frame-row order."""
        z = zoned_readings(frame)
        score, is_spike, reference, _ = self._find(z, site)
        return SpikeFindings(z.scatter(score), z.scatter(is_spike), z.scatter(reference))

    def score_samples(self, frame: pd.DataFrame, site: SiteConfig) -> np.ndarray:
        """Anomaly score per row, higher = more anomalous (``-IsolationForest.score_samples``; NaN: off)."""
        return self.find(frame, site).score

    def predict(self, frame: pd.DataFrame, site: SiteConfig) -> np.ndarray:
        """True for the readings that are spikes."""
        return self.find(frame, site).is_spike

    def _evidence(self, z: ZonedReadings, site: SiteConfig) -> _SpikeEvidence:
        n = len(z.t)
        lit_pos = np.where(z.on, np.arange(n), -1)
        prev = np.maximum.accumulate(np.concatenate(([-1], lit_pos[:-1])))[:n]
        rows = np.flatnonzero(z.on)
        before = prev[rows]
        prev_w = np.where(before >= z.first[rows], z.power[np.maximum(before, 0)], np.nan)
        next_lit = z.same_next & np.append(z.on[1:], False)
        next_w = np.where(next_lit[rows], z.power[np.minimum(rows + 1, n - 1)], np.nan)
        power = np.maximum(z.power[rows], _TINY_W)
        level_w = self.on_level_w_.reindex(z.names).to_numpy(dtype=float)[z.zone[rows]]
        lr_prev = np.log(power / np.maximum(prev_w, _TINY_W))
        lr_next = np.log(power / np.maximum(next_w, _TINY_W))
        around = np.fmin(lr_prev, lr_next)
        fill = np.nan_to_num(around, nan=0.0)  # a missing neighbour looks like the other one
        lr_level = np.log(power / np.maximum(level_w, _TINY_W))
        X = np.column_stack(
            [
                np.where(np.isnan(lr_prev), fill, lr_prev),
                np.where(np.isnan(lr_next), fill, lr_next),
                np.where(np.isnan(lr_level), fill, lr_level),  # unseen zone: judged by its neighbours
                _local_hour(z.t[rows], site.site.timezone),
            ]
        )
        return _SpikeEvidence(rows, X, around, prev_w, next_w, level_w)

    def _find(self, z: ZonedReadings, site: SiteConfig) -> tuple[np.ndarray, ...]:
        """Sorted-order score, is_spike, reference_w and 'both neighbours lit'."""
        check_is_fitted(self, "forest_")
        n = len(z.t)
        ev = self._evidence(z, site)
        score = np.full(n, np.nan)
        row_score = -_forest_scores(self.forest_, ev.X)
        score[ev.rows] = row_score
        power = z.power[ev.rows]
        gate = (
            z.same_next[ev.rows]  # confirmed by the next reading
            & (ev.around >= np.log(self.min_ratio))
            & ~(power < self.min_level_ratio * ev.level_w)  # NaN level (unseen zone) passes
            & (row_score > self.threshold_)
        )
        spikes = ev.rows[gate]
        prev_w, next_w = ev.prev_w[gate], ev.next_w[gate]
        is_spike = np.zeros(n, dtype=bool)
        is_spike[spikes] = True
        reference = np.full(n, np.nan)
        reference[spikes] = np.where(
            np.isnan(prev_w), next_w, np.where(np.isnan(next_w), prev_w, 0.5 * (prev_w + next_w))
        )
        both = np.zeros(n, dtype=bool)
        both[spikes] = ~np.isnan(prev_w) & ~np.isnan(next_w)
        return score, is_spike, reference, both


def _forest_scores(forest: IsolationForest, X: np.ndarray) -> np.ndarray:
    """``forest.score_samples(X)`` on every core: blocks of rows side by side (the trees let go of the GIL).

    Each row is still scored tree by tree in the same order, so the scores are those of one thread, bit for
    bit (sklearn's own ``n_jobs`` adds the trees' depths in whatever order the threads finish)."""
    workers = min(cores(), max(1, len(X) // 50_000))
    if workers == 1:
        return forest.score_samples(X) if len(X) else np.zeros(0)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(forest.score_samples, np.array_split(X, workers))))


def _spike_episodes(z: ZonedReadings, found: tuple[np.ndarray, ...], merge_minutes: float) -> pd.DataFrame:
    """Spikes of a zone less than ``merge_minutes`` apart make one episode, detected at its first spike."""
    score, is_spike, reference, both = found
    rows = np.flatnonzero(is_spike)
    if len(rows) == 0:
        return pd.DataFrame()
    zr, tr = z.zone[rows], z.t[rows]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (zr[1:] != zr[:-1]) | (tr[1:] - tr[:-1] > merge_minutes * S.MS_PER_MINUTE)
    firsts = np.flatnonzero(new)
    episode = np.cumsum(new) - 1
    factor = z.power[rows] / reference[rows]
    largest = rows[np.lexsort((-factor, episode))][firsts]  # the first row of each episode after sorting
    if S.EXPECTED_POWER_W in z.frame.columns:
        expected = z.col(S.EXPECTED_POWER_W, float)[largest]
    else:
        expected = np.full(len(firsts), np.nan)
    return pd.DataFrame(
        {
            S.ZONE_ID: z.names[zr[firsts]],
            "first_ms": tr[firsts],
            "detected_ms": z.t[rows[firsts] + 1],
            "last_ms": np.maximum.reduceat(tr, firsts),
            "open": False,
            "score": np.maximum.reduceat(score[rows], firsts),
            "spikes": np.diff(np.append(firsts, len(rows))),
            "power_w": z.power[largest],
            "reference_w": reference[largest],
            "both_sides": both[largest],
            "expected_w": expected,
        }
    )


# --- all together ---------------------------------------------------------------------------------


def maintenance_alerts(
    frame: pd.DataFrame,
    site: SiteConfig,
    spike: SpikeDetector,
    drift: DriftDetector,
    *,
    spike_merge_minutes: float = 60.0,
    data_end_ms: int | None = None,
    site_hours: np.ndarray | None = None,
) -> MaintenanceFindings:
    """Every maintenance finding of the scored readings (SPEC §5): per-reading spike scores, the alerts.

    Spikes of one zone less than ``spike_merge_minutes`` apart make one alert. Alerts are ordered by
    ``detected_at``, then kind and zone. ``data_end_ms`` [UTC ms] is the end of the whole input when
    ``frame`` holds only some of its zones (a batch): a zone silent until then has dropped out;
    ``site_hours`` the hours the whole input has readings in (:func:`~slem_ml.models.alerts.active_hours`).
    """
    z = zoned_readings(frame, S.IN_CONTRACT)
    tz = site.site.timezone
    found = spike._find(z, site)
    parts = [
        render_alerts("spike", _spike_episodes(z, found, spike_merge_minutes), tz),
        render_alerts("drift", drift._episodes(z, site), tz),
        render_alerts("stuck_on", stuck_on_episodes(z, site, STUCK_ON_HOURS), tz),
        render_alerts(
            "dropout", dropout_episodes(z, DROPOUT_HOURS, REGULAR_HOURS, data_end_ms, site_hours), tz
        ),
    ]
    alerts = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(map(len, parts)) else None
    if alerts is None:
        alerts = empty_alerts()
    else:
        alerts = alerts.sort_values(ALERT_ORDER, kind="stable", ignore_index=True)
    score, is_spike, reference, _ = found
    return MaintenanceFindings(
        z.scatter(score), z.scatter(is_spike), z.scatter(reference), alerts, drift.short_history(z, site)
    )

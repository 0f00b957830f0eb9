"""The learnt maintenance detectors (SPEC §5): spikes and drift of on-power, and :func:`maintenance_alerts`.

Input everywhere is the scored readings frame (:class:`slem_ml.result.ScoringResult` ``readings``: one row per
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
``drift`` — :class:`DriftDetector`
    A one-sided CUSUM per zone on a daily statistic: the highest mean power of a steady lit run (at least
    ``min_segment_readings`` touching lit readings whose power moves less than ``step_tolerance`` in log from
    one to the next). Tenants light a zone at 60–100 % from day to day and crews at 90–100 %, so a day's
    brightest steady run sits just under the zone's full power; a drift lifts it above the top of the
    training days (``ceiling_w_``), which a fault-free zone hardly ever passes. Short runs are ignored,
    so a spike or two never move the statistic. A day counts once the zone reports on a later day; that
    reading is the drift's ``detected_at``.
``stuck_on`` and ``dropout``
    Rules: :func:`slem_ml.alerts.stuck_on_alerts`, :func:`slem_ml.alerts.dropout_alerts`.

Detection is causal: an alert's ``detected_at`` is the time of the last reading its detector needed, and
appending later readings changes neither that time nor any earlier decision. The alerts table (ids,
severity, status, words) is described in :mod:`slem_ml.alerts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

from slem_ml import schema as S
from slem_ml.alerts import (
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
from slem_ml.contracts import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.localtime import local_day_numbers, wall_to_utc

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
_DAY_COLUMNS = ("zone", "day", "level_w", "last_ms", "closed_ms")


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
    [W] is the power a spike is billed at (NaN elsewhere), ``alerts`` is :func:`slem_ml.alerts.alert_columns`.
    """

    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    reference_w: np.ndarray
    alerts: pd.DataFrame


def _local_hour(t_ms: np.ndarray, timezone: str) -> np.ndarray:
    wall = pd.DatetimeIndex(t_ms.astype("datetime64[ms]")).tz_localize("UTC").tz_convert(timezone)
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
        row_score = -self.forest_.score_samples(ev.X) if len(ev.rows) else np.zeros(0)
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


# --- drift ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Runs:
    """Steady lit runs: every reading's local day and run number; per run, its lit readings, the mean of
    their log power and the sum of their squared deviations from it."""

    day: np.ndarray
    run: np.ndarray
    count: np.ndarray
    mean_log: np.ndarray
    squares: np.ndarray


class DriftDetector(BaseEstimator):
    """Causal detector of a sustained rise of a zone's on-power (SPEC §5 ``drift``; scikit-learn contract).

    Each complete local day of a zone gives ``x = log(level / ceiling)``: ``level`` is the day's brightest
    steady lit run [W] (module docstring; each run's mean log power less ``run_confidence`` standard errors,
    so that a short noisy run does not set it), ``ceiling`` the top of the zone's daily levels in the
    training data. The CUSUM ``C = min(max(0, C + max(x, -floor) - allowance), cap × threshold)`` raises an
    alert the day it passes ``threshold``; the alert stays one alert until ``C`` has been 0 for
    ``resolve_days`` judged days. A second CUSUM on ``log(level / baseline)`` (allowance ``onset_allowance``)
    dates the onset: the day after it was last 0. A zone not seen in fit takes the median of its first
    ``baseline_days`` judged days here as baseline, and the baseline times the typical ceiling/baseline
    ratio of the fitted zones as ceiling.

    Parameters
    ----------
    step_tolerance : a steady run breaks where the power moves more than this (natural log; 0.1 ≈ 10 %)
        between touching readings.
    min_segment_readings : lit readings a steady run needs to count.
    run_confidence : standard errors taken off a run's mean log power.
    allowance, threshold, floor, cap : of the CUSUM (natural log; 0.01 ≈ 1 %).
    onset_allowance : of the onset CUSUM.
    ceiling_order : the ceiling is the brightest training day plus the mean gap between the
        ``ceiling_order`` brightest ones (the brightest of a few days falls short of the true top).
    baseline_days : days a zone needs in fit to be learnt, and days an unseen zone's baseline takes.
    resolve_days : judged days with ``C == 0`` that end an alert.

    Attributes
    ----------
    noise_ : standard deviation of log power between the readings of a steady run (pooled).
    baseline_w_ : pd.Series, median daily level per zone id [W] (the onset CUSUM's reference).
    ceiling_w_ : pd.Series, top daily level per zone id [W]: the zone's normal full-brightness power,
        which an alert's words compare with the brightest of its last 7 days.
    headroom_ : median of log(ceiling / baseline) over the fitted zones.
    """

    def __init__(
        self,
        *,
        step_tolerance: float = 0.1,
        min_segment_readings: int = 3,
        run_confidence: float = 1.0,
        allowance: float = 0.0025,
        threshold: float = 0.015,
        floor: float = 0.01,
        cap: float = 3.0,
        onset_allowance: float = 0.01,
        ceiling_order: int = 8,
        baseline_days: int = 7,
        resolve_days: int = 7,
    ) -> None:
        self.step_tolerance = step_tolerance
        self.min_segment_readings = min_segment_readings
        self.run_confidence = run_confidence
        self.allowance = allowance
        self.threshold = threshold
        self.floor = floor
        self.cap = cap
        self.onset_allowance = onset_allowance
        self.ceiling_order = ceiling_order
        self.baseline_days = baseline_days
        self.resolve_days = resolve_days

    def fit(self, frame: pd.DataFrame, site: SiteConfig) -> DriftDetector:
        """Learn each zone's normal and highest daily level from (preferably fault-free) scored readings."""
        z = zoned_readings(frame)
        runs = self._runs(z, site)
        pairs = runs.count >= 2
        self.noise_ = float(np.sqrt(runs.squares[pairs].sum() / max((runs.count[pairs] - 1).sum(), 1)))
        days = self._daily(z, site, runs, self.noise_)
        count = days.groupby("zone").size()
        keep = days["zone"].isin(count.index[count >= self.baseline_days])
        if not keep.any():
            raise SlemError(
                f"the drift detector needs {self.baseline_days} days of steady lit readings per zone;"
                " no zone has that many"
            )
        zone, level = days["zone"].to_numpy()[keep], days["level_w"].to_numpy()[keep]
        self.baseline_w_ = _per_zone(level, zone, z.names, "median")
        # The brightest of n days falls short of the top a zone can reach, the more so the fewer the days:
        # extend it by the mean gap between its ``ceiling_order`` brightest days (an endpoint estimate).
        order = np.lexsort((level, zone))
        codes, starts, counts = np.unique(zone[order], return_index=True, return_counts=True)
        top = level[order][starts + counts - 1]
        k = np.minimum(self.ceiling_order, counts - 1)
        kth = level[order][starts + counts - 1 - k]
        self.ceiling_w_ = pd.Series(top + (top - kth) / k, index=pd.Index(z.names[codes], dtype=object))
        self.headroom_ = float(np.median(np.log(self.ceiling_w_ / self.baseline_w_)))
        return self

    def detect(self, frame: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
        """Drift alerts (:func:`slem_ml.alerts.alert_columns`) of the scored readings."""
        return render_alerts("drift", self._episodes(zoned_readings(frame), site), site.site.timezone)

    def _runs(self, z: ZonedReadings, site: SiteConfig) -> _Runs:
        n = len(z.t)
        day = local_day_numbers(z.t.astype("datetime64[ms]"), site.site.timezone)
        log_p = np.log(np.maximum(z.power, _TINY_W))
        max_gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
        new = np.ones(n, dtype=bool)
        new[1:] = (
            ~z.same_next[:-1] | ~z.on[1:] | ~z.on[:-1] | (day[1:] != day[:-1])
            | (np.abs(np.diff(log_p)) > self.step_tolerance) | (np.diff(z.t) > max_gap)
        )  # fmt: skip
        run = np.cumsum(new) - 1
        count = np.bincount(run, weights=z.on)
        mean = np.bincount(run, weights=np.where(z.on, log_p, 0.0)) / np.maximum(count, 1)
        squares = np.bincount(run, weights=np.where(z.on, (log_p - mean[run]) ** 2, 0.0))
        return _Runs(day, run, count, mean, squares)

    def _daily(self, z: ZonedReadings, site: SiteConfig, runs: _Runs, noise: float) -> pd.DataFrame:
        """One row per complete zone-day with a steady run: zone, day, level_w [W], last_ms (the day's last
        reading), closed_ms (the zone's first reading after the day)."""
        n = len(z.t)
        if n == 0:
            return pd.DataFrame({name: np.zeros(0, dtype=np.int64) for name in _DAY_COLUMNS})
        day, run = runs.day, runs.run
        steady = z.on & (runs.count[run] >= self.min_segment_readings)
        # a lower confidence bound of each run's level, so that short noisy runs do not set the day's level
        bound = runs.mean_log - self.run_confidence * noise / np.sqrt(np.maximum(runs.count, 1))
        new_day = np.ones(n, dtype=bool)
        new_day[1:] = (z.zone[1:] != z.zone[:-1]) | (day[1:] != day[:-1])
        zone_day = np.cumsum(new_day) - 1
        firsts = np.flatnonzero(new_day)
        level = np.full(len(firsts), -np.inf)
        np.maximum.at(level, zone_day[steady], bound[run[steady]])
        # A day counts once the zone reports on a later day: no later row can change it then, and that
        # first reading after the day (``closed_ms``) is when the day's level is known.
        closes = np.append(firsts[1:], n)
        keep = np.isfinite(level) & (closes < n)
        keep[keep] &= z.zone[closes[keep]] == z.zone[firsts[keep]]
        return pd.DataFrame(
            {
                "zone": z.zone[firsts][keep],
                "day": day[firsts][keep],
                "level_w": np.exp(level[keep]),
                "last_ms": z.t[closes - 1][keep],
                "closed_ms": z.t[np.minimum(closes, n - 1)][keep],
            }
        )

    def _episodes(self, z: ZonedReadings, site: SiteConfig) -> pd.DataFrame:
        check_is_fitted(self, "ceiling_w_")
        days = self._daily(z, site, self._runs(z, site), self.noise_)
        if days.empty:
            return pd.DataFrame()
        zone = days["zone"].to_numpy()
        level = days["level_w"].to_numpy()
        base = self.baseline_w_.reindex(z.names).to_numpy(dtype=float)[zone]
        ceiling = self.ceiling_w_.reindex(z.names).to_numpy(dtype=float)[zone]
        own = np.isnan(base)
        warm = own & (days.groupby("zone").cumcount().to_numpy() < self.baseline_days)
        own_base = pd.Series(np.where(warm, level, np.nan)).groupby(zone).transform("median").to_numpy()
        base = np.where(own, own_base, base)
        ceiling = np.where(own, own_base * np.exp(self.headroom_), ceiling)
        zones, zi = np.unique(zone, return_inverse=True)
        day_numbers, di = np.unique(days["day"].to_numpy(), return_inverse=True)
        shape = (len(zones), len(day_numbers))
        judged_level = np.full(shape, np.nan)
        judged_level[zi, di] = np.where(warm, np.nan, level)
        zone_ceiling, zone_base = np.zeros(len(zones)), np.zeros(len(zones))
        zone_ceiling[zi], zone_base[zi] = ceiling, base
        raised, ended = self._cusum(
            np.log(judged_level / zone_ceiling[:, None]), np.log(judged_level / zone_base[:, None])
        )
        if not raised:
            return pd.DataFrame()
        last_ms, closed_ms = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
        last_ms[zi, di] = days["last_ms"].to_numpy()
        closed_ms[zi, di] = days["closed_ms"].to_numpy()
        zone_own = np.zeros(len(zones), dtype=bool)
        zone_own[zi] = own
        lasts = np.flatnonzero(~z.same_next)
        zone_last_ms = dict(zip(z.zone[lasts].tolist(), z.t[lasts].tolist(), strict=True))
        onset_days = np.array([onset for _, _, onset in raised])
        first_ms = wall_to_utc(day_numbers[onset_days], np.zeros(len(raised)), site.site.timezone)
        records = []
        for (row, j, onset), start_ms in zip(raised, first_ms.view(np.int64).tolist(), strict=True):
            end = ended.get((row, j))  # one pass per alert, never per reading
            upto = shape[1] - 1 if end is None else end
            seen = judged_level[row, : upto + 1]
            now_w = float(np.max(seen[~np.isnan(seen)][-7:]))  # the brightest of its last 7 judged days
            rise = max(now_w / zone_ceiling[row] - 1.0, 0.0)
            records.append(
                {
                    S.ZONE_ID: z.names[zones[row]],
                    "first_ms": start_ms,
                    "detected_ms": int(closed_ms[row, j]),
                    "last_ms": zone_last_ms[int(zones[row])] if end is None else int(last_ms[row, end]),
                    "open": end is None,
                    "score": rise,
                    "normal_w": zone_ceiling[row],
                    "now_w": now_w,
                    "rise": rise,
                    "rate_per_day": rise / max(1, int(day_numbers[upto] - day_numbers[onset]) + 1),
                    "own_baseline": bool(zone_own[row]),
                }
            )
        return pd.DataFrame(records)

    def _cusum(
        self, over_ceiling: np.ndarray, over_base: np.ndarray
    ) -> tuple[list[tuple[int, int, int]], dict[tuple[int, int], int]]:
        """Alerts raised as (zone row, day column, onset column) and, per raised alert, its last day column
        with a positive CUSUM once it has ended.

        The recursion runs over days, vectorised over zones: a clipped CUSUM has no closed form, and there
        are only as many iterations as days.
        """
        Z, D = over_ceiling.shape
        limit = self.cap * self.threshold
        c = np.zeros(Z)
        onset_c = np.zeros(Z)
        active = np.zeros(Z, dtype=bool)
        quiet = np.zeros(Z, dtype=np.int64)
        last_zero = np.full(Z, -1)
        first_judged = np.full(Z, -1)
        last_positive = np.full(Z, -1)
        since = np.full(Z, -1)  # day column at which the open alert was raised
        raised: list[tuple[int, int, int]] = []
        ended: dict[tuple[int, int], int] = {}
        for j in range(D):
            x = over_ceiling[:, j]
            judged = ~np.isnan(x)
            step = np.maximum(np.nan_to_num(x), -self.floor) - self.allowance
            c = np.where(judged, np.clip(c + step, 0.0, limit), c)
            onset_step = np.nan_to_num(over_base[:, j]) - self.onset_allowance
            onset_c = np.where(judged, np.maximum(onset_c + onset_step, 0.0), onset_c)
            last_zero = np.where(judged & (onset_c == 0.0), j, last_zero)
            first_judged = np.where((first_judged < 0) & judged, j, first_judged)
            new = ~active & (c > self.threshold)
            for row in np.flatnonzero(new):
                onset = last_zero[row] + 1 if last_zero[row] >= 0 else first_judged[row]
                raised.append((int(row), j, int(min(onset, j))))
            since = np.where(new, j, since)
            active |= new
            last_positive = np.where(judged & (c > 0.0), j, last_positive)
            quiet = np.where(judged, np.where(c > 0.0, 0, quiet + 1), quiet)
            done = active & (quiet >= self.resolve_days)
            for row in np.flatnonzero(done):
                ended[(int(row), int(since[row]))] = int(last_positive[row])
            active &= ~done
        return raised, ended


# --- all together ---------------------------------------------------------------------------------


def maintenance_alerts(
    frame: pd.DataFrame,
    site: SiteConfig,
    spike: SpikeDetector,
    drift: DriftDetector,
    *,
    spike_merge_minutes: float = 60.0,
) -> MaintenanceFindings:
    """Every maintenance finding of the scored readings (SPEC §5): per-reading spike scores, the alerts.

    Spikes of one zone less than ``spike_merge_minutes`` apart make one alert. Alerts are ordered by
    ``detected_at``, then kind and zone.
    """
    z = zoned_readings(frame, S.IN_CONTRACT)
    tz = site.site.timezone
    found = spike._find(z, site)
    parts = [
        render_alerts("spike", _spike_episodes(z, found, spike_merge_minutes), tz),
        render_alerts("drift", drift._episodes(z, site), tz),
        render_alerts("stuck_on", stuck_on_episodes(z, site, STUCK_ON_HOURS), tz),
        render_alerts("dropout", dropout_episodes(z, DROPOUT_HOURS, REGULAR_HOURS), tz),
    ]
    alerts = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(map(len, parts)) else None
    if alerts is None:
        alerts = empty_alerts()
    else:
        alerts = alerts.sort_values(["detected_at", "kind", "zone_id"], kind="stable", ignore_index=True)
    score, is_spike, reference, _ = found
    return MaintenanceFindings(z.scatter(score), z.scatter(is_spike), z.scatter(reference), alerts)

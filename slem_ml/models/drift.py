"""Drift of a zone's on-power (SPEC §5 ``drift``): :class:`DriftDetector`, a causal one-sided CUSUM per zone.

Input is the scored readings frame of :mod:`slem_ml.models.anomaly` (``timestamp`` tz-aware UTC, ``zone_id``,
``power_w`` [W], ``is_on``). Units: power [W]; instants int64 UTC [ms]; days are the site's local dates.
Levels, ratios and every CUSUM quantity are natural logs of a power [log W] or of a power ratio (0.01 ≈ 1 %).

Daily level
    A *steady run* is at least ``min_segment_readings`` touching lit readings of one zone and local day
    whose power moves less than ``step_tolerance`` from one reading to the next; a spike is a run of one
    reading, so it never counts. A run's level is the mean log power of its readings less
    ``run_confidence`` standard errors (``noise_`` / √n, so a short noisy run does not set a day); it is
    final at the reading after the run. A zone's level on a day is the highest level of that day's runs.
    Tenants light a zone at 60–100 % of its full power and crews at 90–100 %, so most days sit a few per
    cent under full power and some far below: the top of the distribution is sharp, its bottom is not.
Reference (the zone's baseline)
    ``ceiling_w_``, the zone's normal full-brightness power, learnt in ``fit`` and fixed after it, so a
    drift never moves it. From the zone's training days: the mean level of its brightest ``top_share``
    (the anchor: steadier than the brightest day alone), plus ``spread_weight`` times the step down to the
    next as many days (a flat top lies further above its brightest days than a steep one), plus one gap
    for all zones, the median of (endpoint estimate − anchor) with the endpoint estimated as the brightest
    day plus the mean spacing of the ``ceiling_order`` brightest, plus ``margin`` standard errors of the
    anchor. A zone not seen in fit takes the median level of its first ``baseline_days`` complete days,
    lifted by ``headroom_``.
Decision
    Per day ``x = level − log(ceiling)`` and ``C = clip(C + max(x, −floor) − allowance, 0, cap·threshold)``:
    days more than ``floor`` under the ceiling all count the same (tenants dim at will, so a dim day says
    little), days above it push ``C`` up by how far above they are. The alert is raised when ``C`` passes
    ``threshold``; a day's level only grows as its runs complete, so it is raised at the reading that
    completes the first run lifting ``C`` past the threshold (``detected_at``), not at the end of the day.
    It stays one alert until ``C`` has been 0 for ``resolve_days`` complete days. The defaults were tuned
    on generated data (crews at 90–100 %, 2 % reading noise, weekends dark): a rise of 1 %/day is found a
    median of about 6.7 days after its onset with 0.2–0.3 false alerts per 100 fault-free zone-weeks
    when fit saw 10 weeks; an ideal test on that data's daily levels needs about 6 days for that.
Onset
    A second CUSUM on ``level − baseline`` (the zone's median level; allowance ``onset_allowance``) dates the
    drift: ``first_seen`` is the local midnight after the day that CUSUM was last 0 before the alert's day.

Causal: a day is complete once the zone reports on a later day, and only complete days change the state
carried to the next day; the zone's last, incomplete day is judged on its completed runs, to raise an alert
only. An alert's ``detected_at`` and ``first_seen`` depend on readings up to ``detected_at`` alone, so
appending later readings changes neither, nor any earlier decision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, wall_to_utc
from slem_ml.models.alerts import ZonedReadings, render_alerts, zoned_readings
from slem_ml.models.drift_parts import (
    KEY,
    Cusum,
    Days,
    Runs,
    cusum,
    days_of,
    noise,
    recent_max,
    steady_share,
)

__all__ = ["DriftDetector"]

_TINY_W = 1e-3  # keeps logs finite where a reading is 0 W


class DriftDetector(BaseEstimator):
    """Causal detector of a sustained rise of a zone's on-power (SPEC §5 ``drift``; scikit-learn contract).

    See the module docstring for the daily level, the reference, the CUSUM and the onset.

    Parameters
    ----------
    step_tolerance : a steady run breaks where the power moves more than this between touching readings
        (natural log; 0.1 ≈ 10 %).
    min_segment_readings : lit readings a steady run needs to count.
    min_run_minutes : ... and minutes it stands for (its n readings × their mean spacing; 2 readings 15
        min apart: 30 min): readings a few minutes apart that happen to agree (a legacy export's random
        draws) are no steady light.
    run_confidence : standard errors taken off a run's mean log power.
    allowance, threshold, floor, cap : of the CUSUM (natural log; 0.01 ≈ 1 %; ``cap`` in thresholds).
    onset_allowance : of the onset CUSUM (natural log per day).
    top_share, min_top_days : the ceiling's anchor is the mean level of the brightest ``top_share`` of a
        zone's training days, but at least ``min_top_days`` (and at most half of them) ...
    spread_weight : ... plus this times its *step*, how far the next as many days are below them.
    margin : the ceiling is raised by this times step / √(days in the mean), a standard error of the anchor
        (fewer training days, a higher ceiling: its error would otherwise raise false alerts).
    ceiling_order : the endpoint estimate behind the gap common to all zones is the brightest training day
        plus the mean spacing of the ``ceiling_order`` brightest ones.
    baseline_days : complete days a zone needs in fit to be learnt, and days an unseen zone's baseline takes.
    resolve_days : complete days with ``C == 0`` that end an alert.
    min_steady_share : a zone is learnt in fit, and a day of it judged, only when at least this share of
        its lit readings (in fit; in the scored readings up to that day) belong to steady runs: 99 % on
        generated data, 92 % on the CU-BEMS zone, 1 % on the legacy export, whose readings are random draws
        that agree by chance.
    min_rise, rise_per_spread : an alert waits until the brightest of the zone's last 7 judged days is
        above its ceiling by ``min_rise`` (0.015 = 1.5 %) and by ``rise_per_spread`` times the zone's
        ``spread_``: a CUSUM past its threshold on a rise of 1 % is most often a zone's noisy top (on
        generated data this halves the false alerts and delays no drift of +1 %/day), and a zone whose
        brightest days scatter by 12 % (a legacy export's random draws) says nothing with a rise of 3 %.
    min_history_days : complete lit days of a zone the scored readings must hold before its later days
        are judged at all: two days of a new export say nothing about a trend (:meth:`short_history` names the
        zones still short of it).

    Attributes
    ----------
    noise_ : standard deviation of log power between the readings of a steady run (pooled, natural log).
    baseline_w_ : pd.Series, median daily level per zone id [W] (the onset CUSUM's reference).
    ceiling_w_ : pd.Series, the zone's normal full-brightness power per zone id [W] (the CUSUM's
        reference), which an alert's words compare with the brightest of its last 7 days.
    headroom_ : median of log(ceiling / baseline) over the fitted zones.
    spread_ : pd.Series, per zone id how far its brightest training days lie above the next as many (the
        anchor's *step*, natural log): how much its top scatters.
    """

    def __init__(
        self,
        *,
        step_tolerance: float = 0.1,
        min_segment_readings: int = 2,
        min_run_minutes: float = 30.0,
        run_confidence: float = 1.0,
        allowance: float = 0.0025,
        threshold: float = 0.01,
        floor: float = 0.01,
        cap: float = 3.0,
        onset_allowance: float = 0.01,
        top_share: float = 0.1,
        min_top_days: int = 3,
        spread_weight: float = 0.5,
        margin: float = 0.5,
        ceiling_order: int = 8,
        baseline_days: int = 7,
        resolve_days: int = 7,
        min_history_days: int = 3,
        min_rise: float = 0.015,
        rise_per_spread: float = 0.5,
        min_steady_share: float = 0.5,
    ) -> None:
        self.step_tolerance = step_tolerance
        self.min_segment_readings = min_segment_readings
        self.min_run_minutes = min_run_minutes
        self.run_confidence = run_confidence
        self.allowance = allowance
        self.threshold = threshold
        self.floor = floor
        self.cap = cap
        self.onset_allowance = onset_allowance
        self.top_share = top_share
        self.min_top_days = min_top_days
        self.spread_weight = spread_weight
        self.margin = margin
        self.ceiling_order = ceiling_order
        self.baseline_days = baseline_days
        self.resolve_days = resolve_days
        self.min_history_days = min_history_days
        self.min_rise = min_rise
        self.rise_per_spread = rise_per_spread
        self.min_steady_share = min_steady_share

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a detector pickled before a parameter existed takes its default."""
        super().__setstate__(state)
        for name, default in DriftDetector().get_params().items():
            self.__dict__.setdefault(name, default)

    def fit(self, frame: pd.DataFrame, site: SiteConfig) -> DriftDetector:
        """Learn each zone's median and full-brightness daily level from (preferably fault-free) readings."""
        z = zoned_readings(frame)
        breaks = self._breaks(z, site)
        self.noise_ = noise(z, breaks)
        runs = self._runs(z, breaks)
        days = days_of(runs)
        zone, level = days.zone[days.complete], days.level[days.complete]
        codes, count = np.unique(zone, return_counts=True)
        steady = steady_share(z, runs.steady, z.on) >= self.min_steady_share
        learnt = np.isin(zone, codes[(count >= max(self.baseline_days, 2)) & steady[codes]])
        if not learnt.any() and len(np.unique(self._breaks(z, site)[0])) < self.baseline_days:
            raise SlemError(
                f"the drift detector needs {self.baseline_days} days of steady lit readings per zone;"
                " no zone has that many"
            )
        if not learnt.any():  # long enough but never steady (a legacy export's random draws): a detector
            nothing = pd.Series(dtype=float, index=pd.Index([], dtype=object))  # that learnt nothing
            self.baseline_w_, self.ceiling_w_, self.spread_ = nothing, nothing, nothing  # judges none
            self.headroom_ = float("nan")
            return self
        zone, level = zone[learnt], level[learnt]
        order = np.lexsort((level, zone))
        codes, starts, counts = np.unique(zone[order], return_index=True, return_counts=True)
        ranked = level[order]  # each zone's days, dimmest first
        ends = starts + counts  # one past each zone's brightest day
        median = 0.5 * (ranked[starts + (counts - 1) // 2] + ranked[starts + counts // 2])
        top = ranked[ends - 1]
        k = np.minimum(self.ceiling_order, counts - 1)
        endpoint = top + (top - ranked[ends - 1 - k]) / k
        # the anchor: the mean of the brightest m days, lifted by part of the step down to the next m
        m = np.clip(np.round(self.top_share * counts).astype(np.int64), self.min_top_days, counts // 2)
        sums = np.concatenate(([0.0], np.cumsum(ranked)))
        top_mean = (sums[ends] - sums[ends - m]) / m
        step = top_mean - (sums[ends - m] - sums[ends - 2 * m]) / m
        anchor = top_mean + self.spread_weight * step
        # one gap to the endpoint for all zones, and a margin for the anchor's own error (~ step / √m)
        ceiling = anchor + float(np.median(endpoint - anchor)) + self.margin * step / np.sqrt(m)
        names = pd.Index(z.names[codes], dtype=object)
        self.baseline_w_ = pd.Series(np.exp(median), index=names)
        self.ceiling_w_ = pd.Series(np.exp(ceiling), index=names)
        self.spread_ = pd.Series(step, index=names)
        self.headroom_ = float(np.median(ceiling - median))
        return self

    def detect(self, frame: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
        """Drift alerts (:func:`slem_ml.models.alerts.alert_columns`) of the scored readings."""
        return render_alerts("drift", self._episodes(zoned_readings(frame), site), site.site.timezone)

    def short_history(self, z: ZonedReadings, site: SiteConfig) -> tuple[str, ...]:
        """The zones of ``z`` with fewer than ``min_history_days`` complete lit days: not judged."""
        days = days_of(self._runs(z, self._breaks(z, site)))
        counts = np.bincount(days.zone[days.complete], minlength=len(z.names))
        present = np.unique(z.zone)
        short = present[counts[present] < self.min_history()]
        return tuple(sorted(str(name) for name in z.names[short]))

    def _settings(self) -> Cusum:
        return Cusum(
            self.allowance, self.threshold, self.floor, self.cap, self.onset_allowance, self.resolve_days
        )

    def min_history(self) -> int:
        """``min_history_days``."""
        return int(self.min_history_days)

    # --- the daily level ----------------------------------------------------------------------------

    def _breaks(self, z: ZonedReadings, site: SiteConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per reading: local day, log power and whether it starts a new run."""
        n = len(z.t)
        day = local_day_numbers(z.t.astype("datetime64[ms]"), site.site.timezone)
        log_p = np.log(np.maximum(z.power, _TINY_W))
        max_gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
        new = np.ones(n, dtype=bool)
        new[1:] = (
            ~z.same_next[:-1] | ~z.on[1:] | ~z.on[:-1] | (day[1:] != day[:-1])
            | (np.abs(np.diff(log_p)) > self.step_tolerance) | (np.diff(z.t) > max_gap)
        )  # fmt: skip
        return day, log_p, new

    def _runs(self, z: ZonedReadings, breaks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Runs:
        """The completed steady runs (a run is complete when a reading of its zone follows it)."""
        n = len(z.t)
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return Runs(empty, empty, np.zeros(0), empty, empty, np.zeros(0, dtype=bool), np.zeros(0, bool))
        day, log_p, new = breaks
        run = np.cumsum(new) - 1
        firsts = np.flatnonzero(new)
        lasts = np.append(firsts[1:], n) - 1
        count = np.bincount(run).astype(float)
        level = np.bincount(run, weights=log_p) / count - self.run_confidence * self.noise_ / np.sqrt(count)
        # n readings × their mean spacing (a run's last reading before a night would otherwise stand for
        # the whole night; 2 readings 15 min apart: 30 min)
        span = (z.t[lasts] - z.t[firsts]) * count / np.maximum(count - 1, 1)
        keep = z.on[firsts] & (count >= self.min_segment_readings) & z.same_next[lasts]
        keep &= span >= self.min_run_minutes * S.MS_PER_MINUTE
        steady = keep[run] & z.on
        firsts, lasts = firsts[keep], lasts[keep]
        reading_key = z.zone * KEY + day  # sorted: readings are in (zone, time) order
        day_last = np.searchsorted(reading_key, reading_key[firsts], side="right") - 1
        return Runs(
            zone=z.zone[firsts],
            day=day[firsts],
            level=level[keep],
            known_ms=z.t[lasts + 1],
            day_last_ms=z.t[day_last],
            day_complete=z.same_next[day_last],
            steady=steady,
        )

    # --- the alerts ---------------------------------------------------------------------------------

    def _episodes(self, z: ZonedReadings, site: SiteConfig) -> pd.DataFrame:
        check_is_fitted(self, "ceiling_w_")
        breaks = self._breaks(z, site)
        runs = self._runs(z, breaks)
        days = days_of(runs)
        if len(days.zone) == 0:
            return pd.DataFrame()
        zones, zi = np.unique(days.zone, return_inverse=True)
        day_numbers, di = np.unique(days.day, return_inverse=True)
        base = np.log(self.baseline_w_.reindex(z.names[zones]).to_numpy(dtype=float))
        own = np.isnan(base)
        # an unseen zone: its first ``baseline_days`` complete days give its baseline and are not judged
        rank = pd.Series(days.complete).groupby(days.zone).cumsum().to_numpy() - days.complete
        warm = own[zi] & days.complete & (rank < self.baseline_days)
        own_base = pd.Series(np.where(warm, days.level, np.nan)).groupby(zi).median()
        n_warm = np.bincount(zi[warm], minlength=len(zones))
        base = np.where(own, own_base.reindex(np.arange(len(zones))).to_numpy(), base)
        ceiling = np.log(self.ceiling_w_.reindex(z.names[zones]).to_numpy(dtype=float))
        ceiling = np.where(own, base + self.headroom_, ceiling)
        judged = ~warm & (~own | (n_warm >= self.baseline_days))[zi]
        judged &= rank >= self.min_history()  # too little history: not judged (SPEC §8.5)
        # nor while the zone's light has not been steady so far (seen in fit or not, whatever the champion)
        judged &= _steady_so_far(z, breaks[0], runs.steady, days) >= self.min_steady_share
        shape = (len(zones), len(day_numbers))
        level = np.full(shape, np.nan)
        level[zi[judged], di[judged]] = days.level[judged]
        complete = np.zeros(shape, dtype=bool)
        complete[zi, di] = days.complete
        zone_last = np.zeros(len(zones), dtype=np.int64)  # each zone's last day with readings (a column)
        np.maximum.at(zone_last, zi, di)
        over = level - ceiling[:, None]
        learnt = getattr(self, "spread_", pd.Series(dtype=float))  # none in a detector pickled before it
        spread = learnt.reindex(z.names[zones]).to_numpy(dtype=float)
        spread = np.where(np.isnan(spread), np.median(learnt) if len(learnt) else 0.0, spread)
        gate = np.maximum(np.log1p(self.min_rise), self.rise_per_spread * spread)  # per zone [log]
        raised, ended = cusum(
            self._settings(), over, level - base[:, None], complete, recent_max(over, 7) - gate[:, None]
        )
        if not raised:
            return pd.DataFrame()
        last_ms = np.zeros(shape, dtype=np.int64)
        last_ms[zi, di] = days.last_ms
        lasts = np.flatnonzero(~z.same_next)
        zone_last_ms = dict(zip(z.zone[lasts].tolist(), z.t[lasts].tolist(), strict=True))
        onsets = np.array([onset for _, _, onset, _ in raised])
        first_ms = wall_to_utc(day_numbers[onsets], np.zeros(len(raised)), site.site.timezone)
        run_keys = runs.key
        records = []
        for (row, j, onset, before), start_ms in zip(raised, first_ms.view(np.int64).tolist(), strict=True):
            # one pass per alert, never per reading: the first run of the day that lifts C past the threshold
            key = zones[row] * KEY + day_numbers[j]
            lo, hi = np.searchsorted(run_keys, key, side="left"), np.searchsorted(run_keys, key, side="right")
            x = runs.level[lo:hi] - ceiling[row]
            earlier = over[row, :j][~np.isnan(over[row, :j])][-6:]  # with day j, the last 7 judged days
            brightest = np.maximum.accumulate(np.concatenate((earlier, x)))[len(earlier) :]
            lifts = before + (np.maximum(x, -self.floor) - self.allowance) > self.threshold
            lifts &= brightest >= gate[row]
            detected_ms = int(runs.known_ms[lo:hi][np.argmax(lifts) if lifts.any() else np.argmax(x)])
            end = ended.get((row, j))
            upto = int(zone_last[row]) if end is None else end  # the zone's own days: batch-independent
            seen = level[row, : upto + 1]
            now_w = float(np.exp(np.max(seen[~np.isnan(seen)][-7:])))  # the brightest of its last 7 days
            normal_w = float(np.exp(ceiling[row]))
            rise = max(now_w / normal_w - 1.0, 0.0)
            records.append(
                {
                    S.ZONE_ID: z.names[zones[row]],
                    "first_ms": start_ms,
                    "detected_ms": detected_ms,
                    "last_ms": zone_last_ms[int(zones[row])] if end is None else int(last_ms[row, end]),
                    "open": end is None,
                    "score": rise,
                    "normal_w": normal_w,
                    "now_w": now_w,
                    "rise": rise,
                    "rate_per_day": rise / max(1, int(day_numbers[upto] - day_numbers[onset]) + 1),
                    "own_baseline": bool(own[row]),
                }
            )
        return pd.DataFrame(records)


def _steady_so_far(z: ZonedReadings, day: np.ndarray, steady: np.ndarray, days: Days) -> np.ndarray:
    """Per zone-day of ``days``: the share of the zone's lit readings up to the end of that day (in ``z``)
    that belong to steady runs. Causal: later readings change no earlier day's share."""
    lit = np.cumsum(z.on)
    held = np.cumsum(steady & z.on)
    start = z.first  # each reading's zone's first position
    before_lit = np.where(start > 0, lit[np.maximum(start - 1, 0)], 0)
    before_held = np.where(start > 0, held[np.maximum(start - 1, 0)], 0)
    key = z.zone * KEY + day  # sorted: readings are in (zone, time) order
    last = np.searchsorted(key, days.zone * KEY + days.day, side="right") - 1
    return (held[last] - before_held[last]) / np.maximum(lit[last] - before_lit[last], 1)

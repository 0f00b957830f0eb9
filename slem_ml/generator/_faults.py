"""Fault injection (SPEC §5): gradual ``drift`` of on-power, ``stuck_on`` lights through a night or a weekend,
``dropout`` s (a zone silent for over 24 hours: no rows at all) and single-reading ``spike`` s, all starting
in the fault window (at or after ``window_start``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slem_ml.generator._calendar import Calendar, contract_times
from slem_ml.generator._events import DRIFT, DROPOUT, SPIKE, STUCK, Events
from slem_ml.generator._grid import Grid
from slem_ml.generator._layout import Layout

_MIN_STUCK_MINUTES = 13 * 60  # stuck-on faults last over 12 h (SPEC §5) with room for grid snapping
DRIFT_CAP = 0.6  # drift stops rising at +60 %


@dataclass(frozen=True)
class FaultRates:
    """How many faults to inject (SPEC §5). At least one of each kind when it fits in the fault window."""

    drift_zone_share: float = 0.03  # share of zones whose on-power drifts
    drift_per_day: tuple[float, float] = (0.005, 0.02)  # range the drifts' rises are drawn from [1/day]
    stuck_on_per_zone_day: float = 0.002  # stuck-on events per zone and day of the fault window
    dropout_per_zone_day: float = 0.001  # dropouts per zone and day of the fault window
    spike_share: float = 0.001  # share of lit readings in the fault window that spike


def fault_events(
    cal: Calendar,
    lay: Layout,
    grid: Grid,
    window_start: int,
    rates: FaultRates,
    rng: np.random.Generator,
) -> Events:
    """Drift, stuck-on and dropout faults, all starting at or after ``window_start`` (SPEC §5)."""
    Z, end = lay.n, grid.end
    window = end - window_start
    zone_days = Z * window / 1440
    parts = []
    # drift: on-power rising from an onset to the end of the period
    n_drift = max(1, round(rates.drift_zone_share * Z)) if window >= 2 * 1440 else 0
    zones = rng.choice(Z, size=min(n_drift, Z), replace=False)
    visible = min(7 * 1440, window // 2)
    onset = rng.integers(window_start, max(window_start + 1, end - visible), zones.size)
    rate = rng.uniform(*rates.drift_per_day, zones.size)
    parts.append(Events.of(zones, onset, np.full(zones.size, end), DRIFT, magnitude=rate))
    # stuck-on: lights on from (just after) a closing until the next opening, over 12 h outside the
    # (grace-widened) contracted hours
    k_open, k_close, k_working = contract_times(cal, lay)
    z_all, d_all = np.nonzero(k_working[lay.client])
    gap_start = k_close[lay.client[z_all], d_all]
    gap_end = np.append(k_open[lay.client[z_all[1:]], d_all[1:]], 0)
    need = _MIN_STUCK_MINUTES + 2 * lay.grace_minutes[lay.client[z_all]]
    fits = (
        (np.append(z_all[1:], -1) == z_all)
        & (gap_end - gap_start >= need + 60)
        & (gap_start >= window_start)
        & (gap_end <= end)
    )
    candidates = np.flatnonzero(fits)
    n_stuck = min(max(1, round(rates.stuck_on_per_zone_day * zone_days)), candidates.size)
    pick = np.sort(rng.choice(candidates, size=n_stuck, replace=False))
    slack = gap_end[pick] - gap_start[pick] - need[pick]
    s_start = gap_start[pick] + rng.integers(0, np.minimum(slack, 60) + 1)
    stuck = Events.of(z_all[pick], s_start, gap_end[pick], STUCK, magnitude=lay.rated_w[z_all[pick]])
    parts.append(stuck)
    # dropout: a zone silent for 25–72 h, never overlapping a stuck-on fault or another dropout
    n_drop = max(1, round(rates.dropout_per_zone_day * zone_days)) if window >= 2 * 1440 else 0
    taken: dict[int, list[tuple[int, int]]] = {}
    for z, a, b in zip(stuck.zone.tolist(), stuck.start.tolist(), stuck.end.tolist(), strict=True):
        taken.setdefault(z, []).append((a, b))
    drop: list[tuple[int, int, int]] = []
    for _ in range(20 * n_drop):
        if len(drop) == n_drop:
            break
        z = int(rng.integers(Z))
        length = int(rng.integers(25 * 60, min(72 * 60, window - 60) + 1))
        start = int(rng.integers(window_start, end - length + 1))
        if all(b <= start or a >= start + length for a, b in taken.get(z, [])):
            taken.setdefault(z, []).append((start, start + length))
            drop.append((z, start, start + length))
    d = np.array(drop, dtype=np.int64).reshape(-1, 3)
    parts.append(Events.of(d[:, 0], d[:, 1], d[:, 2], DROPOUT))
    return Events.concat(parts)


def inject_spikes(
    grid: Grid,
    power: np.ndarray,
    lit: np.ndarray,
    window_start: int,
    rates: FaultRates,
    rng: np.random.Generator,
) -> Events:
    """Single lit readings in the fault window multiplied by 2.5–4 (modifies ``power`` in place)."""
    eligible = np.flatnonzero(lit & (grid.t >= window_start))
    if eligible.size == 0:
        return Events.of(np.zeros(0), np.zeros(0), np.zeros(0), SPIKE)
    n = max(1, int(rng.binomial(eligible.size, rates.spike_share)))
    rows = np.sort(rng.choice(eligible, size=min(n, eligible.size), replace=False))
    factor = rng.uniform(2.5, 4.0, rows.size)
    normal = np.round(power[rows], 1)
    power[rows] = normal * factor
    spiked = np.round(power[rows], 1)
    # the label's factor is the one the rounded readings show
    return Events.of(
        grid.zone[rows], grid.t[rows], grid.t[rows], SPIKE, magnitude=np.round(spiked / normal, 3),
        level=normal,
    )  # fmt: skip

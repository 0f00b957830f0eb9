"""The power of every reading, painted from the intervals that cover it as runs of rows (``np.repeat``), so
no Python loop runs over readings."""

from __future__ import annotations

import numpy as np

from slem_ml.generator._events import DRIFT, DROPOUT, STUCK, Events
from slem_ml.generator._faults import DRIFT_CAP
from slem_ml.generator._grid import Grid
from slem_ml.generator._layout import Layout


def paint(
    grid: Grid,
    lay: Layout,
    tenant: Events,
    cleaning: Events,
    faults: Events,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per grid row: power [W, unrounded], lit, cleaning staff present, kept (False inside dropouts)."""
    stuck = faults.take(faults.kind == STUCK).sorted_disjoint()
    dropout = faults.take(faults.kind == DROPOUT).sorted_disjoint()
    level = grid.spread(tenant, tenant.level)  # share of rated power; 0 = dark
    cleaning_level = grid.spread(cleaning, cleaning.level)
    staff = cleaning_level > 0
    np.copyto(level, cleaning_level, where=staff)
    del cleaning_level
    level[grid.mask(stuck)] = 1.0
    keep = ~grid.mask(dropout)
    drift = faults.take(faults.kind == DRIFT)
    for z, onset, rate in zip(drift.zone, drift.start, drift.magnitude, strict=True):
        rows = slice(grid.starts[z], grid.starts[z + 1])
        days = np.maximum(grid.t[rows] - onset, 0) / 1440.0
        level[rows] *= 1.0 + np.minimum(rate * days, DRIFT_CAP)
    noise = rng.standard_normal(grid.n, dtype=np.float32)
    per_zone = np.diff(grid.starts)
    lit = level > 0
    power = np.repeat(lay.rated_w, per_zone)
    power *= level
    del level
    power *= 1.0 + 0.02 * noise
    standby = np.repeat(lay.standby_w, per_zone)
    standby += 0.25 * noise
    np.clip(standby, 0.0, lay.standby_max_w, out=standby)
    np.copyto(power, standby, where=~lit)
    return power, lit, staff, keep

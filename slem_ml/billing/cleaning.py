"""Cleaning sessions and the energy they waste (SPEC §4).

A cleaning session is a maximal run of touching ``cleaning`` pieces of one zone; it may cross midnight and
is dated by its start. Everything after the first ``expected_minutes[1]`` minutes is waste.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import CLEANING, ReadingCoverage
from slem_ml.billing.sessions import (
    MS_PER_KWH_UNIT,
    decimal_kwh,
    decimal_minutes,
    find_runs,
    labels_at,
    round_cents,
)
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import day_to_date, ms_to_local

__all__ = ["SESSION_ORDER", "cleaning_sessions"]

#: The order of cleaning sessions (stable sort keys).
SESSION_ORDER = [S.ZONE_ID, "start"]


def cleaning_sessions(
    frame: pd.DataFrame, coverage: ReadingCoverage, site: SiteConfig, *, inferred: bool = False
) -> pd.DataFrame:
    """One row per cleaning session (SPEC §4), ordered by zone id and start.

    ``inferred`` marks sessions whose cleaning flag came from the session classifier, not the input.
    """
    pieces = coverage.pieces
    zone = frame[S.ZONE_ID].cat.codes.to_numpy()
    runs = find_runs(pieces, pieces.usage == CLEANING, zone[pieces.reading])
    columns = [*S.CLEANING_COLUMNS, S.CLIENT_ID]
    if len(runs.first_piece) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})

    config = site.cleaning
    expected_ms = config.expected_minutes[1] * S.MS_PER_MINUTE
    # Waste: each piece's part after the session's first expected_minutes[1] minutes (touching pieces,
    # so covered time equals elapsed time from the session start).
    sel = runs.selected
    waste_from = runs.start_ms[runs.run_of_piece] + expected_ms
    start = np.maximum(pieces.start_ms[sel], waste_from)
    wasted_ms = np.clip(pieces.end_ms[sel] - start, 0, None)
    wasted_energy = np.add.reduceat(pieces.power_mw[sel] * wasted_ms, runs.first_piece)

    price_num, price_den = config.energy_price.as_integer_ratio()
    minutes = [decimal_minutes(ms) for ms in runs.covered_ms.tolist()]
    excess = [decimal_minutes(max(0, ms - expected_ms)) for ms in runs.covered_ms.tolist()]
    flag_ms = config.flag_after_minutes * S.MS_PER_MINUTE
    out = pd.DataFrame(
        {
            S.ZONE_ID: labels_at(frame[S.ZONE_ID], runs.reading),
            S.BUILDING: labels_at(frame[S.BUILDING], runs.reading),
            S.FLOOR: labels_at(frame[S.FLOOR], runs.reading),
            "date": day_to_date(runs.day),
            "start": ms_to_local(runs.start_ms, site.site.timezone),
            "end": ms_to_local(runs.end_ms, site.site.timezone),
            "minutes": minutes,
            "flagged": runs.covered_ms > flag_ms,  # SPEC §4: strictly more than the limit
            "excess_minutes": excess,
            "wasted_kwh": [decimal_kwh(e) for e in wasted_energy.tolist()],
            "savings": [
                round_cents(e * price_num, MS_PER_KWH_UNIT * price_den) for e in wasted_energy.tolist()
            ],
            "inferred": inferred,
            S.CLIENT_ID: labels_at(frame[S.CLIENT_ID], runs.reading),
        }
    )
    # zone ids in text order, not the reader's category order: a run in batches gives the same file
    return out[columns].sort_values(SESSION_ORDER, kind="stable", ignore_index=True)

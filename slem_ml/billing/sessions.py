"""Runs of touching pieces (SPEC §3.4, §4), found with cumulative sums, and exact money helpers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import Pieces
from slem_ml.io import schema as S

__all__ = [
    "MS_PER_KWH_UNIT",
    "Runs",
    "cents",
    "decimal_kwh",
    "decimal_minutes",
    "find_runs",
    "labels_at",
    "round_cents",
]

#: energy units are mW·ms; one kWh is 1000 W × 1000 mW/W × 3,600,000 ms.
MS_PER_KWH_UNIT = 3_600_000_000_000
_CENT, _MILLI, _MICRO = Decimal("0.01"), Decimal("0.001"), Decimal("0.000001")


@dataclass(frozen=True)
class Runs:
    """Maximal runs of touching pieces; each array has one entry per run."""

    first_piece: np.ndarray  # index into the selected pieces
    reading: np.ndarray  # first reading of the run
    start_ms: np.ndarray
    end_ms: np.ndarray
    covered_ms: np.ndarray  # int64 [ms]
    energy: np.ndarray  # int64 [mW·ms]
    day: np.ndarray  # local date of the run's first piece
    run_of_piece: np.ndarray  # run number of each selected piece
    selected: np.ndarray  # indices of the pieces the runs are made of


def find_runs(pieces: Pieces, mask: np.ndarray, *keys: np.ndarray) -> Runs:
    """Runs of the pieces in ``mask``: a run breaks on any change in ``keys`` or where pieces don't touch.

    ``keys`` have one entry per piece (the zone first). Pieces are in (zone, time) order, so two consecutive
    selected pieces of a zone touch exactly when one starts where the other ended.
    """
    sel = np.flatnonzero(mask)
    reading = pieces.reading[sel]
    start, end = pieces.start_ms[sel], pieces.end_ms[sel]
    new = np.ones(len(sel), dtype=bool)
    if len(sel) > 1:
        brk = start[1:] != end[:-1]
        for key in keys:
            chosen = key[sel]
            brk |= chosen[1:] != chosen[:-1]
        new[1:] = brk
    first = np.flatnonzero(new)
    run_of_piece = np.cumsum(new) - 1
    length = end - start
    energy = pieces.power_mw[sel] * length  # bounded by reader.MAX_POWER_W: no int64 overflow
    covered = np.add.reduceat(length, first) if len(first) else length[:0]
    total = np.add.reduceat(energy, first) if len(first) else energy[:0]
    last = np.append(first[1:], len(sel)) - 1
    return Runs(
        first_piece=first,
        reading=reading[first],
        start_ms=start[first],
        end_ms=end[last] if len(sel) else end[:0],
        covered_ms=covered,
        energy=total,
        day=pieces.day[sel][first],
        run_of_piece=run_of_piece,
        selected=sel,
    )


def labels_at(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The text of a categorical column at ``rows``, without materialising the whole column."""
    categories = np.asarray(column.cat.categories.astype(str), dtype=object)
    return categories[column.cat.codes.to_numpy()[rows]]


def cents(numerator: int, denominator: int) -> int:
    """``round_half_up(numerator / denominator, 2)`` in whole cents, exactly, for non-negative integers."""
    return (200 * numerator + denominator) // (2 * denominator)


def round_cents(numerator: int, denominator: int) -> Decimal:
    """``round_half_up(numerator / denominator, 2)`` exactly, for non-negative integers."""
    return Decimal(cents(numerator, denominator)) * _CENT


def decimal_kwh(energy: int) -> Decimal:
    """Energy [mW·ms] as kWh with 6 decimals (half up) for display; money uses the exact value."""
    micro = (2 * energy * 1_000_000 + MS_PER_KWH_UNIT) // (2 * MS_PER_KWH_UNIT)
    return Decimal(micro) * _MICRO


def decimal_minutes(ms: int) -> Decimal:
    """Duration [ms] as minutes with 3 decimals (half up)."""
    milli = (2 * ms * 1000 + S.MS_PER_MINUTE) // (2 * S.MS_PER_MINUTE)
    return Decimal(milli) * _MILLI

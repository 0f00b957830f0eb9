"""Intervals in zones (:class:`Events`), the unit every step of the generator works in, and their codes.

``kind`` 0 is occupancy (lights on in contracted hours, not a label); 1–6 are the label kinds in the order of
:data:`slem_ml.generator.generate.LABEL_KINDS`. ``cause`` indexes :data:`CAUSES`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# 1 + index into slem_ml.generator.generate.LABEL_KINDS; keep the two in the same order
OCCUPANCY, OVERTIME, CLEANING, DRIFT, SPIKE, STUCK, DROPOUT = range(7)
CAUSES = ("", "after_closing", "before_opening", "closed_day", "crew", "lights_left_on")
BIG = 1 << 40  # zone stride of the (zone, minute) sort keys; far above any period in minutes


@dataclass(frozen=True)
class Events:
    """Intervals ``[start, end)`` [min since t0] in zones; ``kind`` 0 = occupancy (not a label)."""

    zone: np.ndarray  # int64
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    level: np.ndarray  # float64, share of the zone's rated power while lit
    kind: np.ndarray  # int8
    cause: np.ndarray  # int8, index into CAUSES
    magnitude: np.ndarray  # float64, see slem_ml.generator.generate.LABEL_COLUMNS
    aux: np.ndarray  # int64: crew index for cleaning, else 0

    def __len__(self) -> int:
        return len(self.zone)

    def take(self, index: np.ndarray) -> Events:
        return Events(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def replace(self, **arrays: np.ndarray) -> Events:
        return dataclasses.replace(self, **arrays)

    @staticmethod
    def concat(parts: Sequence[Events]) -> Events:
        return Events(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Events))
        )

    @staticmethod
    def of(
        zone: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        kind: int,
        *,
        level: np.ndarray | float = 1.0,
        cause: int = 0,
        magnitude: np.ndarray | float = np.nan,
        aux: np.ndarray | int = 0,
    ) -> Events:
        n = len(zone)
        return Events(
            zone=np.asarray(zone, dtype=np.int64),
            start=np.asarray(start, dtype=np.int64),
            end=np.asarray(end, dtype=np.int64),
            level=np.broadcast_to(np.asarray(level, dtype=np.float64), (n,)).copy(),
            kind=np.full(n, kind, dtype=np.int8),
            cause=np.full(n, cause, dtype=np.int8),
            magnitude=np.broadcast_to(np.asarray(magnitude, dtype=np.float64), (n,)).copy(),
            aux=np.broadcast_to(np.asarray(aux, dtype=np.int64), (n,)).copy(),
        )

    def sorted_disjoint(self) -> Events:
        """Sorted by (zone, start); an interval overlapping an earlier one of its zone starts where that
        one ends (and is dropped when nothing is left), so the intervals of a zone never overlap."""
        ev = self.take(np.lexsort((self.end, self.start, self.zone)))
        key_end = ev.zone * BIG + ev.end
        before = np.concatenate([[-1], np.maximum.accumulate(key_end)[:-1]])
        start = np.maximum(ev.zone * BIG + ev.start, before) - ev.zone * BIG
        ev = ev.replace(start=start)
        return ev.take(ev.start < ev.end)


def overlaps(ev: Events, other: Events) -> np.ndarray:
    """Per interval of ``ev``: does it overlap an interval of ``other`` (disjoint per zone) in its zone?"""
    if len(other) == 0 or len(ev) == 0:
        return np.zeros(len(ev), dtype=bool)
    other = other.take(np.lexsort((other.start, other.zone)))
    # with disjoint `other`, only the latest one starting before the end of `ev` can overlap it
    last = np.searchsorted(other.zone * BIG + other.start, ev.zone * BIG + ev.end, side="left") - 1
    j = np.maximum(last, 0)
    return (last >= 0) & (other.zone[j] == ev.zone) & (other.end[j] > ev.start)

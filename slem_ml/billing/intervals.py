"""Intervals and instants on slem's integer time [UTC ms], vectorised.

The union of half-open intervals, which coverage (contract windows) and the session classifier both need.
The (group, instant) key span they sort by is :data:`slem_ml.io.schema.GROUP_SPAN_MS`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["merge_intervals"]


def merge_intervals(opens: np.ndarray, closes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of the intervals ``[open, close)``: its opens and closes, sorted and disjoint.

    Empty intervals are dropped; touching ones (one closes where the next opens) join into one.
    """
    keep = closes > opens
    opens, closes = opens[keep], closes[keep]
    if len(opens) == 0:
        return opens, closes
    order = np.argsort(opens, kind="stable")
    opens, closes = opens[order], np.maximum.accumulate(closes[order])
    # A new interval starts where its open lies beyond every earlier close.
    start = np.ones(len(opens), dtype=bool)
    start[1:] = opens[1:] > closes[:-1]
    last = np.append(np.flatnonzero(start)[1:] - 1, len(opens) - 1)
    return opens[start], closes[last]

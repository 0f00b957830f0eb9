"""Intervals and instants on slem's integer time [UTC ms], vectorised.

Two things several rooms need: the union of half-open intervals, and the span that makes one sortable int64
key per (group, instant) pair — ``group × GROUP_SPAN_MS + instant`` — so that a single ``np.searchsorted``
looks up every group at once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GROUP_SPAN_MS", "merge_intervals"]

#: Each group's instants live in their own range [group × span, (group + 1) × span) of the keys: 2^42 ms is
#: 139 years, so instants relative to any base within a century never reach the next group's range.
GROUP_SPAN_MS = np.int64(1 << 42)


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

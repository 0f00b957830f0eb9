"""Held lines (SPEC §8.4): overtime that overlaps a ``stuck_on`` alert of its zone waits for a person.

A line is **held** when its session ``[start, end)`` overlaps a stuck_on episode ``[first_seen, last_seen]``
of its zone: lights left on by a fault are not billed to a tenant until a manager decides. A decision
on the line — keyed by its zone and start, which identify a session — makes it **released** (billed after
all) or **waived** (never billed); a manager may also **hold** any line. Everything else is **billed**.
An invoice's total is the sum of its billed and released lines; the held lines' sum is its
``held_total`` (:func:`slem_ml.billing.invoices.build_invoices`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from slem_ml.io.localtime import utc_ms

__all__ = ["DECISIONS", "apply_holds", "counts_in_total", "line_key", "stuck_on_spans"]

#: What a person may decide about a line, and the status it gives the line.
DECISIONS: dict[str, str] = {"hold": "held", "release": "released", "waive": "waived"}


def line_key(zone_id: str, start_ms: int) -> tuple[str, int]:
    """How a line is named across revisions: its zone and its start [UTC ms]."""
    return (str(zone_id), int(start_ms))


def apply_holds(
    lines: pd.DataFrame,
    stuck_on: pd.DataFrame,
    decisions: Mapping[tuple[str, int], str] | None = None,
) -> pd.DataFrame:
    """``lines`` with their ``status``: held where a stuck_on episode of the zone overlaps them, unless a
    decision (``line_key`` → held / released / waived) says otherwise.

    ``stuck_on`` has ``zone_id``, ``first_ms`` and ``last_ms`` [UTC ms] per episode (from the alerts).
    """
    if lines.empty:
        return lines.assign(status=pd.Series(dtype=object))
    start = utc_ms(lines["start"])
    end = utc_ms(lines["end"])
    zones = lines["zone_id"].astype(str).to_numpy(dtype=object)
    held = np.zeros(len(lines), dtype=bool)
    if len(stuck_on):
        for zone, group in stuck_on.groupby("zone_id", sort=False):
            mine = zones == str(zone)
            if not mine.any():
                continue
            first = group["first_ms"].to_numpy(dtype=np.int64)
            last = group["last_ms"].to_numpy(dtype=np.int64)
            overlap = (start[mine, None] <= last[None, :]) & (end[mine, None] > first[None, :])
            held[mine] |= overlap.any(axis=1)
    status = np.where(held, "held", "billed").astype(object)
    if decisions:
        for i, key in enumerate(zip(zones.tolist(), start.tolist(), strict=True)):
            decided = decisions.get(key)
            if decided is not None:
                status[i] = decided
    return lines.assign(status=status)


def stuck_on_spans(alerts: pd.DataFrame) -> pd.DataFrame:
    """The ``stuck_on`` alerts of an alerts table (SPEC §7 columns) as ``zone_id, first_ms, last_ms``."""
    if alerts.empty or "kind" not in alerts.columns:
        return pd.DataFrame({"zone_id": [], "first_ms": [], "last_ms": []})
    stuck = alerts[alerts["kind"].astype(str) == "stuck_on"]
    return pd.DataFrame(
        {
            "zone_id": stuck["zone_id"].astype(str).to_numpy(dtype=object),
            "first_ms": utc_ms(stuck["first_seen"]),
            "last_ms": utc_ms(stuck["last_seen"]),
        }
    )


def counts_in_total(status: pd.Series | np.ndarray) -> np.ndarray:
    """Whether each line's amount is in its invoice's total (billed or released)."""
    values = np.asarray(status, dtype=object)
    return (values == "billed") | (values == "released")

"""The reading times of every zone (periodic or legacy) and how intervals map onto its rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slem_ml.generator._events import BIG, SPIKE, Events


@dataclass(frozen=True)
class Grid:
    """Reading times per zone, zone-major: rows of zone z are ``starts[z]:starts[z + 1]``, by time."""

    zone: np.ndarray  # (N,) int32
    t: np.ndarray  # (N,) int32 minutes since t0
    starts: np.ndarray  # (Z + 1,)
    step: int  # periodic step [min]; 0 = legacy (random minutes)
    end: int  # minutes since t0 where the period ends

    @property
    def n(self) -> int:
        return len(self.t)

    @classmethod
    def periodic(cls, zones: int, total_minutes: int, step: int) -> Grid:
        steps = total_minutes // step
        t = np.arange(steps, dtype=np.int32) * np.int32(step)
        return cls(
            zone=np.repeat(np.arange(zones, dtype=np.int32), steps),
            t=np.tile(t, zones),
            starts=np.arange(zones + 1, dtype=np.int64) * steps,
            step=step,
            end=steps * step,
        )

    @classmethod
    def legacy(cls, zones: int, total_minutes: int, rng: np.random.Generator) -> Grid:
        """1–3 readings per zone and hour at random distinct minutes (one per 20-minute third at most)."""
        hours = -(-total_minutes // 60)
        count = rng.integers(1, 4, (zones, hours, 1))
        rank = np.argsort(rng.random((zones, hours, 3)), axis=2)
        minute = (
            np.arange(hours)[None, :, None] * 60
            + np.arange(3)[None, None, :] * 20
            + rng.integers(0, 20, (zones, hours, 3))
        )
        keep = (rank < count) & (minute < total_minutes)
        zone = np.broadcast_to(np.arange(zones)[:, None, None], keep.shape)[keep].astype(np.int32)
        return cls(
            zone=zone,
            t=minute[keep].astype(np.int32),
            starts=np.searchsorted(zone, np.arange(zones + 1)),
            step=0,
            end=total_minutes,
        )

    def snap(self, t: np.ndarray) -> np.ndarray:
        """Times onto the grid: the first reading time at or after ``t`` (periodic), within the period."""
        t = np.clip(t, 0, self.end)
        return -(-t // self.step) * self.step if self.step else t

    def snapped(self, ev: Events) -> Events:
        ev = ev.replace(start=self.snap(ev.start), end=self.snap(ev.end))
        return ev.take((ev.start < ev.end) | (ev.kind == SPIKE))

    def positions(self, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Row of the first reading of ``zone`` at or after ``t``."""
        if self.step:
            return self.starts[zone] + np.minimum(-(-t // self.step), self.end // self.step)
        key = self.zone.astype(np.int64) * BIG + self.t
        return np.searchsorted(key, zone * BIG + t, side="left")

    def mask(self, ev: Events) -> np.ndarray:
        """Per row, whether it lies in an interval of ``ev`` (few intervals: a loop over them, not rows)."""
        out = np.zeros(self.n, dtype=bool)
        starts, ends = self.positions(ev.zone, ev.start), self.positions(ev.zone, ev.end)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            out[a:b] = True
        return out

    def spread(self, ev: Events, values: np.ndarray) -> np.ndarray:
        """Per row, the value of the interval of ``ev`` it lies in, else 0. The intervals must be sorted by
        (zone, start) and disjoint: the rows then fall into runs gap, interval, gap, … repeated in order."""
        edges = np.empty(2 * len(ev) + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, self.n
        edges[1:-1:2] = self.positions(ev.zone, ev.start)
        edges[2:-1:2] = self.positions(ev.zone, ev.end)
        runs = np.diff(edges)
        if (runs < 0).any():
            raise AssertionError("intervals overlap or are out of order")  # a bug, not a user error
        fill = np.zeros(2 * len(ev) + 1, dtype=values.dtype)
        fill[1::2] = values
        return np.repeat(fill, runs)

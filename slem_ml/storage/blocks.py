"""Zone-day blocks: how the readings store keeps readings (SPEC §8, docs/store.md).

One row of ``reading_blocks`` holds one zone's readings of one UTC day as packed little-endian arrays, in
time order. :class:`ReadingArrays` is the unpacked form of any number of blocks: one entry per reading,
ordered by (zone key, instant). Packing is :func:`encode_blocks`; :func:`load` reads the blocks of some
zones and UTC days back.

Cleaning codes (int8): ``1`` the input said cleaning staff, ``0`` it said not; ``-1`` the input had no
flag and nothing inferred one, ``-2`` the input had no flag and the session classifier inferred cleaning
(SPEC §4). A given flag (≥ 0) is a measurement that a later upload may correct; an inferred one is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from slem_ml.io import schema as S
from slem_ml.storage.tables import ReadingBlock

__all__ = [
    "CLEANING_INFERRED",
    "CLEANING_NO",
    "CLEANING_NOT_GIVEN",
    "CLEANING_YES",
    "MS_PER_DAY",
    "ReadingArrays",
    "decode",
    "encode_blocks",
    "fetch",
    "is_cleaning",
    "key_of",
    "last_instant",
    "load",
    "power_before",
]

MS_PER_DAY = 86_400_000
CLEANING_YES, CLEANING_NO, CLEANING_NOT_GIVEN, CLEANING_INFERRED = 1, 0, -1, -2
_ZONES_PER_QUERY = 900  # below SQLite's bound-parameter limits, whatever the version


def is_cleaning(codes: np.ndarray) -> np.ndarray:
    """Whether billing treats each reading as cleaning staff (given or inferred)."""
    return (codes == CLEANING_YES) | (codes == CLEANING_INFERRED)


@dataclass(frozen=True)
class ReadingArrays:
    """Readings as parallel arrays, ordered by (``zone_key``, ``t_ms``) with one entry per key."""

    zone_key: np.ndarray  # int64 store_zones.id
    t_ms: np.ndarray  # int64 UTC [ms]
    power_w: np.ndarray  # float64 [W]
    client_key: np.ndarray  # int64 store_clients.id
    cleaning: np.ndarray  # int8 code (module docstring)
    billed_w: np.ndarray  # float64 [W] billed at after a spike (SPEC §3.9), NaN = as measured

    def __len__(self) -> int:
        return len(self.t_ms)

    @classmethod
    def empty(cls) -> ReadingArrays:
        i64, f64 = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(i64, i64, f64, i64, np.empty(0, np.int8), f64)

    def take(self, index: np.ndarray) -> ReadingArrays:
        """The readings at ``index`` (an integer or boolean array)."""
        return ReadingArrays(
            self.zone_key[index], self.t_ms[index], self.power_w[index], self.client_key[index],
            self.cleaning[index], self.billed_w[index],
        )  # fmt: skip

    @classmethod
    def concat(cls, parts: Sequence[ReadingArrays]) -> ReadingArrays:
        if not parts:
            return cls.empty()
        return cls(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("zone_key", "t_ms", "power_w", "client_key", "cleaning", "billed_w")
            )
        )


def encode_blocks(
    readings: ReadingArrays, starts: np.ndarray, ends: np.ndarray, utc_days: np.ndarray
) -> list[dict[str, object]]:
    """The ``reading_blocks`` columns of the blocks ``readings[starts[i]:ends[i]]`` (each one zone's
    readings of UTC day ``utc_days[i]``, sorted by time): every array packed once, then sliced."""
    sizes = ends - starts
    offsets = np.r_[0, np.cumsum(sizes)]
    day_of = np.repeat(utc_days.astype(np.int64), sizes)
    picked = np.arange(offsets[-1]) + np.repeat(starts - offsets[:-1], sizes)  # the blocks' rows, in order
    ts = readings.t_ms[picked] - day_of * MS_PER_DAY
    if len(ts) and (ts.min() < 0 or ts.max() >= MS_PER_DAY):
        raise ValueError("a block got a reading of another UTC day")
    packed = {
        "ts": ts.astype("<i4").tobytes(),
        "power": readings.power_w[picked].astype("<f8").tobytes(),
        "client": readings.client_key[picked].astype("<i2").tobytes(),
        "cleaning": readings.cleaning[picked].astype("i1").tobytes(),
        "billed": readings.billed_w[picked].astype("<f8").tobytes(),
    }
    width = {"ts": 4, "power": 8, "client": 2, "cleaning": 1, "billed": 8}
    adjusted: list[bool] = (
        (np.add.reduceat(~np.isnan(readings.billed_w[picked]), offsets[:-1]) > 0).tolist() if len(ts) else []
    )
    out = []
    for i, n in enumerate(sizes.tolist()):
        a, b = int(offsets[i]), int(offsets[i]) + n
        block: dict[str, object] = {"n": n}
        for name, data in packed.items():
            block[name] = data[a * width[name] : b * width[name]]
        if not adjusted[i]:
            block["billed"] = None
        out.append(block)
    return out


def _decode(zone_key: int, utc_day: int, row: Any, window: tuple[int, int] | None = None) -> ReadingArrays:
    """A block's readings; with ``window`` = (from, to) [UTC ms], only those in ``[from, to)``."""
    ts = np.frombuffer(row.ts, "<i4")
    a, b = 0, int(row.n)
    if window is not None:
        base = utc_day * MS_PER_DAY
        a, b = np.searchsorted(ts, np.clip(np.array(window, np.int64) - base, -1, MS_PER_DAY)).tolist()
    billed = np.full(b - a, np.nan) if row.billed is None else np.frombuffer(row.billed, "<f8")[a:b]
    return ReadingArrays(
        zone_key=np.full(b - a, zone_key, dtype=np.int64),
        t_ms=ts[a:b].astype(np.int64) + utc_day * MS_PER_DAY,
        power_w=np.frombuffer(row.power, "<f8")[a:b].astype(np.float64),
        client_key=np.frombuffer(row.client, "<i2")[a:b].astype(np.int64),
        cleaning=np.frombuffer(row.cleaning, "i1")[a:b].astype(np.int8),
        billed_w=billed.astype(np.float64),
    )


def fetch(connection: Connection, ranges: Iterable[tuple[int, int, int]]) -> dict[tuple[int, int], Any]:
    """The stored block rows of each ``(zone_key, first_utc_day, last_utc_day)`` range, still packed, by
    ``(zone_key, utc_day)``.

    Zones that share a day range are read with one query per :data:`_ZONES_PER_QUERY` zones.
    """
    by_range: dict[tuple[int, int], list[int]] = {}
    for zone_key, first, last in ranges:
        by_range.setdefault((first, last), []).append(zone_key)
    table = ReadingBlock.__table__
    rows: dict[tuple[int, int], Any] = {}
    for (first, last), zones in by_range.items():
        for at in range(0, len(zones), _ZONES_PER_QUERY):
            chunk = zones[at : at + _ZONES_PER_QUERY]
            query = select(table).where(
                table.c.zone_key.in_(chunk), table.c.utc_day >= first, table.c.utc_day <= last
            )
            rows.update({(row.zone_key, row.utc_day): row for row in connection.execute(query)})
    return rows


def decode(
    rows: Mapping[tuple[int, int], Any], windows: Mapping[int, tuple[int, int]] | None = None
) -> ReadingArrays:
    """The readings of block rows (:func:`fetch`), in (zone key, instant) order; with ``windows`` (zone key
    -> (from, to) [UTC ms]), only each zone's readings in ``[from, to)``."""
    if not rows:
        return ReadingArrays.empty()
    parts = [
        _decode(zone, day, row, None if windows is None else windows[zone])
        for (zone, day), row in rows.items()
    ]
    merged = ReadingArrays.concat(parts)
    keys = key_of(merged.zone_key, merged.t_ms)
    if len(keys) > 1 and bool(np.any(keys[1:] < keys[:-1])):  # blocks come in any order: sort once
        merged = merged.take(np.argsort(keys, kind="stable"))
    return merged


def power_before(
    rows: Mapping[tuple[int, int], Any], zone_key: int, instant: int, since: int
) -> float | None:
    """The power [W] of the zone's last reading in ``[since, instant)`` [UTC ms] among block rows
    (:func:`fetch`), or None when it has none there."""
    for day in range((instant - 1) // MS_PER_DAY, since // MS_PER_DAY - 1, -1):
        row = rows.get((zone_key, day))
        if row is None:
            continue
        ts = np.frombuffer(row.ts, "<i4")
        at = int(np.searchsorted(ts, instant - day * MS_PER_DAY)) - 1
        if at >= 0:
            if int(ts[at]) + day * MS_PER_DAY < since:
                return None
            return float(np.frombuffer(row.power, "<f8", count=1, offset=8 * at)[0])
    return None


def last_instant(utc_day: int, row: Any) -> int:
    """The UTC instant [ms] of a stored block's last reading (blocks are in time order)."""
    return int.from_bytes(row.ts[-4:], "little", signed=True) + utc_day * MS_PER_DAY


def load(
    connection: Connection, ranges: Iterable[tuple[int, int, int]]
) -> tuple[ReadingArrays, set[tuple[int, int]]]:
    """The stored readings of each ``(zone_key, first_utc_day, last_utc_day)`` range, and the keys
    ``(zone_key, utc_day)`` of the blocks they came from."""
    rows = fetch(connection, ranges)
    return decode(rows), set(rows)


def key_of(zone_key: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """One int64 sort key per reading: (zone, instant) as ``zone × 2^42 + t`` (``schema.GROUP_SPAN_MS``;
    instants from 1970 to 2109, a million zones)."""
    return zone_key.astype(np.int64) * S.GROUP_SPAN_MS + t_ms

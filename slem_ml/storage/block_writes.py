"""Writing the readings store's blocks (:mod:`~slem_ml.storage.blocks`, docs/store.md) for
:func:`~slem_ml.storage.ingest.ingest`: appending readings after what a stored block holds, or rewriting a
block from all its final readings; :data:`BLOCKS_PER_INSERT` blocks at a time, in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, Table, delete, insert, tuple_

from slem_ml.storage.blocks import MS_PER_DAY, ReadingArrays, encode_blocks
from slem_ml.storage.tables import ReadingBlock

__all__ = ["BLOCKS_PER_INSERT", "append_blocks", "block_bounds", "write_blocks"]

#: Blocks packed and inserted at once, in the caller's transaction: a batch of a million zones is never a
#: million block rows (and their driver parameters) in memory at once.
BLOCKS_PER_INSERT = 50_000


def block_bounds(readings: ReadingArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each (zone, UTC day) block of ``readings`` (in key order) starts and ends, and its day."""
    day = readings.t_ms // MS_PER_DAY
    starts = np.flatnonzero(
        np.r_[True, (readings.zone_key[1:] != readings.zone_key[:-1]) | (day[1:] != day[:-1])]
    )
    return starts, np.r_[starts[1:], len(readings)], day[starts]


def append_blocks(
    connection: Connection, readings: ReadingArrays, stored: dict[tuple[int, int], Any], now: dt.datetime
) -> None:
    """Write the blocks of ``readings`` (in key order), each after what its stored block holds: every
    reading is later than the stored ones (``ingest``'s check), so packed arrays simply concatenate;
    :data:`BLOCKS_PER_INSERT` blocks at a time."""
    if not len(readings):
        return
    starts, ends, days = block_bounds(readings)
    for at in range(0, len(starts), BLOCKS_PER_INSERT):
        part = slice(at, at + BLOCKS_PER_INSERT)
        _append_chunk(connection, readings, starts[part], ends[part], days[part], stored, now)


def _append_chunk(
    connection: Connection,
    readings: ReadingArrays,
    starts: np.ndarray,
    ends: np.ndarray,
    days: np.ndarray,
    stored: dict[tuple[int, int], Any],
    now: dt.datetime,
) -> None:
    """Write the blocks ``readings[starts[i]:ends[i]]`` of UTC days ``days[i]`` (:func:`append_blocks`)."""
    packed = encode_blocks(readings, starts, ends, days)
    keys = list(zip(readings.zone_key[starts].tolist(), days.tolist(), strict=True))
    replaced = []
    for key, block in zip(keys, packed, strict=True):
        old = stored.get(key)
        if old is None:
            continue
        replaced.append(key)
        n = cast(int, block["n"])
        for name in ("ts", "power", "client", "cleaning"):
            block[name] = old._mapping[name] + block[name]
        billed = cast(bytes | None, block["billed"])
        if old.billed is not None or billed is not None:
            block["billed"] = (old.billed or _nan_bytes(old.n)) + (billed or _nan_bytes(n))
        block["n"] = old.n + n
    _put_blocks(connection, keys, packed, replaced, now)


def _nan_bytes(n: int) -> bytes:
    return np.full(n, np.nan, "<f8").tobytes()


def write_blocks(
    connection: Connection,
    final: ReadingArrays,
    dirty: np.ndarray,
    found: set[tuple[int, int]],
    now: dt.datetime,
) -> None:
    """Rewrite every (zone, UTC day) block that holds a dirty reading, from all its final readings;
    :data:`BLOCKS_PER_INSERT` blocks at a time."""
    if not dirty.any():
        return
    starts, ends, days = block_bounds(final)
    dirty_block = np.add.reduceat(dirty.astype(np.int64), starts) > 0
    first, after, day_of = starts[dirty_block], ends[dirty_block], days[dirty_block]
    for at in range(0, len(first), BLOCKS_PER_INSERT):
        part = slice(at, at + BLOCKS_PER_INSERT)
        keys = list(zip(final.zone_key[first[part]].tolist(), day_of[part].tolist(), strict=True))
        packed = encode_blocks(final, first[part], after[part], day_of[part])
        _put_blocks(connection, keys, packed, [key for key in keys if key in found], now)


def _put_blocks(
    connection: Connection,
    keys: list[tuple[int, int]],
    packed: list[dict[str, object]],
    replaced: list[tuple[int, int]],
    now: dt.datetime,
) -> None:
    """Store packed blocks under their ``(zone_key, utc_day)`` keys, replacing the stored ``replaced``."""
    table = cast(Table, ReadingBlock.__table__)
    for at in range(0, len(replaced), 400):
        chunk = replaced[at : at + 400]
        connection.execute(delete(table).where(tuple_(table.c.zone_key, table.c.utc_day).in_(chunk)))
    rows = [
        {"zone_key": zone, "utc_day": day, **block, "updated_at": now}
        for (zone, day), block in zip(keys, packed, strict=True)
    ]
    connection.execute(insert(table), rows)

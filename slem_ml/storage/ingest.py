"""Putting readings into the store: idempotent, with corrections audited (SPEC §8.1).

:func:`ingest` runs inside the caller's write transaction. It decodes the blocks the batch falls into,
matches the batch against them by (zone, instant) in NumPy, and rewrites only the blocks that gain or change
a reading (:mod:`~slem_ml.storage.blocks`, docs/store.md). Each reading of the batch is counted once:

* **added** — its key was not stored;
* **unchanged** — stored with the same ``power_w``, ``client_id`` and cleaning flag (a duplicate);
* **corrected** — stored with other values: the new values stand and ``reading_corrections`` keeps
  old → new, the source and line, the run and who;
* **superseded** — a later row of the same batch has the same key: the later row stands (SPEC §3.1), and
  the earlier one is compared with nothing (so uploading that file again is still all "unchanged").

A batch without a cleaning flag does not overwrite a flag an earlier upload gave (the flag is a
measurement; an inferred one is not, see the cleaning codes in :mod:`~slem_ml.storage.blocks`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, insert, select

from slem_ml.io import schema as S
from slem_ml.storage.block_writes import append_blocks, block_bounds, write_blocks
from slem_ml.storage.blocks import (
    CLEANING_INFERRED,
    CLEANING_NO,
    CLEANING_NOT_GIVEN,
    CLEANING_YES,
    MS_PER_DAY,
    ReadingArrays,
    decode,
    fetch,
    is_cleaning,
    key_of,
    last_instant,
)
from slem_ml.storage.store_keys import client_keys, names_of, zone_keys
from slem_ml.storage.tables import ReadingBlock, ReadingCorrection, StoreClient, StoreZone

__all__ = ["CLEANING_SOURCES", "IngestReport", "ingest", "record_corrections"]

#: Where a batch's cleaning flags come from: the input ("given"), the session classifier ("inferred"),
#: or nowhere ("none").
CLEANING_SOURCES = ("given", "inferred", "none")


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest` did; ``added + unchanged + corrected + superseded`` is the batch's size."""

    added: int
    unchanged: int
    corrected: int
    superseded: int
    #: The readings whose billing may have changed (added, corrected, or their cleaning flag completed):
    #: zone key and UTC instant [ms], for :func:`slem_ml.storage.rebill.rebill`.
    changed_zone_key: np.ndarray
    changed_t_ms: np.ndarray
    #: ``reading_corrections`` rows without their run: :func:`record_corrections` writes them.
    corrections: tuple[dict[str, Any], ...] = ()
    #: Nothing was stored for the batch's zones from two days before its first reading to two days after
    #: its last: the billing of its days is the batch's own (:func:`slem_ml.storage.rebill.bill_fresh`).
    fresh: bool = False
    #: The zones whose stored readings all came before the batch's (an append): zone key -> (the batch's
    #: first instant, the last stored instant before it or None, that reading's power [W]) — what
    #: :func:`slem_ml.storage.rebill.reusable_zones` needs to tell whether the batch's own sessions stand.
    after: dict[int, tuple[int, int | None, float]] = field(default_factory=dict)

    @classmethod
    def nothing(cls) -> IngestReport:
        return cls(0, 0, 0, 0, np.empty(0, np.int64), np.empty(0, np.int64), fresh=True)

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(
            self.added + other.added,
            self.unchanged + other.unchanged,
            self.corrected + other.corrected,
            self.superseded + other.superseded,
            np.r_[self.changed_zone_key, other.changed_zone_key],
            np.r_[self.changed_t_ms, other.changed_t_ms],
            self.corrections + other.corrections,
            self.fresh and other.fresh,
            {**self.after, **other.after},
        )


def record_corrections(connection: Connection, report: IngestReport, run_id: int | None) -> None:
    """Write the corrections of ``report`` to the audit table, naming the run they came with."""
    if report.corrections:
        rows = [{**row, "run_id": run_id} for row in report.corrections]
        connection.execute(insert(cast(Table, ReadingCorrection.__table__)), rows)


def ingest(
    connection: Connection,
    frame: pd.DataFrame,
    *,
    cleaning: str,
    source: str,
    actor: str,
) -> IngestReport:
    """Store the readings of ``frame`` (validated or scored readings: canonical columns, ``timestamp``
    tz-aware UTC; ``billed_power_w`` [W] where the models adjusted a spike) in the caller's transaction.

    ``cleaning`` says where ``cleaning_staff`` came from (:data:`CLEANING_SOURCES`); ``source`` names the
    file (or topic) for the corrections audit, which :func:`record_corrections` writes once the run is known.
    """
    if cleaning not in CLEANING_SOURCES:
        raise ValueError(f"cleaning must be one of {CLEANING_SOURCES}, not {cleaning!r}")
    if frame.empty:
        return IngestReport.nothing()
    now = dt.datetime.now(dt.UTC)
    batch, lines = _batch(connection, frame, cleaning)
    batch, lines, superseded = _last_per_key(batch, lines)
    ranges = _day_ranges(batch)
    stored = fetch(connection, ranges)
    appending = _appending(batch, stored)
    if appending.all():  # the common case: new days, or later readings of stored ones
        fresh = not stored and not _any_blocks(connection, [(z, a - 2, b + 2) for z, a, b in ranges])
        after = {} if fresh else _after_stored(connection, batch, stored, ranges)
        append_blocks(connection, batch, stored, now)
        return IngestReport(
            added=len(batch), unchanged=0, corrected=0, superseded=superseded,
            changed_zone_key=batch.zone_key, changed_t_ms=batch.t_ms, fresh=fresh, after=after,
        )  # fmt: skip
    later, rest = batch.take(appending), batch.take(~appending)
    append_blocks(connection, later, stored, now)
    merged = _merge(connection, rest, lines[~appending], stored, source, actor, now)
    return merged + IngestReport(
        added=len(later), unchanged=0, corrected=0, superseded=superseded,
        changed_zone_key=later.zone_key, changed_t_ms=later.t_ms,
    )  # fmt: skip


def _merge(
    connection: Connection,
    batch: ReadingArrays,
    lines: np.ndarray,
    blocks: dict[tuple[int, int], Any],
    source: str,
    actor: str,
    now: dt.datetime,
) -> IngestReport:
    """Match readings that fall among stored ones (a re-upload, a correction, a gap filled) against the
    stored blocks they fall into, and rewrite those blocks with the values that stand."""
    day = batch.t_ms // MS_PER_DAY
    keys = set(zip(batch.zone_key.tolist(), day.tolist(), strict=True))
    mine = {key: row for key, row in blocks.items() if key in keys}
    stored = decode(mine)
    # Stored readings first, then the batch in input order: for each key, every row is compared with the
    # row before it, and the last row stands.
    both = ReadingArrays.concat([stored, batch])
    origin_batch = np.r_[np.zeros(len(stored), bool), np.ones(len(batch), bool)]
    line = np.r_[np.full(len(stored), -1, np.int64), lines]
    # both parts are sorted by key: a stable sort of their concatenation is a merge (timsort's runs)
    order = np.argsort(key_of(both.zone_key, both.t_ms), kind="stable")
    both, origin_batch, line = both.take(order), origin_batch[order], line[order]
    same = np.zeros(len(both), bool)
    same[1:] = (both.zone_key[1:] == both.zone_key[:-1]) & (both.t_ms[1:] == both.t_ms[:-1])
    prev = np.maximum(np.arange(len(both)) - 1, 0)
    new_given = both.cleaning >= 0
    prev_given = both.cleaning[prev] >= 0
    differs = same & (
        (both.power_w != both.power_w[prev])
        | (both.client_key != both.client_key[prev])
        | (new_given & prev_given & (is_cleaning(both.cleaning) != is_cleaning(both.cleaning[prev])))
    )
    added = origin_batch & ~same
    corrected = origin_batch & differs
    unchanged = origin_batch & same & ~differs

    # The values that stand: a flag not given keeps a given one; an unchanged reading keeps its billing.
    keep_flag = same & ~new_given & prev_given
    final_cleaning = np.where(keep_flag, both.cleaning[prev], both.cleaning).astype(np.int8)
    final_billed = np.where(unchanged, both.billed_w[prev], both.billed_w)
    cleaning_moved = same & (is_cleaning(final_cleaning) != is_cleaning(both.cleaning[prev]))
    changed = added | corrected | (origin_batch & cleaning_moved)
    dirty = changed | (origin_batch & same & (final_cleaning != both.cleaning[prev]))
    last = np.r_[~same[1:], True]
    final = ReadingArrays(
        both.zone_key, both.t_ms, both.power_w, both.client_key, final_cleaning, final_billed
    ).take(last)
    # a key is dirty when any of its rows is (one entry per key, as in `final`)
    key_id = np.cumsum(~same) - 1
    dirty_key = np.bincount(key_id, weights=dirty, minlength=len(final)) > 0
    write_blocks(connection, final, dirty_key, set(mine), now)
    corrections = _corrections(connection, both, prev, corrected, line, source, actor, now)
    return IngestReport(
        added=int(added.sum()),
        unchanged=int(unchanged.sum()),
        corrected=int(corrected.sum()),
        superseded=0,
        changed_zone_key=both.zone_key[changed],
        changed_t_ms=both.t_ms[changed],
        corrections=corrections,
    )


def _after_stored(
    connection: Connection,
    batch: ReadingArrays,
    stored: dict[tuple[int, int], Any],
    ranges: list[tuple[int, int, int]],
) -> dict[int, tuple[int, int | None, float]]:
    """For each zone of an appending batch (:func:`_appending`) whose every stored reading precedes its
    first one: that first instant, and the last stored reading before it (instant, power) from the blocks
    of its days or of the UTC day before them; None when neither holds one (:attr:`IngestReport.after`)."""
    later = _zones_with_blocks_after(connection, ranges)
    starts = np.flatnonzero(np.r_[True, batch.zone_key[1:] != batch.zone_key[:-1]])
    first_t = dict(zip(batch.zone_key[starts].tolist(), batch.t_ms[starts].tolist(), strict=True))
    latest: dict[int, tuple[int, Any]] = {}  # zone -> (utc_day, row) of its latest stored block in range
    for (zone, day), row in stored.items():
        if zone not in latest or day > latest[zone][0]:
            latest[zone] = (day, row)
    out: dict[int, tuple[int, int | None, float]] = {}
    missing = []
    for zone, first_day, _ in ranges:
        if zone in later:
            continue
        if zone in latest:
            day, row = latest[zone]
            t_prev = last_instant(day, row)
            if t_prev >= first_t[zone]:  # stored readings later than the batch's first: not an append
                continue
            out[zone] = (first_t[zone], t_prev, _last_power(row))
        else:
            missing.append((zone, first_day - 1, first_day - 1))
    before = fetch(connection, missing) if missing else {}
    for zone, day, _ in missing:
        row = before.get((zone, day))
        prev = None if row is None else (last_instant(day, row), _last_power(row))
        out[zone] = (first_t[zone], None if prev is None else prev[0], np.nan if prev is None else prev[1])
    return out


def _last_power(row: Any) -> float:
    return float(np.frombuffer(row.power, "<f8", count=1, offset=8 * (int(row.n) - 1))[0])


def _zones_with_blocks_after(connection: Connection, ranges: list[tuple[int, int, int]]) -> set[int]:
    """The zones of ``(zone_key, first_utc_day, last_utc_day)`` ranges with a block after their last day."""
    table = cast(Table, ReadingBlock.__table__)
    by_day: dict[int, list[int]] = {}
    for zone_key, _, last in ranges:
        by_day.setdefault(last, []).append(zone_key)
    found: set[int] = set()
    for last, zones in by_day.items():
        for at in range(0, len(zones), 900):
            query = (
                select(table.c.zone_key)
                .where(table.c.zone_key.in_(zones[at : at + 900]), table.c.utc_day > last)
                .distinct()
            )
            found.update(connection.execute(query).scalars())
    return found


def _appending(batch: ReadingArrays, stored: dict[tuple[int, int], Any]) -> np.ndarray:
    """Per reading of the batch: whether its block is new or holds only earlier readings (so the reading
    is added by appending, with nothing to compare)."""
    starts, ends, days = block_bounds(batch)
    zones, firsts = batch.zone_key[starts].tolist(), batch.t_ms[starts].tolist()
    ok = [
        (row := stored.get((zone, day))) is None or first > last_instant(day, row)
        for zone, day, first in zip(zones, days.tolist(), firsts, strict=True)
    ]
    return np.repeat(np.array(ok, bool), ends - starts)


# --- the batch ----------------------------------------------------------------------------------------


def _batch(connection: Connection, frame: pd.DataFrame, cleaning: str) -> tuple[ReadingArrays, np.ndarray]:
    """The batch as arrays with store keys, and each reading's source line (-1 where unknown)."""
    zones = frame[S.ZONE_ID].astype("category")
    buildings = frame[S.BUILDING] if S.BUILDING in frame.columns else None
    floors = frame[S.FLOOR] if S.FLOOR in frame.columns else None
    zone_codes = zones.cat.codes.to_numpy()
    used = np.unique(zone_codes)
    first_row = np.unique(zone_codes, return_index=True)[1]
    names = [str(zones.cat.categories[c]) for c in used]
    places = {
        name: (
            "" if buildings is None else str(buildings.iloc[row]),
            "" if floors is None else str(floors.iloc[row]),
        )
        for name, row in zip(names, first_row.tolist(), strict=True)
    }
    zone_key_of = zone_keys(connection, places)
    zone_lookup = np.full(len(zones.cat.categories), -1, np.int64)
    zone_lookup[used] = [zone_key_of[name] for name in names]

    clients = frame[S.CLIENT_ID].astype("category")
    client_key_of = client_keys(connection, [str(c) for c in clients.cat.categories])
    client_lookup = np.array([client_key_of[str(c)] for c in clients.cat.categories], np.int64)

    flag = frame[S.CLEANING_STAFF].to_numpy(dtype=bool) if S.CLEANING_STAFF in frame.columns else None
    if cleaning == "given" and flag is not None:
        codes = np.where(flag, CLEANING_YES, CLEANING_NO)
    elif cleaning == "inferred" and flag is not None:
        codes = np.where(flag, CLEANING_INFERRED, CLEANING_NOT_GIVEN)
    else:
        codes = np.full(len(frame), CLEANING_NOT_GIVEN)
    billed = (
        frame[S.BILLED_POWER_W].to_numpy(dtype=float)
        if S.BILLED_POWER_W in frame.columns
        else np.full(len(frame), np.nan)
    )
    batch = ReadingArrays(
        zone_key=zone_lookup[zone_codes],
        t_ms=frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64),
        power_w=frame[S.POWER_W].to_numpy(dtype=float),
        client_key=client_lookup[clients.cat.codes.to_numpy()],
        cleaning=codes.astype(np.int8),
        billed_w=billed,
    )
    lines = frame[S.LINE].to_numpy(dtype=np.int64) if S.LINE in frame.columns else np.full(len(frame), -1)
    return batch, lines


def _last_per_key(batch: ReadingArrays, lines: np.ndarray) -> tuple[ReadingArrays, np.ndarray, int]:
    """The batch in (zone, time, line) order with only the last row of each key, and how many rows a
    later one superseded."""
    if not _in_key_order(batch, lines):  # the reader's frames already are: skip the sort
        order = np.lexsort((lines, key_of(batch.zone_key, batch.t_ms)))
        batch, lines = batch.take(order), lines[order]
    last = np.r_[(batch.zone_key[1:] != batch.zone_key[:-1]) | (batch.t_ms[1:] != batch.t_ms[:-1]), True]
    return batch.take(last), lines[last], int((~last).sum())


def _any_blocks(connection: Connection, ranges: list[tuple[int, int, int]]) -> bool:
    """Whether any block lies in one of the ``(zone_key, first_utc_day, last_utc_day)`` ranges."""
    table = cast(Table, ReadingBlock.__table__)
    by_range: dict[tuple[int, int], list[int]] = {}
    for zone_key, first, last in ranges:
        by_range.setdefault((first, last), []).append(zone_key)
    for (first, last), zones in by_range.items():
        for at in range(0, len(zones), 900):
            query = (
                select(table.c.zone_key)
                .where(table.c.zone_key.in_(zones[at : at + 900]))
                .where(table.c.utc_day >= first, table.c.utc_day <= last)
                .limit(1)
            )
            if connection.execute(query).first() is not None:
                return True
    return False


def _in_key_order(batch: ReadingArrays, lines: np.ndarray) -> bool:
    """Whether the batch is sorted by (zone key, instant, line)."""
    dz = np.diff(batch.zone_key)
    dt_ = np.diff(batch.t_ms)
    same = (dz == 0) & (dt_ == 0)
    return bool(np.all((dz > 0) | ((dz == 0) & (dt_ > 0)) | (same & (np.diff(lines) >= 0))))


def _day_ranges(batch: ReadingArrays) -> list[tuple[int, int, int]]:
    """Per zone of the batch (sorted by zone and time), its first and last UTC day."""
    starts = np.flatnonzero(np.r_[True, batch.zone_key[1:] != batch.zone_key[:-1]])
    ends = np.r_[starts[1:], len(batch)] - 1
    first, last = batch.t_ms[starts] // MS_PER_DAY, batch.t_ms[ends] // MS_PER_DAY
    return list(zip(batch.zone_key[starts].tolist(), first.tolist(), last.tolist(), strict=True))


def _corrections(
    connection: Connection,
    both: ReadingArrays,
    prev: np.ndarray,
    corrected: np.ndarray,
    line: np.ndarray,
    source: str,
    actor: str,
    now: dt.datetime,
) -> tuple[dict[str, Any], ...]:
    rows = np.flatnonzero(corrected)
    if not len(rows):
        return ()
    before = prev[rows]
    zone_names = names_of(connection, StoreZone, "zone_id", both.zone_key[rows])
    old_clients = names_of(connection, StoreClient, "client_id", both.client_key[before])
    new_clients = names_of(connection, StoreClient, "client_id", both.client_key[rows])
    stamps = pd.to_datetime(both.t_ms[rows], unit="ms", utc=True).to_pydatetime()

    def flag(code: int) -> bool | None:
        return None if code < 0 else bool(code == CLEANING_YES)

    records = [
        {
            "zone_id": zone_names[i],
            "timestamp": stamps[i],
            "old_power_w": float(both.power_w[b]),
            "new_power_w": float(both.power_w[r]),
            "old_client_id": old_clients[i],
            "new_client_id": new_clients[i],
            "old_cleaning": flag(int(both.cleaning[b])),
            "new_cleaning": flag(int(both.cleaning[r])),
            "source": source[:500],
            "line": None if line[r] < 0 else int(line[r]),
            "actor": actor,
            "at": now,
        }
        for i, (r, b) in enumerate(zip(rows.tolist(), before.tolist(), strict=True))
    ]
    return tuple(records)

"""The store's bulk writes (issue 16): SQLAlchemy's typed executemany against the bulk path, and COPY.

Two kinds of rows, written into a fresh store migrated by slem, each in one transaction, best of
``--repeat`` (the table emptied between runs):

* **reading blocks** as ``storage/ingest.py`` writes them (the legacy export's shape: 66 zones × 59 UTC days,
  about 224 readings a block, 870k readings): today's ``insert(table)`` executemany against ``COPY`` (text,
  as :func:`slem_ml.storage.bulk.insert_columns` writes, and binary) — PostgreSQL only;
* **cleaning sessions** (``--sessions``, money, kWh, instants, dates, flags) checked and written the old way
  (per-cell conversion, then SQLAlchemy's ``insert`` with every value through ``ExactDecimal`` /
  ``UTCDateTime``) against the bulk path (:func:`~slem_ml.storage.columns.checked_columns` then
  :func:`~slem_ml.storage.bulk.insert_columns`: executemany on SQLite, COPY on PostgreSQL).

PostgreSQL: a scratch database ``bench_store_bulk`` on the server of ``--pg-dsn``, dropped afterwards.

    .venv/bin/python benchmarks/bench_store_bulk.py [--pg-dsn postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import Connection, Engine, Table, insert, text

from slem_ml.storage import bulk, columns, open_database
from slem_ml.storage.blocks import MS_PER_DAY, ReadingArrays, encode_blocks
from slem_ml.storage.payload import _CLEANING
from slem_ml.storage.tables import ReadingBlock, StoreCleaningSession, StoreZone

BLOCK_TYPES = ["int4", "int4", "int4", "bytea", "bytea", "bytea", "bytea", "bytea", "timestamptz"]
DEFAULTS = {"inferred": False}


def blocks(zones: int, days: int, per_block: int) -> list[dict[str, Any]]:
    """``zones`` × ``days`` blocks of ``per_block`` readings each, packed as slem packs them."""
    rng = np.random.default_rng(1)
    out: list[dict[str, Any]] = []
    now = dt.datetime.now(dt.UTC)
    for day in range(20_089, 20_089 + days):
        step = MS_PER_DAY // per_block
        t = np.tile(np.arange(per_block, dtype=np.int64) * step, zones) + day * MS_PER_DAY
        zone = np.repeat(np.arange(1, zones + 1, dtype=np.int64), per_block)
        power = np.where(rng.random(len(t)) < 0.4, np.round(rng.normal(120, 15, len(t)), 1), 0.0)
        readings = ReadingArrays(
            zone, t, power, np.ones(len(t), np.int64), np.zeros(len(t), np.int8), np.full(len(t), np.nan)
        )
        starts = np.arange(0, len(t), per_block)
        packed = encode_blocks(readings, starts, starts + per_block, np.full(zones, day))
        out += [
            {"zone_key": z, "utc_day": day, **block, "updated_at": now}
            for z, block in zip(range(1, zones + 1), packed, strict=True)
        ]
    return out


def sessions(n: int) -> pd.DataFrame:
    """``n`` cleaning sessions as scoring gives them (Decimal money and kWh, site-time instants)."""
    rng = np.random.default_rng(2)
    start = pd.to_datetime(1_735_689_600_000 + rng.integers(0, 5 * 10**9, n), unit="ms", utc=True)
    minutes = rng.integers(1, 240, n)
    return pd.DataFrame(
        {
            "zone_id": [f"HQ-F{z % 6}-Z{z}" for z in rng.integers(0, 66, n)],
            "building": "HQ",
            "floor": [f"F{z}" for z in rng.integers(0, 6, n)],
            "date": [d.date() for d in start],
            "start": start.tz_convert("America/New_York"),
            "end": (start + pd.to_timedelta(minutes, unit="min")).tz_convert("America/New_York"),
            "minutes": minutes.astype(float),
            "flagged": minutes > 180,
            "excess_minutes": np.maximum(minutes - 180, 0).astype(float),
            "wasted_kwh": [Decimal(int(u)).scaleb(-6) for u in rng.integers(0, 10**8, n)],
            "savings": [Decimal(int(c)).scaleb(-2) for c in rng.integers(0, 10**5, n)],
            "client_id": "C001",
        }
    )


def old_way(connection: Connection, frame: pd.DataFrame) -> None:
    """Every cell through its converter, then SQLAlchemy's typed executemany (slem before the bulk path)."""
    columns: dict[str, list[Any]] = {}
    for column, (key, convert, _) in _CLEANING.items():
        values = frame[column].tolist() if column in frame else [DEFAULTS[key]] * len(frame)
        columns[key] = [convert(v) for v in values] if column in frame else values
    columns["client_id"] = frame["client_id"].tolist()
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    connection.execute(insert(cast(Table, StoreCleaningSession.__table__)), rows)


def bulk_way(connection: Connection, frame: pd.DataFrame) -> None:
    checked = columns.checked_columns(frame, "cleaning_sessions", _CLEANING, DEFAULTS)
    stored = {key: column for key, (_, column) in checked.items()} | {
        "client_id": frame["client_id"].tolist()
    }
    bulk.insert_columns(connection, cast(Table, StoreCleaningSession.__table__), stored)


def copy_blocks(connection: Connection, rows: list[dict[str, Any]], binary: bool) -> None:
    table = cast(Table, ReadingBlock.__table__)
    names = [c.name for c in table.columns]
    if not binary:  # stored form: instants as naive UTC text
        columns = {n: [r[n] for r in rows] for n in names}
        columns["updated_at"] = [t.replace(tzinfo=None).isoformat(" ") for t in columns["updated_at"]]
        bulk.insert_columns(connection, table, columns)
        return
    raw: Any = connection.connection.driver_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY reading_blocks ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(BLOCK_TYPES)
        for row in rows:
            copy.write_row([row[n] for n in names])


def best(engine: Engine, table: str, write: Callable[[Connection], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with engine.begin() as connection:
            connection.execute(text(f"DELETE FROM {table}"))
        clock = time.perf_counter()
        with engine.begin() as connection:
            write(connection)
        times.append(time.perf_counter() - clock)
    return min(times)


def run(engine: Engine, args: argparse.Namespace) -> None:
    name = engine.dialect.name
    with engine.begin() as connection:
        connection.execute(
            insert(StoreZone), [{"zone_id": f"Z{z}", "building": "", "floor": ""} for z in range(1, 67)]
        )
    frame = sessions(args.sessions)
    old = best(engine, "store_cleaning_sessions", lambda c: old_way(c, frame), args.repeat)
    new = best(engine, "store_cleaning_sessions", lambda c: bulk_way(c, frame), args.repeat)
    print(f"{name:<10} {len(frame):,} cleaning sessions: typed insert {old:.3f} s, bulk {new:.3f} s")
    if name != "postgresql":
        return
    rows = blocks(66, 59, 224)
    table = cast(Table, ReadingBlock.__table__)
    ways: dict[str, Callable[[Connection], None]] = {
        "insert (today)": lambda c: c.execute(insert(table), rows),
        "COPY text": lambda c: copy_blocks(c, rows, binary=False),
        "COPY binary": lambda c: copy_blocks(c, rows, binary=True),
    }
    readings = sum(int(r["n"]) for r in rows)
    for how, write in ways.items():
        seconds = best(engine, "reading_blocks", write, args.repeat)
        print(f"{name:<10} {len(rows):,} blocks ({readings:,} readings): {how:<15} {seconds:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--sessions", type=int, default=31_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(f"sqlite:///{Path(tmp) / 'slem.db'}")
        try:
            run(engine, args)
        finally:
            engine.dispose()
    name = "bench_store_bulk"
    with psycopg.connect(f"{args.pg_dsn}/test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    engine = open_database(f"{args.pg_dsn.replace('postgresql://', 'postgresql+psycopg://')}/{name}")
    try:
        run(engine, args)
    finally:
        engine.dispose()
        with psycopg.connect(f"{args.pg_dsn}/test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()

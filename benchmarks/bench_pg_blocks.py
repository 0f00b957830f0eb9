"""Reading blocks into PostgreSQL: multi-row INSERT against binary COPY, per TOAST storage (issues 12, 16).

One UTC day of 500 zones at 1 minute (720,000 readings; ``--per-block 288``: at 5 minutes) packed as
slem packs them (``blocks.encode_blocks``),
written into ``reading_blocks`` of a fresh database migrated by slem, in one transaction, with the packed
columns' storage ``EXTENDED`` (PostgreSQL's default: compressed when over 2 kB), ``MAIN`` or ``EXTERNAL``
(out of line, uncompressed: slem's since migration 0004). Each way runs ``--repeat`` times; the table is
emptied and vacuumed between runs. Prints the median seconds and the table's size.

    .venv/bin/python benchmarks/bench_pg_blocks.py [--pg-dsn postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from typing import Any, cast

import numpy as np
import psycopg
from sqlalchemy import Table, insert, text

from slem_ml.storage import open_database
from slem_ml.storage.blocks import MS_PER_DAY, ReadingArrays, encode_blocks
from slem_ml.storage.tables import ReadingBlock, StoreZone

PACKED = ("ts", "power", "client", "cleaning", "billed")
#: TOAST storage and compression of the packed columns: PostgreSQL's default, then the alternatives.
WAYS = [("EXTENDED", "pglz"), ("EXTENDED", "lz4"), ("MAIN", "pglz"), ("MAIN", "lz4"), ("EXTERNAL", "pglz")]
TYPES = ["int4", "int4", "int4", "bytea", "bytea", "bytea", "bytea", "bytea", "timestamptz"]


def day_of_blocks(zones: int, day: int, per_zone: int) -> list[dict[str, Any]]:
    """A UTC day of ``zones`` zones with ``per_zone`` readings each, packed into one block per zone."""
    rng = np.random.default_rng(1)
    step = MS_PER_DAY // per_zone
    t = np.tile(np.arange(per_zone, dtype=np.int64) * step, zones) + day * MS_PER_DAY
    zone = np.repeat(np.arange(1, zones + 1, dtype=np.int64), per_zone)
    lit = rng.random(len(t)) < 0.4
    power = np.where(lit, np.round(rng.normal(120, 15, len(t)), 1), 0.0)
    readings = ReadingArrays(
        zone, t, power, np.ones(len(t), np.int64), np.zeros(len(t), np.int8), np.full(len(t), np.nan)
    )
    starts = np.arange(0, len(t), per_zone)
    packed = encode_blocks(readings, starts, starts + per_zone, np.full(zones, day))
    now = dt.datetime.now(dt.UTC)
    return [
        {"zone_key": int(z), "utc_day": day, **block, "updated_at": now}
        for z, block in zip(range(1, zones + 1), packed, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument(
        "--per-block", type=int, default=1440, help="readings per block: 1440 = 1 min, 288 = 5 min"
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    name = "bench_pg_blocks"
    with psycopg.connect(f"{args.pg_dsn}/test", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    engine = open_database(f"{args.pg_dsn.replace('postgresql://', 'postgresql+psycopg://')}/{name}")
    try:
        rows = day_of_blocks(args.zones, 20_000, args.per_block)
        with engine.begin() as c:
            c.execute(
                insert(StoreZone),
                [{"zone_id": f"Z{r['zone_key']}", "building": "", "floor": ""} for r in rows],
            )
        table = cast(Table, ReadingBlock.__table__)
        columns = [col.name for col in table.columns]
        print(f"{len(rows)} blocks, {sum(int(r['n']) for r in rows):,} readings")
        for storage, compression in WAYS:
            with engine.begin() as c:
                for column in PACKED:
                    c.execute(text(f"ALTER TABLE reading_blocks ALTER COLUMN {column} SET STORAGE {storage}"))
                    c.execute(
                        text(
                            f"ALTER TABLE reading_blocks ALTER COLUMN {column} SET COMPRESSION {compression}"
                        )
                    )
            for how in ("insert", "copy"):
                times = []
                for _ in range(args.repeat):
                    with engine.begin() as c:
                        c.execute(text("DELETE FROM reading_blocks"))
                    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                        c.execute(text("VACUUM reading_blocks"))
                    clock = time.perf_counter()
                    with engine.begin() as c:
                        if how == "insert":
                            c.execute(insert(table), rows)
                        else:
                            raw: Any = c.connection.driver_connection
                            statement = (
                                f"COPY reading_blocks ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
                            )
                            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                                copy.set_types(TYPES)
                                for row in rows:
                                    copy.write_row([row[col] for col in columns])
                    times.append(time.perf_counter() - clock)
                with engine.connect() as c:
                    size = c.execute(text("SELECT pg_total_relation_size('reading_blocks')")).scalar_one()
                print(
                    f"{storage:<8} {compression:<5} {how:<6} {statistics.median(times):.3f} s "
                    f"({min(times):.3f}-{max(times):.3f}), table {size / 1e6:.1f} MB"
                )
    finally:
        engine.dispose()
        with psycopg.connect(f"{args.pg_dsn}/test", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()

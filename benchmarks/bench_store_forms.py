"""The readings store's physical form, measured (issue 12, SPEC §8): which table layout slem should use.

A standalone script (not imported by slem_ml, not a test). Synthetic readings built with NumPy: 500 zones
owned by 10 clients, one reading a minute (720,000 a day), power in watts with one decimal, a cleaning
flag. Every candidate form is driven through the same idempotent ingest (SPEC §8.1: new readings added,
duplicates counted, corrections applied with their old values for the audit) and measured on:

a. the first upload: 1,008,000 readings (500 zones x 7 days at 5 min) into an empty store;
b. one new day (720,000 readings) into an empty store and into stores already holding N days;
c. re-ingesting that day (all duplicates) and the day with 1 % of its readings changed (corrections);
d. reading one zone-day and one client's month (into NumPy arrays);
e. concurrency: an uploader ingesting days while a live writer adds 500 readings every 0.1 s and a reader
   reads zone-days, each its own process: how long each waits, errors, and whether counts add up.

Forms (each skipped, saying why, when its package or server is missing):

* ``sqlite-rows``       one row per reading, ``PRIMARY KEY (zone_key, ts_ms) WITHOUT ROWID``, stdlib sqlite3
* ``sqlite-rows-rowid`` the same as a rowid table with a UNIQUE index on (zone_key, ts_ms)
* ``sqlite-rows-adbc``  ``sqlite-rows`` loaded through ADBC (``adbc-driver-sqlite``: Arrow bulk ingest)
* ``sqlite-blocks``     one row per (zone, UTC day): the day's readings as packed little-endian arrays
* ``pg-rows``           PostgreSQL plain table, ``ts timestamptz``, loaded by binary ``COPY`` built with NumPy
* ``pg-rows-part``      the same table partitioned by month (``PARTITION BY RANGE (ts)``)
* ``pg-blocks``         PostgreSQL zone-day blocks (``bytea``), loaded by binary ``COPY``
* ``delta``             Delta Lake (``deltalake``) partitioned by UTC day: append, ``merge`` for corrections

Every form finds duplicates and corrections the same way: it reads what it stores in the batch's (zone, day)
ranges and matches by (zone, ts) in NumPy, then writes only new and changed readings, all in one write
transaction. ``--rows-match sql`` makes the row forms stage the batch in a temp table and classify, insert and
update with SQL joins instead.

Runs (the default: all eight forms, stores of 10 and 30 days, 3 repetitions; 13 minutes on the project's
2-core machine, including 1.5 minutes timing today's ``slem score``)::

    .venv/bin/python benchmarks/bench_store_forms.py            # the forms that need no extra package
    /tmp/storebench/bin/python benchmarks/bench_store_forms.py  # + ADBC and Delta Lake (docs/store.md)
    python benchmarks/bench_store_forms.py --forms sqlite-blocks pg-blocks --sizes 10 30 --repeat 3

PostgreSQL: ``$BENCH_PG_DSN`` (default ``host=127.0.0.1 port=5432 user=postgres dbname=test``); everything
lives in the schema ``bench_store`` (tables dropped before use, the schema at the end). Files go to a
temporary folder.
Each form runs in fresh processes, so peak RSS is the form's own (not the PostgreSQL server's memory).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ZONES = 500
CLIENTS = 10
MINUTE_MS = 60_000
DAY_MS = 86_400_000
T0_DAY = 20089  # 2025-01-01 as days since 1970-01-01 (UTC)
PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_SCHEMA = "bench_store"
STORE_LOCK_KEY = 0x736C656D_0001  # slem's advisory lock held by every PostgreSQL write transaction
#: how the row forms find duplicates and corrections: "numpy" (read the batch's stored (zone, day) ranges,
#: match in NumPy) or "sql" (stage the batch in a temp table, classify and update by joins in SQL)
ROWS_MATCH = os.environ.get("BENCH_ROWS_MATCH", "numpy")
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970: PostgreSQL's binary timestamptz origin
ZONE_IDS = [f"B{z // 100 + 1}-F{z // 20 % 5 + 1}-Z{z:03d}" for z in range(ZONES)]
CLIENT_IDS = [f"C{c + 1:03d}" for c in range(CLIENTS)]
COLUMNS = ("zone_key", "ts_ms", "client_key", "power_w", "cleaning_staff")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------- readings


@dataclass
class Batch:
    """Readings sorted by (zone, time): the order slem's reader hands them over."""

    zone: np.ndarray  # int32, index into ZONE_IDS
    ts: np.ndarray  # int64, UTC [ms]
    client: np.ndarray  # int16, index into CLIENT_IDS
    power: np.ndarray  # float64 [W]
    cleaning: np.ndarray  # int8: 0 / 1 (-1 = unknown, a file without the column)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> Batch:
        return Batch(*(getattr(self, f)[index] for f in ("zone", "ts", "client", "power", "cleaning")))

    def day(self) -> np.ndarray:
        return (self.ts // DAY_MS).astype(np.int32)


def make_batch(first_day: int, days: int, step_min: int = 1, zones: int = ZONES) -> Batch:
    """``days`` days from T0_DAY + first_day, one reading every ``step_min`` minutes for each zone."""
    per_zone = days * 1440 // step_min
    start = (T0_DAY + first_day) * DAY_MS
    ts_one = start + np.arange(per_zone, dtype=np.int64) * (step_min * MINUTE_MS)
    zone = np.repeat(np.arange(zones, dtype=np.int32), per_zone)
    ts = np.tile(ts_one, zones)
    rng = np.random.default_rng(first_day * 1000 + days)
    minute_of_day = (ts // MINUTE_MS) % 1440
    lit = ((minute_of_day >= 6 * 60) & (minute_of_day < 19 * 60)) | (rng.random(len(ts)) < 0.03)
    rated = 80.0 + (np.arange(zones) * 37 % 1900)
    power = np.round(lit * rated[zone] * (1 + 0.02 * rng.standard_normal(len(ts))), 1)
    client = (zone // (zones // CLIENTS)).astype(np.int16)
    cleaning = (rng.random(len(ts)) < 0.02).astype(np.int8)
    return Batch(zone, ts, client, np.abs(power), cleaning)


def changed(batch: Batch, fraction: float, rep: int) -> Batch:
    """``batch`` with ``fraction`` of its readings changed (80 % power, 10 % client, 10 % cleaning flag).

    The same readings change in every ``rep``, each time to other values than the ``rep`` before, so each
    run of the same day brings exactly ``fraction`` corrections.
    """
    rng = np.random.default_rng(7)
    index = np.sort(rng.choice(len(batch), int(len(batch) * fraction), replace=False))
    out = batch.take(np.arange(len(batch)))
    part = np.array_split(index, 10)
    power_idx = np.concatenate(part[:8])
    out.power[power_idx] = np.round(out.power[power_idx] + 0.5 * (rep + 1), 1)
    out.client[part[8]] = ((out.client[part[8]] + rep + 1) % CLIENTS).astype(np.int16)
    out.cleaning[part[9]] = out.cleaning[part[9]] ^ ((rep + 1) % 2)
    return out


def live_batch(day: int, minute: int) -> Batch:
    """One reading per zone at ``minute`` of ``day``: what a live ingest worker writes each minute."""
    ts = np.full(ZONES, (T0_DAY + day) * DAY_MS + minute * MINUTE_MS, dtype=np.int64)
    zone = np.arange(ZONES, dtype=np.int32)
    return Batch(
        zone,
        ts,
        (zone // (ZONES // CLIENTS)).astype(np.int16),
        np.full(ZONES, 100.0),
        np.zeros(ZONES, np.int8),
    )


def zone_day_groups(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(zone, day) of each run of one zone-day in ``batch`` (sorted by zone, ts) and the runs' bounds."""
    day = batch.day()
    cut = np.flatnonzero((np.diff(batch.zone) != 0) | (np.diff(day) != 0)) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(batch)]))
    return np.stack([batch.zone[starts], day[starts]], axis=1), starts, ends


@dataclass
class Ingested:
    """What one ingest did (SPEC §8.1) and where its time went."""

    new: int = 0
    duplicate: int = 0
    corrected: int = 0
    audit: list[tuple[Any, ...]] = field(default_factory=list)  # (zone, ts, old..., new...) per correction
    touched: int = 0  # (zone, day)s with a new or a corrected reading: what billing recomputes
    path: str = ""
    retries: int = 0  # optimistic concurrency (Delta): commits retried after a conflict
    seconds: dict[str, float] = field(default_factory=dict)


class Timer:
    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = self.marks.get(name, 0.0) + now - self._last
        self._last = now


def merge_rows(
    old: Batch, old_group: np.ndarray, new: Batch, new_group: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match new readings to stored ones by (group, ts) in NumPy.

    Returns (keep_old, is_new, corrected_old, corrected_new): which stored rows survive, which new rows
    are new keys, and the index pairs of corrections (stored row, new row), whose old values the audit keeps.
    """
    n_old = len(old)
    group = np.concatenate((old_group, new_group))
    ts = np.concatenate((old.ts, new.ts))
    source = np.concatenate((np.zeros(n_old, np.int8), np.ones(len(new), np.int8)))
    order = np.lexsort((source, ts, group))
    same = (group[order[1:]] == group[order[:-1]]) & (ts[order[1:]] == ts[order[:-1]])
    first = order[:-1][same]  # stored row of a pair (source 0 sorts first)
    second = order[1:][same] - n_old  # the new row
    differ = (
        (old.power[first] != new.power[second])
        | (old.client[first] != new.client[second])
        | (old.cleaning[first] != new.cleaning[second])
    )
    keep_old = np.ones(n_old, bool)
    keep_old[first[differ]] = False
    is_new = np.ones(len(new), bool)
    is_new[second] = False
    return keep_old, is_new, first[differ], second[differ]


# ------------------------------------------------------------------------------------------------ forms


class Form:
    name = ""
    needs: tuple[str, ...] = ()
    postgres = False

    def __init__(self, work: Path, journal: str = "wal") -> None:
        self.work = work
        self.journal = journal

    def available(self) -> str | None:
        """None, or why this form cannot run here."""
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                return f"needs the Python package {module!r} (not installed in {sys.prefix})"
        if self.postgres:
            try:
                import psycopg

                psycopg.connect(PG_DSN, connect_timeout=3).close()
            except Exception as error:  # any reason the server is not usable
                return f"PostgreSQL at {PG_DSN!r} not reachable: {error}"
        return None

    def create(self) -> None: ...
    def open(self) -> None: ...
    def close(self) -> None: ...
    def drop(self) -> None: ...
    def ingest(self, batch: Batch) -> Ingested: ...
    def read_zone_day(self, zone: int, day: int) -> int: ...
    def read_client(self, client: int, first_day: int, last_day: int) -> int: ...
    def count(self) -> int: ...
    def size_mb(self) -> float: ...
    def check(self) -> str:
        return "n/a"

    def build(self, first_day: int, days: int) -> None:
        """Fill days [first_day, first_day + days) quickly (the scaled store); not one of the measurements."""
        for day in range(first_day, first_day + days, 5):
            self.ingest(make_batch(day, min(5, first_day + days - day)))


# ------------------------------------------------------------------------------------------ SQLite rows


class SqliteRows(Form):
    name = "sqlite-rows"
    without_rowid = True

    @property
    def path(self) -> Path:
        return self.work / f"{self.name}.db"

    def create(self) -> None:
        self.drop()
        con = sqlite3.connect(self.path)
        con.execute(f"PRAGMA journal_mode={self.journal}")
        con.executescript(
            """
            CREATE TABLE zones (zone_key INTEGER PRIMARY KEY, zone_id TEXT NOT NULL UNIQUE);
            CREATE TABLE clients (client_key INTEGER PRIMARY KEY, client_id TEXT NOT NULL UNIQUE);
            """
            + self.readings_ddl()
        )
        con.commit()
        con.close()

    def readings_ddl(self) -> str:
        cols = (
            "zone_key INTEGER NOT NULL, ts_ms INTEGER NOT NULL, client_key INTEGER NOT NULL, "
            "power_w REAL NOT NULL, cleaning_staff INTEGER"
        )
        if self.without_rowid:
            return f"CREATE TABLE readings ({cols}, PRIMARY KEY (zone_key, ts_ms)) WITHOUT ROWID;"
        return (
            f"CREATE TABLE readings ({cols});\n"
            "CREATE UNIQUE INDEX readings_key ON readings (zone_key, ts_ms);"
        )

    def open(self) -> None:
        self.con = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        for pragma in (f"journal_mode={self.journal}", "temp_store=MEMORY", "cache_size=-65536"):
            self.con.execute(f"PRAGMA {pragma}")
        self.dictionary_keys: tuple[np.ndarray, np.ndarray] | None = None

    def close(self) -> None:
        self.con.close()

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def size_mb(self) -> float:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")) / 1e6

    # -- SQL plumbing shared with the ADBC flavour
    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        cursor = self.con.execute(statement)
        return cursor.fetchall()

    def begin(self) -> None:
        self.sql("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.sql("COMMIT")

    def rollback(self) -> None:
        with contextlib.suppress(Exception):
            self.sql("ROLLBACK")

    def load(self, table: str, keys: tuple[np.ndarray, ...], batch: Batch, with_day: bool) -> None:
        zone_key, client_key = keys
        columns = [zone_key, batch.ts, client_key, batch.power, batch.cleaning]
        if with_day:
            columns.append(batch.day())
        rows = zip(*(c.tolist() for c in columns), strict=True)
        marks = ",".join("?" * len(columns))
        self.con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    def keys(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Dictionary keys of the batch's zone and client ids (missing ids are added)."""
        if self.dictionary_keys is None:
            found = []
            for table, key, ident, ids in (
                ("zones", "zone_key", "zone_id", ZONE_IDS),
                ("clients", "client_key", "client_id", CLIENT_IDS),
            ):
                known = dict((i, k) for k, i in self.sql(f"SELECT {key}, {ident} FROM {table}"))
                missing = [i for i in ids if i not in known]
                if missing:
                    values = ",".join(f"('{i}')" for i in missing)
                    self.sql(f"INSERT INTO {table} ({ident}) VALUES {values} ON CONFLICT DO NOTHING")
                    known = dict((i, k) for k, i in self.sql(f"SELECT {key}, {ident} FROM {table}"))
                found.append(np.array([known[i] for i in ids], dtype=np.int64))
            self.dictionary_keys = (found[0], found[1])
        zone_map, client_map = self.dictionary_keys
        return zone_map[batch.zone], client_map[batch.client]

    def differ(self) -> str:
        return (
            "(r.power_w IS NOT s.power_w OR r.client_key IS NOT s.client_key "
            "OR r.cleaning_staff IS NOT s.cleaning_staff)"
        )

    def ts_sql(self, ms: int) -> str:
        return str(ms)

    ts_col = "ts_ms"

    def make_temp(self) -> None:
        self.sql("DROP TABLE IF EXISTS temp.stage")
        self.sql(
            "CREATE TEMP TABLE stage (zone_key INTEGER, ts_ms INTEGER, client_key INTEGER, "
            "power_w REAL, cleaning_staff INTEGER, day INTEGER)"
        )

    def make_probe(self, rows: list[tuple[int, int, int, int]]) -> None:
        self.sql("DROP TABLE IF EXISTS temp.probe")
        self.sql("CREATE TEMP TABLE probe (zone_key INTEGER, day INTEGER, lo INTEGER, hi INTEGER)")
        self.con.executemany("INSERT INTO temp.probe VALUES (?,?,?,?)", rows)

    def ingest(self, batch: Batch) -> Ingested:
        """Fast path when the store holds nothing in the batch's (zone, day) ranges; else stage + join."""
        timer = Timer()
        out = Ingested()
        self.begin()
        try:
            zone_key, client_key = self.keys(batch)
            groups, starts, ends = zone_day_groups(batch)
            ts = batch.ts
            probe = list(
                zip(
                    zone_key[starts].tolist(),
                    groups[:, 1].tolist(),
                    ts[starts].tolist(),
                    ts[ends - 1].tolist(),
                    strict=True,
                )
            )
            self.make_probe(probe)
            tc = self.ts_col
            overlapping = self.sql(
                "SELECT count(*) FROM temp.probe p WHERE EXISTS (SELECT 1 FROM readings r "
                f"WHERE r.zone_key = p.zone_key AND r.{tc} BETWEEN {self.probe_bounds()})"
            )[0][0]
            timer.mark("probe")
            if not overlapping:
                out.path = "append"
                self.load("readings", (zone_key, client_key), batch, with_day=False)
                timer.mark("load")
                out.new, out.touched = len(batch), len(groups)
            elif ROWS_MATCH == "numpy":
                out.path = "read+match"
                keyed = Batch(zone_key, ts, client_key, batch.power, batch.cleaning)
                self.match_in_numpy(keyed, batch, out, timer)
            else:
                out.path = "stage+join"
                self.make_temp()
                self.load("temp.stage", (zone_key, client_key), batch, with_day=True)
                self.after_stage()
                timer.mark("stage")
                lo, hi = self.ts_sql(int(ts.min())), self.ts_sql(int(ts.max()))
                join = (
                    f"FROM temp.stage s LEFT JOIN readings r ON r.zone_key = s.zone_key AND r.{tc} = s.ts_ms "
                    f"AND r.{tc} BETWEEN {lo} AND {hi}"
                )
                per_group = self.sql(
                    f"SELECT s.zone_key, s.day, count(*), count(r.{tc}), "
                    f"sum(CASE WHEN r.{tc} IS NOT NULL AND {self.differ()} THEN 1 ELSE 0 END) "
                    f"{join} GROUP BY s.zone_key, s.day"
                )
                timer.mark("classify")
                n = sum(g[2] for g in per_group)
                matched = sum(g[3] for g in per_group)
                out.corrected = sum(g[4] or 0 for g in per_group)
                out.new = n - matched
                out.duplicate = matched - out.corrected
                out.touched = sum(1 for g in per_group if g[2] > g[3] or (g[4] or 0) > 0)
                inner = join.replace("LEFT JOIN", "JOIN")
                if out.corrected:
                    out.audit = self.sql(
                        f"SELECT s.zone_key, s.ts_ms, r.client_key, r.power_w, r.cleaning_staff, "
                        f"s.client_key, s.power_w, s.cleaning_staff {inner} WHERE {self.differ()}"
                    )
                    self.apply_corrections(lo, hi)
                    timer.mark("correct")
                if out.new:
                    self.insert_new()
                    timer.mark("insert")
            self.commit()
            timer.mark("commit")
        except BaseException:
            self.rollback()
            raise
        out.seconds = timer.marks
        return out

    def probe_bounds(self) -> str:
        return "p.lo AND p.hi"

    def after_stage(self) -> None:
        pass

    def match_in_numpy(self, keyed: Batch, batch: Batch, out: Ingested, timer: Timer) -> None:
        """Read the stored rows in the batch's (zone, day) ranges, match them in NumPy, write what changed."""
        old = self.read_ranges()
        timer.mark("read")
        _, is_new, c_old, c_new = merge_rows(
            old, old.zone.astype(np.int64), keyed, keyed.zone.astype(np.int64)
        )
        out.new, out.corrected = int(is_new.sum()), len(c_new)
        out.duplicate = len(keyed) - out.new - out.corrected
        out.audit = list(
            zip(
                keyed.zone[c_new].tolist(),
                keyed.ts[c_new].tolist(),
                old.client[c_old].tolist(),
                old.power[c_old].tolist(),
                old.cleaning[c_old].tolist(),
                keyed.client[c_new].tolist(),
                keyed.power[c_new].tolist(),
                keyed.cleaning[c_new].tolist(),
                strict=True,
            )
        )
        written = is_new.copy()
        written[c_new] = True
        zone_day = keyed.zone[written].astype(np.int64) * 100_000 + keyed.day()[written]
        out.touched = len(np.unique(zone_day))
        timer.mark("match")
        if out.new:
            new = np.flatnonzero(is_new)
            self.load("readings", (keyed.zone[new], keyed.client[new]), batch.take(new), with_day=False)
            timer.mark("insert")
        if out.corrected:
            self.update_rows(keyed.take(c_new))
            timer.mark("correct")

    def read_ranges(self) -> Batch:
        rows = self.sql(
            "SELECT r.zone_key, r.ts_ms, r.client_key, r.power_w, coalesce(r.cleaning_staff, -1) "
            "FROM temp.probe p JOIN readings r ON r.zone_key = p.zone_key AND r.ts_ms BETWEEN p.lo AND p.hi"
        )
        if not rows:
            return Batch(*(np.empty(0, t) for t in (np.int64, np.int64, np.int64, np.float64, np.int64)))
        return Batch(*to_arrays(rows, 5))

    def update_rows(self, fixed: Batch) -> None:
        rows = zip(
            fixed.client.tolist(),
            fixed.power.tolist(),
            fixed.cleaning.tolist(),
            fixed.zone.tolist(),
            fixed.ts.tolist(),
            strict=True,
        )
        self.con.executemany(
            "UPDATE readings SET client_key = ?, power_w = ?, cleaning_staff = ? "
            "WHERE zone_key = ? AND ts_ms = ?",
            rows,
        )

    def apply_corrections(self, lo: str, hi: str) -> None:
        self.sql(
            "UPDATE readings AS r SET client_key = s.client_key, power_w = s.power_w, "
            "cleaning_staff = s.cleaning_staff FROM temp.stage s "
            f"WHERE r.zone_key = s.zone_key AND r.ts_ms = s.ts_ms AND {self.differ()}"
        )

    def insert_new(self) -> None:
        self.sql(
            "INSERT INTO readings SELECT zone_key, ts_ms, client_key, power_w, cleaning_staff "
            "FROM temp.stage WHERE true ON CONFLICT DO NOTHING"
        )

    def read_zone_day(self, zone: int, day: int) -> int:
        lo = (T0_DAY + day) * DAY_MS
        rows = self.con.execute(
            "SELECT ts_ms, client_key, power_w, cleaning_staff FROM readings "
            "WHERE zone_key = ? AND ts_ms >= ? AND ts_ms < ?",
            (zone + 1, lo, lo + DAY_MS),
        ).fetchall()
        arrays = to_arrays(rows, 4)
        return len(arrays[0])

    def read_client(self, client: int, first_day: int, last_day: int) -> int:
        zones = ",".join(str(z + 1) for z in range(ZONES) if z // (ZONES // CLIENTS) == client)
        lo, hi = (T0_DAY + first_day) * DAY_MS, (T0_DAY + last_day + 1) * DAY_MS
        rows = self.con.execute(
            "SELECT zone_key, ts_ms, client_key, power_w, cleaning_staff FROM readings "
            f"WHERE zone_key IN ({zones}) AND ts_ms >= ? AND ts_ms < ? ORDER BY zone_key, ts_ms",
            (lo, hi),
        ).fetchall()
        arrays = to_arrays(rows, 5)
        return len(arrays[0])

    def count(self) -> int:
        return self.con.execute("SELECT count(*) FROM readings").fetchone()[0]

    def check(self) -> str:
        return self.con.execute("PRAGMA quick_check").fetchone()[0]


def to_arrays(rows: list[tuple[Any, ...]], width: int) -> list[np.ndarray]:
    if not rows:
        return [np.empty(0)] * width
    return [np.array(column) for column in zip(*rows, strict=True)]


class SqliteRowsRowid(SqliteRows):
    name = "sqlite-rows-rowid"
    without_rowid = False


class SqliteRowsAdbc(SqliteRows):
    """The same table, loaded with ADBC's Arrow bulk ingest; every statement goes through ADBC."""

    name = "sqlite-rows-adbc"
    needs = ("adbc_driver_sqlite", "pyarrow")

    def open(self) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        self.con = adbc.connect(str(self.path), autocommit=True)
        self.cursor = self.con.cursor()
        for pragma in (f"journal_mode={self.journal}", "temp_store=MEMORY", "cache_size=-65536"):
            self.sql(f"PRAGMA {pragma}")
        self.sql("PRAGMA busy_timeout=60000")
        self.dictionary_keys = None

    def close(self) -> None:
        self.cursor.close()
        self.con.close()

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        self.cursor.execute(statement)
        try:
            return self.cursor.fetchall()
        except Exception:  # a statement without a result set
            return []

    def make_temp(self) -> None:
        self.sql("DROP TABLE IF EXISTS temp.stage")

    def make_probe(self, rows: list[tuple[int, int, int, int]]) -> None:
        import pyarrow as pa

        self.sql("DROP TABLE IF EXISTS temp.probe")
        columns = list(zip(*rows, strict=True))
        table = pa.table(
            {
                n: pa.array(c, pa.int64())
                for n, c in zip(("zone_key", "day", "lo", "hi"), columns, strict=True)
            }
        )
        self.cursor.adbc_ingest("probe", table, mode="create", temporary=True)

    def load(self, table: str, keys: tuple[np.ndarray, ...], batch: Batch, with_day: bool) -> None:
        import pyarrow as pa

        zone_key, client_key = keys
        data = {
            "zone_key": zone_key,
            "ts_ms": batch.ts,
            "client_key": client_key.astype(np.int64),
            "power_w": batch.power,
            "cleaning_staff": batch.cleaning.astype(np.int64),
        }
        if with_day:
            data["day"] = batch.day().astype(np.int64)
        arrow = pa.table(data)
        if table == "temp.stage":
            self.cursor.adbc_ingest("stage", arrow, mode="create", temporary=True)
        else:
            self.cursor.adbc_ingest(table, arrow, mode="append")

    def read_ranges(self) -> Batch:
        self.cursor.execute(
            "SELECT r.zone_key, r.ts_ms, r.client_key, r.power_w, coalesce(r.cleaning_staff, -1) AS cleaning "
            "FROM temp.probe p JOIN readings r ON r.zone_key = p.zone_key AND r.ts_ms BETWEEN p.lo AND p.hi"
        )
        table = self.cursor.fetch_arrow_table()
        columns = [np.asarray(table.column(i).to_numpy(zero_copy_only=False)) for i in range(5)]
        if table.num_rows == 0:
            columns = [np.empty(0, t) for t in (np.int64, np.int64, np.int64, np.float64, np.int64)]
        return Batch(*columns)

    def update_rows(self, fixed: Batch) -> None:
        import pyarrow as pa

        self.sql("DROP TABLE IF EXISTS temp.fix")
        data = {
            "zone_key": fixed.zone.astype(np.int64),
            "ts_ms": fixed.ts,
            "client_key": fixed.client.astype(np.int64),
            "power_w": fixed.power,
            "cleaning_staff": fixed.cleaning.astype(np.int64),
        }
        self.cursor.adbc_ingest("fix", pa.table(data), mode="create", temporary=True)
        self.sql(
            "UPDATE readings AS r SET client_key = f.client_key, power_w = f.power_w, "
            "cleaning_staff = f.cleaning_staff FROM temp.fix f "
            "WHERE r.zone_key = f.zone_key AND r.ts_ms = f.ts_ms"
        )

    def read_zone_day(self, zone: int, day: int) -> int:
        lo = (T0_DAY + day) * DAY_MS
        self.cursor.execute(
            "SELECT ts_ms, client_key, power_w, cleaning_staff FROM readings "
            f"WHERE zone_key = {zone + 1} AND ts_ms >= {lo} AND ts_ms < {lo + DAY_MS}"
        )
        return self.cursor.fetch_arrow_table().num_rows

    def read_client(self, client: int, first_day: int, last_day: int) -> int:
        zones = ",".join(str(z + 1) for z in range(ZONES) if z // (ZONES // CLIENTS) == client)
        lo, hi = (T0_DAY + first_day) * DAY_MS, (T0_DAY + last_day + 1) * DAY_MS
        self.cursor.execute(
            "SELECT zone_key, ts_ms, client_key, power_w, cleaning_staff FROM readings "
            f"WHERE zone_key IN ({zones}) AND ts_ms >= {lo} AND ts_ms < {hi} ORDER BY zone_key, ts_ms"
        )
        return self.cursor.fetch_arrow_table().num_rows

    def count(self) -> int:
        return self.sql("SELECT count(*) FROM readings")[0][0]

    def check(self) -> str:
        return self.sql("PRAGMA quick_check")[0][0]


# ---------------------------------------------------------------------------------------- SQLite blocks


def pack(batch: Batch, starts: np.ndarray, ends: np.ndarray, days: np.ndarray) -> list[tuple[Any, ...]]:
    """One (n, ts, power, client, cleaning) tuple of little-endian byte strings per zone-day run."""
    offset = (batch.ts - days.repeat(ends - starts).astype(np.int64) * DAY_MS).astype("<i4")
    power = batch.power.astype("<f8", copy=False)
    client = batch.client.astype("<i2", copy=False)
    cleaning = batch.cleaning.astype("i1", copy=False)
    return [
        (
            int(e - s),
            offset[s:e].tobytes(),
            power[s:e].tobytes(),
            client[s:e].tobytes(),
            cleaning[s:e].tobytes(),
        )
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def unpack(blocks: list[tuple[Any, ...]]) -> tuple[Batch, np.ndarray]:
    """Blocks (zone_key, day, n, ts, power, client, cleaning) -> their readings and each one's block index."""
    n = np.array([b[2] for b in blocks], dtype=np.int64)
    day = np.array([b[1] for b in blocks], dtype=np.int64)
    zone = np.array([b[0] for b in blocks], dtype=np.int32)
    offset = np.frombuffer(b"".join(bytes(b[3]) for b in blocks), "<i4")
    block_index = np.repeat(np.arange(len(blocks)), n)
    batch = Batch(
        zone.repeat(n),
        offset.astype(np.int64) + day.repeat(n) * DAY_MS,
        np.frombuffer(b"".join(bytes(b[5]) for b in blocks), "<i2").astype(np.int16),
        np.frombuffer(b"".join(bytes(b[4]) for b in blocks), "<f8").astype(np.float64),
        np.frombuffer(b"".join(bytes(b[6]) for b in blocks), "i1").astype(np.int8),
    )
    return batch, block_index


class SqliteBlocks(SqliteRows):
    """One row per (zone, UTC day) holding that day's readings as arrays; merged in NumPy on ingest."""

    name = "sqlite-blocks"

    def readings_ddl(self) -> str:
        # a rowid table: SQLite advises against WITHOUT ROWID for rows larger than ~1/20 of a page
        return (
            "CREATE TABLE blocks (id INTEGER PRIMARY KEY, zone_key INTEGER NOT NULL, day INTEGER NOT NULL, "
            "n INTEGER NOT NULL, ts BLOB NOT NULL, power BLOB NOT NULL, client BLOB NOT NULL, "
            "cleaning BLOB NOT NULL, UNIQUE (zone_key, day));"
        )

    def put_blocks(self, rows: list[tuple[Any, ...]], update: bool) -> None:
        self.con.executemany(
            "INSERT INTO blocks (zone_key, day, n, ts, power, client, cleaning) VALUES (?,?,?,?,?,?,?)"
            + (
                " ON CONFLICT (zone_key, day) DO UPDATE SET n = excluded.n, ts = excluded.ts, "
                "power = excluded.power, client = excluded.client, cleaning = excluded.cleaning"
                if update
                else ""
            ),
            rows,
        )

    def get_blocks(self, pairs: list[tuple[int, int]]) -> list[tuple[Any, ...]]:
        self.sql("DROP TABLE IF EXISTS temp.want")
        self.sql("CREATE TEMP TABLE want (zone_key INTEGER, day INTEGER)")
        self.con.executemany("INSERT INTO temp.want VALUES (?, ?)", pairs)
        return self.sql(
            "SELECT b.zone_key, b.day, b.n, b.ts, b.power, b.client, b.cleaning "
            "FROM temp.want w JOIN blocks b ON b.zone_key = w.zone_key AND b.day = w.day"
        )

    def ingest(self, batch: Batch) -> Ingested:
        timer = Timer()
        out = Ingested()
        self.begin()
        try:
            zone_key, client_key = self.keys(batch)
            keyed = Batch(
                zone_key.astype(np.int32), batch.ts, client_key.astype(np.int16), batch.power, batch.cleaning
            )
            groups, starts, ends = zone_day_groups(keyed)
            pairs = list(zip(groups[:, 0].tolist(), groups[:, 1].tolist(), strict=True))
            stored = self.get_blocks(pairs)
            timer.mark("probe")
            if not stored:
                out.path = "append"
                packed = pack(keyed, starts, ends, groups[:, 1])
                timer.mark("pack")
                self.put_blocks([(*p, *b) for p, b in zip(pairs, packed, strict=True)], update=False)
                timer.mark("write")
                out.new, out.touched = len(batch), len(groups)
            else:
                out.path = "merge"
                self.merge_into(keyed, groups, starts, ends, stored, out, timer)
            self.commit()
            timer.mark("commit")
        except BaseException:
            self.rollback()
            raise
        out.seconds = timer.marks
        return out

    def merge_into(
        self,
        batch: Batch,
        groups: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        stored: list[tuple[Any, ...]],
        out: Ingested,
        timer: Timer,
    ) -> None:
        old, old_block = unpack(stored)
        # the new rows' group as an index into the stored blocks, or a fresh one past them
        where = {(b[0], b[1]): i for i, b in enumerate(stored)}
        group_of = np.array([where.get((int(z), int(d)), -1) for z, d in groups], dtype=np.int64)
        fresh = group_of < 0
        group_of[fresh] = len(stored) + np.arange(int(fresh.sum()))
        new_group = group_of.repeat(ends - starts)
        keep_old, is_new, c_old, c_new = merge_rows(old, old_block, batch, new_group)
        timer.mark("decode+match")
        out.new = int(is_new.sum())
        out.corrected = len(c_new)
        out.duplicate = len(batch) - out.new - out.corrected
        out.audit = list(
            zip(
                batch.zone[c_new].tolist(),
                batch.ts[c_new].tolist(),
                old.client[c_old].tolist(),
                old.power[c_old].tolist(),
                old.cleaning[c_old].tolist(),
                batch.client[c_new].tolist(),
                batch.power[c_new].tolist(),
                batch.cleaning[c_new].tolist(),
                strict=True,
            )
        )
        changed_groups = np.unique(new_group[is_new | np.isin(np.arange(len(batch)), c_new)])
        out.touched = len(changed_groups)
        if not len(changed_groups):
            return
        # rebuild the changed groups: surviving stored rows + new and corrected rows, sorted by time
        old_keep = keep_old & np.isin(old_block, changed_groups)
        add = np.isin(new_group, changed_groups) & (is_new | np.isin(np.arange(len(batch)), c_new))
        merged = concat(old.take(np.flatnonzero(old_keep)), batch.take(np.flatnonzero(add)))
        merged_group = np.concatenate((old_block[old_keep], new_group[add]))
        order = np.lexsort((merged.ts, merged_group))
        merged, merged_group = merged.take(order), merged_group[order]
        cut = np.flatnonzero(np.diff(merged_group) != 0) + 1
        m_starts = np.concatenate(([0], cut))
        m_ends = np.concatenate((cut, [len(merged)]))
        m_days = merged.ts[m_starts] // DAY_MS
        packed = pack(merged, m_starts, m_ends, m_days)
        rows = [
            (int(merged.zone[s]), int(d), *p)
            for s, d, p in zip(m_starts.tolist(), m_days.tolist(), packed, strict=True)
        ]
        timer.mark("pack")
        self.put_blocks(rows, update=True)
        timer.mark("write")

    def read_zone_day(self, zone: int, day: int) -> int:
        rows = self.sql(
            "SELECT zone_key, day, n, ts, power, client, cleaning FROM blocks "
            f"WHERE zone_key = {zone + 1} AND day = {T0_DAY + day}"
        )
        return len(unpack(rows)[0]) if rows else 0

    def read_client(self, client: int, first_day: int, last_day: int) -> int:
        zones = ",".join(str(z + 1) for z in range(ZONES) if z // (ZONES // CLIENTS) == client)
        rows = self.sql(
            "SELECT zone_key, day, n, ts, power, client, cleaning FROM blocks WHERE zone_key IN "
            f"({zones}) AND day BETWEEN {T0_DAY + first_day} AND {T0_DAY + last_day} ORDER BY zone_key, day"
        )
        return len(unpack(rows)[0]) if rows else 0

    def count(self) -> int:
        return self.sql("SELECT coalesce(sum(n), 0) FROM blocks")[0][0]


def concat(a: Batch, b: Batch) -> Batch:
    return Batch(
        *(
            np.concatenate((getattr(a, f), getattr(b, f)))
            for f in ("zone", "ts", "client", "power", "cleaning")
        )
    )


# -------------------------------------------------------------------------------------------- PostgreSQL


def copy_buffer(columns: list[tuple[str, np.ndarray]]) -> bytes:
    """A binary COPY stream of fixed-width, non-null columns, built by NumPy in one pass."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, (kind, _) in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"v{i}", kind)]
    rows = np.empty(len(columns[0][1]), np.dtype(fields))
    rows["count"] = len(columns)
    for i, (kind, values) in enumerate(columns):
        rows[f"len{i}"] = np.dtype(kind).itemsize
        rows[f"v{i}"] = values
    return b"PGCOPY\n\xff\r\n\x00" + b"\0" * 8 + rows.tobytes() + b"\xff\xff"


def parse_copy(data: bytes, kinds: list[str]) -> list[np.ndarray]:
    """Fixed-width, non-null rows of a binary COPY TO stream -> one array per column."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for i, kind in enumerate(kinds):
        fields += [(f"len{i}", ">i4"), (f"v{i}", kind)]
    rows = np.frombuffer(data[19:-2], np.dtype(fields))
    return [rows[f"v{i}"] for i in range(len(kinds))]


class PgRows(SqliteRows):
    """PostgreSQL: ``ts timestamptz`` (binary COPY sends µs since 2000: one subtraction in NumPy)."""

    name = "pg-rows"
    postgres = True
    needs = ("psycopg",)
    partitioned = False
    ts_col = "ts"

    def table(self) -> str:
        return f"{PG_SCHEMA}.readings"

    def ddl(self) -> list[str]:
        cols = (
            "zone_key integer NOT NULL, ts timestamptz NOT NULL, client_key smallint NOT NULL, "
            "power_w double precision NOT NULL, cleaning_staff boolean, PRIMARY KEY (zone_key, ts)"
        )
        if not self.partitioned:
            return [f"CREATE TABLE {self.table()} ({cols})"]
        out = [f"CREATE TABLE {self.table()} ({cols}) PARTITION BY RANGE (ts)"]
        month = dt.date(2024, 12, 1)
        for _ in range(26):
            following = (month + dt.timedelta(days=32)).replace(day=1)
            out.append(
                f"CREATE TABLE {self.table()}_{month:%Y_%m} PARTITION OF {self.table()} "
                f"FOR VALUES FROM ('{month}T00:00:00Z') TO ('{following}T00:00:00Z')"
            )
            month = following
        return out

    def create(self) -> None:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP TABLE IF EXISTS {self.table()} CASCADE")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
            for table, key, ident in (
                ("zones", "zone_key", "zone_id"),
                ("clients", "client_key", "client_id"),
            ):
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {PG_SCHEMA}.{table} "
                    f"({key} integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                    f"{ident} text NOT NULL UNIQUE)"
                )
            for statement in self.ddl():
                con.execute(statement)

    def drop(self) -> None:
        import psycopg

        with contextlib.suppress(psycopg.OperationalError), psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP TABLE IF EXISTS {self.table()} CASCADE")

    def open(self) -> None:
        import psycopg

        self.con = psycopg.connect(PG_DSN, autocommit=True)
        self.con.execute("SET jit = off")  # JIT compiles for ~0.1 s before big scans: pure cost here
        self.dictionary_keys = None

    def close(self) -> None:
        self.con.close()

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        statement = statement.replace(" readings", f" {self.table()}").replace("temp.", "pg_temp.")
        cursor = self.con.execute(statement)
        return cursor.fetchall() if cursor.description else []

    def begin(self) -> None:
        self.sql("BEGIN")
        self.sql(f"SELECT pg_advisory_xact_lock({STORE_LOCK_KEY})")  # as slem's every write transaction

    def keys(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        if self.dictionary_keys is None:
            found = []
            for table, key, ident, ids in (
                ("zones", "zone_key", "zone_id", ZONE_IDS),
                ("clients", "client_key", "client_id", CLIENT_IDS),
            ):
                values = ",".join(f"('{i}')" for i in ids)
                self.sql(f"INSERT INTO {PG_SCHEMA}.{table} ({ident}) VALUES {values} ON CONFLICT DO NOTHING")
                known = dict((i, k) for k, i in self.sql(f"SELECT {key}, {ident} FROM {PG_SCHEMA}.{table}"))
                found.append(np.array([known[i] for i in ids], dtype=np.int64))
            self.dictionary_keys = (found[0], found[1])
        zone_map, client_map = self.dictionary_keys
        return zone_map[batch.zone], client_map[batch.client]

    def differ(self) -> str:
        return (
            "((r.power_w, r.client_key, r.cleaning_staff) IS DISTINCT FROM "
            "(s.power_w, s.client_key, s.cleaning_staff))"
        )

    def ts_sql(self, ms: int) -> str:
        return f"'{dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()}'::timestamptz"

    def probe_bounds(self) -> str:
        return "p.lo AND p.hi"

    def make_temp(self) -> None:
        self.sql(
            "CREATE TEMP TABLE stage (zone_key integer, ts_ms timestamptz, client_key smallint, "
            "power_w double precision, cleaning_staff boolean, day integer) ON COMMIT DROP"
        )

    def make_probe(self, rows: list[tuple[int, int, int, int]]) -> None:
        self.sql(
            "CREATE TEMP TABLE probe (zone_key integer, day integer, lo timestamptz, hi timestamptz) "
            "ON COMMIT DROP"
        )
        columns = [np.array(c) for c in zip(*rows, strict=True)]
        buffer = copy_buffer(
            [
                (">i4", columns[0]),
                (">i4", columns[1]),
                (">i8", columns[2] * 1000 - PG_EPOCH_US),
                (">i8", columns[3] * 1000 - PG_EPOCH_US),
            ]
        )
        self.copy_in("probe", buffer)
        self.sql("ANALYZE probe")

    def copy_in(self, table: str, buffer: bytes) -> None:
        with self.con.cursor().copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
            view = memoryview(buffer)
            for i in range(0, len(view), 1 << 22):
                copy.write(view[i : i + (1 << 22)])

    def load(self, table: str, keys: tuple[np.ndarray, ...], batch: Batch, with_day: bool) -> None:
        zone_key, client_key = keys
        columns = [
            (">i4", zone_key),
            (">i8", batch.ts * 1000 - PG_EPOCH_US),
            (">i2", client_key),
            (">f8", batch.power),
            ("?", batch.cleaning),
        ]
        if with_day:
            columns.append((">i4", batch.day()))
        self.copy_in("stage" if table == "temp.stage" else self.table(), copy_buffer(columns))

    def after_stage(self) -> None:
        self.sql("ANALYZE stage")  # the planner's own join choice (a hash join over the whole table)

    def apply_corrections(self, lo: str, hi: str) -> None:
        self.sql(
            "UPDATE readings AS r SET client_key = s.client_key, power_w = s.power_w, "
            "cleaning_staff = s.cleaning_staff FROM stage s "
            f"WHERE r.zone_key = s.zone_key AND r.ts = s.ts_ms AND r.ts BETWEEN {lo} AND {hi} "
            f"AND {self.differ()}"
        )

    def insert_new(self) -> None:
        self.sql(
            "INSERT INTO readings SELECT zone_key, ts_ms, client_key, power_w, cleaning_staff "
            "FROM stage ON CONFLICT DO NOTHING"
        )

    def commit(self) -> None:
        self.sql("COMMIT")

    def read_ranges(self) -> Batch:
        zone, ts, client, power, cleaning = self.copy_out(
            # LATERAL ... OFFSET 0: one index range scan per (zone, day); a plain join (or a LATERAL the
            # planner flattens into one) is planned as a hash join over a full scan of the table
            "SELECT r.zone_key, r.ts, r.client_key, r.power_w, coalesce(r.cleaning_staff::int, -1)::int2 "
            f"FROM pg_temp.probe p CROSS JOIN LATERAL (SELECT * FROM {self.table()} x "
            "WHERE x.zone_key = p.zone_key AND x.ts BETWEEN p.lo AND p.hi OFFSET 0) r",
            [">i4", ">i8", ">i2", ">f8", ">i2"],
        )
        return Batch(
            zone.astype(np.int64),
            (ts + PG_EPOCH_US) // 1000,
            client.astype(np.int64),
            power.astype(np.float64),
            cleaning.astype(np.int64),
        )

    def update_rows(self, fixed: Batch) -> None:
        self.sql(
            "CREATE TEMP TABLE fix (zone_key integer, ts timestamptz, client_key smallint, "
            "power_w double precision, cleaning_staff boolean) ON COMMIT DROP"
        )
        buffer = copy_buffer(
            [
                (">i4", fixed.zone),
                (">i8", fixed.ts * 1000 - PG_EPOCH_US),
                (">i2", fixed.client),
                (">f8", fixed.power),
                ("?", fixed.cleaning),
            ]
        )
        self.copy_in("fix", buffer)
        self.sql(
            "UPDATE readings AS r SET client_key = f.client_key, power_w = f.power_w, "
            "cleaning_staff = f.cleaning_staff FROM fix f WHERE r.zone_key = f.zone_key AND r.ts = f.ts"
        )

    def copy_out(self, query: str, kinds: list[str]) -> list[np.ndarray]:
        with self.con.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        return parse_copy(data, kinds)

    def read_zone_day(self, zone: int, day: int) -> int:
        lo = (T0_DAY + day) * DAY_MS
        arrays = self.copy_out(
            "SELECT ts, client_key, power_w, coalesce(cleaning_staff::int, -1)::int2 FROM "
            f"{self.table()} WHERE zone_key = {zone + 1} "
            f"AND ts >= {self.ts_sql(lo)} AND ts < {self.ts_sql(lo + DAY_MS)}",
            [">i8", ">i2", ">f8", ">i2"],
        )
        ts_ms = (arrays[0] + PG_EPOCH_US) // 1000
        return len(ts_ms)

    def read_client(self, client: int, first_day: int, last_day: int) -> int:
        zones = ",".join(str(z + 1) for z in range(ZONES) if z // (ZONES // CLIENTS) == client)
        lo, hi = (T0_DAY + first_day) * DAY_MS, (T0_DAY + last_day + 1) * DAY_MS
        arrays = self.copy_out(
            "SELECT zone_key, ts, client_key, power_w, coalesce(cleaning_staff::int, -1)::int2 FROM "
            f"{self.table()} WHERE zone_key IN ({zones}) "
            f"AND ts >= {self.ts_sql(lo)} AND ts < {self.ts_sql(hi)} "
            "ORDER BY zone_key, ts",
            [">i4", ">i8", ">i2", ">f8", ">i2"],
        )
        return len(arrays[0])

    def count(self) -> int:
        return self.sql(f"SELECT count(*) FROM {self.table()}")[0][0]

    def size_mb(self) -> float:
        size = self.sql(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{PG_SCHEMA}' "
            f"AND c.relname LIKE '{self.table().split('.')[1]}%' AND c.relkind IN ('r', 'p')"
        )[0][0]
        return float(size) / 1e6

    def check(self) -> str:
        return "ok"

    def build(self, first_day: int, days: int) -> None:
        """Bulk build: COPY straight into the table, then VACUUM ANALYZE (as a store in use would be)."""
        self.keys(make_batch(0, 1, 60))
        for day in range(first_day, first_day + days, 5):
            batch = make_batch(day, min(5, first_day + days - day))
            self.load(self.table(), self.keys(batch), batch, with_day=False)
        self.sql(f"VACUUM ANALYZE {self.table()}")


class PgRowsPartitioned(PgRows):
    name = "pg-rows-part"
    partitioned = True

    def table(self) -> str:
        return f"{PG_SCHEMA}.readings_part"


class PgBlocks(PgRows):
    """PostgreSQL zone-day blocks; ``bytea`` stored uncompressed out of line (STORAGE EXTERNAL)."""

    name = "pg-blocks"

    def table(self) -> str:
        return f"{PG_SCHEMA}.blocks"

    def ddl(self) -> list[str]:
        out = [
            f"CREATE TABLE {self.table()} (zone_key integer NOT NULL, day integer NOT NULL, "
            "n integer NOT NULL, "
            "ts bytea NOT NULL, power bytea NOT NULL, client bytea NOT NULL, cleaning bytea NOT NULL, "
            "PRIMARY KEY (zone_key, day))"
        ]
        out += [
            f"ALTER TABLE {self.table()} ALTER COLUMN {c} SET STORAGE EXTERNAL"
            for c in ("ts", "power", "client", "cleaning")
        ]
        return out

    def put_blocks(self, rows: list[tuple[Any, ...]], update: bool) -> None:
        parts = [b"PGCOPY\n\xff\r\n\x00" + b"\0" * 8]
        head = struct.Struct(">hiiiiii")
        for zone_key, day, n, ts, power, client, cleaning in rows:
            parts.append(head.pack(7, 4, zone_key, 4, day, 4, n))
            for blob in (ts, power, client, cleaning):
                parts.append(struct.pack(">i", len(blob)))
                parts.append(blob)
        parts.append(b"\xff\xff")
        buffer = b"".join(parts)
        if not update:
            self.copy_in(self.table(), buffer)
            return
        self.sql(f"CREATE TEMP TABLE bstage (LIKE {self.table()}) ON COMMIT DROP")
        self.copy_in("bstage", buffer)
        self.sql(
            f"INSERT INTO {self.table()} SELECT * FROM bstage ON CONFLICT (zone_key, day) DO UPDATE SET "
            "n = excluded.n, ts = excluded.ts, power = excluded.power, client = excluded.client, "
            "cleaning = excluded.cleaning"
        )

    def get_blocks(self, pairs: list[tuple[int, int]]) -> list[tuple[Any, ...]]:
        zones = np.array([p[0] for p in pairs])
        days = np.array([p[1] for p in pairs])
        cursor = self.con.cursor(binary=True)
        cursor.execute(
            f"SELECT b.zone_key, b.day, b.n, b.ts, b.power, b.client, b.cleaning FROM {self.table()} b "
            "JOIN unnest(%s::int[], %s::int[]) AS w(zone_key, day) "
            "ON b.zone_key = w.zone_key AND b.day = w.day",
            (zones.tolist(), days.tolist()),
        )
        return cursor.fetchall()

    ingest = SqliteBlocks.ingest
    merge_into = SqliteBlocks.merge_into

    def fetch_blocks(self, where: str) -> list[tuple[Any, ...]]:
        cursor = self.con.cursor(binary=True)
        cursor.execute(
            f"SELECT zone_key, day, n, ts, power, client, cleaning FROM {self.table()} WHERE {where}"
        )
        return cursor.fetchall()

    def read_zone_day(self, zone: int, day: int) -> int:
        rows = self.fetch_blocks(f"zone_key = {zone + 1} AND day = {T0_DAY + day}")
        return len(unpack(rows)[0]) if rows else 0

    def read_client(self, client: int, first_day: int, last_day: int) -> int:
        zones = ",".join(str(z + 1) for z in range(ZONES) if z // (ZONES // CLIENTS) == client)
        rows = self.fetch_blocks(
            f"zone_key IN ({zones}) AND day BETWEEN {T0_DAY + first_day} AND {T0_DAY + last_day} "
            "ORDER BY zone_key, day"
        )
        return len(unpack(rows)[0]) if rows else 0

    def count(self) -> int:
        return self.sql(f"SELECT coalesce(sum(n), 0) FROM {self.table()}")[0][0]

    def build(self, first_day: int, days: int) -> None:
        Form.build(self, first_day, days)
        self.sql(f"VACUUM ANALYZE {self.table()}")


# -------------------------------------------------------------------------------------------- Delta Lake


class Delta(Form):
    """Delta Lake partitioned by UTC day; stored rows matched in NumPy, corrections written by ``merge``."""

    name = "delta"
    needs = ("deltalake", "pyarrow")

    @property
    def path(self) -> Path:
        return self.work / "delta"

    def create(self) -> None:
        self.drop()

    def drop(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def open(self) -> None:
        self.table_: Any = None

    def close(self) -> None:
        self.table_ = None

    def dt(self) -> Any:
        from deltalake import DeltaTable

        if self.table_ is None:
            if not (self.path / "_delta_log").exists():
                return None
            self.table_ = DeltaTable(str(self.path))
        else:
            self.table_.update_incremental()
        return self.table_

    def arrow(self, batch: Batch) -> Any:
        import pyarrow as pa

        return pa.table(
            {
                "zone_key": batch.zone.astype(np.int32) + 1,
                "ts_ms": batch.ts,
                "client_key": batch.client.astype(np.int16) + 1,
                "power_w": batch.power,
                "cleaning_staff": batch.cleaning,
                "day": batch.day(),
            }
        )

    def stored(self, days: list[int], zones: list[int], ts: tuple[int, int] | None = None) -> Any:
        import pyarrow.compute as pc

        table = self.dt()
        if table is None:
            return None
        condition = pc.field("day").isin(days) & pc.field("zone_key").isin(zones)
        if ts is not None:
            condition = condition & (pc.field("ts_ms") >= ts[0]) & (pc.field("ts_ms") <= ts[1])
        return table.to_pyarrow_dataset().to_table(filter=condition)

    def ingest(self, batch: Batch) -> Ingested:
        from deltalake import write_deltalake

        timer = Timer()
        out = Ingested()
        groups, _, _ = zone_day_groups(batch)
        days = sorted(set(groups[:, 1].tolist()))
        have = self.stored(
            days, sorted({int(z) + 1 for z in groups[:, 0]}), (int(batch.ts.min()), int(batch.ts.max()))
        )
        timer.mark("probe")
        if have is None or have.num_rows == 0:
            write = np.arange(len(batch))
            out.new = len(batch)
        else:
            old = Batch(
                have["zone_key"].to_numpy() - 1,
                have["ts_ms"].to_numpy(),
                have["client_key"].to_numpy() - 1,
                have["power_w"].to_numpy(),
                have["cleaning_staff"].to_numpy(),
            )
            zone_old, zone_new = old.zone.astype(np.int64), batch.zone.astype(np.int64)
            _, is_new, c_old, c_new = merge_rows(old, zone_old, batch, zone_new)
            out.new, out.corrected = int(is_new.sum()), len(c_new)
            out.audit = list(
                zip(
                    batch.zone[c_new].tolist(),
                    batch.ts[c_new].tolist(),
                    old.power[c_old].tolist(),
                    strict=True,
                )
            )
            write = np.flatnonzero(is_new | np.isin(np.arange(len(batch)), c_new))
            timer.mark("match")
        out.duplicate = len(batch) - out.new - out.corrected
        out.touched = len(np.unique(batch.zone[write].astype(np.int64) * 100000 + batch.day()[write]))
        if not out.corrected and out.new:
            out.path = "append"
            write_deltalake(
                str(self.path), self.arrow(batch.take(write)), mode="append", partition_by=["day"]
            )
            timer.mark("write")
        elif out.corrected:
            from deltalake.exceptions import CommitFailedError

            out.path = "merge"
            for attempt in range(5):  # optimistic concurrency: a conflicting commit is redone
                try:
                    (
                        self.dt()
                        .merge(
                            self.arrow(batch.take(write)),
                            # the literal day list lets delta-rs skip the other partitions' files
                            predicate=f"t.day IN ({','.join(map(str, days))}) AND t.day = s.day "
                            "AND t.zone_key = s.zone_key AND t.ts_ms = s.ts_ms",
                            source_alias="s",
                            target_alias="t",
                        )
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .execute()
                    )
                    break
                except CommitFailedError:
                    if attempt == 4:
                        raise
                    out.retries += 1
            timer.mark("merge")
        out.seconds = timer.marks
        return out

    def read_zone_day(self, zone: int, day: int) -> int:
        import pyarrow.compute as pc

        dataset = self.dt().to_pyarrow_dataset()
        table = dataset.to_table(
            filter=(pc.field("day") == T0_DAY + day) & (pc.field("zone_key") == zone + 1)
        )
        return table.num_rows

    def read_client(self, client: int, first_day: int, last_day: int) -> int:
        zones = [z + 1 for z in range(ZONES) if z // (ZONES // CLIENTS) == client]
        days = list(range(T0_DAY + first_day, T0_DAY + last_day + 1))
        return self.stored(days, zones).num_rows

    def count(self) -> int:
        table = self.dt()
        return 0 if table is None else table.to_pyarrow_dataset().count_rows()

    def size_mb(self) -> float:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file()) / 1e6

    def files(self) -> int:
        table = self.dt()
        return 0 if table is None else len(table.file_uris())

    def check(self) -> str:
        return f"{self.files()} files, version {self.dt().version()}"

    def build(self, first_day: int, days: int) -> None:
        from deltalake import write_deltalake

        for day in range(first_day, first_day + days, 5):
            batch = make_batch(day, min(5, first_day + days - day))
            write_deltalake(str(self.path), self.arrow(batch), mode="append", partition_by=["day"])


FORMS: dict[str, type[Form]] = {
    cls.name: cls
    for cls in (
        SqliteRows,
        SqliteRowsRowid,
        SqliteRowsAdbc,
        SqliteBlocks,
        PgRows,
        PgRowsPartitioned,
        PgBlocks,
        Delta,
    )
}


# ------------------------------------------------------------------------------------------ measurements


def timed_ingest(form: Form, batch: Batch) -> tuple[float, Ingested]:
    start = time.perf_counter()
    result = form.ingest(batch)
    return time.perf_counter() - start, result


def phase_first_upload(form: Form, repeat: int) -> dict[str, Any]:
    """(a) 1,008,000 readings (500 zones x 7 days at 5 min) into an empty store; (b0) one day likewise."""
    week = make_batch(0, 7, step_min=5)
    day = make_batch(0, 1)
    form.create()  # warm-up: imports and first-use costs stay out of the timings
    form.open()
    form.ingest(make_batch(0, 1, 60))
    form.close()
    out: dict[str, Any] = {"rss_before_mb": rss_mb()}
    for label, batch in (("first_1m", week), ("day_empty", day)):
        walls, details = [], []
        for _ in range(repeat):
            form.create()
            form.open()
            wall, result = timed_ingest(form, batch)
            assert result.new == len(batch), (label, result)
            assert form.count() == len(batch)
            walls.append(wall)
            details.append(result.seconds)
            form.close()
        out[label] = {"rows": len(batch), "walls": walls, "seconds": details[len(details) // 2]}
    out["rss_peak_mb"] = rss_mb()
    return out


def phase_store(form: Form, sizes: list[int], repeat: int) -> dict[str, Any]:
    """(b) a new day into stores of ``sizes`` days, (c) duplicates and corrections, (d) reads."""
    out: dict[str, Any] = {"sizes": {}}
    form.create()
    form.open()
    present = late_rows = 0
    for size in sizes:
        start = time.perf_counter()
        form.build(present, size - present)
        build_s = time.perf_counter() - start
        stored = form.count()
        assert stored == size * 1440 * ZONES + late_rows, (stored, size)
        row: dict[str, Any] = {"stored": stored, "build_s": build_s, "size_mb": form.size_mb()}
        walls, seconds = [], []
        for rep in range(repeat):  # (b) new days size, size+1, ...
            wall, result = timed_ingest(form, make_batch(size + rep, 1))
            assert result.new == ZONES * 1440 and result.duplicate == 0, result
            walls.append(wall)
            seconds.append(result.seconds)
        row["new_day"] = {"walls": walls, "seconds": seconds[len(seconds) // 2]}
        last = make_batch(size + repeat - 1, 1)
        walls, seconds = [], []
        for _ in range(repeat):  # (c) the same day again: all duplicates
            wall, result = timed_ingest(form, last)
            assert result.duplicate == len(last) and result.new == 0 and result.corrected == 0, result
            walls.append(wall)
            seconds.append(result.seconds)
        row["duplicates"] = {"walls": walls, "seconds": seconds[len(seconds) // 2]}
        walls, seconds, audits = [], [], []
        for rep in range(repeat):  # (c) 1 % of the day changed: corrections with old values
            wall, result = timed_ingest(form, changed(last, 0.01, rep))
            assert result.corrected == len(last) // 100 and result.new == 0, result
            assert len(result.audit) == result.corrected
            walls.append(wall)
            seconds.append(result.seconds)
            audits.append(result.touched)
        row["corrections"] = {"walls": walls, "seconds": seconds[len(seconds) // 2], "touched": audits[0]}
        walls, seconds = [], []
        for rep in range(repeat):  # a live batch arriving late: one new reading per zone into a full day
            late = live_batch(size + repeat - 1, 600 + rep)
            late.ts += 30_000  # half a minute after a stored reading: a new key inside a full block
            wall, result = timed_ingest(form, late)
            assert result.new == ZONES and result.duplicate == 0, result
            walls.append(wall)
            seconds.append(result.seconds)
        row["late"] = {"walls": walls, "seconds": seconds[len(seconds) // 2]}
        present = size + repeat
        late_rows += repeat * ZONES
        assert form.count() == present * 1440 * ZONES + late_rows
        rng = random.Random(size)
        zone_walls = []
        for _ in range(30):  # (d) zone-days
            zone, day = rng.randrange(ZONES), rng.randrange(present)
            start = time.perf_counter()
            assert 1440 <= form.read_zone_day(zone, day) <= 1440 + repeat, (zone, day)  # + late readings
            zone_walls.append(time.perf_counter() - start)
        month = min(present, 31)
        client_walls = []
        for rep in range(repeat):
            start = time.perf_counter()
            rows = form.read_client(rep % CLIENTS, present - month, present - 1)
            client_walls.append(time.perf_counter() - start)
            assert 0 <= rows - month * 1440 * ZONES // CLIENTS <= late_rows // CLIENTS, rows
        row["zone_day"] = {"median": statistics.median(zone_walls), "max": max(zone_walls)}
        row["client_month"] = {"walls": client_walls, "rows": month * 1440 * ZONES // CLIENTS, "days": month}
        row["rss_mb"] = rss_mb()
        out["sizes"][str(size)] = row
        print(
            f"    {form.name}: store of {size} days done ({build_s:.0f} s to build)",
            file=sys.stderr,
            flush=True,
        )
    out["present_days"] = present
    form.close()
    return out


# --------------------------------------------------------------------------------------------- concurrency


def _worker(
    role: str, form_name: str, work: str, journal: str, plan: dict[str, Any], queue: Any, stop: Any
) -> None:
    form = FORMS[form_name](Path(work), journal)
    form.open()
    latencies: list[float] = []
    errors: list[str] = []
    retries = 0
    started = time.perf_counter()
    try:
        if role == "uploader":
            first = plan["first_day"]
            for step, batch in enumerate(
                (make_batch(first, 1), make_batch(first + 1, 1), changed(make_batch(first, 1), 0.01, 0))
            ):
                t0 = time.perf_counter()
                try:
                    result = form.ingest(batch)
                    latencies.append(time.perf_counter() - t0)
                    retries += result.retries
                    if step == 2 and result.corrected != len(batch) // 100:
                        errors.append(f"corrections {result.corrected}")
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
        elif role == "live":
            minute = 0
            while not stop.is_set() and minute < 1440:
                t0 = time.perf_counter()
                try:
                    form.ingest(live_batch(plan["live_day"], minute))
                    latencies.append(time.perf_counter() - t0)
                    minute += 1
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                time.sleep(0.1)
            queue.put(("live_minutes", minute))
        else:
            rng = random.Random(1)
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    n = form.read_zone_day(rng.randrange(ZONES), rng.randrange(plan["read_days"]))
                    latencies.append(time.perf_counter() - t0)
                    if not 1440 <= n <= 1450:
                        errors.append(f"read {n} rows")
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                time.sleep(0.02)
    finally:
        form.close()
    queue.put((role, latencies, errors[:5], len(errors), time.perf_counter() - started, retries))


def phase_concurrency(form: Form, present: int, journal: str, run: int) -> dict[str, Any]:
    """(e) an uploader (two new days, then 1 % corrections), a live writer and a reader, each a process."""
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    plan = {"first_day": present + 10 * run, "live_day": present + 10 * run + 5, "read_days": present}
    if isinstance(form, SqliteRows) and not isinstance(form, PgRows):
        con = sqlite3.connect(form.path)
        con.execute(f"PRAGMA journal_mode={journal}")
        con.close()
    before = form_count(form, journal)
    args = (form.name, str(form.work), journal, plan, queue, stop)
    procs = {r: ctx.Process(target=_worker, args=(r, *args)) for r in ("reader", "live", "uploader")}
    procs["reader"].start()
    procs["live"].start()
    time.sleep(2.0)
    procs["uploader"].start()
    procs["uploader"].join()
    time.sleep(1.0)
    stop.set()
    results: dict[str, Any] = {}
    live_minutes = 0
    while len(results) < 3:
        item = queue.get(timeout=120)
        if item[0] == "live_minutes":
            live_minutes = item[1]
            continue
        role, latencies, errors, n_errors, wall, retries = item
        results[role] = {
            "n": len(latencies),
            "median_ms": 1000 * statistics.median(latencies) if latencies else None,
            "max_ms": 1000 * max(latencies) if latencies else None,
            "walls": latencies if role == "uploader" else None,
            "errors": n_errors,
            "first_errors": errors,
            "wall_s": wall,
            "retries": retries,
        }
    for proc in procs.values():
        proc.join()
    after = form_count(form, journal)
    expected = before + 2 * 1440 * ZONES + live_minutes * ZONES
    form.open()
    check = form.check()
    form.close()
    return {
        "journal": journal if not form.postgres else "mvcc",
        "roles": results,
        "count_ok": after == expected,
        "rows_before": before,
        "rows_after": after,
        "expected": expected,
        "check": check,
    }


def form_count(form: Form, journal: str) -> int:
    form.open()
    try:
        return form.count()
    finally:
        form.close()


# ---------------------------------------------------------------------------------------- child / parent


def child(form_name: str, phase: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    form = FORMS[form_name](work, "wal")
    if phase == "first":
        return phase_first_upload(form, args.repeat)
    out = phase_store(form, args.sizes, args.repeat)
    if not args.no_concurrency:
        journals = ["wal", "delete"] if form_name == args.journal_compare else ["wal"]
        if form.postgres or isinstance(form, Delta):
            journals = ["mvcc"]
        out["concurrency"] = [
            phase_concurrency(FORMS[form_name](work, j), out["present_days"], j, run)
            for run, j in enumerate(journals)
        ]
    form.drop()
    out["rss_peak_mb"] = rss_mb()
    return out


def run_child(form_name: str, phase: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", form_name, phase, "--work", args.work]
    cmd += [
        "--repeat",
        str(args.repeat),
        "--sizes",
        *map(str, args.sizes),
        "--journal-compare",
        args.journal_compare,
    ]
    if args.no_concurrency:
        cmd.append("--no-concurrency")
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr[-3000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["phase_s"] = time.perf_counter() - start
    return result


def slem_baseline(work: Path, repeat: int) -> dict[str, Any]:
    """Today's ``slem score`` on the same sizes (CSV from ``slem generate``), for the 1.3x / 1.5x targets."""
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        return {"skipped": f"no {python}"}
    template = work / "template.db"
    setup = f"from slem_ml.storage import open_database; open_database('sqlite:///{template}').dispose()"
    subprocess.run([str(python), "-c", setup], check=True, cwd=REPO)
    contracts = subprocess.run(
        [str(python), "-c", "from slem_ml.config import SAMPLE_CONTRACTS; print(SAMPLE_CONTRACTS)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    out: dict[str, Any] = {}
    for label, days, step in (("week_5min", 7, 5), ("day_1min", 1, 1)):
        data = work / f"{label}.csv"
        gen = [str(python), "-m", "slem_ml", "generate", "--out", str(data), "--zones", str(ZONES)]
        gen += ["--days", str(days), "--step-minutes", str(step), "--seed", "1", "--start", "2025-01-06"]
        subprocess.run(gen, check=True, capture_output=True, cwd=REPO)
        walls = []
        for _ in range(repeat):
            db = work / "baseline.db"
            shutil.copyfile(template, db)
            cmd = [str(python), "-m", "slem_ml", "score", str(data), "--contracts", contracts]
            cmd += ["--out", str(work / "out"), "--db", f"sqlite:///{db}"]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
            walls.append(time.perf_counter() - start)
        rows = sum(1 for _ in data.open()) - 1
        out[label] = {"rows": rows, "walls": walls}
        data.unlink()
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    p = print
    p(
        f"\nmeasured {results['date']} on {results['machine']}; repeat {args.repeat}, "
        f"store sizes {args.sizes} days, "
        f"row forms match in {args.rows_match}\n"
    )
    base = results.get("baseline", {})
    if "week_5min" in base:
        p("slem score today (fresh process, SQLite store of the run):")
        for label, b in base.items():
            p(
                f"  {label}: {b['rows']:,} readings, median {med(b['walls']):.2f} s "
                f"{[round(w, 2) for w in b['walls']]}"
            )
        p()
    p("| form | (a) 1,008,000 new [s] | (b0) day into empty [s] | peak RSS (a) [MB] | breakdown (a) |")
    p("|---|---:|---:|---:|---|")
    for name, r in results["forms"].items():
        first = r.get("first", {})
        if "skipped" in r or "error" in first:
            p(f"| {name} | {r.get('skipped') or 'error'} | | | |")
            continue
        a, b0 = first["first_1m"], first["day_empty"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in a["seconds"].items())
        p(
            f"| {name} | {med(a['walls']):.2f} ({min(a['walls']):.2f}–{max(a['walls']):.2f}) "
            f"| {med(b0['walls']):.2f} | {first['rss_peak_mb']:.0f} | {parts} |"
        )
    p()
    p(
        "| form | store [days / M rows] | size [MB] | build [s] | (b) new day [s] | vs empty "
        "| (c) all duplicate [s] | (c) 1 % corrected [s] | (c) 500 late readings [s] "
        "| (d) zone-day median / max [ms] "
        "| (d) client month [s] |"
    )
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results["forms"].items():
        store = r.get("store", {})
        if "sizes" not in store:
            if "error" in store:
                p(f"| {name} | error: {store['error'][-300:]!r} |")
            continue
        empty = med(r["first"]["day_empty"]["walls"]) if "day_empty" in r.get("first", {}) else float("nan")
        for size, s in store["sizes"].items():
            nd = med(s["new_day"]["walls"])
            cm = s["client_month"]
            p(
                f"| {name} | {size} / {s['stored'] / 1e6:.1f} | {s['size_mb']:,.0f} | {s['build_s']:.0f} "
                f"| {nd:.2f} | {nd / empty:.2f}× | {med(s['duplicates']['walls']):.2f} "
                f"| {med(s['corrections']['walls']):.2f} | {med(s['late']['walls']):.3f} "
                f"| {1000 * s['zone_day']['median']:.1f} / "
                f"{1000 * s['zone_day']['max']:.1f} | {med(cm['walls']):.2f} ({cm['rows'] / 1e6:.2f} M) |"
            )
    p()
    p(
        "| form | mode | uploader txns [s] | live 500-reading batches: n, median / max [ms] "
        "| reader zone-days: n, median / max [ms] | errors | counts | check |"
    )
    p("|---|---|---|---|---|---|---|---|")
    for name, r in results["forms"].items():
        for c in r.get("store", {}).get("concurrency", []):
            roles = c["roles"]
            up, live, rd = roles["uploader"], roles["live"], roles["reader"]
            errs = up["errors"] + live["errors"] + rd["errors"]
            retried = f" ({up['retries']} commits retried)" if up["retries"] else ""
            first_errors = [e for role in roles.values() for e in role["first_errors"]]
            p(
                f"| {name} | {c['journal']} | {', '.join(f'{w:.2f}' for w in up['walls'] or [])} "
                f"| {live['n']}, {live['median_ms'] or 0:.0f} / {live['max_ms'] or 0:.0f} "
                f"| {rd['n']}, {rd['median_ms'] or 0:.1f} / {rd['max_ms'] or 0:.0f} "
                f"| {errs} {first_errors[:2] if errs else ''}{retried} "
                f"| {'ok' if c['count_ok'] else 'MISMATCH'} "
                f"| {c['check']} |"
            )
    p()
    for name, r in results["forms"].items():
        if "store" in r and "rss_peak_mb" in r["store"]:
            p(
                f"{name}: peak RSS of the store process {r['store']['rss_peak_mb']:.0f} MB, "
                f"phase {r['store']['phase_s']:.0f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30], help="store sizes [days of 720k]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-concurrency", action="store_true")
    parser.add_argument("--no-baseline", action="store_true", help="skip timing today's `slem score`")
    parser.add_argument(
        "--journal-compare", default="sqlite-rows", help="SQLite form also run with journal=delete"
    )
    parser.add_argument(
        "--rows-match", choices=["numpy", "sql"], default=ROWS_MATCH, help="row forms' matching"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        if larger < smaller + args.repeat:
            parser.error(f"--sizes must be at least --repeat ({args.repeat}) days apart")
    args.sizes = sizes
    os.environ["BENCH_ROWS_MATCH"] = args.rows_match  # children and their spawned workers read it at import
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args)))
        return
    with tempfile.TemporaryDirectory(prefix="slem-store-bench-") as tmp:
        args.work = tmp
        results: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {sys.prefix}",
            "forms": {},
        }
        if not args.no_baseline:
            print("timing today's slem score ...", file=sys.stderr, flush=True)
            results["baseline"] = slem_baseline(Path(tmp), args.repeat)
        pg_used = False
        for name in args.forms:
            form = FORMS[name](Path(tmp))
            why = form.available()
            if why:
                print(f"skipping {name}: {why}", file=sys.stderr)
                results["forms"][name] = {"skipped": why}
                continue
            pg_used |= form.postgres
            print(f"{name} ...", file=sys.stderr, flush=True)
            results["forms"][name] = {
                "first": run_child(name, "first", args),
                "store": run_child(name, "store", args),
            }
            for phase in ("first", "store"):
                if "error" in results["forms"][name][phase]:
                    print(
                        f"  {name} {phase} failed:\n{results['forms'][name][phase]['error']}", file=sys.stderr
                    )
        if pg_used:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        report(results, args)


if __name__ == "__main__":
    main()

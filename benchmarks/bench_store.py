"""The readings store in use (issue 12, SPEC §8): what ``slem score`` costs with it, and a store of 50M+.

A standalone script (not imported by slem_ml, not a test). Every measured command is a fresh process under
``/usr/bin/time`` (wall time, peak RSS, user + system CPU), run against the slem code of ``--tree`` (and
``--old-tree`` for "today's" ``slem score``, the commit before the store) through ``PYTHONPATH``, so that
the measured code stays put while the work tree changes::

    git worktree add /tmp/bench-tree 93fc045      # the store
    git worktree add /tmp/bench-old 410a92a       # before it: runs stored by a forked child, no readings
    .venv/bin/python -m compileall -q /tmp/bench-tree/slem_ml /tmp/bench-old/slem_ml  # as `make setup`
    .venv/bin/python benchmarks/bench_store.py --tree /tmp/bench-tree --old-tree /tmp/bench-old --quick
    .venv/bin/python benchmarks/bench_store.py --tree /tmp/bench-tree --old-tree /tmp/bench-old \
        --json /tmp/bench-store.json                                        # about 20 min here
    git worktree remove --force /tmp/bench-tree; git worktree remove --force /tmp/bench-old

(``PYTHONDONTWRITEBYTECODE`` is set on the project's machines: without ``compileall`` every process would
compile the tree's modules again.)

1. **First upload** of about 1M readings (``slem generate``: ``--zones`` zones x ``--first-days`` days at
   5 min, from 2025-01-01, Parquet and CSV): the store's ``slem score`` into an empty SQLite store and an
   empty PostgreSQL database, with ``--db none``, and the old tree's ``slem score`` on both databases;
   without models and with a champion trained once (``--train-days`` of the same zones at 15 min, before
   the scored weeks). Every run gets a new database that already has the tree's schema (as in daily use),
   the configurations take turns within each repetition. Target: <= 1.3x the old tree's time.
2. **A day into a full store**: ``--zones`` zones at 1 min (about 720,000 readings a day from
   ``slem generate``, which leaves out the readings of its simulated dropouts) from ``--store-start``.
   The store is built by uploading ``--store-days`` day files with the store's ``slem score`` (no models),
   one process a day, as a site would. Then the next day is scored into a copy of that store and into an
   empty one (target: <= 1.5x), with and without models, and a 1 %-corrected re-upload of a day in the
   middle of the store is scored into the same copy.
3. **The store at scale**: the build of 2 (how long, how large: 500 zones x 90 days at 1 min are 64.7M
   readings); a month's invoices exported from it (``slem invoices export``, which builds them from the
   stored billing sessions), and the same month recomputed from the stored readings: ``rebill`` of every
   (zone, local date) of the month, then ``current_invoices``, in one write transaction that is rolled
   back (this script's ``_recompute``, run with the tree's code), checked to give the exported invoices.
   Last, on PostgreSQL, ``VACUUM`` and ``VACUUM FULL`` of ``reading_blocks``: their times and the sizes after.

PostgreSQL: ``--pg-dsn`` (default ``$BENCH_PG_DSN`` or ``host=127.0.0.1 port=5432 user=postgres
dbname=test``); the script creates databases named ``bench_store_*`` and drops them at the end. SQLite
files and the generated data go to ``--work`` (default: a temporary folder, removed at the end unless
``--keep``). The server's own memory is not in the peak RSS figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_PREFIX = "bench_store_"
FIRST_START = dt.date(2025, 1, 1)


# --- processes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """A checkout of slem whose code a measured process runs (through ``PYTHONPATH``)."""

    label: str
    path: Path

    @property
    def commit(self) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        return done.stdout.strip() or "?"

    @property
    def contracts(self) -> Path:
        return self.path / "slem_ml" / "data" / "contracts.yaml"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(self.path), "MLFLOW_DISABLE_TELEMETRY": "true"}
        for name in ("SLEM_DATABASE_URL", "MLFLOW_TRACKING_URI"):
            env.pop(name, None)
        return env

    def slem(self, *args: object) -> list[str]:
        return [sys.executable, "-m", "slem_ml", *map(str, args)]

    def helper(self, *args: object) -> list[str]:
        """This script's helper subcommand, run with this tree's slem_ml."""
        return [sys.executable, str(Path(__file__).resolve()), *map(str, args)]


@dataclass
class Run:
    wall: float  # s
    rss_mb: float  # peak resident set of the process (and its waited-for children)
    cpu: float  # user + system s
    load: float  # 1-minute load average just before the run
    stdout: str


def timed(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> Run:
    load = os.getloadavg()[0]
    done = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M %U %S", *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = re.findall(r"TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)", done.stderr)
    assert found, done.stderr[-2000:]
    wall, rss, user, system = found[-1]
    return Run(float(wall), int(rss) / 1024, float(user) + float(system), load, done.stdout)


def quiet(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def say(text: str = "") -> None:
    print(text, flush=True)


# --- databases ----------------------------------------------------------------------------------------


@dataclass
class SQLiteStore:
    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _files(self) -> list[Path]:
        return [self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))]

    def size(self) -> int:
        return sum(p.stat().st_size for p in self._files() if p.exists())

    def readings(self) -> int:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            return int(db.execute("SELECT coalesce(sum(n), 0) FROM reading_blocks").fetchone()[0])

    def checkpoint(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def drop(self) -> None:
        for p in self._files():
            p.unlink(missing_ok=True)


@dataclass
class PgStore:
    name: str
    server: PgServer

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def size(self) -> int:
        return int(self.server.query(f"SELECT pg_database_size('{self.name}')")[0][0])

    def readings(self) -> int:
        rows = self.server.query("SELECT coalesce(sum(n), 0) FROM reading_blocks", database=self.name)
        return int(rows[0][0])

    def table_sizes(self) -> dict[str, int]:
        rows = self.server.query(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC",
            database=self.name,
        )
        return {str(name): int(size) for name, size in rows}

    def checkpoint(self) -> None:
        pass

    def dead(self) -> dict[str, int]:
        """Dead row versions of reading_blocks and of its TOAST table (what VACUUM would reclaim)."""
        rows = self.server.query(
            "SELECT s.relname, s.n_dead_tup FROM pg_stat_all_tables s JOIN pg_class c "
            "ON s.relid IN (c.oid, c.reltoastrelid) WHERE c.relname = 'reading_blocks'",
            database=self.name,
        )
        return {"toast" if str(name).startswith("pg_toast") else str(name): int(n) for name, n in rows}

    def vacuum(self) -> dict[str, float]:
        """VACUUM, then VACUUM FULL of reading_blocks: their times and the database size after each."""
        out: dict[str, float] = {}
        for what in ("VACUUM (ANALYZE)", "VACUUM FULL"):
            clock = time.perf_counter()
            self.server.query(f"{what} reading_blocks", database=self.name)
            key = what.split()[-1].strip("()").lower()
            out[f"{key}_s"] = time.perf_counter() - clock
            out[f"{key}_bytes"] = self.size()
        return out

    def drop(self) -> None:
        self.server.drop(self.name)


class PgServer:
    """The PostgreSQL server of ``dsn``; makes and drops this script's ``bench_store_*`` databases."""

    def __init__(self, dsn: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        self.psycopg = psycopg
        self.dsn = dsn
        self.params = conninfo_to_dict(dsn)
        self.made: set[str] = set()

    def url(self, database: str) -> str:
        p = self.params
        user = p.get("user", "postgres")
        password = f":{p['password']}" if p.get("password") else ""
        where = f"{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}"
        return f"postgresql+psycopg://{user}{password}@{where}/{database}"

    def query(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo(self.dsn, dbname=database) if database else self.dsn
        with self.psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def create(self, name: str, template: str | None = None) -> PgStore:
        assert name.startswith(PG_PREFIX)
        self.drop(name)
        copy = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        self.query(f"CREATE DATABASE {name}{copy}")
        self.made.add(name)
        return PgStore(name, self)

    def drop(self, name: str) -> None:
        assert name.startswith(PG_PREFIX)
        self.query(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made.discard(name)

    def drop_all(self) -> None:
        for name in sorted(self.made):
            self.drop(name)

    def version(self) -> str:
        return str(self.query("SHOW server_version")[0][0])

    def settings(self) -> str:
        names = ("shared_buffers", "synchronous_commit", "jit", "autovacuum")
        return ", ".join(f"{n} {self.query(f'SHOW {n}')[0][0]}" for n in names)


Store = SQLiteStore | PgStore


class Stores:
    """Fresh databases for each backend: empty with a tree's schema, or a copy of a built store."""

    def __init__(self, work: Path, server: PgServer | None) -> None:
        self.folder = work / "db"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.schema: dict[tuple[str, str], Store] = {}  # (tree label, backend) -> template

    def new(self, backend: str, name: str, like: Store | None = None) -> Store:
        """An empty database, or a copy of ``like``; the copy is on disk before any measure starts (a
        1.4 GB copy left in the page cache is written back during the next run, slowing it by 0.3-0.6 s)."""
        if backend == "sqlite":
            store: Store = SQLiteStore(self.folder / f"{name}.db")
            store.drop()
            if like is not None:
                assert isinstance(like, SQLiteStore)
                like.checkpoint()
                shutil.copyfile(like.path, store.path)
        else:
            assert self.server is not None
            store = self.server.create(PG_PREFIX + name, like.name if isinstance(like, PgStore) else None)
        os.sync()
        return store

    def existing(self, backend: str, name: str) -> Store:
        """A database an earlier run left (``--keep``), for ``--reuse``."""
        if backend == "sqlite":
            store = SQLiteStore(self.folder / f"{name}.db")
            if not store.path.exists():
                raise SystemExit(f"--reuse: no {store.path}; run once with --keep first")
            return store
        assert self.server is not None
        if not self.server.query(f"SELECT 1 FROM pg_database WHERE datname = '{PG_PREFIX}{name}'"):
            raise SystemExit(f"--reuse: no database {PG_PREFIX}{name}; run once with --keep first")
        return PgStore(PG_PREFIX + name, self.server)

    def make_schema(self, tree: Tree, backend: str) -> Store:
        """A database with ``tree``'s schema and nothing else (the template of every fresh store)."""
        store = self.new(backend, f"schema_{tree.label}")
        quiet(tree.helper("_schema", store.url), cwd=self.folder, env=tree.env())
        self.schema[(tree.label, backend)] = store
        return store

    def fresh(self, tree: Tree, backend: str, name: str) -> Store:
        return self.new(backend, name, self.schema[(tree.label, backend)])


# --- data ---------------------------------------------------------------------------------------------


def generate(tree: Tree, out: Path, *, zones: int, days: int, start: dt.date, step: int, seed: int) -> None:
    args = ["generate", "--out", out, "--zones", zones, "--days", days, "--start", start.isoformat()]
    args += ["--step-minutes", step, "--seed", seed]
    quiet(tree.slem(*args), cwd=out.parent if not str(out).endswith("/") else Path(out), env=tree.env())


def generate_days(tree: Tree, folder: Path, *, zones: int, days: int, start: dt.date) -> list[Path]:
    """One Parquet file per local day at 1 min, generated 15 days at a time (memory: 1.5 GB a call)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("readings-*.parquet"))
    if len(files) == days:  # made by an earlier run into the same --work
        return files
    for at in range(0, days, 15):
        n = min(15, days - at)
        args = ["generate", "--out", f"{folder}/", "--zones", zones, "--days", n]
        args += [
            "--start",
            (start + dt.timedelta(days=at)).isoformat(),
            "--step-minutes",
            1,
            "--seed",
            11 + at,
        ]
        quiet(tree.slem(*args), cwd=folder, env=tree.env())
    files = sorted(folder.glob("readings-*.parquet"))
    assert len(files) == days, (len(files), days)
    return files


def corrected_copy(source: Path, target: Path, fraction: float) -> int:
    """``source`` with the power of ``fraction`` of its readings changed (a corrected re-upload)."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(source)
    rng = np.random.default_rng(7)
    rows = rng.choice(len(frame), size=max(1, int(len(frame) * fraction)), replace=False)
    power = frame["power_w"].to_numpy(dtype=float).copy()
    power[rows] = np.round(power[rows] * 1.02 + 0.5, 1)
    frame["power_w"] = power
    frame.to_parquet(target, index=False)
    return len(rows)


def readings_in(path: Path) -> int:
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as f:
        return sum(1 for _ in f) - 1


def month_with_most_days(first: dt.date, days: int) -> str:
    counts: dict[str, int] = {}
    for i in range(days):
        d = first + dt.timedelta(days=i)
        counts[f"{d:%Y-%m}"] = counts.get(f"{d:%Y-%m}", 0) + 1
    return max(counts, key=lambda k: (counts[k], k))


# --- scoring ------------------------------------------------------------------------------------------


@dataclass
class Champion:
    models_dir: Path
    tracking_uri: str
    train_s: float
    train_rss_mb: float
    train_rows: int


def score_args(data: Path, contracts: Path, out: Path, url: str, champion: Champion | None) -> list[object]:
    args: list[object] = ["score", data, "--contracts", contracts, "--out", out, "--db", url]
    if champion is not None:
        args += ["--models-dir", champion.models_dir, "--tracking-uri", champion.tracking_uri]
    return args


def score(
    tree: Tree, data: Path, url: str, *, out: Path, cwd: Path, champion: Champion | None
) -> tuple[Run, dict[str, Any]]:
    """One ``slem score`` process; its run and what it says (store counts, store_s)."""
    shutil.rmtree(out, ignore_errors=True)
    run = timed(tree.slem(*score_args(data, tree.contracts, out, url, champion)), cwd=cwd, env=tree.env())
    with_models = "models: slem" in run.stdout
    if with_models != (champion is not None):
        raise SystemExit(f"expected models={champion is not None}, got:\n{run.stdout}")
    summary = json.loads((out / "summary.json").read_text())
    facts: dict[str, Any] = {
        "rows_in": summary.get("rows_in"),
        "store_s": summary.get("timings", {}).get("store_s"),
        "read_s": summary.get("timings", {}).get("read_s"),
    }
    counts = re.search(
        r"store: ([\d,]+) readings added, ([\d,]+) already stored, ([\d,]+) corrected", run.stdout
    )
    if counts:
        facts.update(
            added=int(counts[1].replace(",", "")),
            unchanged=int(counts[2].replace(",", "")),
            corrected=int(counts[3].replace(",", "")),
        )
    return run, facts


def record(run: Run, **extra: Any) -> dict[str, Any]:
    return {
        "wall": run.wall,
        "rss_mb": round(run.rss_mb, 1),
        "cpu": round(run.cpu, 2),
        "load": round(run.load, 2),
        **extra,
    }


# --- the parts ----------------------------------------------------------------------------------------


def brief(run: Run) -> str:
    return f"{run.wall:5.2f} s {run.rss_mb:5.0f} MB cpu {run.cpu:5.2f} load {run.load:.2f}"


def part1(
    args: argparse.Namespace,
    trees: dict[str, Tree],
    stores: Stores,
    work: Path,
    champion: Champion | None,
) -> list[dict[str, Any]]:
    """First upload of about 1M readings: the store's slem score against the old tree's."""
    rows: list[dict[str, Any]] = []
    configs = [(t, b) for t in ("old", "new") if t in trees for b in args.backends] + [("new", "none")]
    bare = work / "bare"
    for fmt in args.formats:
        data = work / f"first.{fmt}"
        n = readings_in(data)
        for models in args.models:
            chosen = champion if models == "champion" else None
            for rep in range(args.repeat):
                for label, backend in configs:  # the configurations take turns
                    tree = trees[label]
                    store = None if backend == "none" else stores.fresh(tree, backend, "run")
                    url = "none" if store is None else store.url
                    run, facts = score(tree, data, url, out=work / "out", cwd=bare, champion=chosen)
                    if store is not None:
                        store.drop()
                    rows.append(
                        record(
                            run,
                            part=1,
                            format=fmt,
                            readings=n,
                            models=models,
                            tree=label,
                            backend=backend,
                            rep=rep,
                            **facts,
                        )
                    )
                    say(
                        f"  1 {fmt} {models:<8} {label} {backend:<6} rep {rep}: {brief(run)}"
                        f" store_s {facts.get('store_s')}"
                    )
    return rows


@dataclass
class Built:
    backend: str
    store: Store
    days: list[dict[str, Any]] = field(default_factory=list)
    sizes: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)


def build(
    args: argparse.Namespace, tree: Tree, stores: Stores, backend: str, day_files: list[Path], work: Path
) -> Built:
    """The store of ``--store-days`` days: one ``slem score`` a day file, no models, into one database."""
    built = Built(backend, stores.fresh(tree, backend, "store"))
    marks = {len(day_files), *(d for d in args.size_at if d <= len(day_files))}
    stored = 0
    for i, path in enumerate(day_files, start=1):
        run, facts = score(tree, path, built.store.url, out=work / "out", cwd=work / "bare", champion=None)
        stored += facts.get("added", 0)
        built.days.append(record(run, part="build", backend=backend, day=i, file=path.name, **facts))
        if i in marks or i % 10 == 0:
            built.store.checkpoint()
            built.sizes.append({"day": i, "readings": stored, "bytes": built.store.size()})
        if i % 10 == 0 or i == len(day_files):
            last = built.days[-10:]
            wall = statistics.median(r["wall"] for r in last)
            store_s = statistics.median(r["store_s"] for r in last)
            say(
                f"  build {backend} day {i}: last 10 days median {wall:.2f} s, store_s {store_s:.2f}, "
                f"{stored:,} readings, {built.store.size() / 1e6:,.0f} MB, load {os.getloadavg()[0]:.2f}"
            )
    assert built.store.readings() == stored, (built.store.readings(), stored)
    if isinstance(built.store, PgStore):
        built.tables = built.store.table_sizes()
        built.dead = built.store.dead()
    return built


def part2(
    args: argparse.Namespace,
    tree: Tree,
    stores: Stores,
    built: dict[str, Built],
    next_day: Path,
    corrected: Path,
    work: Path,
    champion: Champion | None,
) -> list[dict[str, Any]]:
    """The next day into a copy of the built store and into an empty one; a corrected day into the copy."""
    rows: list[dict[str, Any]] = []
    bare, out = work / "bare", work / "out"
    for models in args.models:
        chosen = champion if models == "champion" else None
        for rep in range(args.repeat_store):
            for backend, full in built.items():
                common = {"part": 2, "backend": backend, "models": models, "rep": rep}
                empty = stores.fresh(tree, backend, "run")
                run, facts = score(tree, next_day, empty.url, out=out, cwd=bare, champion=chosen)
                empty.drop()
                rows.append(record(run, case="empty", **common, **facts))
                clock = time.perf_counter()
                copy = stores.new(backend, "run", full.store)
                copy_s = time.perf_counter() - clock
                run2, facts2 = score(tree, next_day, copy.url, out=out, cwd=bare, champion=chosen)
                rows.append(record(run2, case="full", copy_s=round(copy_s, 1), **common, **facts2))
                run3, facts3 = score(tree, corrected, copy.url, out=out, cwd=bare, champion=chosen)
                rows.append(record(run3, case="corrected", **common, **facts3))
                copy.drop()
                say(
                    f"  2 {models:<8} {backend:<6} rep {rep}: empty {run.wall:.2f} s (store_s "
                    f"{facts['store_s']:.2f}), full {run2.wall:.2f} s (store_s {facts2['store_s']:.2f}), "
                    f"corrected {run3.wall:.2f} s (store_s {facts3['store_s']:.2f}; "
                    f"{facts3.get('corrected')} corrected), copy {copy_s:.0f} s, load {run.load:.2f}"
                )
    return rows


def part3(
    args: argparse.Namespace, tree: Tree, built: dict[str, Built], period: str, work: Path
) -> list[dict[str, Any]]:
    """A month's invoices from the built store: exported (from the stored sessions) and recomputed from the
    stored readings (rebill of the whole month, rolled back)."""
    rows: list[dict[str, Any]] = []
    bare = work / "bare"
    for backend, full in built.items():
        out = work / f"export-{backend}"
        exported: dict[str, str] = {}
        for rep in range(args.repeat_store):
            shutil.rmtree(out, ignore_errors=True)
            cmd = tree.slem("invoices", "export", "--period", period, "--out", out)
            cmd += ["--contracts", str(tree.contracts), "--db", full.store.url]
            run = timed(cmd, cwd=bare, env=tree.env())
            said = re.search(r"(\d+) invoice\(s\), (\d+) line\(s\), total ([\d.]+)", run.stdout)
            assert said, run.stdout
            counts = {"invoices": int(said[1]), "lines": int(said[2]), "total": said[3]}
            rows.append(record(run, part=3, case="export", backend=backend, rep=rep, **counts))
            say(f"  3 export {backend} rep {rep}: {brief(run)} ({said[0]})")
            exported = _csv_hashes(out / "invoices.csv")
        for rep in range(args.repeat_store):
            run = timed(
                tree.helper("_recompute", full.store.url, tree.contracts, period), cwd=bare, env=tree.env()
            )
            facts = json.loads(run.stdout.strip().splitlines()[-1])
            hashes = facts.pop("hashes")
            same = hashes == exported
            rows.append(
                record(run, part=3, case="recompute", backend=backend, rep=rep, same_as_export=same, **facts)
            )
            say(
                f"  3 recompute {backend} rep {rep}: {brief(run)} (rebill {facts['rebill_s']:.2f} s, "
                f"invoices {facts['invoices_s']:.2f} s, {facts['zone_days']:,} zone-days, "
                f"{facts['readings']:,} readings in the blocks) same as export: {same}"
            )
            if not same:
                differ = sorted(k for k in set(hashes) | set(exported) if hashes.get(k) != exported.get(k))
                say(f"    differs: {differ[:10]}")
    return rows


def _csv_hashes(path: Path) -> dict[str, str]:
    import csv

    with path.open(newline="") as f:
        return {row["invoice_id"]: row["content_hash"] for row in csv.DictReader(f)}


# --- tables -------------------------------------------------------------------------------------------


def med(values: list[float]) -> str:
    """Median (min–max) of more than one value."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def loads(rows: list[dict[str, Any]]) -> str:
    values = [r["load"] for r in rows]
    return f"{min(values):.1f}–{max(values):.1f}" if values else "–"


def table(header: list[str], align: str) -> None:
    say("| " + " | ".join(header) + " |")
    say("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")


def line(*cells: object) -> None:
    say("| " + " | ".join(str(c) for c in cells) + " |")


def table1(rows: list[dict[str, Any]]) -> None:
    say("\n### 1. First upload\n")
    header = ["input", "models", "code", "database", "wall [s]", "CPU [s]", "peak RSS [MB]", "store_s [s]"]
    table([*header, "vs old, same db", "vs old SQLite", "load"], "llllrrrrrrl")
    keys = {(r["format"], r["readings"], r["models"]) for r in rows}
    for fmt, n, models in sorted(keys, key=lambda k: (k[0] != "parquet", k[2] != "none")):
        sel = [r for r in rows if r["format"] == fmt and r["models"] == models]

        def of(tree: str, backend: str, sel: list[dict[str, Any]] = sel) -> list[dict[str, Any]]:
            return [r for r in sel if r["tree"] == tree and r["backend"] == backend]

        configs = sorted({(r["tree"], r["backend"]) for r in sel}, key=lambda k: (k[0] == "new", k[1]))
        for tree, backend in configs:
            part = of(tree, backend)
            base, old_sqlite = of("old", "sqlite" if backend == "none" else backend), of("old", "sqlite")
            ratio = ratio2 = ""
            if tree == "new" and base:
                ratio = f"{median_of(part, 'wall') / median_of(base, 'wall'):.2f}×"
            if tree == "new" and old_sqlite:
                ratio2 = f"{median_of(part, 'wall') / median_of(old_sqlite, 'wall'):.2f}×"
            store_s = [r["store_s"] for r in part if r.get("store_s") is not None]
            walls, cpus = [r["wall"] for r in part], [r["cpu"] for r in part]
            rss = max(r["rss_mb"] for r in part)
            line(
                f"{fmt} {n:,}",
                models,
                tree,
                backend,
                med(walls),
                med(cpus),
                f"{rss:,.0f}",
                med(store_s),
                ratio,
                ratio2,
                loads(part),
            )


def table_build(built: dict[str, Built]) -> None:
    say("\n### 3a. Building the store, one `slem score` per day file (no models)\n")
    header = ["database", "days", "readings", "total wall [min]", "per day: first 10 [s]", "last 10 [s]"]
    header += ["store_s first 10 / last 10 [s]", "peak RSS [MB]", "size [MB]", "bytes / reading"]
    table(header, "lrrrrrlrrr")
    for backend, b in built.items():
        first, last, size = b.days[:10], b.days[-10:], b.sizes[-1]
        total = sum(r["wall"] for r in b.days) / 60
        store_s = f"{median_of(first, 'store_s'):.2f} / {median_of(last, 'store_s'):.2f}"
        rss = max(r["rss_mb"] for r in b.days)
        line(
            backend,
            len(b.days),
            f"{size['readings']:,}",
            f"{total:.1f}",
            med([r["wall"] for r in first]),
            med([r["wall"] for r in last]),
            store_s,
            f"{rss:,.0f}",
            f"{size['bytes'] / 1e6:,.0f}",
            f"{size['bytes'] / max(size['readings'], 1):.1f}",
        )
    say("\nsize as the store grows:\n")
    table(["database", "day", "readings", "size [MB]", "bytes / reading"], "lrrrr")
    for backend, b in built.items():
        for s in b.sizes:
            per = s["bytes"] / max(s["readings"], 1)
            line(backend, s["day"], f"{s['readings']:,}", f"{s['bytes'] / 1e6:,.0f}", f"{per:.1f}")
    for backend, b in built.items():
        if b.tables:
            big = ", ".join(f"{k} {v / 1e6:,.1f}" for k, v in b.tables.items() if v > 1e6)
            say(f"\n{backend} tables over 1 MB [MB]: {big}; dead row versions: {b.dead}")


def table2(rows: list[dict[str, Any]], days: int) -> None:
    say(f"\n### 2. The next day into a store of {days} days, against the same day into an empty store\n")
    header = ["database", "models", "into empty [s]", "into full [s]", "ratio", "store_s empty → full [s]"]
    header += ["peak RSS empty / full [MB]", "corrected day [s] (store_s)", "load"]
    table(header, "llrrrllll")
    for backend in sorted({r["backend"] for r in rows}):
        for models in sorted({r["models"] for r in rows}, key=lambda m: m != "none"):
            sel = [r for r in rows if r["backend"] == backend and r["models"] == models]
            e, f, c = ([r for r in sel if r["case"] == case] for case in ("empty", "full", "corrected"))
            ratio = median_of(f, "wall") / median_of(e, "wall")
            store_s = f"{median_of(e, 'store_s'):.2f} → {median_of(f, 'store_s'):.2f}"
            rss = f"{max(r['rss_mb'] for r in e):,.0f} / {max(r['rss_mb'] for r in f):,.0f}"
            fixed = f"{med([r['wall'] for r in c])} ({median_of(c, 'store_s'):.2f})"
            line(
                backend,
                models,
                med([r["wall"] for r in e]),
                med([r["wall"] for r in f]),
                f"{ratio:.2f}×",
                store_s,
                rss,
                fixed,
                loads(sel),
            )


def table3(rows: list[dict[str, Any]], period: str) -> None:
    say(f"\n### 3b. The invoices of {period} from the full store\n")
    table(
        ["database", "what", "wall [s]", "peak RSS [MB]", "inside [s]", "invoices / lines", "load"], "llrrlll"
    )
    for backend in sorted({r["backend"] for r in rows}):
        for case in ("export", "recompute"):
            sel = [r for r in rows if r["backend"] == backend and r["case"] == case]
            if not sel:
                continue
            inside, same = "", ""
            if case == "recompute":
                inside = (
                    f"rebill {med([r['rebill_s'] for r in sel])}, invoices "
                    f"{med([r['invoices_s'] for r in sel])} ({sel[0]['zone_days']:,} zone-days, "
                    f"{sel[0]['readings']:,} readings in the blocks read)"
                )
                same = " ✓ = export" if all(r["same_as_export"] for r in sel) else " ✗ ≠ export"
            rss = max(r["rss_mb"] for r in sel)
            line(
                backend,
                case,
                med([r["wall"] for r in sel]),
                f"{rss:,.0f}",
                inside,
                f"{sel[0]['invoices']} / {sel[0]['lines']:,}{same}",
                loads(sel),
            )


# --- helpers run with a tree's code -------------------------------------------------------------------


def helper_schema(url: str) -> None:
    from slem_ml.storage import open_database

    open_database(url).dispose()


def helper_recompute(url: str, contracts: str, period: str) -> None:
    """Recompute every (zone, local date) of ``period`` from the stored readings, then the month's
    invoices, in one write transaction that is rolled back; prints one JSON line."""
    import numpy as np
    from sqlalchemy import func, select

    from slem_ml.config.site import load_site
    from slem_ml.io.localtime import wall_to_utc
    from slem_ml.storage import open_database
    from slem_ml.storage.database import write_session
    from slem_ml.storage.rebill import rebill
    from slem_ml.storage.stored_invoices import current_invoices
    from slem_ml.storage.tables import ReadingBlock, StoreZone

    class Undo(Exception):
        pass

    clock = time.perf_counter()
    site = load_site(contracts)
    engine = open_database(url)
    year, month = map(int, period.split("-"))
    first = dt.date(year, month, 1)
    after = dt.date(year + month // 12, month % 12 + 1, 1)
    epoch = dt.date(1970, 1, 1)
    days = np.arange((first - epoch).days, (after - epoch).days, dtype=np.int64)
    noon = wall_to_utc(days, np.full(len(days), 720), site.site.timezone).astype(np.int64)
    facts: dict[str, Any] = {"open_s": time.perf_counter() - clock}
    try:
        with write_session(engine) as session:
            connection = session.connection()
            zones = np.array(sorted(connection.execute(select(StoreZone.id)).scalars()), np.int64)
            lo, hi = int(days[0]) - 1, int(days[-1])  # the UTC days of the blocks rebill reads (UTC+h sites)
            facts["readings"] = int(
                connection.execute(
                    select(func.coalesce(func.sum(ReadingBlock.n), 0)).where(
                        ReadingBlock.utc_day >= lo, ReadingBlock.utc_day <= hi
                    )
                ).scalar_one()
            )
            clock = time.perf_counter()
            rebilled = rebill(connection, site, np.repeat(zones, len(days)), np.tile(noon, len(zones)))
            facts["rebill_s"] = time.perf_counter() - clock
            clock = time.perf_counter()
            lines, invoices = current_invoices(connection, site, rebilled.invoice_ids)
            facts["invoices_s"] = time.perf_counter() - clock
            facts.update(zone_days=rebilled.zone_days, invoices=len(invoices), lines=len(lines))
            facts["hashes"] = dict(
                zip(invoices["invoice_id"].astype(str), invoices["content_hash"].astype(str), strict=True)
            )
            raise Undo
    except Undo:
        pass
    finally:
        engine.dispose()
    print(json.dumps(facts, default=float))


# --- main ---------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.node()} · {os.cpu_count()} × {cpu} · {mem:.0f} GiB · Python {platform.python_version()}"
        f" · SQLite {sqlite3.sqlite_version} · load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="slem checkout to measure (default: this one)"
    )
    parser.add_argument(
        "--old-tree", type=Path, help="checkout of today's slem score (e.g. 410a92a) to compare"
    )
    parser.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "pg"], choices=["sqlite", "pg"])
    parser.add_argument("--models", nargs="+", default=["none", "champion"], choices=["none", "champion"])
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--first-days", type=int, default=7, help="days at 5 min of the first upload")
    parser.add_argument("--train-days", type=int, default=35, help="days at 15 min the champion learns from")
    parser.add_argument("--store-days", type=int, default=90)
    parser.add_argument("--store-start", type=dt.date.fromisoformat, default=dt.date(2024, 12, 16))
    parser.add_argument(
        "--size-at", type=int, nargs="*", default=[70], help="also record the size after these days"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs of each first-upload configuration")
    parser.add_argument("--repeat-store", type=int, default=3, help="runs of each measure of parts 2 and 3")
    parser.add_argument("--pg-dsn", default=PG_DSN)
    parser.add_argument("--work", type=Path, help="folder for data and SQLite files (default: temporary)")
    parser.add_argument(
        "--reuse", action="store_true", help="parts 2 and 3: use the store a --keep run of --work built"
    )
    parser.add_argument("--keep", action="store_true", help="keep --work (and the PostgreSQL databases)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument(
        "--quick", action="store_true", help="a small smoke run: 40 zones, 4-day store, 1 run each"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.zones, args.first_days, args.train_days, args.store_days = 40, 2, 28, 4
        args.repeat, args.repeat_store, args.formats, args.size_at = 1, 1, ["parquet"], [2]
    return args


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_schema":
        helper_schema(argv[1])
        return
    if argv and argv[0] == "_recompute":
        helper_recompute(*argv[1:4])
        return
    args = parse_args(argv)
    trees = {"new": Tree("new", args.tree.resolve())}
    if args.old_tree is not None:
        trees["old"] = Tree("old", args.old_tree.resolve())
    new = trees["new"]
    server = PgServer(args.pg_dsn) if "pg" in args.backends else None
    work = args.work or Path(tempfile.mkdtemp(prefix="slem-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "bare").mkdir(exist_ok=True)
    started = time.perf_counter()
    say(f"machine: {machine()}")
    say(f"started {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; work in {work}")
    for t in trees.values():
        say(f"tree {t.label}: {t.path} at {t.commit}")
    if server is not None:
        say(f"PostgreSQL {server.version()} ({server.settings()})")
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    stores = Stores(work, server)
    try:
        for tree in trees.values():
            for backend in args.backends:
                stores.make_schema(tree, backend)
        champion = None
        if "champion" in args.models and (1 in args.parts or 2 in args.parts):
            champion = train(new, work, args)
            results["champion"] = vars(champion) | {"models_dir": str(champion.models_dir)}
        if 1 in args.parts:
            for fmt in args.formats:
                first = work / f"first.{fmt}"
                generate(
                    new, first, zones=args.zones, days=args.first_days, start=FIRST_START, step=5, seed=1
                )
            say(f"\n1. first upload ({readings_in(work / f'first.{args.formats[0]}'):,} readings)")
            results["part1"] = part1(args, trees, stores, work, champion)
            table1(results["part1"])
        if 2 in args.parts or 3 in args.parts:
            clock = time.perf_counter()
            days = args.store_days + 1
            day_files = generate_days(new, work / "days", zones=args.zones, days=days, start=args.store_start)
            say(f"\ngenerated {len(day_files)} day files in {time.perf_counter() - clock:.0f} s")
            built: dict[str, Built] = {}
            for backend in args.backends:
                if args.reuse:  # the store a --keep run built from the same day files
                    built[backend] = Built(backend, stores.existing(backend, "store"))
                    continue
                clock = time.perf_counter()
                built[backend] = build(args, new, stores, backend, day_files[:-1], work)
                say(f"  built {backend} in {(time.perf_counter() - clock) / 60:.1f} min")
            if not args.reuse:
                results["build"] = {
                    b: {"days": v.days, "sizes": v.sizes, "tables": v.tables} for b, v in built.items()
                }
                table_build(built)
            if 2 in args.parts:
                middle = day_files[len(day_files) // 2]
                corrected = work / "corrected.parquet"
                changed = corrected_copy(middle, corrected, 0.01)
                say(f"\n2. day {day_files[-1].name} into the store; {middle.name} with {changed:,} corrected")
                results["part2"] = part2(args, new, stores, built, day_files[-1], corrected, work, champion)
                table2(results["part2"], args.store_days)
            if 3 in args.parts:
                period = month_with_most_days(args.store_start, args.store_days)
                say(f"\n3. the invoices of {period}")
                results["part3"] = part3(args, new, built, period, work)
                table3(results["part3"], period)
            for backend, b in built.items():  # last: it changes the store
                if isinstance(b.store, PgStore):
                    if not b.sizes:  # --reuse: this run did not build it
                        continue
                    results["vacuum"] = v = b.store.vacuum()
                    say(
                        f"\n{backend} after the parts: VACUUM {v['analyze_s']:.1f} s → "
                        f"{v['analyze_bytes'] / 1e6:,.0f} MB;"
                        f" VACUUM FULL {v['full_s']:.1f} s → {v['full_bytes'] / 1e6:,.0f} MB"
                        f" ({v['full_bytes'] / b.sizes[-1]['readings']:.1f} bytes / reading)"
                    )
    finally:
        if server is not None and not args.keep:
            server.drop_all()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    say(f"\ndone in {(time.perf_counter() - started) / 60:.1f} min; load {os.getloadavg()[0]:.2f}")


def train(tree: Tree, work: Path, args: argparse.Namespace) -> Champion:
    """The champion: ``slem train`` once on ``--train-days`` of the same zones at 15 min, before 2025."""
    folder = work / "train"
    folder.mkdir(exist_ok=True)
    data = folder / "train.parquet"
    start = FIRST_START - dt.timedelta(days=args.train_days)
    generate(tree, data, zones=args.zones, days=args.train_days, start=start, step=15, seed=3)
    cmd = tree.slem("train", data, "--contracts", tree.contracts, "--models-dir", folder / "models")
    run = timed([*cmd, "--tracking-uri", "sqlite:///mlflow.db"], cwd=folder, env=tree.env())
    say(f"trained the champion on {readings_in(data):,} readings in {run.wall:.1f} s ({run.rss_mb:,.0f} MB)")
    return Champion(
        folder / "models", f"sqlite:///{folder / 'mlflow.db'}", run.wall, run.rss_mb, readings_in(data)
    )


if __name__ == "__main__":
    main(sys.argv[1:])

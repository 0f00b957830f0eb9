"""``slem backup`` and ``slem restore`` of a large store (issue 15 item 4, SPEC §11): time, size, peak memory.

A standalone script (not imported by slem_ml, not a test). It builds a store the way a site does —
``slem generate`` (a folder of daily Parquet files) then one ``slem score`` of it into an empty SQLite
store, no models — and then times, each as a fresh process under ``/usr/bin/time`` (wall time, peak RSS):

1. ``slem backup`` of the SQLite store, encrypted to an age recipient (and once with a passphrase);
2. ``slem restore`` of that archive into an empty SQLite file;
3. ``slem restore`` into an empty PostgreSQL database, and ``slem backup`` from it (``--pg-dsn``; skipped
   with ``--no-pg`` or when the server does not answer).

Memory should follow the chunk, not the store: run it at two sizes and compare the peaks::

    .venv/bin/python benchmarks/bench_backup.py --zones 200 --days 17           # about 1 M readings
    .venv/bin/python benchmarks/bench_backup.py --zones 200 --days 174 --json /tmp/bench-backup.json  # 10 M

Defaults: 200 zones x 174 days at 5 min (about 10 M readings). The work folder (default: a temporary one)
is removed at the end unless ``--keep``; the PostgreSQL databases it creates (``bench_backup_*``) are
dropped. The server's own memory is not in the peak RSS figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "slem_ml" / "data" / "contracts.yaml"
PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PASS_VAR = "SLEM_BENCH_PASSPHRASE"


def slem(*args: object) -> list[str]:
    return [sys.executable, "-m", "slem_ml", *map(str, args)]


def timed(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd`` under /usr/bin/time: wall [s], peak RSS [MB], user + system CPU [s], its stdout."""
    clock = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %M %U %S", *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = re.findall(r"TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)", done.stderr)
    wall, rss, user, system = found[-1]
    return {
        "wall_s": float(wall),
        "rss_mb": round(int(rss) / 1024, 1),
        "cpu_s": round(float(user) + float(system), 2),
        "elapsed_s": round(time.perf_counter() - clock, 2),
        "stdout": done.stdout,
    }


def say(text: str = "") -> None:
    print(text, flush=True)


def readings_in(db: Path) -> tuple[int, int]:
    """(readings, blocks) of a SQLite store."""
    with sqlite3.connect(db) as connection:
        total, blocks = connection.execute("SELECT SUM(n), COUNT(*) FROM reading_blocks").fetchone()
    return int(total), int(blocks)


def pg_admin(sql: str) -> bool:
    """Run one statement on the server's ``test`` database; False when the server does not answer."""
    try:
        import psycopg  # lazy: only when PostgreSQL is measured
    except ImportError:
        return False
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql)
    except psycopg.OperationalError:
        return False
    return True


def pg_url(name: str) -> str:
    parts = dict(p.split("=", 1) for p in PG_DSN.split())
    return (
        f"postgresql+psycopg://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
        f"{parts.get('port', '5432')}/{name}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=200)
    parser.add_argument("--days", type=int, default=174)
    parser.add_argument("--step", type=int, default=5, help="minutes between readings")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", PASS_VAR: "bench passphrase " + uuid.uuid4().hex}
    env.pop("SLEM_DATABASE_URL", None)
    none = ("--tracking-uri", f"sqlite:///{work / 'no-mlflow.db'}", "--models-dir", str(work / "no-models"))
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }
    try:
        from pyrage import x25519  # lazy: the script runs with the project's .venv

        identity = x25519.Identity.generate()
        (work / "key.txt").write_text(f"{identity}\n")
        recipient = str(identity.to_public())

        say(f"work folder {work}")
        store = work / "store.db"
        if not store.exists():
            made = timed(
                slem(
                    "generate",
                    "--out",
                    f"{work / 'data'}/",
                    "--zones",
                    args.zones,
                    "--days",
                    args.days,
                    "--step-minutes",
                    args.step,
                    "--seed",
                    1,
                ),
                cwd=work,
                env=env,
            )
            say(f"generate: {made['wall_s']:.1f} s")
            scored = timed(
                slem(
                    "score",
                    work / "data",
                    "--contracts",
                    CONTRACTS,
                    "--out",
                    work / "out",
                    "--db",
                    f"sqlite:///{store}",
                    *none,
                ),
                cwd=work,
                env=env,
            )
            say(f"score into the store: {scored['wall_s']:.1f} s, {scored['rss_mb']:.0f} MB")
            results["score"] = {k: v for k, v in scored.items() if k != "stdout"}
        readings, blocks = readings_in(store)
        results["store"] = {"readings": readings, "blocks": blocks, "sqlite_bytes": store.stat().st_size}
        say(f"store: {readings:,} readings in {blocks:,} blocks, {store.stat().st_size / 1e6:,.1f} MB")

        def measure(label: str, cmd: list[str], cwd: Path, archive: Path | None = None) -> None:
            run = timed(cmd, cwd=cwd, env=env)
            entry = {k: v for k, v in run.items() if k != "stdout"}
            if archive is not None:
                entry["archive_bytes"] = archive.stat().st_size
            results[label] = entry
            size = f", archive {archive.stat().st_size / 1e6:,.1f} MB" if archive else ""
            say(f"{label}: {run['wall_s']:.1f} s, peak RSS {run['rss_mb']:.0f} MB{size}")

        archive = work / "sqlite.age"
        measure(
            "backup sqlite (recipient)",
            slem("backup", "--out", archive, "--recipient", recipient, "--db", f"sqlite:///{store}", *none),
            work,
            archive,
        )
        measure(
            "backup sqlite (passphrase)",
            slem(
                "backup",
                "--out",
                work / "pass.age",
                "--passphrase-env",
                PASS_VAR,
                "--db",
                f"sqlite:///{store}",
                *none,
            ),
            work,
            work / "pass.age",
        )
        target = work / "restored"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        measure(
            "restore into sqlite",
            slem(
                "restore",
                archive,
                "--identity",
                work / "key.txt",
                "--db",
                f"sqlite:///{target / 'store.db'}",
                *none,
            ),
            target,
        )
        measure(
            "restore into sqlite (passphrase)",
            slem(
                "restore",
                work / "pass.age",
                "--passphrase-env",
                PASS_VAR,
                "--db",
                f"sqlite:///{target / 'pass.db'}",
                *none,
            ),
            target,
        )
        results["restored_sqlite_bytes"] = (target / "store.db").stat().st_size

        name = f"bench_backup_{uuid.uuid4().hex[:8]}"
        if not args.no_pg and pg_admin(f'CREATE DATABASE "{name}"'):
            try:
                url = pg_url(name)
                measure(
                    "restore into postgresql",
                    slem("restore", archive, "--identity", work / "key.txt", "--db", url, *none),
                    target,
                )
                measure(
                    "backup postgresql (recipient)",
                    slem("backup", "--out", work / "pg.age", "--recipient", recipient, "--db", url, *none),
                    work,
                    work / "pg.age",
                )
            finally:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            say("PostgreSQL: skipped")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    say(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

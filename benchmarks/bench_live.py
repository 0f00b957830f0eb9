"""Live ingest through a real broker (issue 13, SPEC §9): sustained throughput and lag of ``slem ingest``.

Starts a Mosquitto of its own from ``deploy/mosquitto.conf`` on a free port, a ``slem ingest`` process on a
fresh SQLite file or PostgreSQL database, then publishes readings as fast as one QoS 1 publisher can — in
JSON arrays of ``--per-message`` readings, or one reading per message — and measures how long until every
reading is committed (polling the store), the publisher's own rate, and the worker's arrival-to-commit lag
(p50 / p95, from its stop line). The live detectors run as in production: stuck_on and dropout always,
spike too with ``--models-dir`` (a champion bundle). Readings: ``--zones`` zones, one a minute, ending now
(live readings).

    .venv/bin/python benchmarks/bench_live.py --readings 400000 --per-message 100 --backends sqlite pg
    .venv/bin/python benchmarks/bench_live.py --readings 30000 --per-message 1 --backends sqlite pg

With ``--rate R`` the publisher offers R readings a second, paced, instead of all at once: whether the
worker keeps up (the store full soon after the last publish) and its lag while it does (sustained ingest).

    .venv/bin/python benchmarks/bench_live.py --readings 1200000 --per-message 100 --rate 40000
    .venv/bin/python benchmarks/bench_live.py --readings 90000 --per-message 1 --rate 3000

With ``--workers N`` that many workers share one subscription (``--share``), as docs/scaling.md runs them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = work / "mosquitto.conf"
    config.write_text(
        (REPO / "deploy" / "mosquitto.conf").read_text()
        + f"\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {work}/\n"
    )
    log = (work / "mosquitto.log").open("wb")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return broker, port
        time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def readings(n: int, zones: int) -> list[dict[str, Any]]:
    minutes = -(-n // zones)
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes)
    return [
        {
            "timestamp": (start + dt.timedelta(minutes=i // zones)).isoformat(),
            "zone_id": f"B{i % zones // 100}-F{i % zones // 10 % 10}-Z{i % zones % 10}",
            "client_id": "C001",
            "power_w": float(i % 97),
        }
        for i in range(n)
    ]


def stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT coalesce(sum(n), 0) FROM reading_blocks")).scalar_one())
    except Exception:
        return 0
    finally:
        engine.dispose()


def run(backend: str, args: argparse.Namespace, work: Path, port: int, payloads: list[str]) -> dict[str, Any]:
    if backend == "sqlite":
        url = f"sqlite:///{work / 'live.db'}"
        (work / "live.db").unlink(missing_ok=True)
    else:
        name = "bench_live"
        with psycopg.connect(f"{PG}/test", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {name}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    command = [sys.executable, "-m", "slem_ml", "ingest", "--mqtt", f"mqtt://127.0.0.1:{port}", "--db", url]
    command += ["--contracts", str(REPO / "slem_ml/data/contracts.yaml")]
    if args.models_dir is not None:  # a champion: the spike detector on too
        command += ["--models-dir", str(args.models_dir), "--tracking-uri", f"sqlite:///{work / 'none.db'}"]
    if args.workers > 1:  # one shared subscription: each message to one of them
        command += ["--share", "bench"]
    workers = []
    for w in range(args.workers):
        client_id = ["--client-id", f"bench-{backend}-{w}-{time.time_ns()}"]
        workers.append(
            subprocess.Popen(
                command + client_id, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
        time.sleep(4.0)  # started (the first creates the schema), connected and subscribed
    total = args.readings
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.time_ns()}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    began = time.perf_counter()
    per_s = args.rate / args.per_message  # messages a second; 0: as fast as the publisher goes
    infos = []
    for k, p in enumerate(payloads):
        if per_s:
            while time.perf_counter() < began + k / per_s:
                time.sleep(0.0005)
        infos.append(pub.publish("slem/readings", p, qos=1))
    for info in infos:
        info.wait_for_publish(600)
    published = time.perf_counter() - began
    while stored(url) < total and time.perf_counter() - began < 900:
        time.sleep(0.05)
    done = time.perf_counter() - began
    pub.loop_stop()
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    logs = [worker.communicate(timeout=120) for worker in workers]
    out, err = "\n".join(o for o, _ in logs), "\n".join(e for _, e in logs)
    lags = re.findall(r"lag p50 ([\d.]+) ms, p95 ([\d.]+) ms", out + err)  # the worst worker's
    lag = max(lags, key=lambda pair: float(pair[1])) if lags else None
    return {
        "backend": backend,
        "readings": total,
        "offered_readings_per_s": args.rate or None,
        "messages": len(payloads),
        "per_message": args.per_message,
        "stored": stored(url),
        "publish_s": round(published, 2),
        "all_stored_s": round(done, 2),
        "readings_per_s": round(total / done),
        "messages_per_s": round(len(payloads) / done),
        "publisher_messages_per_s": round(len(payloads) / published),
        "workers": args.workers,
        "lag_p50_ms": float(lag[0]) if lag else None,
        "lag_p95_ms": float(lag[1]) if lag else None,
        "worker": [line for line in (out + err).splitlines() if "stopped after" in line],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=400_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "pg"], choices=["sqlite", "pg"])
    parser.add_argument("--workers", type=int, default=1, help="workers sharing one subscription")
    parser.add_argument("--rate", type=float, default=0.0, help="readings a second to publish (0: at once)")
    parser.add_argument("--models-dir", type=Path, help="a champion bundle: spike on (default: rules only)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = readings(args.readings, args.zones)
    k = args.per_message
    payloads = [json.dumps(rows[i] if k == 1 else rows[i : i + k]) for i in range(0, len(rows), k)]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        broker, port = start_broker(work)
        try:
            for backend in args.backends:
                result = run(backend, args, work, port, payloads)
                results.append(result)
                print(json.dumps(result), flush=True)
        finally:
            broker.terminate()
            broker.wait(10)
    load = os.getloadavg()[0]
    print(f"done; load {load:.2f}; {threading.active_count()} threads")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

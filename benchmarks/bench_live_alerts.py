"""Live alerts and a worker killed mid-stream (issue 13, SPEC §9), through a real broker.

``--mode latency``: ``--zones`` zones report every ``--every`` seconds in real time, each a single-reading
message stamped when it is sent. Before that, every zone is given a lit run outside contracted hours (its
client has none) that started 12 h before now plus an offset spread over the first minutes, so each zone
crosses the 12-hour stuck-on rule once while the feed runs. Measured: from the publish of the reading that
crosses it to the alert arriving on ``slem/alerts/#`` (committed, then published), p50 / p95 / max.

``--mode kill``: ``--readings`` readings in arrays of 100 are published; the worker is killed with SIGKILL
when about ``--kill-at`` of them are stored, restarted, and the run ends when the store holds them all.
Checks that every reading is stored exactly once (``sum(n)`` of the blocks equals the readings published,
each (zone, instant) being a distinct reading) and reports the time.

    .venv/bin/python benchmarks/bench_live_alerts.py --mode latency --zones 500 --every 10 --backends sqlite
    .venv/bin/python benchmarks/bench_live_alerts.py --mode latency --zones 500 --every 10 --backends pg
    .venv/bin/python benchmarks/bench_live_alerts.py --mode kill --readings 1000000 --backends sqlite pg
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from bench_live import PG, REPO, readings, start_broker, stored

NIGHT_CONTRACTS = """site: {timezone: Europe/Berlin, currency: EUR}
sampling: {on_threshold_w: 5, max_gap_minutes: 60}
clients:
  N001: {name: Night Owl GmbH, hours: {sun: "03:00-03:15"}}
"""


def database(backend: str, work: Path, name: str) -> str:
    if backend == "sqlite":
        (work / f"{name}.db").unlink(missing_ok=True)
        return f"sqlite:///{work / name}.db"
    with psycopg.connect(f"{PG}/test", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def worker(port: int, url: str, contracts: Path, work: Path, client_id: str, models: Path | None) -> Any:
    command = [sys.executable, "-m", "slem_ml", "ingest", "--mqtt", f"mqtt://127.0.0.1:{port}", "--db", url]
    command += ["--client-id", client_id, "--contracts", str(contracts)]
    if models is not None:
        command += ["--models-dir", str(models), "--tracking-uri", f"sqlite:///{work / 'none.db'}"]
    log = (work / f"{client_id}.log").open("a")
    process = subprocess.Popen(command, cwd=work, stdout=log, stderr=log, text=True)
    time.sleep(4.0)  # started, schema created, connected and subscribed
    return process


def client(port: int, name: str) -> Any:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.time_ns()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def latency(backend: str, args: argparse.Namespace, work: Path, port: int) -> dict[str, Any]:
    url = database(backend, work, "bench_alerts")
    contracts = work / "night.yaml"
    contracts.write_text(NIGHT_CONTRACTS)
    ingest = worker(port, url, contracts, work, f"alerts-{backend}", args.models_dir)
    zones = [f"B{z // 100}-F{z // 10 % 10}-Z{z % 10}" for z in range(args.zones)]
    arrived: dict[tuple[str, str], float] = {}
    listener = client(port, "listener")
    listener.on_message = lambda c, u, m: arrived.setdefault(_key(json.loads(m.payload)), time.perf_counter())
    listener.subscribe("slem/alerts/#", qos=1)
    pub = client(port, "feed")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    spread = args.spread_s
    # history: each zone lit since 12 h + its offset ago, a reading every 30 min, in one array per zone
    for i, zone in enumerate(zones):
        start = now - dt.timedelta(hours=12) + dt.timedelta(seconds=spread * i / len(zones))
        times = [
            start + dt.timedelta(minutes=30 * k)
            for k in range(24)
            if start + dt.timedelta(minutes=30 * k) < now
        ]
        body = [
            {"timestamp": t.isoformat(), "zone_id": zone, "client_id": "N001", "power_w": 80.0} for t in times
        ]
        pub.publish("slem/readings", json.dumps(body), qos=1).wait_for_publish(60)
    time.sleep(3.0)
    sent: dict[tuple[str, str], float] = {}
    began = time.perf_counter()
    rounds = int((spread + 3 * args.every) // args.every) + 1
    for r in range(rounds):
        due = began + r * args.every
        for i, zone in enumerate(zones):  # the zones' readings spread over the interval
            while time.perf_counter() < due + args.every * i / len(zones):
                time.sleep(0.001)
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            sent[(zone, stamp)] = time.perf_counter()
            pub.publish(
                f"slem/readings/{zone}",
                json.dumps({"timestamp": stamp, "client_id": "N001", "power_w": 80.0}),
                qos=1,
            )
    time.sleep(10.0)
    pub.loop_stop()
    listener.loop_stop()
    ingest.send_signal(signal.SIGTERM)
    ingest.wait(120)
    waits = [arrived[k] - sent[k] for k in arrived if k in sent]
    ms = np.array(waits) * 1000
    return {
        "mode": "latency", "backend": backend, "zones": args.zones, "every_s": args.every,
        "messages_per_s": round(args.zones / args.every), "alerts": len(arrived), "matched": len(waits),
        "p50_ms": round(float(np.percentile(ms, 50))) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95))) if len(ms) else None,
        "max_ms": round(float(ms.max())) if len(ms) else None,
    }  # fmt: skip


def _key(alert: dict[str, Any]) -> tuple[str, str]:
    detected = dt.datetime.fromisoformat(alert["detected_at"]).astimezone(dt.UTC)
    return alert["zone_id"], detected.isoformat(timespec="milliseconds")


def kill(backend: str, args: argparse.Namespace, work: Path, port: int) -> dict[str, Any]:
    url = database(backend, work, "bench_kill")
    contracts = REPO / "slem_ml/data/contracts.yaml"
    name = f"kill-{backend}-{time.time_ns()}"
    ingest = worker(port, url, contracts, work, name, args.models_dir)
    rows = readings(args.readings, args.zones)
    payloads = [json.dumps(rows[i : i + 100]) for i in range(0, len(rows), 100)]
    pub = client(port, "stream")
    began = time.perf_counter()
    done = threading.Event()

    def publish() -> None:
        for info in [pub.publish("slem/readings", p, qos=1) for p in payloads]:
            info.wait_for_publish(900)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    while stored(url) < args.kill_at * args.readings:
        time.sleep(0.05)
    at_kill = stored(url)
    ingest.send_signal(signal.SIGKILL)
    ingest.wait()
    killed_at = time.perf_counter() - began
    ingest = worker(port, url, contracts, work, name, args.models_dir)
    while stored(url) < args.readings and time.perf_counter() - began < 1800:
        time.sleep(0.2)
    total = time.perf_counter() - began
    time.sleep(3.0)  # anything redelivered after the last reading landed is a duplicate, not a new row
    final = stored(url)
    ingest.send_signal(signal.SIGTERM)
    ingest.wait(120)
    pub.loop_stop()
    return {
        "mode": "kill", "backend": backend, "readings": args.readings, "stored_at_kill": at_kill,
        "killed_after_s": round(killed_at, 1), "stored": final, "exactly_once": final == args.readings,
        "all_stored_s": round(total, 1), "published_all": done.is_set(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["latency", "kill"], default="latency")
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between a zone's readings")
    parser.add_argument("--spread-s", type=float, default=120.0, help="zones cross the 12 h rule over this")
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--kill-at", type=float, default=0.4)
    parser.add_argument("--models-dir", type=Path, help="a champion bundle: spike on (default: rules only)")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "pg"], choices=["sqlite", "pg"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        broker, port = start_broker(work)
        try:
            for backend in args.backends:
                result = (latency if args.mode == "latency" else kill)(backend, args, work, port)
                print(json.dumps(result), flush=True)
        finally:
            broker.terminate()
            broker.wait(10)


if __name__ == "__main__":
    main()

"""The app's memory over an hour of live ingest (issue 13, SPEC §9), with the Live tab open in a browser.

Starts a Mosquitto of its own (``deploy/mosquitto.conf``), ``slem ingest`` and ``slem serve`` on one SQLite
file, then a feed of ``--zones`` zones each reporting every ``--every`` seconds (single-reading messages,
stamped when sent), and headless Chromium (Debian's, through Playwright) on the app's Live tab, which
refreshes itself. Every ``--sample-s`` it records the resident memory (RSS) of the ``slem serve`` and
``slem ingest`` processes and the readings stored; at the end it prints the samples and the growth of the
app's RSS from the first minutes to the end.

    .venv/bin/python benchmarks/bench_live_app.py --minutes 60 --zones 2000 --every 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from bench_live import REPO, free_port, start_broker, stored

CHROMIUM = "/usr/bin/chromium"


def rss_mb(pid: int) -> float:
    """Resident memory of a process [MB] (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def feed(port: int, zones: int, every: float, stop: threading.Event) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"feed-{time.time_ns()}")
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    names = [f"B{z // 200}-F{z // 20 % 10}-Z{z % 20}" for z in range(zones)]
    began = time.perf_counter()
    r = 0
    while not stop.is_set():
        for i, zone in enumerate(names):
            due = began + r * every + every * i / zones
            while time.perf_counter() < due and not stop.is_set():
                time.sleep(0.002)
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            power = 60.0 + (i % 7) * 10 if (i + r) % 5 else 0.0
            payload = {"timestamp": stamp, "client_id": "C00" + str(1 + i % 6), "power_w": power}
            pub.publish(f"slem/readings/{zone}", json.dumps(payload), qos=1)
        r += 1
    pub.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--zones", type=int, default=2000)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright  # lazy: only this benchmark drives a browser

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        broker, port = start_broker(work)
        url = f"sqlite:///{work / 'slem.db'}"
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(work / "gradio")}
        models = ["--models-dir", str(args.models_dir)] if args.models_dir else []
        common = ["--contracts", str(REPO / "slem_ml/data/contracts.yaml"), "--db", url, *models]
        log = (work / "ingest.log").open("w")
        ingest = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "ingest", "--mqtt", f"mqtt://127.0.0.1:{port}", *common],
            cwd=work, stdout=log, stderr=log, env=env,
        )  # fmt: skip
        app_port = free_port()
        serve_log = (work / "serve.log").open("w")
        serve = subprocess.Popen(
            [sys.executable, "-m", "slem_ml", "serve", "--host", "127.0.0.1", "--port", str(app_port),
             *common],
            cwd=work, stdout=serve_log, stderr=serve_log, env=env,
        )  # fmt: skip
        page_url = f"http://127.0.0.1:{app_port}/"
        for _ in range(300):
            try:
                urllib.request.urlopen(page_url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        stop = threading.Event()
        feeder = threading.Thread(target=feed, args=(port, args.zones, args.every, stop), daemon=True)
        feeder.start()
        samples: list[dict[str, Any]] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(page_url)
            page.get_by_role("tab", name="Live").click()
            began = time.perf_counter()
            while time.perf_counter() - began < args.minutes * 60:
                time.sleep(args.sample_s)
                sample = {
                    "minute": round((time.perf_counter() - began) / 60, 1),
                    "serve_rss_mb": round(rss_mb(serve.pid), 1),
                    "ingest_rss_mb": round(rss_mb(ingest.pid), 1),
                    "stored": stored(url),
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)
            browser.close()
        stop.set()
        feeder.join(30)
        for process in (serve, ingest):
            process.send_signal(signal.SIGTERM)
            process.wait(60)
        broker.terminate()
        broker.wait(10)
        early = samples[min(4, len(samples) - 1)]["serve_rss_mb"] if samples else float("nan")
        summary = {
            "zones": args.zones, "every_s": args.every, "minutes": args.minutes,
            "serve_rss_mb_at_5_min": early,
            "serve_rss_mb_end": samples[-1]["serve_rss_mb"] if samples else None,
            "ingest_rss_mb_end": samples[-1]["ingest_rss_mb"] if samples else None,
            "stored": samples[-1]["stored"] if samples else 0,
        }  # fmt: skip
        print(json.dumps(summary))
        if args.json:
            args.json.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))


if __name__ == "__main__":
    main()

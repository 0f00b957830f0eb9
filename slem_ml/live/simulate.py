"""``slem simulate --mqtt``: a demo feed (SPEC §9) — a building's readings published as they happen.

The generator (:mod:`slem_ml.generator`) makes today's readings for ``zones`` zones, from local midnight.
The feed publishes them in time order as JSON arrays, one message per instant, on ``slem/readings``: the
hours already past at ``speed`` times real time, then each instant as the clock reaches it. So a newcomer
sees the morning fill in within a minute or two, and then the building live, faults and alerts included.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.generator.generate import GeneratorConfig, generate
from slem_ml.live.payloads import TOPIC_ROOT
from slem_ml.live.worker import Broker

__all__ = ["simulate"]


def simulate(
    broker: Broker,
    site: SiteConfig,
    stop: threading.Event,
    *,
    zones: int = 40,
    step_minutes: int = 1,
    speed: float = 60.0,
    seed: int = 7,
    today: dt.date | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Publish today's generated readings until the day ends or ``stop`` is set; how many were sent."""
    day = today or dt.datetime.now(site.site.tz).date()
    config = GeneratorConfig(start=day, days=1, zones=zones, step_minutes=step_minutes, seed=seed, site=site)
    data = generate(config)
    readings = data.readings
    t_ms = readings["timestamp"].dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]").view(np.int64)
    instants, starts = np.unique(t_ms, return_index=True)
    ends = np.r_[starts[1:], len(t_ms)]
    stamps = readings["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy()
    columns = ["zone_id", "client_id", "power_w", "cleaning_staff"]
    values = {c: readings[c].to_numpy() for c in columns}

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"slem-simulate-{seed}")
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise InputError(f"cannot reach the broker at {broker} ({exc.strerror or exc})") from None
    client.loop_start()
    log(f"simulate: {zones} zones, {len(readings):,} readings of {day} to {broker}, {speed:g}x until now")
    sent, began = 0, time.monotonic()
    first, started = (int(instants[0]) if len(instants) else 0), time.time() * 1000
    try:
        for instant, a, b in zip(instants.tolist(), starts.tolist(), ends.tolist(), strict=True):
            if instant <= started:  # the hours already past: at `speed` times real time
                _wait(stop, time.monotonic, began + (instant - first) / 1000 / speed)
            else:  # then as the clock reaches each instant
                _wait(stop, time.time, instant / 1000)
            if stop.is_set():
                break
            body = [_reading(stamps[i], values, columns, i) for i in range(a, b)]
            client.publish(TOPIC_ROOT, json.dumps(body), qos=1)
            sent += b - a
    finally:
        client.loop_stop()
        client.disconnect()
    log(f"simulate: sent {sent:,} readings")
    return sent


def _wait(stop: threading.Event, clock: Callable[[], float], due: float) -> None:
    """Sleep until ``clock()`` [s] reaches ``due``, or ``stop`` is set."""
    while not stop.is_set() and (left := due - clock()) > 0:
        stop.wait(min(left, 1.0))


def _reading(stamp: str, values: dict[str, np.ndarray], columns: list[str], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": stamp}
    for c in columns:
        v = values[c][i]
        out[c] = bool(v) if c == "cleaning_staff" else float(v) if c == "power_w" else str(v)
    return out

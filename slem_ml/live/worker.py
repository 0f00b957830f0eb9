"""``slem ingest``: the long-running MQTT worker (SPEC §9).

The network thread (paho's loop) only receives: each message goes onto an in-process queue. The worker's
own thread takes the queue in batches, stores each batch in one transaction
(:func:`~slem_ml.live.batch.store_messages`) and acknowledges its messages only after the commit (paho's
``manual_ack``), so a worker killed at any moment — even ``kill -9`` — loses nothing: the broker sends
again what was not acknowledged, and the store counts a reading it already holds as a duplicate.

The session is persistent (MQTT 5, a fixed client id, ``clean_start`` off, a session expiry), so messages
published while the worker is away wait at the broker — as far as the broker keeps them: its queue limits
are its configuration (``deploy/mosquitto.conf``, docs/operations.md). The worker's receive maximum bounds
the messages in flight, hence its memory. With ``share``, several workers split one subscription
(``$share/<group>/<topic>``): each message goes to one of them.

Re-billing what the readings changed runs in its own transaction when the stream pauses or every
``rebill_every_s`` (:func:`~slem_ml.live.batch.rebill_queued`).

The live detectors (:class:`~slem_ml.live.watch.LiveWatch`) run in each batch's transaction, and on the
clock every ``clock_every_s`` and once a day on a thread of their own
(:class:`~slem_ml.live.housekeeping.Housekeeping`); the alerts they raise or resolve are published on
``slem/alerts/<zone_id>`` (QoS 1) once committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.live.batch import Stored, quarantine_message, rebill_queued, store_messages
from slem_ml.live.housekeeping import Housekeeping
from slem_ml.live.payloads import Message
from slem_ml.live.watch import LiveWatch, run_detectors
from slem_ml.storage.database import write_session

__all__ = ["Broker", "IngestWorker", "Totals", "parse_broker"]

SESSION_EXPIRY_S = 7 * 86_400  # a stopped worker's messages wait at the broker this long [s]
RECEIVE_MAXIMUM = 20_000  # messages the broker may have in flight to the worker at once
ALERT_TOPIC = "slem/alerts"  # alerts are published on ALERT_TOPIC/<zone_id>


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_broker(url: str) -> Broker:
    """``mqtt://HOST[:PORT]`` (port 1883 by default)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme != "mqtt" or not parts.hostname:
        raise InputError(f"{url}: expected mqtt://HOST[:PORT] (mqtts is not supported yet)")
    if parts.username or parts.password:
        raise InputError("put no user name or password in the broker address; it would show in `ps`")
    try:
        port = parts.port or 1883
    except ValueError:
        raise InputError(f"{url}: the port is not a number") from None
    return Broker(parts.hostname, port)


@dataclass
class Totals:
    """What the worker has done since it started."""

    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    corrected: int = 0
    quarantined: int = 0
    batches: int = 0
    rebilled_days: int = 0
    alerts: int = 0  # alerts raised or resolved, and published
    connects: int = 0
    lags_ms: list[float] = field(default_factory=list)  # arrival → commit, per message (last 100,000)


@dataclass
class _Pending:
    message: Message
    mid: int
    qos: int


class IngestWorker:
    """One worker: connect, subscribe, store and acknowledge until ``stop`` is set (module docstring)."""

    def __init__(
        self,
        broker: Broker,
        engine: Engine,
        site: SiteConfig,
        *,
        topic: str = "slem/readings/#",
        share: str | None = None,
        client_id: str = "slem-ingest",
        batch_messages: int = 5_000,
        batch_wait_s: float = 0.1,
        rebill_every_s: float = 2.0,
        clock_every_s: float = 10.0,
        watch: LiveWatch | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.broker, self.engine, self.site = broker, engine, site
        self.topic = f"$share/{share}/{topic}" if share else topic
        self.client_id = client_id
        self.batch_messages, self.batch_wait_s, self.rebill_every_s = (
            batch_messages,
            batch_wait_s,
            rebill_every_s,
        )
        self.clock_every_s = clock_every_s
        self.watch = watch if watch is not None else LiveWatch(site, None)
        self.log = log
        self.totals = Totals()
        self.connected = threading.Event()
        self._inbox: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._client = self._make_client()

    # --- the network thread ---------------------------------------------------------------------------

    def _make_client(self) -> Any:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self.log(f"ingest: {self.broker} refused the connection: {reason_code}")
            return
        self.totals.connects += 1
        resumed = "resumed its session" if flags.session_present else "new session"
        self.log(f"ingest: connected to {self.broker} ({resumed}), subscribing to {self.topic}")
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        """The broker confirmed the subscription: from now on it keeps what arrives while we are away."""
        if any(code.is_failure for code in reason_codes):
            self.log(f"ingest: {self.broker} refused the subscription to {self.topic}: {reason_codes[0]}")
            return
        self.log(
            f"ingest: subscribed to {self.topic}; the broker keeps what arrives while this worker is away"
        )
        self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connected.clear()
        if not self._stopping:
            self.log(f"ingest: lost {self.broker} ({reason_code}); reconnecting with backoff")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.log(f"ingest: cannot reach {self.broker}; trying again with backoff (1 to 30 s)")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        received = dt.datetime.now(dt.UTC)
        self._inbox.put(_Pending(Message(msg.topic, bytes(msg.payload), received), msg.mid, msg.qos))

    # --- the worker's thread --------------------------------------------------------------------------

    _stopping = False
    _stop = threading.Event()  # run()'s, so that a wait for the database can be cut short
    _dirty = True  # dates may be queued for re-billing (at the start: by a worker that died)

    def run(self, stop: threading.Event, *, report_every_s: float = 10.0) -> Totals:
        """Work until ``stop`` is set; then store and acknowledge what has arrived, and disconnect."""
        self._stop = stop
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props
        )
        self._client.loop_start()
        chores = Housekeeping(
            self.engine, self.watch, publish=self._publish, log=self.log, clock_every_s=self.clock_every_s
        ).start(stop)
        last_rebill = last_report = time.monotonic()
        reported = Totals()
        try:
            while not stop.is_set():
                batch = self._take(timeout=0.5)
                if batch:
                    self._store(batch)
                now = time.monotonic()
                due = not batch or now - last_rebill >= self.rebill_every_s
                if self._dirty and due and self._rebill():  # idle: no write lock taken
                    last_rebill = now
                if now - last_report >= report_every_s:
                    self._report(reported)
                    reported, last_report = Totals(**{**self.totals.__dict__, "lags_ms": []}), now
            self._stopping = True
            while batch := self._take(timeout=0.0):  # what arrived before the stop
                self._store(batch)
            if self._dirty:
                self._rebill()
        finally:
            self._stopping = True
            chores.join(timeout=5.0)
            self._client.disconnect()
            self._client.loop_stop()
        self._report(reported)
        return self.totals

    def _take(self, timeout: float) -> list[_Pending]:
        """The next batch: what is waiting, up to ``batch_messages``, gathering for ``batch_wait_s``."""
        try:
            first = self._inbox.get(timeout=timeout) if timeout else self._inbox.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_messages:
            try:
                batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[_Pending]) -> None:
        """Store ``batch`` in one transaction, then acknowledge it. The database being away is retried
        with backoff (nothing is acknowledged until stored); any other failure is the batch's own: its
        messages are stored one by one, and one that still fails is quarantined with the error."""
        delay = 0.5
        while True:
            try:
                done = self._commit(batch)
                break
            except DBAPIError as exc:
                if not exc.connection_invalidated and not isinstance(exc, OperationalError):
                    done = self._one_by_one(batch, exc)
                    break
                self.log(
                    f"ingest: could not store {len(batch)} messages ({exc.orig}); retrying in {delay:.1f} s"
                )
                if self._stop.wait(delay):  # stopping: not acknowledged, the broker sends them again
                    return
                delay = min(delay * 2, 30.0)
            except Exception as exc:
                done = self._one_by_one(batch, exc)
                break
        committed = dt.datetime.now(dt.UTC)
        for pending in batch:
            if pending.qos:
                self._client.ack(pending.mid, pending.qos)
        self._publish(done.alerts)
        t = self.totals
        t.messages += len(batch)
        t.batches += 1
        t.accepted += done.accepted
        t.duplicates += done.duplicates
        t.corrected += done.corrected
        t.quarantined += len(done.quarantined)
        self._dirty |= done.accepted + done.corrected > 0
        t.lags_ms += [(committed - p.message.received).total_seconds() * 1000 for p in batch]
        del t.lags_ms[:-100_000]

    def _commit(self, batch: list[_Pending]) -> Stored:
        messages = [p.message for p in batch]
        with write_session(self.engine) as session:
            connection = session.connection()
            done = store_messages(
                connection, self.site, messages, sources=[f"mqtt:{m.topic}" for m in messages],
                source=f"{self.broker}/{self.topic}", actor="ingest",
            )  # fmt: skip
            done.alerts = run_detectors(self.watch, connection, done.frames, self.log)
            done.frames = []  # not kept past the transaction
        return done

    def _one_by_one(self, batch: list[_Pending], error: Exception) -> Stored:
        """Store each message of a batch that failed as a whole; quarantine those that fail alone."""
        if len(batch) > 1:
            self.log(f"ingest: a batch of {len(batch)} messages failed ({error}); storing them one by one")
        total = Stored()
        for pending in batch:
            try:
                done = self._commit([pending])
            except Exception as exc:
                reason = f"could not be stored: {type(exc).__name__}: {exc}"[:500]
                self.log(f"ingest: quarantined a message on {pending.message.topic}: {reason}")
                with write_session(self.engine) as session:
                    quarantine_message(
                        session.connection(), pending.message, f"mqtt:{pending.message.topic}", reason
                    )
                done = Stored(quarantined=[(0, None, reason)])
            total.accepted += done.accepted
            total.duplicates += done.duplicates
            total.corrected += done.corrected
            total.quarantined += done.quarantined
            total.alerts += done.alerts
        return total

    def _rebill(self) -> bool:
        """Re-bill the queued dates; False when a database error left them queued."""
        try:
            with write_session(self.engine) as session:
                done = rebill_queued(session.connection(), self.site)
        except Exception as exc:
            self.log(f"ingest: re-billing failed ({exc}); the dates stay queued")
            return False
        self.totals.rebilled_days += done.zone_days
        self._dirty = False
        return True

    def _publish(self, alerts: list[dict]) -> None:
        """Publish committed alerts on ``slem/alerts/<zone_id>`` (QoS 1; paho queues them while away)."""
        for alert in alerts:
            payload = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in alert.items()}
            self._client.publish(f"{ALERT_TOPIC}/{alert['zone_id']}", json.dumps(payload), qos=1)
        self.totals.alerts += len(alerts)

    def _report(self, before: Totals) -> None:
        t = self.totals
        if t.messages == before.messages:
            return
        self.log(
            f"ingest: {t.messages - before.messages:,} messages: {t.accepted - before.accepted:,} readings "
            f"stored, {t.duplicates - before.duplicates:,} duplicates, {t.corrected - before.corrected:,} "
            f"corrected, {t.quarantined - before.quarantined:,} quarantined, "
            f"in {t.batches - before.batches:,} batches; "
            f"{t.rebilled_days - before.rebilled_days:,} zone-days re-billed; "
            f"{t.alerts - before.alerts:,} alerts raised or resolved"
        )


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM and SIGINT (the worker then finishes its batch and disconnects)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread: the caller stops it
            signal.signal(signum, lambda *_: stop.set())

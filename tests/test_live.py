"""Live ingest (SPEC §9; slem_ml/live/): payloads, leases, a batch into the store, and a real broker.

The broker tests start their own Mosquitto from ``deploy/mosquitto.conf`` on a free port (the machine's
broker keeps its default queue limits), so what they check is what a site configured as
docs/operations.md says gets.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from slem_ml.config.leases import parse_leases
from slem_ml.config.site import parse_site
from slem_ml.errors import ConfigError
from slem_ml.live.batch import rebill_queued, store_messages
from slem_ml.live.payloads import MAX_MESSAGE_BYTES, Message, parse_message
from slem_ml.live.worker import IngestWorker, parse_broker
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.tables import LiveQuarantine, ReadingBlock
from tests.test_oracle import scenarios
from tests.test_readings_store import (  # noqa: F401 — template_db is a fixture
    against_the_reference,
    copy_of,
    template_db,
    the_whole,
)

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
BASE = {
    "site": {"timezone": "Europe/Berlin", "currency": "EUR"},
    "clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}, "C002": {"hours": "24/7"}},
}


def msg(body: Any, topic: str = "slem/readings", received: dt.datetime = NOW) -> Message:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Message(topic, payload, received)


def reading(clock: str = "2026-12-07T08:00:00Z", zone: str = "HQ-F1-Z1", **extra: Any) -> dict[str, Any]:
    return {"timestamp": clock, "zone_id": zone, "client_id": "C001", "power_w": 40.0, **extra}


# --- payloads -----------------------------------------------------------------------------------------


def test_an_object_an_array_and_a_number_on_a_zone_topic_are_readings() -> None:
    assert parse_message(msg(reading())).rows == [reading()]
    assert len(parse_message(msg([reading(), reading("2026-12-07T08:01:00Z")])).rows) == 2
    bare = parse_message(msg(42.5, topic="slem/readings/HQ-F2-Z3"))
    assert bare.rows == [
        {"timestamp": "2026-12-07T09:00:00.000+00:00", "zone_id": "HQ-F2-Z3", "power_w": 42.5}
    ]
    stamped = parse_message(msg({"power_w": 3}, topic="slem/readings/HQ-F2-Z3"))
    assert stamped.rows[0]["zone_id"] == "HQ-F2-Z3" and stamped.rows[0]["timestamp"].startswith("2026-12-07")


@pytest.mark.parametrize(
    ("body", "topic", "reason"),
    [
        (b"not json{", "slem/readings", "not JSON"),
        (b'"a text"', "slem/readings", "a JSON str is not a reading"),
        (b"42", "slem/readings", "needs the zone in the topic"),
        ([], "slem/readings", "an empty array"),
        ([7], "slem/readings", "a JSON int is not a reading object"),
        ({"zone_id": "Z", "power_w": 1}, "slem/readings", "missing timestamp"),
        ({"timestamp": "2026-12-07T08:00:00Z", "power_w": 1}, "slem/readings", "missing zone_id"),
        (reading(power_w=[1]), "slem/readings", "power_w must be a number, got a list"),
        (reading(power_w=True), "slem/readings", "power_w must be a number"),
        (reading(zone_id=5), "slem/readings", "zone_id must be a text"),
        (reading(colour="red"), "slem/readings", "unknown field 'colour'"),
        (reading(zone="HQ-F1-Z1"), "slem/readings/HQ-F9-Z9", "differs from the topic's"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "slem/readings", "over the limit"),
    ],
)
def test_a_bad_message_says_why(body: Any, topic: str, reason: str) -> None:
    parsed = parse_message(msg(body, topic))
    assert not parsed.rows
    assert len(parsed.problems) == 1 and reason in parsed.problems[0][1]
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert parsed.head == payload[:200].decode("utf-8", errors="replace")  # the first 200 bytes, as text


def test_one_bad_reading_of_an_array_leaves_the_others() -> None:
    parsed = parse_message(msg([reading(), "oops", reading("2026-12-07T08:01:00Z")]))
    assert len(parsed.rows) == 2 and parsed.problems == [(1, "a JSON str is not a reading object")]
    assert parsed.items == [0, 2]  # each row keeps its place in the array


def test_a_bad_value_after_a_rejected_item_is_quarantined_under_its_own_index(engine: Engine) -> None:
    site = parse_site(BASE)
    batch = [msg(["oops", reading(power_w="x"), reading("2026-12-07T08:01:00Z")])]
    with write_session(engine) as session:
        done = store_messages(session.connection(), site, batch, sources=["t"], source="t", actor="t")
    assert sorted(done.quarantined) == [
        (0, 0, "a JSON str is not a reading object"),
        (0, 1, "non-numeric power_w"),
    ]
    assert done.accepted == 1


# --- leases -------------------------------------------------------------------------------------------


def test_the_first_lease_that_applies_gives_the_client() -> None:
    leases = parse_leases(
        [
            {"zone": "HQ-F1-Z1", "client": "C002", "from": "2026-12-01", "to": "2026-12-06"},
            {"zone": "HQ-F1-*", "client": "C001"},
        ],
        {"C001", "C002"},
        "contracts.yaml",
    )
    import numpy as np

    days = np.array([(dt.date(2026, 12, d) - dt.date(1970, 1, 1)).days for d in (5, 7, 7, 7)])
    zones = np.array(["HQ-F1-Z1", "HQ-F1-Z1", "HQ-F1-Z2", "HQ-F2-Z1"], dtype=object)
    assert leases.clients_of(zones, days).tolist() == ["C002", "C001", "C001", ""]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"zone": "Z"}, "leases[0].client: missing"),
        ({"zone": "Z", "client": "C999"}, "'C999' is not one of the clients"),
        ({"zone": "Z", "client": "C001", "from": "7 May"}, "leases[0].from: expected a date"),
        ({"zone": "Z", "client": "C001", "from": "2026-02-01", "to": "2026-01-01"}, "is before from"),
        ({"zone": "Z", "client": "C001", "floor": 2}, "leases[0].floor: unknown key"),
    ],
)
def test_a_bad_lease_is_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_site({**BASE, "leases": [raw]})
    assert message in str(caught.value)


# --- a batch into the store ------------------------------------------------------------------------------


def stored_readings(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.coalesce(func.sum(ReadingBlock.n), 0))).scalar_one())


def test_a_batch_stores_counts_and_quarantines_each_reading_once(engine: Engine) -> None:
    site = parse_site({**BASE, "leases": [{"zone": "HQ-F1-*", "client": "C001"}]})
    batch = [
        msg([reading(), reading("2026-12-07T08:01:00Z", power_w="x")]),
        msg(42.5, topic="slem/readings/HQ-F1-Z2"),  # no client: the lease gives C001
        msg(7.0, topic="slem/readings/HQ-F2-Z1"),  # no client and no lease
        msg(b"garbage"),
        msg(reading("2099-01-01T00:00:00Z")),
        msg(reading("2016-01-01T00:00:00Z")),
        msg(reading("2026-12-07T08:00:00Z")),  # the first reading again: a duplicate
        msg({**reading("2026-12-07T08:02:00Z"), "client_id": "C404"}),
    ]
    with write_session(engine) as session:
        done = store_messages(
            session.connection(), site, batch, sources=["mqtt:t"] * len(batch), source="t", actor="ingest"
        )
    assert (done.accepted, done.duplicates, done.corrected) == (2, 1, 0)
    reasons = sorted(reason for _, _, reason in done.quarantined)
    assert reasons == sorted(
        [
            "non-numeric power_w",
            "no client_id and no lease for this zone on that date (leases: in contracts.yaml)",
            "not JSON (expected an object, an array of objects or a number)",
            "timestamp is more than a day in the future",  # 2099: the file rule, judged at arrival
            "older than a year: upload it as a file (slem score)",
            "unknown client_id 'C404' (not in contracts)",
        ]
    ), reasons
    assert stored_readings(engine) == 2
    with engine.connect() as connection:
        rows = connection.execute(select(LiveQuarantine).order_by(LiveQuarantine.id)).all()
    assert len(rows) == 6 and {r.item for r in rows if "non-numeric" in r.reason} == {1}
    assert any(r.head == "garbage" for r in rows)
    with write_session(engine) as session:  # a correction, later
        again = store_messages(
            session.connection(), site, [msg(reading(power_w=0.0))], sources=["t"], source="t", actor="x"
        )
    assert (again.accepted, again.duplicates, again.corrected) == (0, 0, 1)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scenario=scenarios(), data=st.data())
def test_a_stream_of_shuffled_late_and_repeated_messages_bills_as_one_upload(
    template_db: Path,  # noqa: F811
    scenario: Any,
    data: st.DataObject,
) -> None:
    """The oracle's scenarios, streamed: one reading a message, in random order, some sent again later,
    stored in several batches and re-billed from the queue — the invoices and cleaning sessions are the
    slow reference's for all the readings, to the cent."""
    site, rows = scenario
    whole, want = the_whole(rows, site)
    order = data.draw(st.permutations(range(len(whole))))
    repeated = [i for i in order if data.draw(st.integers(0, 5)) == 0]
    stream = order + repeated  # late repeats of messages already sent
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=4)))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def message(i: int) -> Message:
        row = whole[i]
        at = epoch + dt.timedelta(milliseconds=row["ms"])
        body = {
            "timestamp": at.isoformat(timespec="milliseconds"),
            "zone_id": row["zone_id"],
            "client_id": row["client_id"],
            "power_w": float(row["power_w"]),
            "cleaning_staff": bool(row["cleaning_staff"]),
        }
        return Message("slem/readings", json.dumps(body).encode(), at + dt.timedelta(minutes=1))

    for engine in copy_of(template_db):
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            batch = [message(i) for i in stream[a:b]]
            if not batch:
                continue
            with write_session(engine) as session:
                store_messages(
                    session.connection(), site, batch, sources=["t"] * len(batch), source="t", actor="t"
                )
        with write_session(engine) as session:
            rebill_queued(session.connection(), site)
        problems = against_the_reference(engine, site, want)
    assert not problems, "\n".join(problems)


# --- a real broker -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A Mosquitto of the test's own, configured by deploy/mosquitto.conf, on a free port; it can be stopped
    and started again on the same port with the same persistence (a broker restart)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.skip("mosquitto is not installed (Debian package mosquitto)")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            (REPO / "deploy" / "mosquitto.conf").read_text()
            + f"\nlistener {self.port} 127.0.0.1\nallow_anonymous true\npersistence_location {folder}/\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.folder / "mosquitto.log"
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=sink, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"mosquitto did not start: {log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(mosquitto: Mosquitto) -> str:
    """The URL of a Mosquitto of the test's own."""
    return mosquitto.url


def publisher(url: str) -> Any:
    import paho.mqtt.client as mqtt

    address = parse_broker(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{os.getpid()}")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def wait_for(condition: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {seconds} s")


SITE = parse_site({**BASE, "leases": [{"zone": "*", "client": "C001"}]})


def minute_readings(n: int, zones: int = 50) -> list[dict[str, Any]]:
    """``n`` readings of ``zones`` zones, a minute apart per zone, over the last days before NOW."""
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=3)
    return [
        {
            "timestamp": (start + dt.timedelta(minutes=i // zones)).isoformat(),
            "zone_id": f"HQ-F1-Z{i % zones}",
            "power_w": float(i % 97),
        }
        for i in range(n)
    ]


def test_published_readings_are_stored_and_bad_ones_quarantined_through_a_real_broker(
    broker: str, tmp_path: Path
) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    stop = threading.Event()
    worker = IngestWorker(parse_broker(broker), engine, SITE, client_id="t-worker", log=lambda _: None)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        assert worker.connected.wait(10)
        pub = publisher(broker)
        rows = minute_readings(1_000)
        for at in range(0, len(rows), 100):
            pub.publish("slem/readings", json.dumps(rows[at : at + 100]), qos=1).wait_for_publish(10)
        pub.publish("slem/readings/HQ-F1-Z1", "12.5", qos=1).wait_for_publish(10)
        pub.publish("slem/readings", "{broken", qos=1).wait_for_publish(10)
        wait_for(lambda: worker.totals.messages == 12)
    finally:
        stop.set()
        thread.join(30)
        engine.dispose()
    assert not thread.is_alive()
    assert (worker.totals.accepted, worker.totals.quarantined) == (1_001, 1)
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    try:
        assert stored_readings(engine) == 1_001
    finally:
        engine.dispose()


def test_a_burst_of_50000_single_reading_messages_is_stored_whole(broker: str, tmp_path: Path) -> None:
    """Published while the worker is away (its session waits at the broker) and while it is busy: the
    broker configured by deploy/mosquitto.conf drops nothing, and every reading is stored."""
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    engine = open_database(url)
    stop = threading.Event()
    first = IngestWorker(parse_broker(broker), engine, SITE, client_id="t-burst", log=lambda _: None)
    thread = threading.Thread(target=first.run, args=(stop,))
    thread.start()
    assert first.connected.wait(10)
    stop.set()  # the session now exists at the broker; the worker is gone
    thread.join(30)
    rows = minute_readings(50_000, zones=500)
    pub = publisher(broker)
    infos = [pub.publish("slem/readings", json.dumps(row), qos=1) for row in rows[:25_000]]
    stop = threading.Event()
    worker = IngestWorker(parse_broker(broker), engine, SITE, client_id="t-burst", log=lambda _: None)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()  # the second half arrives while it works through the first
    infos += [pub.publish("slem/readings", json.dumps(row), qos=1) for row in rows[25_000:]]
    for info in infos:
        info.wait_for_publish(60)
    try:
        wait_for(lambda: worker.totals.messages >= 50_000, 180)
    finally:
        stop.set()
        thread.join(60)
        pub.loop_stop()
    assert (worker.totals.accepted, worker.totals.quarantined) == (50_000, 0)
    assert stored_readings(engine) == 50_000
    engine.dispose()


def test_a_worker_killed_mid_stream_loses_and_doubles_nothing(broker: str, tmp_path: Path) -> None:
    """``kill -9`` of ``slem ingest`` while a stream arrives, then a restart: every reading stored once."""
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(json.dumps({**BASE, "leases": [{"zone": "*", "client": "C001"}]}))
    command = [sys.executable, "-m", "slem_ml", "ingest", "--mqtt", broker, "--contracts", str(contracts)]
    command += ["--db", url, "--client-id", "t-killed", "--batch", "50"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    first_log = tmp_path / "first.log"
    with first_log.open("wb") as log:
        worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    # subscribed: its session at the broker now keeps what it misses (a slow start once lost the stream)
    wait_for(lambda: b"ingest: subscribed to" in first_log.read_bytes(), 60)
    rows = minute_readings(40_000, zones=200)
    pub = publisher(broker)
    sent = threading.Event()

    def stream() -> None:
        for at in range(0, len(rows), 100):
            pub.publish("slem/readings", json.dumps(rows[at : at + 100]), qos=1)
            time.sleep(0.005)  # a 2-second stream
        sent.set()

    threading.Thread(target=stream).start()
    time.sleep(1.0)
    worker.send_signal(signal.SIGKILL)  # mid-stream, mid-batch
    worker.wait(10)
    probe = open_database(url)
    try:
        at_kill = stored_readings(probe)
    finally:
        probe.dispose()
    assert at_kill < 40_000, "the worker was killed after the stream: nothing was tested"
    assert sent.wait(60)
    again = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engine = open_database(url)
    try:
        wait_for(lambda: stored_readings(engine) >= 40_000, 120)
        time.sleep(1.0)  # nothing more arrives
        assert stored_readings(engine) == 40_000
    finally:
        again.send_signal(signal.SIGTERM)
        out, err = again.communicate(timeout=30)
        engine.dispose()
        pub.loop_stop()
    assert again.returncode == 0, err.decode()
    assert "stopped after" in out.decode()


def test_the_worker_comes_back_when_the_broker_does(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The broker restarts under a running worker: the worker reconnects by itself, resumes its session and
    stores what was published before and after."""
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    stop = threading.Event()
    worker = IngestWorker(parse_broker(mosquitto.url), engine, SITE, client_id="t-back", log=lambda _: None)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    rows = minute_readings(400, zones=20)
    try:
        assert worker.connected.wait(10)
        pub = publisher(mosquitto.url)
        for row in rows[:200]:
            pub.publish("slem/readings", json.dumps(row), qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        wait_for(lambda: stored_readings(engine) == 200)
        mosquitto.stop()
        wait_for(lambda: not worker.connected.is_set(), 10)
        mosquitto.start()
        wait_for(lambda: worker.connected.is_set(), 60)  # reconnects with backoff (1 to 30 s)
        pub = publisher(mosquitto.url)
        for row in rows[200:]:
            pub.publish("slem/readings", json.dumps(row), qos=1).wait_for_publish(10)
        wait_for(lambda: stored_readings(engine) == 400)
        pub.loop_stop()
    finally:
        stop.set()
        thread.join(30)
        engine.dispose()
    assert worker.totals.connects >= 2 and worker.totals.accepted == 400

"""The live detectors against the store (SPEC §9; slem_ml/live/watch.py): alerts committed with their
readings, the clock's dropouts, the champion's daily bands and spikes, and alerts published by a worker on a
real broker."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from slem_ml.io import schema as S
from slem_ml.live.batch import store_messages
from slem_ml.live.payloads import Message
from slem_ml.live.watch import LiveWatch
from slem_ml.live.worker import IngestWorker, parse_broker
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.ingest import ingest
from slem_ml.storage.live_tables import LiveBand, LivePower, LiveZone
from slem_ml.storage.tables import Alert, AuditEntry
from tests.conftest import SITE as GENERATED_SITE
from tests.test_live import SITE, broker, mosquitto, publisher, wait_for  # noqa: F401 (fixtures)

SATURDAY = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)  # no contracted hours: lit is outside them
RECEIVED = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def readings_msg(zone: str, start: dt.datetime, hours: float, power: float, step_min: int = 10) -> Message:
    n = int(hours * 60 / step_min)
    body = [
        {
            "timestamp": (start + dt.timedelta(minutes=step_min * i)).isoformat(),
            "zone_id": zone,
            "power_w": power,
        }
        for i in range(n)
    ]
    return Message(f"slem/readings/{zone}", json.dumps(body).encode(), RECEIVED)


def store(engine: Engine, watch: LiveWatch, *messages: Message, now: dt.datetime = RECEIVED) -> list[dict]:
    """One batch, as the worker stores it: readings and the detectors in one transaction."""
    with write_session(engine) as session:
        connection = session.connection()
        done = store_messages(
            connection, watch.site, list(messages), sources=["t"] * len(messages), source="t", actor="t"
        )
        return watch.after_batch(connection, done.frames, now)


def alerts(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(Alert.__table__).order_by(Alert.id)).all()


def test_a_stuck_on_alert_is_raised_with_its_readings_and_resolved_by_the_dark(engine: Engine) -> None:
    watch = LiveWatch(SITE, None)
    assert watch.off == ("spike", "drift")
    assert store(engine, watch, readings_msg("HQ-F1-Z1", SATURDAY, 6, 80.0)) == []  # 6 h: not yet
    raised = store(engine, watch, readings_msg("HQ-F1-Z1", SATURDAY + dt.timedelta(hours=6), 7, 80.0))
    assert [(a["kind"], a["status"]) for a in raised] == [("stuck_on", "open")]
    (row,) = alerts(engine)
    assert row.run_id is None and row.status == "open" and row.first_seen == SATURDAY
    assert row.detected_at == SATURDAY + dt.timedelta(hours=12, minutes=10)  # the first reading past 12 h
    with engine.connect() as connection:
        state = connection.execute(select(LiveZone.__table__)).one()
        raised_audit = connection.execute(
            select(AuditEntry.action).where(AuditEntry.entity_id == row.alert_id)
        ).all()
        energy = connection.execute(select(LivePower.energy_wh)).scalars().all()
    assert state.run_start_ms == int(SATURDAY.timestamp() * 1000) and state.lit and not state.in_contract
    assert state.run_energy_wh == pytest.approx(80.0 * (13 * 60 - 10) / 60)  # 80 W for 12 h 50 min
    assert sum(energy) == pytest.approx(80.0 * (13 * 60 - 10) / 60)
    assert [a.action for a in raised_audit] == ["alert.raised"]
    dark = store(engine, watch, readings_msg("HQ-F1-Z1", SATURDAY + dt.timedelta(hours=13), 0.5, 0.0))
    assert [(a["alert_id"], a["status"]) for a in dark] == [(row.alert_id, "resolved")]
    (row,) = alerts(engine)
    assert row.status == "resolved" and "Lights on for 13.0 h" in row.detail


def test_a_repeated_batch_raises_nothing_twice(engine: Engine) -> None:
    watch = LiveWatch(SITE, None)
    message = readings_msg("HQ-F1-Z2", SATURDAY, 13, 60.0)
    assert len(store(engine, watch, message)) == 1
    assert store(engine, watch, message) == []  # all duplicates: no state moves, no alert again
    assert len(alerts(engine)) == 1


def test_the_clock_raises_a_dropout_and_the_zone_resolves_it(engine: Engine) -> None:
    watch = LiveWatch(SITE, None)
    later = SATURDAY + dt.timedelta(hours=31)
    z2 = readings_msg("HQ-F1-Z2", SATURDAY, 31, 20.0, step_min=60)  # the rest of the site goes on reporting
    store(engine, watch, readings_msg("HQ-F1-Z1", SATURDAY, 6, 20.0), z2, now=later)
    with write_session(engine) as session:
        raised = watch.on_clock(session.connection(), later)
    assert [(a["kind"], a["zone_id"], a["status"]) for a in raised] == [("dropout", "HQ-F1-Z1", "open")]
    with write_session(engine) as session:
        assert watch.on_clock(session.connection(), later + dt.timedelta(minutes=1)) == []  # raised once
    back = store(engine, watch, readings_msg("HQ-F1-Z1", later, 0.2, 20.0), now=later)
    assert [(a["kind"], a["status"]) for a in back] == [("dropout", "resolved")]
    assert [(a.zone_id, a.status) for a in alerts(engine)] == [("HQ-F1-Z1", "resolved")]


def test_a_silence_the_whole_site_shared_is_no_dropout(engine: Engine) -> None:
    watch = LiveWatch(SITE, None)
    store(
        engine,
        watch,
        readings_msg("HQ-F1-Z1", SATURDAY, 6, 20.0),
        readings_msg("HQ-F1-Z2", SATURDAY, 6, 20.0),
    )
    later = SATURDAY + dt.timedelta(hours=31)  # the feed was down for a day: both come back together
    back = store(
        engine, watch, readings_msg("HQ-F1-Z1", later, 1, 20.0), readings_msg("HQ-F1-Z2", later, 1, 20.0)
    )
    with write_session(engine) as session:
        assert watch.on_clock(session.connection(), later + dt.timedelta(hours=1)) == []
    assert back == [] and alerts(engine) == []


def test_a_dropout_the_clock_raised_ends_when_a_backlog_brings_the_zone_back(engine: Engine) -> None:
    watch = LiveWatch(SITE, None)
    later = SATURDAY + dt.timedelta(hours=31)
    z2 = readings_msg("HQ-F1-Z2", SATURDAY, 31, 20.0, step_min=60)
    store(engine, watch, readings_msg("HQ-F1-Z1", SATURDAY, 6, 20.0), z2, now=later)
    with write_session(engine) as session:
        assert [a["zone_id"] for a in watch.on_clock(session.connection(), later)] == ["HQ-F1-Z1"]
    # the worker catches up: Z1's readings from just after its last one arrive (a 10-minute gap)
    back = store(
        engine, watch, readings_msg("HQ-F1-Z1", SATURDAY + dt.timedelta(hours=6), 1, 20.0), now=later
    )
    assert [(a["zone_id"], a["kind"], a["status"]) for a in back] == [("HQ-F1-Z1", "dropout", "resolved")]


# --- with a champion ------------------------------------------------------------------------------------


def test_the_daily_job_stores_bands_and_spikes_are_judged_against_them(
    engine: Engine, training_data, run
) -> None:
    frame = training_data.readings
    with write_session(engine) as session:
        from slem_ml.io.reader import validate_frame  # lazy: only this test validates a generated frame

        ingest(
            session.connection(),
            validate_frame(frame, GENERATED_SITE).frame,
            cleaning="given",
            source="t",
            actor="t",
        )
    watch = LiveWatch(GENERATED_SITE, run.bundle)
    assert watch.off == ()
    end = frame[S.TIMESTAMP].max()
    now = (end + pd.Timedelta(hours=30)).to_pydatetime()  # the day after the last stored one
    with engine.connect() as connection:
        plan = watch.plan_daily(connection, now)
    assert plan is not None
    with write_session(engine) as session:
        watch.store_daily(session.connection(), plan, now)
    with engine.connect() as connection:
        bands = pd.DataFrame(connection.execute(select(LiveBand.__table__)).all())
        assert watch.plan_daily(connection, now) is None  # once a day
    zones = frame[S.ZONE_ID].nunique()
    assert len(bands) == zones * 24 and bands["zone_key"].nunique() == zones
    assert (bands["lower_w"] <= bands["expected_w"]).all() and (bands["expected_w"] <= bands["upper_w"]).all()
    # a reading of three times the top of its zone's band in the busiest hour is a spike; one inside is not
    top = bands.loc[bands["upper_w"].idxmax()]
    hour = dt.datetime.fromtimestamp(int(top["hour_ms"]) / 1000, dt.UTC)
    with engine.connect() as connection:
        zone = connection.execute(
            select(LiveZone.__table__)
        ).all()  # none yet: the detectors see the zone anew
    assert zone == []
    zone_id = _zone_of(engine, int(top["zone_key"]))
    client = str(frame.loc[frame[S.ZONE_ID].astype(str) == zone_id, S.CLIENT_ID].iloc[-1])
    body = [
        {
            "timestamp": (hour + dt.timedelta(minutes=m)).isoformat(),
            "zone_id": zone_id,
            "client_id": client,
            "power_w": w,
        }
        for m, w in (
            (0, float(top["expected_w"])),
            (15, 3 * float(top["upper_w"])),
            (30, float(top["expected_w"])),
        )
    ]
    raised = store(
        engine,
        watch,
        Message("slem/readings", json.dumps(body).encode(), hour + dt.timedelta(minutes=31)),
        now=hour,
    )
    assert [(a["kind"], a["zone_id"], a["status"]) for a in raised] == [("spike", zone_id, "open")]
    assert "expected band" in raised[0]["detail"] and raised[0]["first_seen"] == hour + dt.timedelta(
        minutes=15
    )


def _zone_of(engine: Engine, key: int) -> str:
    from slem_ml.storage.tables import StoreZone  # lazy: one lookup

    with engine.connect() as connection:
        return str(connection.execute(select(StoreZone.zone_id).where(StoreZone.id == key)).scalar_one())


# --- through a real broker -----------------------------------------------------------------------------


def test_end_to_end_published_readings_are_stored_raise_an_alert_published_and_on_the_live_tab(
    broker: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'slem.db'}")
    received: list[dict] = []
    listener = publisher(broker)
    listener.on_message = lambda client, userdata, msg: received.append(json.loads(msg.payload))
    listener.subscribe("slem/alerts/#", qos=1)
    stop = threading.Event()
    worker = IngestWorker(parse_broker(broker), engine, SITE, client_id="t-alerts", log=lambda _: None)
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_for(worker.connected.is_set, 10)
        message = readings_msg("HQ-F3-Z9", SATURDAY, 12.5, 55.0)
        listener.publish("slem/readings/HQ-F3-Z9", message.payload, qos=1)
        wait_for(lambda: received, 10)
    finally:
        stop.set()
        thread.join(30)
        listener.loop_stop()
        engine.dispose()
    (alert,) = received
    assert alert["kind"] == "stuck_on" and alert["zone_id"] == "HQ-F3-Z9" and alert["status"] == "open"
    assert alert["alert_id"] == "stuck_on:HQ-F3-Z9:20261205T0000Z"
    # ... and the Live tab shows it: the zone in the alert state, the alert in the feed
    from slem_ml.app.live import live_board  # lazy: the app's side of the same store
    from slem_ml.app.workspace import AppConfig
    from tests.test_live import BASE

    contracts = tmp_path / "contracts.yaml"
    contracts.write_text(json.dumps({**BASE, "leases": [{"zone": "*", "client": "C001"}]}))  # YAML too
    config = AppConfig(
        database_url=f"sqlite:///{tmp_path / 'slem.db'}", contracts=contracts, models_dir=tmp_path / "models",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", runs_dir=tmp_path / "runs", open_user="local",
    )  # fmt: skip
    board = live_board(config, "local", now=SATURDAY + dt.timedelta(hours=12, minutes=30))
    assert board.alerts["Alert id"].tolist() == [alert["alert_id"]]
    assert "Spike and drift detectors are off" in board.status
    (grid,) = board.floors.data
    shown = [str(cell) for row in grid["customdata"] for cell in row if cell]
    assert len(shown) == 1 and shown[0].startswith("HQ-F3-Z9: alert")  # the floor grid, in the alert state


def test_a_month_billed_live_is_stored_final_once_over_and_revised_by_a_late_reading(engine: Engine) -> None:
    from slem_ml.live.batch import rebill_queued  # lazy: these tests only
    from slem_ml.storage.closing import close_month, previous_month

    watch = LiveWatch(SITE, None)
    november = dt.datetime(2026, 11, 28, 18, tzinfo=dt.UTC)  # a Saturday: all of it outside C001's hours
    store(engine, watch, readings_msg("HQ-F1-Z1", november, 2, 60.0))
    with write_session(engine) as session:
        rebill_queued(session.connection(), SITE)
    now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert previous_month(SITE, now) == "2026-11"
    with write_session(engine) as session:
        assert close_month(session, SITE, "2026-11", now, "ingest") == ["INV-C001-202611"]
    with write_session(engine) as session:
        assert close_month(session, SITE, "2026-11", now, "ingest") == []  # nothing changed: no revision
    store(engine, watch, readings_msg("HQ-F1-Z3", november, 1, 60.0))  # late readings of November
    with write_session(engine) as session:
        rebill_queued(session.connection(), SITE)
        assert close_month(session, SITE, "2026-11", now, "ingest") == ["INV-C001-202611"]
    with engine.connect() as connection:
        from slem_ml.storage.tables import Invoice  # lazy: as above

        rows = connection.execute(
            select(Invoice.revision, Invoice.lines, Invoice.total).order_by(Invoice.revision)
        ).all()
        actions = (
            connection.execute(select(AuditEntry.action).where(AuditEntry.entity == "invoice"))
            .scalars()
            .all()
        )
    assert [(r.revision, r.lines) for r in rows] == [(1, 1), (2, 2)] and rows[1].total > rows[0].total
    assert actions == ["invoice.created", "invoice.revised"]


def test_the_app_tells_whether_there_is_a_champion_without_loading_it(tmp_path: Path, run) -> None:
    from slem_ml.models.bundle import save_bundle  # lazy: these tests only
    from slem_ml.models.registry import champion_status

    none = f"sqlite:///{tmp_path / 'mlflow.db'}"  # no store there
    assert champion_status(none, tmp_path / "models") == (
        False,
        f"no trained models: no champion in the registry and none exported to {tmp_path / 'models'}/",
    )
    save_bundle(run.bundle, tmp_path / "models")
    assert champion_status(none, tmp_path / "models") == (
        True,
        str(tmp_path / "models" / "slem-models.joblib"),
    )


class _Failing(LiveWatch):
    def after_batch(self, connection: Any, frames: list[pd.DataFrame], now: dt.datetime) -> list[dict]:
        super().after_batch(connection, frames, now)  # writes its state, then fails: all of it undone
        raise ZeroDivisionError("a detector's bug")


def test_a_failing_detector_loses_no_reading(engine: Engine) -> None:
    from slem_ml.live.watch import run_detectors  # lazy: these tests only
    from slem_ml.storage.tables import ReadingBlock

    logged: list[str] = []
    with write_session(engine) as session:
        connection = session.connection()
        message = readings_msg("HQ-F1-Z1", SATURDAY, 13, 80.0)
        done = store_messages(connection, SITE, [message], sources=["t"], source="t", actor="t")
        assert run_detectors(_Failing(SITE, None), connection, done.frames, logged.append) == []
    with engine.connect() as connection:
        assert connection.execute(select(func.sum(ReadingBlock.n))).scalar_one() == 78
        assert connection.execute(select(func.count()).select_from(LiveZone)).scalar_one() == 0
    assert alerts(engine) == [] and "ZeroDivisionError" in logged[0]


def test_housekeeping_raises_the_clock_s_dropouts_without_any_worker(engine: Engine) -> None:
    from slem_ml.live.housekeeping import Housekeeping  # lazy: these tests only

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(hours=31)
    z2 = readings_msg("HQ-F1-Z2", start + dt.timedelta(minutes=50), 31, 20.0, step_min=60)  # until 10 min ago
    fresh = [readings_msg("HQ-F1-Z1", start, 6, 20.0), z2]
    store(engine, LiveWatch(SITE, None), *(Message(m.topic, m.payload, now) for m in fresh), now=now)
    published: list[dict] = []
    chores = Housekeeping(engine, LiveWatch(SITE, None), publish=published.extend, log=lambda _: None)
    chores.tick()
    chores.daily()  # no champion: no bands; closing last month stores nothing here
    assert [(a["kind"], a["zone_id"], a["status"]) for a in published] == [("dropout", "HQ-F1-Z1", "open")]

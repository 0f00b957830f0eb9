"""The Live tab and the month to date on the Billing tab (SPEC §9, issue 13), on real databases.

The live state tables are written here directly (the live ingest worker writes them in production); readings
go through the real live ingest (:func:`slem_ml.live.batch.store_messages`) and re-billing. Times are fixed
instants unless a test goes through a handler, which reads the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select, update

from slem_ml.app import invoicing
from slem_ml.app.invoicing import DRAFT, FINAL, month_state
from slem_ml.app.live import STATES, ChampionWatch, estimated_cost, live_board, overtime_now, zone_states
from slem_ml.app.ui import Handlers
from slem_ml.app.workspace import AppConfig
from slem_ml.config.site import SiteConfig, load_site
from slem_ml.io.reader import validate_frame
from slem_ml.live.batch import rebill_queued, store_messages
from slem_ml.live.payloads import Message
from slem_ml.live.watch import LiveWatch
from slem_ml.models.bundle import save_bundle
from slem_ml.scoring.score import score
from slem_ml.storage import open_database
from slem_ml.storage.database import write_session
from slem_ml.storage.live_view import BandCache, read_live
from slem_ml.storage.months import month_bounds_ms
from slem_ml.storage.periods import period_invoices
from slem_ml.storage.tables import Alert, LiveBand, LivePower, LiveZone, StoreZone
from slem_ml.storage.users import add_user

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
MIN, HOUR = 60_000, 3_600_000
#: A Monday evening in Berlin (21:00 local): C1 is never contracted, C2 always.
NOW = dt.datetime(2026, 11, 30, 20, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
CONTRACTS = """\
site: {timezone: Europe/Berlin, currency: EUR}
sampling: {on_threshold_w: 5, max_gap_minutes: 15}
billing: {block_minutes: 15}
clients:
  C1: {name: Night Owls, hours: {}, hourly_rate: 12.50, energy_rate: 0.37}
  C2: {name: Always On, hours: "24/7"}
"""


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    path = tmp_path / "contracts.yaml"
    path.write_text(CONTRACTS, encoding="utf-8")
    return path


def app_config(url: str, contracts: Path, tmp_path: Path, open_user: str | None = None) -> AppConfig:
    return AppConfig(
        database_url=url, contracts=contracts, models_dir=tmp_path / "models", open_user=open_user,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", runs_dir=tmp_path / "app_runs",
    )  # fmt: skip


def zone(zone_id: str, client: str, now_ms: int = NOW_MS, **state: Any) -> dict[str, Any]:
    """A ``live_zones`` row: last reading ``age_min`` before ``now_ms``, every ``interval_min``; an overtime
    run of ``run_min`` minutes with ``energy_wh``."""
    age, interval, run = state.pop("age_min", 1), state.pop("interval_min", 1), state.pop("run_min", None)
    last = now_ms - age * MIN
    lit = state.get("lit", False)
    return {
        "zone_id": zone_id, "client_id": client, "last_ms": last, "power_w": 40.0 if lit else 0.0,
        "lit": lit, "in_contract": state.get("in_contract", False), "cleaning": state.get("cleaning", False),
        "interval_ms": interval * MIN, "run_start_ms": None if run is None else now_ms - run * MIN,
        "run_energy_wh": state.get("energy_wh", 0.0),
    }  # fmt: skip


def alert(alert_id: str, zone_id: str, status: str, detected_ms: int, kind: str = "spike") -> dict[str, Any]:
    at = dt.datetime.fromtimestamp(detected_ms / 1000, dt.UTC)
    return {
        "alert_id": alert_id, "zone_id": zone_id, "kind": kind, "severity": "warning", "status": status,
        "detected_at": at, "first_seen": at, "last_seen": at, "score": 1.0, "detail": f"{kind} on {zone_id}",
        "run_id": None, "last_run_id": None,
    }  # fmt: skip


def put(engine: Engine, zones: list[dict[str, Any]], **rows: list[dict[str, Any]]) -> None:
    """Zones into ``store_zones`` (building and floor from the id) and ``live_zones``; ``power``, ``bands``
    (zone ids for keys) and ``alerts`` rows as given."""
    with write_session(engine) as session:
        c = session.connection()
        known = set(c.execute(select(StoreZone.zone_id)).scalars())
        new = [z["zone_id"] for z in zones if z["zone_id"] not in known]
        places = [{"zone_id": z, "building": z.split("-")[0], "floor": z.split("-")[1][1:]} for z in new]
        if places:
            c.execute(insert(StoreZone), places)
        keys = dict(c.execute(select(StoreZone.zone_id, StoreZone.id)).all())
        now = dt.datetime.now(dt.UTC)
        spike = {"spike_first_ms": None, "spike_last_ms": None, "updated_at": now}
        live = [{**{k: v for k, v in z.items() if k != "zone_id"}, "zone_key": keys[z["zone_id"]], **spike}
                for z in zones]  # fmt: skip
        if live:
            c.execute(insert(LiveZone), live)
        if rows.get("power"):
            c.execute(insert(LivePower), rows["power"])
        if rows.get("bands"):
            c.execute(insert(LiveBand), [{**b, "zone_key": keys[b.pop("zone_id")]} for b in rows["bands"]])
        if rows.get("alerts"):
            c.execute(insert(Alert), rows["alerts"])


def site_store(engine: Engine, now_ms: int = NOW_MS) -> None:
    """Eight zones in every state (the expected states in the comments), power, bands and alerts.

    (a) 60 min at 12.50/h, and 40 Wh to its latest reading + 40 W for the minute since at 0.37/kWh: 0.015
    → 0.02."""
    today = now_ms - 21 * HOUR  # 00:00 in Berlin on NOW's date
    put(
        engine,
        [
            zone("HQ-F1-Z1", "C1", now_ms, lit=True, run_min=60, energy_wh=40.0),  # overtime: 12.52 EUR (a)
            zone("HQ-F1-Z2", "C2", now_ms, lit=True, in_contract=True),  # lit in contract
            zone("HQ-F1-Z3", "C1", now_ms, lit=True, cleaning=True),  # cleaning now
            zone("HQ-F2-Z1", "C1", now_ms, age_min=120),  # silent (and an ongoing alert)
            zone("HQ-F2-Z2", "C1", now_ms, age_min=20, interval_min=10),  # alert (silent only after 30 min)
            zone("LAB-F1-Z1", "C2", now_ms),  # dark (its alert is resolved)
            zone("LAB-F1-Z2", "C9", now_ms, lit=True, run_min=30, energy_wh=10.0),  # overtime, no contract
            zone("LAB-F1-Z3", "C2", now_ms),  # alert
        ],
        power=[
            {"building": "HQ", "bucket_ms": today - 15 * MIN, "energy_wh": 99.0},  # yesterday
            {"building": "HQ", "bucket_ms": today, "energy_wh": 10.0},
            {"building": "HQ", "bucket_ms": today + 15 * MIN, "energy_wh": 12.5},
            {"building": "LAB", "bucket_ms": today, "energy_wh": 5.0},
        ],
        bands=[
            {"zone_id": "HQ-F1-Z1", "hour_ms": today, "expected_w": 10.0, "lower_w": 5.0, "upper_w": 15.0},
            {"zone_id": "HQ-F1-Z2", "hour_ms": today, "expected_w": 20.0, "lower_w": 10.0, "upper_w": 30.0},
            {
                "zone_id": "HQ-F1-Z1",
                "hour_ms": today - HOUR,
                "expected_w": 1.0,
                "lower_w": 0.0,
                "upper_w": 2.0,
            },
        ],
        alerts=[
            alert("a-silent", "HQ-F2-Z1", "ongoing", now_ms - 3 * HOUR, kind="stuck_on"),
            alert("a-new", "HQ-F2-Z2", "open", now_ms - 10 * MIN),
            alert("a-lab", "LAB-F1-Z3", "open", now_ms - HOUR, kind="drift"),
            alert("a-done", "LAB-F1-Z1", "resolved", now_ms - 5 * MIN),
        ],
    )


# --- states and prices, by hand ---------------------------------------------------------------------


def test_zone_states_follow_the_rules_in_order() -> None:
    cases = [  # (row, open alert, expected state)
        (zone("A-F1-Z1", "C1", age_min=30, interval_min=5), False, "dark"),  # 30 min: not yet silent
        (zone("A-F1-Z2", "C1", age_min=31, interval_min=5), False, "silent"),
        (zone("A-F1-Z3", "C1", age_min=45, interval_min=20), False, "dark"),  # 3 × 20 min = 60 min
        (zone("A-F1-Z4", "C1", age_min=61, interval_min=20, lit=True), True, "silent"),  # silent beats alert
        (zone("A-F1-Z5", "C1", lit=True, cleaning=True), True, "alert"),  # alert beats cleaning
        (zone("A-F1-Z6", "C1", lit=True, cleaning=True), False, "cleaning now"),
        (zone("A-F1-Z7", "C1", cleaning=True), False, "dark"),  # staff in the dark: not lit
        (zone("A-F1-Z8", "C1", lit=True), False, "overtime now"),
        (zone("A-F1-Z9", "C1", lit=True, in_contract=True), False, "lit in contract"),
    ]
    frame = pd.DataFrame([row for row, _, _ in cases])
    alerted = {row["zone_id"] for row, has, _ in cases if has}
    states = zone_states(frame, alerted, NOW_MS)
    assert list(states["state"].astype(str)) == [state for _, _, state in cases]
    assert states["age_ms"].tolist()[:2] == [30 * MIN, 31 * MIN]
    assert list(states["state"].cat.categories) == list(STATES)


def test_estimated_cost_rounds_blocks_up_and_cents_half_up(contracts: Path) -> None:
    c1 = load_site(contracts).clients["C1"]  # 12.50 EUR an hour, 0.37 EUR a kWh
    assert estimated_cost(c1, 60 * MIN, 40.0, 15) == Decimal("12.51")  # 12.50 + 0.0148
    assert estimated_cost(c1, 60 * MIN + 1, 40.0, 15) == Decimal("15.64")  # five blocks: 15.625 → 15.63
    assert estimated_cost(c1, 0, 0.0, 15) == Decimal("0.00")
    assert estimated_cost(c1, 90 * MIN, 1351.35135, 15) == Decimal("19.25")  # 18.75 + 0.499999… → 0.50


def stream(engine: Engine, site: SiteConfig, rows: list[dict[str, Any]], received: dt.datetime) -> None:
    """``rows`` as ``slem ingest`` takes a message: stored with the zones' live state moved by the live
    detectors (no champion) in one transaction, then the dates they touch re-billed."""
    with write_session(engine) as session:
        c = session.connection()
        message = Message("slem/readings", json.dumps(rows).encode(), received)
        done = store_messages(c, site, [message], sources=["t"], source="t", actor="t")
        LiveWatch(site, None).after_batch(c, done.frames, received)
    with write_session(engine) as session:
        rebill_queued(session.connection(), site)


def test_the_estimate_is_what_billing_bills_for_the_same_run(engine: Engine, contracts: Path) -> None:
    """Readings of a run outside contracted hours through the real live path in two messages: once the
    clock has passed the latest reading's coverage, the Live tab's estimate from the zone's live state is
    the amount of the invoice line billing made of the same readings — after each message."""
    site = load_site(contracts)
    start = NOW - dt.timedelta(hours=3)
    rows = [
        {"timestamp": (start + dt.timedelta(minutes=m)).isoformat(), "zone_id": "HQ-F1-Z1", "client_id": "C1",
         "power_w": 1500.0 + m % 7}
        for m in range(0, 70, 3)
    ]  # fmt: skip
    estimates, billed = [], []
    for part in (rows[:12], rows[12:]):
        last = dt.datetime.fromisoformat(part[-1]["timestamp"])
        stream(engine, site, part, last + dt.timedelta(seconds=1))
        lines, _, _ = period_invoices(engine, site, "2026-11")
        billed.append(sum(lines["amount"], Decimal(0)))
        # 29 minutes on: the latest reading's coverage (max_gap, 15 min) is over; not silent yet (30 min)
        now_ms = int(last.timestamp() * 1000) + 29 * MIN
        snap = read_live(engine, 0, 1)
        (estimate,) = overtime_now(zone_states(snap.zones, set(), now_ms), site, now_ms)["est_cost"]
        estimates.append(estimate)
    # 60 min at 12.50/h + 1.20285 kWh at 0.37 (0.45); then 90 min + 2.1048 kWh (0.78): a hall's lights
    assert estimates == billed == [Decimal("12.95"), Decimal("19.53")]


# --- what the tab reads ---------------------------------------------------------------------------------


def test_read_live_reads_today_the_summed_bands_and_the_newest_open_alerts(engine: Engine) -> None:
    site_store(engine)
    today = NOW_MS - 21 * HOUR
    snap = read_live(engine, today, today + 24 * HOUR, alert_limit=2)
    assert len(snap.zones) == 8 and snap.zones["lit"].dtype == bool
    assert snap.power.values.tolist() == [["HQ", today, 10.0], ["HQ", today + 15 * MIN, 12.5],
                                          ["LAB", today, 5.0]]  # fmt: skip
    assert snap.bands.values.tolist() == [["HQ", today, 30.0, 15.0, 45.0]]  # two zones' bands added up
    assert snap.alerts["alert_id"].tolist() == ["a-new", "a-lab"]  # newest first, resolved never
    assert snap.open_alerts == {"HQ-F2-Z1": 1, "HQ-F2-Z2": 1, "LAB-F1-Z3": 1}
    mine = read_live(engine, today, today + 24 * HOUR, client_id="C1")
    assert sorted(mine.zones["zone_id"]) == ["HQ-F1-Z1", "HQ-F1-Z3", "HQ-F2-Z1", "HQ-F2-Z2"]
    assert mine.alerts["alert_id"].tolist() == ["a-new", "a-silent"]  # not C2's drift
    assert mine.open_alerts == {"HQ-F2-Z1": 1, "HQ-F2-Z2": 1}
    assert mine.power.empty and mine.bands.empty  # building totals hold every client's light


def test_the_band_cache_sums_again_when_the_rows_change(engine: Engine) -> None:
    site_store(engine)
    today = NOW_MS - 21 * HOUR
    kept, fresh = BandCache(max_age_s=3600), BandCache(max_age_s=0)
    with engine.connect() as c:
        assert kept.bands(c, today, today + 24 * HOUR)["expected_w"].tolist() == [30.0]
    with write_session(engine) as session:  # the same rows, other values: only an old answer is read again
        session.execute(update(LiveBand).where(LiveBand.hour_ms == today).values(expected_w=1.0))
    with engine.connect() as c:
        assert kept.bands(c, today, today + 24 * HOUR)["expected_w"].tolist() == [30.0]
        assert fresh.bands(c, today, today + 24 * HOUR)["expected_w"].tolist() == [2.0]
    put(engine, [], bands=[{"zone_id": "HQ-F1-Z3", "hour_ms": today + HOUR, "expected_w": 7.0,
                            "lower_w": 1.0, "upper_w": 9.0}])  # fmt: skip
    with engine.connect() as c:  # a row more: summed again at once
        assert kept.bands(c, today, today + 24 * HOUR)["expected_w"].tolist() == [2.0, 7.0]


# --- the tab -----------------------------------------------------------------------------------------------


def test_the_live_board_shows_states_overtime_alerts_and_stale_zones(
    engine: Engine, db_url: str, contracts: Path, tmp_path: Path
) -> None:
    site_store(engine)
    add_user(engine, "mgr", "a-long-test-passphrase", "manager")
    add_user(engine, "owl", "a-long-test-passphrase", "viewer", client_id="C1")
    board = live_board(app_config(db_url, contracts, tmp_path), "mgr", NOW)
    assert (
        "**8 zones**: 1 dark · 1 lit in contract · 2 overtime now · 1 cleaning now · 2 alert · 1 silent"
        in (board.status)
    )
    assert "2 zones, **12.52 EUR** so far" in board.status and "**Open alerts**: 3" in board.status
    assert "the newest reading is 1 min old" in board.status
    assert "**Spike and drift detectors are off**" in board.status  # no models in tmp_path
    # issue 14 review item 9: the tables are titled in words, as the other tabs' (site time, the currency)
    assert list(board.overtime.columns) == [
        "Zone", "Client", "Building", "Floor", "Since", "Running for", "Power now [W]", "Energy so far [kWh]",
        "Estimated cost so far [EUR]",
    ]  # fmt: skip
    assert board.overtime[["Zone", "Since", "Estimated cost so far [EUR]"]].values.tolist() == [
        ["HQ-F1-Z1", "2026-11-30 20:00", "12.52"],
        ["LAB-F1-Z2", "2026-11-30 20:30", "—"],  # a client the contracts do not know: no price
    ]
    assert list(board.stale.columns) == [
        "Zone",
        "Building",
        "Floor",
        "Last reading",
        "Silent for",
        "Reports every",
    ]
    assert board.stale[["Zone", "Last reading", "Silent for"]].values.tolist() == [
        ["HQ-F2-Z1", "2026-11-30 19:00", "2 h 00 min"]
    ]
    assert list(board.alerts.columns) == ["Alert id", "Zone", "Kind", "Severity", "Status", "Detected",
                                          "What happened"]  # fmt: skip
    assert board.alerts["Alert id"].tolist() == ["a-new", "a-lab", "a-silent"]
    assert board.alerts["Kind"].tolist() == ["Power spike", "Drift", "Lights stuck on"]  # in words
    grid = board.floors.data[0]
    assert list(grid["y"]) == ["HQ · floor 1", "HQ · floor 2", "LAB · floor 1"]
    assert list(grid["x"]) == ["zone 1", "zone 2", "zone 3"]
    codes = [[STATES[int(c)] if c == c else None for c in row] for row in np.asarray(grid["z"])]
    assert codes == [
        ["overtime now", "lit in contract", "cleaning now"],
        ["silent", "alert", None],
        ["dark", "overtime now", "alert"],
    ]
    actual = {t["yaxis"]: list(t["y"]) for t in board.power.data if t["name"] == "actual"}
    assert actual == {"y": [40.0, 50.0], "y2": [20.0]}  # HQ, LAB: mean power [W] = Wh per quarter × 4
    band = next(t for t in board.power.data if t["name"] == "expected")
    assert list(band["y"]) == [30.0]
    json.loads(board.floors.to_json()), json.loads(board.power.to_json())  # what Gradio sends

    owl = live_board(app_config(db_url, contracts, tmp_path), "owl", NOW)  # a tenant: its zones only
    assert "**4 zones**" in owl.status and set(owl.overtime["Zone"]) == {"HQ-F1-Z1"}
    assert owl.alerts["Alert id"].tolist() == ["a-new", "a-silent"]
    assert not owl.power.data and "nothing to show" in owl.power.layout.title.text


def test_the_live_tab_through_its_handler_with_the_clock(tmp_path: Path, contracts: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    engine = open_database(url)
    try:
        now_ms = int(time.time() * 1000)
        put(engine, [zone("HQ-F1-Z1", "C1", now_ms, lit=True, run_min=45, energy_wh=30.0),
                     zone("HQ-F1-Z2", "C1", now_ms, age_min=600)])  # fmt: skip
    finally:
        engine.dispose()
    handlers = Handlers(app_config(url, contracts, tmp_path, open_user="local"))
    board = handlers.live(gr.Request(username="local"))
    assert board.overtime["Zone"].tolist() == ["HQ-F1-Z1"]
    assert board.stale["Zone"].tolist() == ["HQ-F1-Z2"] and board.stale["Silent for"][0] == "10 h 00 min"
    empty = Handlers(app_config(f"sqlite:///{tmp_path / 'empty.db'}", contracts, tmp_path, "local"))
    assert "**no live readings yet**" in empty.live(gr.Request(username="local")).status


def test_the_champion_is_asked_once_a_minute(tmp_path: Path, contracts: Path, run) -> None:
    config = app_config("sqlite://", contracts, tmp_path)
    watch = ChampionWatch(max_age_s=60)
    assert watch.status(config, 0.0)[0] is False  # no models yet: spike and drift are off
    save_bundle(run.bundle, config.models_dir)
    assert watch.status(config, 59.0)[0] is False  # the cached answer: nothing loaded
    assert watch.status(config, 61.0)[0] is False  # stale: still given while it is asked again…
    deadline = time.monotonic() + 60
    while not watch.status(config, 62.0)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    found, source = watch.status(config, 62.0)  # …and the new answer stands
    assert found and str(config.models_dir) in source


# --- month to date on the Billing tab (SPEC §9) ----------------------------------------------------------


def test_a_month_is_a_draft_until_it_is_over_in_site_time() -> None:
    berlin = "Europe/Berlin"

    def end(period: str, timezone: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(month_bounds_ms(period, timezone)[1] / 1000, dt.UTC)

    assert end("2026-12", berlin) == dt.datetime(2026, 12, 31, 23, tzinfo=dt.UTC)  # winter: UTC+1
    assert end("2026-03", berlin) == dt.datetime(2026, 3, 31, 22, tzinfo=dt.UTC)  # summer: UTC+2
    last = dt.datetime(2026, 12, 31, 22, 59, 59, 999_000, tzinfo=dt.UTC)
    assert month_state("2026-12", berlin, last) == DRAFT
    assert month_state("2026-12", berlin, last + dt.timedelta(milliseconds=1)) == FINAL
    assert month_state("2026-12", "UTC", last + dt.timedelta(milliseconds=1)) == DRAFT  # an hour to go


def readings_of(zone_id: str, start: dt.datetime, end: dt.datetime, **columns: Any) -> list[dict[str, Any]]:
    """A reading every 5 minutes of ``zone_id`` for client C1 (never contracted) in ``[start, end)``."""
    out, at = [], start
    while at < end:
        out.append({"timestamp": at.isoformat(), "zone_id": zone_id, "client_id": "C1", "power_w": 40.0,
                    "cleaning_staff": False, **columns})  # fmt: skip
        at += dt.timedelta(minutes=5)
    return out


def ingest(url: str, contracts: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` through the live ingest and re-billing, as ``slem ingest`` stores them."""
    site, engine = load_site(contracts), open_database(url)
    try:
        with write_session(engine) as session:
            message = Message("slem/readings", json.dumps(rows).encode(), dt.datetime.now(dt.UTC))
            done = store_messages(session.connection(), site, [message], sources=["t"], source="t", actor="t")
            assert done.accepted == len(rows) and not done.quarantined
        with write_session(engine) as session:
            rebill_queued(session.connection(), site)
    finally:
        engine.dispose()


@pytest.fixture
def this_month(tmp_path: Path, contracts: Path) -> tuple[Handlers, str, dt.datetime, dt.datetime]:
    """An app whose store has June 2025 uploaded as a file (a run, its invoice stored; some cleaning, see the
    last test) and the current
    month's last two hours (at most) of one zone of C1 through the live ingest; (handlers, the current
    month, the start and end of its readings)."""
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    handlers = Handlers(app_config(url, contracts, tmp_path, open_user="local"))
    june = tmp_path / "june.csv"
    june_start = dt.datetime(2025, 6, 2, 20, tzinfo=dt.UTC)
    june_end = june_start + dt.timedelta(hours=1)
    cleaning = readings_of("HQ-F1-Z2", june_start, june_end, cleaning_staff=True)
    pd.DataFrame(readings_of("HQ-F1-Z1", june_start, june_end) + cleaning).to_csv(june, index=False)
    handlers.upload(str(june), None, gr.Request(username="local"))
    tz = load_site(contracts).site.tz
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    local = now.astimezone(tz)
    month_start = local.replace(day=1, hour=0, minute=0).astimezone(dt.UTC)
    start = max(month_start, now - dt.timedelta(hours=2))
    if now - start < dt.timedelta(minutes=30):
        pytest.skip("the month began less than half an hour ago: too little of it to bill")
    ingest(url, contracts, readings_of("HQ-F1-Z1", start, now))
    return handlers, f"{local:%Y-%m}", start, now


def test_the_current_month_shows_its_live_invoices_as_drafts(
    this_month: tuple[Handlers, str, dt.datetime, dt.datetime], contracts: Path
) -> None:
    handlers, month, start, now = this_month
    me = gr.Request(username="local")
    # the stream's cleaning staff too: the month's cleaning sessions come from the live readings as well
    cleaning = readings_of("HQ-F1-Z2", start, now, cleaning_staff=True)
    ingest(handlers.config.database_url, contracts, cleaning)
    board = handlers.load(me)
    assert (
        board.period == month
        and "to date — invoices are **drafts** until the month is over" in board.headline
    )
    invoice_id = f"INV-C1-{month.replace('-', '')}"
    shown = board.invoices.set_index("Invoice")
    assert shown.loc[invoice_id, "State"] == DRAFT
    site = load_site(contracts)
    rows = readings_of("HQ-F1-Z1", start, now) + cleaning
    expected = score(validate_frame(pd.DataFrame(rows), site), site).invoices.set_index("invoice_id")
    assert money(shown.loc[invoice_id, "Total [EUR]"]) == expected.loc[invoice_id, "total"] > 0
    june = handlers.load(me, "2025-06")
    assert "drafts" not in june.headline and set(june.invoices["State"]) == {FINAL}

    # a printed draft says so in its name, and is printed again when the live readings change it
    first = invoicing.invoice_file(handlers.config, me.username, invoice_id)
    assert first.name == f"{invoice_id}-draft.pdf" and first.read_bytes().startswith(b"%PDF-")
    ingest(handlers.config.database_url, contracts, readings_of("HQ-F1-Z3", start, now))
    grown = handlers.load(me).invoices.set_index("Invoice")
    assert money(grown.loc[invoice_id, "Total [EUR]"]) > money(shown.loc[invoice_id, "Total [EUR]"])
    assert grown.loc[invoice_id, "Revision"] == shown.loc[invoice_id, "Revision"]  # a draft: no new revision
    second = invoicing.invoice_file(handlers.config, me.username, invoice_id)
    assert second.name == first.name and second != first and second.read_bytes() != first.read_bytes()


def money(text: str) -> Decimal:
    """A money cell as the app shows it ("1,234.50") as a number."""
    return Decimal(text.replace(",", ""))


def test_a_month_to_date_without_cleaning_sessions_shows_too(
    this_month: tuple[Handlers, str, dt.datetime, dt.datetime],
) -> None:
    handlers, month, _, _ = this_month
    board = handlers.load(gr.Request(username="local"))
    assert board.period == month


def test_a_store_with_live_readings_alone_shows_its_month_to_date(tmp_path: Path, contracts: Path) -> None:
    url = f"sqlite:///{tmp_path / 'slem.db'}"
    handlers = Handlers(app_config(url, contracts, tmp_path, open_user="local"))
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    tz = load_site(contracts).site.tz
    local = now.astimezone(tz)
    start = max(local.replace(day=1, hour=0, minute=0).astimezone(dt.UTC), now - dt.timedelta(hours=2))
    if now - start < dt.timedelta(minutes=30):
        pytest.skip("the month began less than half an hour ago: too little of it to bill")
    ingest(url, contracts, readings_of("HQ-F1-Z1", start, now))  # no upload, no run
    board = handlers.load(gr.Request(username="local"))
    assert board.period == f"{local:%Y-%m}" and "No upload yet: live readings only" in board.headline
    assert list(board.invoices["State"]) == [DRAFT]


def test_the_quarter_hour_still_running_is_not_drawn_as_lights_going_out() -> None:
    from slem_ml.app.live import building_power  # lazy: this test only
    from slem_ml.storage.live_view import BAND_COLUMNS, LiveSnapshot

    quarter = 15 * MIN
    start = (
        NOW_MS - 2 * quarter
    )  # two quarters: one complete, one running at NOW (3 min of its energy so far)
    power = pd.DataFrame(
        {"building": ["HQ", "HQ"], "bucket_ms": [start, start + quarter], "energy_wh": [10.0, 2.0]}
    )
    snapshot = LiveSnapshot(
        pd.DataFrame(), power, pd.DataFrame(columns=list(BAND_COLUMNS)), pd.DataFrame(), {}
    )
    drawn = building_power(snapshot, "Europe/Berlin", NOW_MS - quarter + 3 * MIN).data
    assert [list(t["y"]) for t in drawn] == [[40.0]]
    assert [list(t["y"]) for t in building_power(snapshot, "Europe/Berlin", NOW_MS).data] == [[40.0, 8.0]]

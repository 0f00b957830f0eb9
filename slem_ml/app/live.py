"""The Live tab (SPEC §9): every zone's state now, buildings' power today, overtime running now, open alerts.

:func:`live_board` is one refresh: one snapshot of the live state tables
(:func:`slem_ml.storage.live_view.read_live`, a few small SELECTs, never the readings store) turned into
figures and tables for the signed-in user. A zone's state is the first of these that holds (SPEC §9):

1. **silent** — no reading for longer than ``max(3 × its interval, 30 min)`` by the clock; such zones are
   also listed as *stale* with the age of their last reading;
2. **alert** — it has an open (or ongoing) alert;
3. **cleaning now** — lit, and its latest reading says cleaning staff;
4. **overtime now** — lit outside its client's (widened) contracted hours, not cleaning;
5. **lit in contract** — lit inside them;
6. **dark**.

An overtime zone's cost so far is an *estimate* of the line billing would make if the run stopped now: the
run's covered time (from its start to now, or to the end of its latest reading's coverage, ``max_gap``
after it, if that came first) rounded up to whole blocks at the client's hourly rate, plus its energy in
that time at the energy rate, each rounded half up to the cent as billing rounds
(:mod:`slem_ml.billing.invoices`). The invoice is billing's, from the
stored readings. Power is in W, energy in kWh, money in the site's currency, times in site time.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from sqlalchemy import Engine

from slem_ml.app.access import user_of
from slem_ml.app.tables import for_people
from slem_ml.app.workspace import RUN_CONTRACTS, AppConfig, run_folder
from slem_ml.billing.sessions import MS_PER_KWH_UNIT, round_cents
from slem_ml.config.site import ClientContract, SiteConfig, load_site
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, ms_to_local, wall_to_utc
from slem_ml.live.detectors import QUARTER_MS
from slem_ml.models.registry import champion_status
from slem_ml.storage import latest_run, open_database
from slem_ml.storage.live_view import BandCache, LiveSnapshot, read_live

__all__ = [
    "REFRESH_SECONDS",
    "STATES",
    "ChampionWatch",
    "LiveBoard",
    "estimated_cost",
    "live_board",
    "overtime_now",
    "site_config",
    "zone_states",
]

REFRESH_SECONDS = 5.0  # how often the open Live tab refreshes itself [s]
STATES: tuple[str, ...] = ("dark", "lit in contract", "overtime now", "cleaning now", "alert", "silent")
_COLOURS = ("#d9d9d9", "#74c476", "#fd8d3c", "#6baed6", "#de2d26", "#252525")  # one per state
SILENT_INTERVALS = 3  # a zone is silent after this many of its intervals without a reading…
SILENT_MIN_MS = 30 * 60_000  # …and never sooner than this [ms]
ROWS_SHOWN = 200  # rows of each table; the status line gives the full counts
HOUR_MS = 3_600_000
#: The Live tab's tables, in words through :func:`slem_ml.app.tables.for_people` (issue 14 review item 9).
OVERTIME_SHOWN = (
    "zone_id", "client_id", "building", "floor", "since", "running", "power_w", "energy_so_far_kwh",
    "est_cost",
)  # fmt: skip
ALERTS_SHOWN = ("alert_id", "zone_id", "kind", "severity", "status", "detected_at", "detail")
STALE_SHOWN = ("zone_id", "building", "floor", "last_reading", "silent_for", "reports_every")
_MS_PER_WH = 1000 * HOUR_MS  # billing's energy unit is mW·ms: 1 Wh = 1000 mW × 3,600,000 ms
#: the layout every Live figure shares; the template's layout given whole, as unvalidated figures need it
_LAYOUT = {
    "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    "template": {"layout": pio.templates["plotly_white"].to_plotly_json()["layout"]},
}


@dataclass(frozen=True)
class LiveBoard:
    """One refresh of the Live tab, limited to what the user may see."""

    status: str  # markdown: as of when, the newest reading's age, zones per state, overtime, detectors
    floors: go.Figure  # every zone on its floor's row, coloured by state
    power: go.Figure  # each building's power today [W] against its expected band
    overtime: pd.DataFrame  # overtime running now with its estimated cost so far, costliest first
    alerts: pd.DataFrame  # open alerts, newest first
    stale: pd.DataFrame  # silent zones with the age of their last reading, longest silent first


def live_board(config: AppConfig, username: str | None, now: dt.datetime | None = None) -> LiveBoard:
    """The Live tab for ``username`` at ``now`` (default: the clock)."""
    user = user_of(config, username)
    now = now or dt.datetime.now(dt.UTC)
    now_ms = int(now.timestamp() * 1000)
    engine = open_database(config.database_url)
    try:
        site = site_config(config, engine)
        tz = site.site.timezone
        day = local_day_numbers(np.array([now_ms], np.int64), tz)
        bounds = wall_to_utc(np.r_[day, day + 1], np.zeros(2, np.int64), tz).astype(np.int64)
        snapshot = read_live(engine, int(bounds[0]), int(bounds[1]), client_id=user.client_id, cache=BANDS)
    finally:
        engine.dispose()
    zones = zone_states(snapshot.zones, snapshot.open_alerts, now_ms)
    running = overtime_now(zones, site, now_ms)
    silent = zones[zones["state"] == "silent"].sort_values("age_ms", ascending=False, kind="stable")
    stale = pd.DataFrame(
        {
            "zone_id": silent["zone_id"],
            "building": silent["building"],
            "floor": silent["floor"],
            "last_reading": ms_to_local(silent["last_ms"].to_numpy(np.int64), tz),
            "silent_for": _ages(silent["age_ms"]),
            "reports_every": _ages(silent["interval_ms"]),
        }
    )
    alerts = snapshot.alerts.assign(detected_at=snapshot.alerts["detected_at"].dt.tz_convert(tz))
    champion = WATCH.status(config, time.monotonic())
    return LiveBoard(
        status=_status(zones, running, snapshot, site, now_ms, champion),
        floors=floor_grid(zones),
        power=building_power(snapshot, tz, now_ms)
        if user.client_id is None
        else _empty("Building power today"),
        overtime=for_people(running.head(ROWS_SHOWN), OVERTIME_SHOWN, site.site.currency),
        alerts=for_people(alerts, ALERTS_SHOWN),
        stale=for_people(stale.head(ROWS_SHOWN), STALE_SHOWN),
    )


def zone_states(zones: pd.DataFrame, open_alerts: Collection[str], now_ms: int) -> pd.DataFrame:
    """``zones`` (:data:`~slem_ml.storage.live_view.ZONE_COLUMNS`) with ``age_ms`` (since the latest
    reading [ms]) and ``state`` (one of :data:`STATES`, by the rules of the module docstring) at ``now_ms``
    [UTC ms]; ``open_alerts`` holds the zones with an open alert."""
    age = now_ms - zones["last_ms"].to_numpy(np.int64)
    interval = zones["interval_ms"].to_numpy(np.int64)
    lit = zones["lit"].to_numpy(bool)
    cleaning = zones["cleaning"].to_numpy(bool)
    in_contract = zones["in_contract"].to_numpy(bool)
    code = np.select(
        [
            age > np.maximum(SILENT_INTERVALS * interval, SILENT_MIN_MS),
            zones["zone_id"].isin(list(open_alerts)).to_numpy(),
            lit & cleaning,
            lit & ~in_contract,
            lit,
        ],
        [5, 4, 3, 2, 1],
        default=0,
    )
    return zones.assign(age_ms=age, state=pd.Categorical.from_codes(code, categories=list(STATES)))


def estimated_cost(
    contract: ClientContract, covered_ms: int, energy_wh: float, block_minutes: int
) -> Decimal:
    """What a run of ``covered_ms`` [ms] using ``energy_wh`` [Wh] would be billed if it stopped now
    [currency]: whole blocks of ``block_minutes`` rounded up at the hourly rate (SPEC §3.4, §3.6), plus the
    energy at the energy rate, each rounded half up to the cent as billing does."""
    block_ms = block_minutes * S.MS_PER_MINUTE
    minutes = -(-covered_ms // block_ms) * block_minutes
    h_num, h_den = contract.hourly_rate.as_integer_ratio()
    e_num, e_den = contract.energy_rate.as_integer_ratio()
    units = round(energy_wh * _MS_PER_WH)  # [mW·ms]
    return round_cents(minutes * h_num, 60 * h_den) + round_cents(units * e_num, MS_PER_KWH_UNIT * e_den)


def overtime_now(zones: pd.DataFrame, site: SiteConfig, now_ms: int) -> pd.DataFrame:
    """The zones of ``zones`` (from :func:`zone_states`) in overtime now, costliest first: since when
    (site time), for how long, power now [W], energy so far [kWh] and the estimated cost ``est_cost``
    [currency] (:func:`estimated_cost`; None for a client the contracts do not know)."""
    over = zones[zones["state"] == "overtime now"]
    last = over["last_ms"].to_numpy(np.int64)
    start = pd.to_numeric(over["run_start_ms"]).to_numpy(dtype=float)  # NULL: NaN
    start = np.where(np.isnan(start), last, start).astype(np.int64)
    gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    until = np.maximum(np.minimum(now_ms, last + gap), last)  # a reading covers at most max_gap
    covered = until - start
    # the run's energy up to its latest reading (as the worker keeps it), plus that reading's since
    energy_wh = (
        over["run_energy_wh"].to_numpy(float) + over["power_w"].to_numpy(float) * (until - last) / HOUR_MS
    )
    costs: list[Decimal | None] = []
    for client, ms, wh in zip(over["client_id"], covered.tolist(), energy_wh.tolist(), strict=True):
        contract = site.clients.get(str(client))
        costs.append(
            None if contract is None else estimated_cost(contract, ms, wh, site.billing.block_minutes)
        )
    table = pd.DataFrame(
        {
            "zone_id": over["zone_id"].to_numpy(object),
            "client_id": over["client_id"].to_numpy(object),
            "building": over["building"].to_numpy(object),
            "floor": over["floor"].to_numpy(object),
            "since": ms_to_local(start, site.site.timezone),
            "running": _ages(pd.Series(covered)),
            "power_w": over["power_w"].to_numpy(float),
            "energy_so_far_kwh": energy_wh / 1000.0,
            "est_cost": costs,
        }
    )
    order = sorted(range(len(costs)), key=lambda i: -(costs[i] or Decimal(0)))  # stable: ties keep zone order
    return table.iloc[order].reset_index(drop=True)


def floor_grid(zones: pd.DataFrame) -> go.Figure:
    """Every zone in its floor's row (one row per building and floor), coloured by state."""
    title = "Zones by building and floor, coloured by state"
    if zones.empty:
        return _empty(title)
    place = (zones["building"].astype(str) + " · floor " + zones["floor"].astype(str)).to_numpy(object)
    number = np.array([_zone_number(z) for z in zones["zone_id"].astype(str)])
    # ids without a zone number: zones in id order along their floor
    column = number if (number >= 0).all() else pd.Series(place).groupby(place).cumcount().to_numpy() + 1
    hover = (
        zones["zone_id"].astype(str) + ": " + zones["state"].astype(str) + ", "
        + zones["power_w"].round(0).astype(int).astype(str) + " W, last reading "
        + pd.Series(_ages(zones["age_ms"]), index=zones.index) + " ago"
    ).to_numpy(object)  # fmt: skip
    places, row = np.unique(place, return_inverse=True)  # sorted: the first place at the bottom
    numbers, col = np.unique(column, return_inverse=True)
    codes = np.full((len(places), len(numbers)), np.nan)
    codes[row, col] = zones["state"].cat.codes.to_numpy()
    text = np.full(codes.shape, "", dtype=object)
    text[row, col] = hover
    n = len(STATES)
    scale = [[edge, colour] for i, colour in enumerate(_COLOURS) for edge in (i / n, (i + 1) / n)]
    grid = {
        "type": "heatmap", "z": codes, "x": [f"zone {c}" for c in numbers.tolist()],
        "y": places.tolist(), "customdata": text,
        "hovertemplate": "%{customdata}<extra></extra>", "colorscale": scale, "zmin": -0.5,
        "zmax": n - 0.5, "xgap": 1, "ygap": 1,
        "colorbar": {"tickvals": list(range(n)), "ticktext": list(STATES), "title": {"text": "state"}},
    }  # fmt: skip
    return _figure([grid], {"title": {"text": title}, "height": max(300, 60 + 22 * len(codes))})


def building_power(snapshot: LiveSnapshot, timezone: str, now_ms: int | None = None) -> go.Figure:
    """Each building's mean power per quarter hour today [W] against the sum of its zones' expected bands
    per hour, one panel per building. The quarter hour still running at ``now_ms`` is left out: its energy
    is still arriving, and drawn it would look like the lights going out."""
    title = "Building power today [W] against the expected band (zone bands added up)"
    if now_ms is not None:
        done = snapshot.power["bucket_ms"].to_numpy(np.int64) + QUARTER_MS <= now_ms
        snapshot = replace(snapshot, power=snapshot.power[done])
    buildings = sorted(set(snapshot.power["building"]) | set(snapshot.bands["building"]))
    if not buildings:
        return _empty(title)
    cols = 2 if len(buildings) > 1 else 1
    rows = math.ceil(len(buildings) / cols)
    layout: dict[str, Any] = {"title": {"text": title}, "height": 120 + 220 * rows, "annotations": []}
    traces: list[dict[str, Any]] = []
    local = {  # site time on the x axes, converted once for every building
        name: frame.assign(x=ms_to_local(frame[at].to_numpy(np.int64), timezone).tz_localize(None))
        for name, frame, at in (("power", snapshot.power, "bucket_ms"), ("bands", snapshot.bands, "hour_ms"))
    }
    power, bands = (dict(tuple(local[name].groupby("building"))) for name in ("power", "bands"))
    gap_x, gap_y = 0.08, 0.3 / rows
    width, height = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    for i, building in enumerate(buildings):  # a grid of panels, as plotly's make_subplots lays them
        row, col, k = i // cols, i % cols, "" if i == 0 else str(i + 1)
        left, top = col * (width + gap_x), 1 - row * (height + gap_y)
        layout[f"xaxis{k}"] = {"domain": [left, left + width], "anchor": f"y{k}"}
        layout[f"yaxis{k}"] = {"domain": [top - height, top], "anchor": f"x{k}", "rangemode": "tozero"}
        layout["annotations"].append(
            {"text": building, "x": left + width / 2, "y": top, "xref": "paper", "yref": "paper",
             "xanchor": "center", "yanchor": "bottom", "showarrow": False}
        )  # fmt: skip
        axes = {"xaxis": f"x{k}", "yaxis": f"y{k}", "showlegend": i == 0}
        if building in bands:
            band = bands[building]
            edge = {**axes, "x": band["x"], "line": {"width": 0, "shape": "hv"}, "legendgroup": "band"}
            traces += [
                {**edge, "y": band["upper_w"].to_numpy(float), "hoverinfo": "skip", "showlegend": False},
                {**edge, "y": band["lower_w"].to_numpy(float), "fill": "tonexty", "name": "expected band",
                 "fillcolor": "rgba(100,149,237,0.25)"},
                {**axes, "x": band["x"], "y": band["expected_w"].to_numpy(float), "name": "expected",
                 "line": {"color": "royalblue", "shape": "hv"}},
            ]  # fmt: skip
        if building in power:
            part = power[building]
            traces.append(
                {**axes, "x": part["x"], "y": part["energy_wh"].to_numpy(float) * 4.0, "name": "actual",
                 "line": {"color": "black", "shape": "hv"}, "legendgroup": "actual"}
            )  # fmt: skip
    return _figure([{"type": "scatter", **t} for t in traces], layout)


# --- the champion, asked at most once a minute -------------------------------------------------------


class ChampionWatch:
    """Whether the app finds a champion model (:func:`~slem_ml.models.registry.champion_status`), cached:
    a registry that is not SQLite is asked by loading the models, which takes seconds; the tab refreshes
    every few. The first ask waits for the answer; an answer
    older than ``max_age_s`` is still given while a background thread asks again."""

    def __init__(self, max_age_s: float = 60.0) -> None:
        self.max_age_s = max_age_s
        self._answers: dict[tuple[str | None, str], tuple[float, bool, str]] = {}
        self._asking: dict[tuple[str | None, str], threading.Thread] = {}
        self._lock = threading.Lock()

    def status(self, config: AppConfig, now_s: float) -> tuple[bool, str]:
        """(a champion was found, where from or why not) for ``config``'s models at ``now_s`` (a
        monotonic clock [s])."""
        key = (config.tracking_uri, str(config.models_dir))
        with self._lock:
            answer = self._answers.get(key)
            stale = answer is None or now_s - answer[0] > self.max_age_s
            if answer is not None and stale and key not in self._asking:
                thread = threading.Thread(target=self._ask, args=(key, now_s), daemon=True)
                self._asking[key] = thread
                thread.start()
        if answer is None:
            return self._ask(key, now_s)
        return answer[1], answer[2]

    def _ask(self, key: tuple[str | None, str], now_s: float) -> tuple[bool, str]:
        try:
            found, source = champion_status(key[0], Path(key[1]))
            answer = (now_s, found, source)
            with self._lock:
                self._answers[key] = answer
            return answer[1], answer[2]
        finally:
            with self._lock:
                self._asking.pop(key, None)


WATCH = ChampionWatch()
BANDS = BandCache()  # the buildings' bands of today, summed again when they change


# --- helpers ------------------------------------------------------------------------------------------


def _status(
    zones: pd.DataFrame,
    running: pd.DataFrame,
    snapshot: LiveSnapshot,
    site: SiteConfig,
    now_ms: int,
    champion: tuple[bool, str],
) -> str:
    tz = site.site.timezone
    clock = f"{ms_to_local(np.array([now_ms], np.int64), tz)[0]:%H:%M:%S}"
    if champion[0]:
        detectors = "Detectors: spike, drift, stuck-on and dropout on."
    else:
        detectors = f"**Spike and drift detectors are off** ({champion[1]}); stuck-on and dropout rules run."
    if zones.empty:
        return f"As of {clock} ({tz}): **no live readings yet** — start `slem ingest`. {detectors}"
    newest = int(zones["last_ms"].max())
    counts = zones["state"].value_counts()
    states = " · ".join(f"{counts[s]:,} {s}" for s in STATES if counts[s])
    cost = sum((c for c in running["est_cost"] if c is not None), Decimal("0.00"))
    return (
        f"As of {clock} ({tz}); the newest reading is {_ages(pd.Series([now_ms - newest]))[0]} old "
        f"({ms_to_local(np.array([newest], np.int64), tz)[0]:%Y-%m-%d %H:%M:%S}).\n\n"
        f"**{len(zones):,} zones**: {states}.\n\n"
        f"**Overtime running now**: {len(running):,} zones, **{cost:,.2f} {site.site.currency}** so far "
        "(an estimate; invoices are billing's). "
        f"**Open alerts**: {sum(snapshot.open_alerts.values()):,}.\n\n{detectors}"
    )


def _ages(ms: pd.Series) -> list[str]:
    """Durations [ms] as people read them: ``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    out = []
    for value in ms.to_numpy(np.int64).tolist():
        s = max(value, 0) // 1000
        if s < 60:
            out.append(f"{s} s")
        elif s < 3600:
            out.append(f"{s // 60} min")
        elif s < 86_400:
            out.append(f"{s // 3600} h {s % 3600 // 60:02d} min")
        else:
            out.append(f"{s // 86_400} d {s % 86_400 // 3600} h")
    return out


@functools.lru_cache(maxsize=100_000)  # zones come and go rarely
def _zone_number(zone_id: str) -> int:
    """The zone's number on its floor (``HQ-F2-Z7`` → 7), -1 for an id without one."""
    match = S.ZONE_ID_PATTERN.match(zone_id)
    return int(match.group("zone")) if match else -1


def site_config(config: AppConfig, engine: Engine) -> SiteConfig:
    """The site's contracts: those ``slem serve`` was given (the contracts of today, as the live ingest's),
    else the latest run's; read again only when the file changes."""
    path = config.contracts
    if path is None:
        run = latest_run(engine)
        path = run_folder(config, run.run_id) / RUN_CONTRACTS if run is not None else None
    if path is None or not Path(path).exists():
        raise SlemError("no site contracts: start `slem serve` with --contracts to follow the live stream")
    return _load_site(str(path), Path(path).stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_site(path: str, mtime_ns: int) -> SiteConfig:
    return load_site(path)


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A figure from plain trace and layout dicts, not validated: Plotly's checks of a few dozen traces
    cost about 200 ms a refresh, ten times the rest of it; the dicts here are the tests' to get right."""
    return go.Figure({"data": data, "layout": {**_LAYOUT, **layout}}, _validate=False)


def _empty(title: str) -> go.Figure:
    hidden = {"visible": False}
    return _figure([], {"title": {"text": f"{title} — nothing to show"}, "height": 300, "xaxis": hidden,
                        "yaxis": hidden})  # fmt: skip

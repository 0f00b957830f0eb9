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
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import Engine

from slem_ml.app.access import user_of
from slem_ml.app.live_charts import STATES, ages_text, building_power, empty_figure, floor_grid
from slem_ml.app.tables import for_people
from slem_ml.app.workspace import RUN_CONTRACTS, AppConfig, run_folder
from slem_ml.billing.sessions import MS_PER_KWH_UNIT, round_cents
from slem_ml.config.site import ClientContract, SiteConfig, load_site
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, ms_to_local, wall_to_utc
from slem_ml.models.alerts import kind_words
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
            "silent_for": ages_text(silent["age_ms"]),
            "reports_every": ages_text(silent["interval_ms"]),
        }
    )
    alerts = snapshot.alerts.assign(
        detected_at=snapshot.alerts["detected_at"].dt.tz_convert(tz), kind=kind_words(snapshot.alerts["kind"])
    )
    champion = WATCH.status(config, time.monotonic())
    return LiveBoard(
        status=_status(zones, running, snapshot, site, now_ms, champion),
        floors=floor_grid(zones),
        power=building_power(snapshot, tz, now_ms)
        if user.client_id is None
        else empty_figure("Building power today"),
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
            "running": ages_text(pd.Series(covered)),
            "power_w": over["power_w"].to_numpy(float),
            "energy_so_far_kwh": energy_wh / 1000.0,
            "est_cost": costs,
        }
    )
    order = sorted(range(len(costs)), key=lambda i: -(costs[i] or Decimal(0)))  # stable: ties keep zone order
    return table.iloc[order].reset_index(drop=True)


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
        f"As of {clock} ({tz}); the newest reading is {ages_text(pd.Series([now_ms - newest]))[0]} old "
        f"({ms_to_local(np.array([newest], np.int64), tz)[0]:%Y-%m-%d %H:%M:%S}).\n\n"
        f"**{len(zones):,} zones**: {states}.\n\n"
        f"**Overtime running now**: {len(running):,} zones, **{cost:,.2f} {site.site.currency}** so far "
        "(an estimate; invoices are billing's). "
        f"**Open alerts**: {sum(snapshot.open_alerts.values()):,}.\n\n{detectors}"
    )


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

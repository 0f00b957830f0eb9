"""Realistic synthetic zone readings with ground-truth labels (SPEC §1 formats, §6 ``slem generate``).

The site is laid out as buildings → floors → zones (``B-F{floor}-Z{zone}``), each zone leased to one
client of a :class:`~slem_ml.contracts.SiteConfig` (default: the shipped ``slem_ml/data/contracts.yaml``).
What happens in a zone is built as time intervals first (cheap: a few per zone and day) and then painted
onto the readings as runs of rows (``np.repeat``), so no Python loop ever runs over readings:

* tenants light their zones during their contracted hours on working days (arriving late, leaving early,
  a lunch break, some days not at all, partial lighting), sometimes stay 30 min – 3 h after closing or
  come 30 min – 2 h before opening, and now and then work on a closed day (weekend or public holiday);
* a 24/7 client's zones are always lit (dimmer at night);
* after closing, cleaning crews (a building's zones split into walks of a few zones, floors in order)
  clean zone after zone, mostly 30–60 minutes each, and now and then leave the lights on for over 3 hours;
* faults (SPEC §5): gradual ``drift`` of on-power, single-reading ``spike`` s, ``stuck_on`` lights
  through a night or a weekend and ``dropout`` s (a zone silent for over 24 hours: no rows at all).

Every overtime session, cleaning session and fault is a row of the labels frame (:data:`LABEL_COLUMNS`),
with ``start``/``end`` in the site timezone. Labels are physical events: a session across midnight is one
row (scoring splits it by date, SPEC §3.4), and ``grace_minutes`` is not applied. In the periodic format
label times lie on the reading grid, so a label's ``[start, end)`` holds exactly the readings the event
lit; spikes have one row per spiked reading (``start == end`` = its timestamp).

Everything is drawn from one :func:`numpy.random.default_rng` seeded by :attr:`GeneratorConfig.seed`: the
same configuration gives identical frames.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from slem_ml import schema as S
from slem_ml.contracts import SiteConfig, load_site
from slem_ml.errors import SlemError

__all__ = [
    "LABEL_COLUMNS",
    "LABEL_KINDS",
    "LEGACY_COLUMNS",
    "READING_COLUMNS",
    "FaultRates",
    "GeneratedData",
    "GeneratorConfig",
    "default_site",
    "generate",
    "write_generated",
]

#: Headers of the legacy export (SPEC §1), in its column order.
LEGACY_COLUMNS: tuple[str, ...] = (
    "Timestamp", "Room_ID", "Client_ID", "Power_Usage_W", "Cleaning_Staff", "Building", "Floor", "Zone",
)  # fmt: skip
#: Columns of the periodic (canonical) format.
READING_COLUMNS: tuple[str, ...] = (
    S.TIMESTAMP, S.ZONE_ID, S.CLIENT_ID, S.POWER_W, S.CLEANING_STAFF, S.BUILDING, S.FLOOR, S.ZONE,
)  # fmt: skip
#: Columns of the labels frame. ``minutes`` is true elapsed time [min]; ``magnitude`` depends on the kind:
#: overtime/cleaning/stuck_on → nominal power while lit [W], drift → rise per day [fraction/day, 0.01 = 1 %],
#: spike → multiple of the normal power [×], dropout → NaN. ``flagged`` marks cleaning sessions longer than
#: ``cleaning.flag_after_minutes`` (SPEC §4); ``is_fault`` marks the four fault kinds.
LABEL_COLUMNS: tuple[str, ...] = (
    "kind", "zone_id", "client_id", "building", "start", "end", "minutes", "magnitude", "flagged",
    "is_fault", "cause", "detail",
)  # fmt: skip
#: ``kind`` values; the last four are faults (SPEC §5 alert kinds).
LABEL_KINDS: tuple[str, ...] = ("overtime", "cleaning", "drift", "spike", "stuck_on", "dropout")

_CONTRACTS = Path(__file__).with_name("data") / "contracts.yaml"
_OCCUPANCY, _OVERTIME, _CLEANING, _DRIFT, _SPIKE, _STUCK, _DROPOUT = range(7)  # event kinds
_KIND_NAMES = ("",) + LABEL_KINDS
_CAUSES = ("", "after_closing", "before_opening", "closed_day", "crew", "lights_left_on")
_BIG = 1 << 40  # zone stride of the (zone, minute) sort keys; far above any period in minutes

# Behaviour of tenants and crews (probabilities per zone-day, durations in minutes).
_P_DARK_DAY = 0.05  # a zone stays dark on a working day (nobody in)
_P_LUNCH_BREAK = 0.3
_P_AFTER_CLOSING = 0.12  # times the zone's overtime propensity
_P_BEFORE_OPENING = 0.04
_P_CLOSED_DAY_WORK = 0.03
_ZONES_PER_CREW = 6
_P_DEEP_CLEAN = 0.07  # 60–150 min instead of 30–60
_P_LIGHTS_LEFT_ON = 0.015  # the crew leaves, the lights stay on for 3–5.5 h
_MIN_STUCK_MINUTES = 13 * 60  # stuck-on faults last over 12 h (SPEC §5) with room for grid snapping
_DRIFT_CAP = 0.6  # drift stops rising at +60 %


@dataclass(frozen=True)
class FaultRates:
    """How many faults to inject (SPEC §5). At least one of each kind when it fits in the fault window."""

    drift_zone_share: float = 0.03  # share of zones whose on-power drifts
    stuck_on_per_zone_day: float = 0.002  # stuck-on events per zone and day of the fault window
    dropout_per_zone_day: float = 0.001  # dropouts per zone and day of the fault window
    spike_share: float = 0.001  # share of lit readings in the fault window that spike


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate.

    ``start`` is the first local date (site timezone); the period runs ``days`` whole local days from its
    midnight. ``zones`` zones are spread over the site's buildings. ``step_minutes`` is the reading
    interval of the periodic format [min] (a divisor of 60); the legacy format has 1–3 readings at random
    minutes per zone and hour instead. ``faults_after`` is the fraction of the period before which no
    fault starts (0.6 → faults only in the last 40 %; 1.0 → none). ``site`` defaults to the shipped
    ``contracts.yaml``; ``faults=False`` gives the same readings without faults.
    """

    start: dt.date = dt.date(2025, 1, 6)
    days: int = 30
    zones: int = 66
    step_minutes: int = 5
    seed: int = 0
    fmt: Literal["periodic", "legacy"] = "periodic"
    faults: bool = True
    faults_after: float = 0.0
    site: SiteConfig | None = None
    fault_rates: FaultRates = field(default_factory=FaultRates)

    def __post_init__(self) -> None:
        if self.fmt not in ("periodic", "legacy"):
            raise SlemError(f"format must be 'periodic' or 'legacy', not {self.fmt!r}")
        if not 1 <= self.days <= 3660:
            raise SlemError(f"days must be 1..3660, not {self.days}")
        if not 1 <= self.zones <= 100_000:
            raise SlemError(f"zones must be 1..100000, not {self.zones}")
        if self.step_minutes < 1 or 60 % self.step_minutes:
            raise SlemError(f"step_minutes must divide 60 (1, 5, 15, …), not {self.step_minutes}")
        if not 0.0 <= self.faults_after <= 1.0:
            raise SlemError(f"faults_after must be a fraction in [0, 1], not {self.faults_after}")


@dataclass(frozen=True)
class GeneratedData:
    """Generated readings, their labels (:data:`LABEL_COLUMNS`) and the zone layout.

    ``readings`` has :data:`READING_COLUMNS` (periodic: ``timestamp`` tz-aware in the site timezone [ms],
    ``power_w`` [W] rounded to 0.1 W, ``cleaning_staff`` bool) or :data:`LEGACY_COLUMNS` (legacy: naive local
    ``Timestamp``, ``Cleaning_Staff`` "Yes"/"No"), ordered by time, then zone. ``zones`` has one row per zone:
    ``zone_id, building, floor, zone, client_id, rated_power_w`` [W, all fixtures on], ``crew`` ("" for zones
    no crew cleans).
    """

    readings: pd.DataFrame
    labels: pd.DataFrame
    zones: pd.DataFrame
    config: GeneratorConfig


def default_site() -> SiteConfig:
    """The shipped sample site: clients C001–C006, Europe/Berlin, German public holidays."""
    return load_site(_CONTRACTS)


def generate(config: GeneratorConfig) -> GeneratedData:
    """Readings and ground-truth labels for ``config`` (deterministic for a given seed)."""
    site = config.site if config.site is not None else default_site()
    rng = np.random.default_rng(config.seed)
    cal = _Calendar.build(config.start, config.days, site)
    lay = _Layout.build(config.zones, site, rng)
    tenant, busy_until, opens = _tenant_events(cal, lay, rng)
    cleaning = _cleaning_events(cal, lay, tenant, busy_until, opens, rng)
    if config.fmt == "periodic":
        grid = _Grid.periodic(lay.n, cal.total_minutes, config.step_minutes)
    else:
        grid = _Grid.legacy(lay.n, cal.total_minutes, rng)
    window_start = int(np.ceil(config.faults_after * grid.end))
    faults = _fault_events(cal, lay, grid, window_start, config.fault_rates, rng)
    if not config.faults:
        faults = faults.take(np.zeros(len(faults), dtype=bool))
    # tenant overtime hidden by a stuck-on fault or a dropout, and cleaning inside a dropout, did not happen
    hiding = faults.take((faults.kind == _STUCK) | (faults.kind == _DROPOUT))
    tenant = tenant.take((tenant.kind != _OVERTIME) | ~_overlaps(tenant, hiding))
    cleaning = cleaning.take(~_overlaps(cleaning, faults.take(faults.kind == _DROPOUT)))
    tenant, cleaning, faults = (grid.snapped(e) for e in (tenant, cleaning, faults))
    power, lit, staff, keep = _paint(grid, lay, tenant, cleaning, faults, rng)
    spikes = _spikes(grid, power, lit & keep, window_start, config, rng)
    del lit
    np.round(power, 1, out=power)
    events = _Events.concat([tenant.take(tenant.kind != _OCCUPANCY), cleaning, faults, spikes])
    labels = _labels_frame(events, lay, cal, site.cleaning.flag_after_minutes)
    readings = _readings_frame(grid, lay, cal, power, staff, keep, config.fmt)
    return GeneratedData(readings=readings, labels=labels, zones=lay.frame(), config=config)


# --- calendar ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """Local days of the period. Times are whole minutes since the period's first local midnight (UTC)."""

    timezone: str
    first_day: int  # days since 1970-01-01 of the first local date
    days: int
    t0_minutes: int  # UTC minutes since 1970 of the first local midnight
    total_minutes: int  # true elapsed length of the period
    weekday: np.ndarray  # (D,) 0 = Monday
    holiday: np.ndarray  # (D,) bool

    @classmethod
    def build(cls, start: dt.date, days: int, site: SiteConfig) -> _Calendar:
        first_day = (start - dt.date(1970, 1, 1)).days
        tz = site.site.timezone
        edges = _local_to_utc_minutes(np.array([first_day, first_day + days]) * 1440, tz)
        dates = [start + dt.timedelta(days=i) for i in range(days)]
        hols = site.site.holidays_between(dates[0], dates[-1])
        return cls(
            timezone=tz,
            first_day=first_day,
            days=days,
            t0_minutes=int(edges[0]),
            total_minutes=int(edges[1] - edges[0]),
            weekday=np.array([d.weekday() for d in dates], dtype=np.int64),
            holiday=np.array([d in hols for d in dates], dtype=bool),
        )

    def at(self, minute_of_day: int | np.ndarray) -> np.ndarray:
        """Minutes since t0 of a local wall time on every day of the period → (D,)."""
        local = (self.first_day + np.arange(self.days)) * 1440 + np.asarray(minute_of_day)
        return _local_to_utc_minutes(local, self.timezone) - self.t0_minutes


def _local_to_utc_minutes(local_minutes: np.ndarray, timezone: str) -> np.ndarray:
    """Local wall times (minutes since 1970, naive) → UTC minutes since 1970. A wall time that does not
    exist (spring forward) moves to the first one after it; a repeated one (fall back) is the first."""
    flat = np.asarray(local_minutes, dtype=np.int64).ravel()
    index = pd.DatetimeIndex((flat * 60).astype("datetime64[s]"))
    utc = index.tz_localize(timezone, ambiguous=np.ones(len(flat), dtype=bool), nonexistent="shift_forward")
    return (utc.as_unit("s").asi8 // 60).reshape(np.shape(local_minutes))


# --- layout ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BuildingPlan:
    name: str
    zones_per_floor: int
    clients: tuple[str, ...]  # first client takes ~60 % of the zones (lower floors)
    weight: float


#: The buildings of the legacy sample, used for whichever of its clients the site has.
_DEFAULT_PLAN = (
    _BuildingPlan("HQ", 4, ("C001", "C002"), 20),
    _BuildingPlan("R&D", 6, ("C003",), 18),
    _BuildingPlan("Manufacturing", 8, ("C004", "C005"), 16),
    _BuildingPlan("Sales", 3, ("C006",), 12),
)
_MORE_BUILDINGS = ("Annex", "Tower", "Campus", "Depot", "Studio", "Works", "Plaza", "Lab")


@dataclass(frozen=True)
class _Layout:
    """Zones, their clients and the clients' contracts as arrays (zone order = ``zone_ids`` order)."""

    zone_ids: list[str]
    buildings: list[str]  # category order
    building: np.ndarray  # (Z,) index into buildings
    floor: np.ndarray  # (Z,) int16
    zone: np.ndarray  # (Z,) int16
    client_ids: list[str]  # every client of the site, in contract-file order
    client: np.ndarray  # (Z,) index into client_ids
    rated_w: np.ndarray  # (Z,) [W] all fixtures on
    standby_w: np.ndarray  # (Z,) [W] mean standby draw
    standby_max_w: float  # [W] standby never reaches the on threshold
    propensity: np.ndarray  # (Z,) overtime propensity (1 = average)
    crews: np.ndarray  # (C, K) zone indices of each crew's walk, -1 padded
    crew_names: list[str]
    always_open: np.ndarray  # (Z,) bool: the zone's client is 24/7
    open_minute: np.ndarray  # (K, 7) contracted opening per client and weekday [min after midnight], -1
    close_minute: np.ndarray  # (K, 7)
    holiday_open: np.ndarray  # (K,) bool: works on public holidays
    grace_minutes: np.ndarray  # (K,) [min] widening of the contracted window at both ends

    @property
    def n(self) -> int:
        return len(self.zone_ids)

    @classmethod
    def build(cls, zones: int, site: SiteConfig, rng: np.random.Generator) -> _Layout:
        plans = _building_plans(site)
        counts = _apportion(zones, [p.weight for p in plans])
        client_ids = list(site.clients)
        zone_ids: list[str] = []
        building, floor, zone, client = [], [], [], []
        for b, (plan, count) in enumerate(zip(plans, counts, strict=True)):
            first = count if len(plan.clients) == 1 else max(1, round(0.6 * count))
            for i in range(count):
                f, z = i // plan.zones_per_floor + 1, i % plan.zones_per_floor + 1
                zone_ids.append(f"{plan.name}-F{f}-Z{z}")
                building.append(b)
                floor.append(f)
                zone.append(z)
                client.append(client_ids.index(plan.clients[0 if i < first else 1]))
        contracts = [site.clients[c] for c in client_ids]
        client_arr = np.array(client, dtype=np.int64)
        always = np.array([contracts[k].always_open for k in client], dtype=bool)
        threshold = site.sampling.on_threshold_w
        low = max(45.0, 4.0 * threshold)
        rated = np.round(rng.uniform(low, low + 95.0, zones))
        standby_max = min(2.0, 0.5 * threshold)
        standby = rng.uniform(0.2, 0.6, zones) * standby_max
        culture = rng.uniform(0.5, 1.5, len(client_ids))  # some clients work late more often
        propensity = culture[client_arr] * rng.lognormal(0.0, 0.4, zones)
        crews, crew_names = _crews(np.array(building), always, [p.name for p in plans])
        week = [(c.week if not c.always_open else (None,) * 7) for c in contracts]
        return cls(
            zone_ids=zone_ids,
            buildings=[p.name for p in plans],
            building=np.array(building, dtype=np.int64),
            floor=np.array(floor, dtype=np.int16),
            zone=np.array(zone, dtype=np.int16),
            client_ids=client_ids,
            client=client_arr,
            rated_w=rated,
            standby_w=standby,
            standby_max_w=standby_max,
            propensity=propensity,
            crews=crews,
            crew_names=crew_names,
            always_open=always,
            open_minute=np.array([[-1 if w is None else w.open_minute for w in wk] for wk in week]),
            close_minute=np.array([[-1 if w is None else w.close_minute for w in wk] for wk in week]),
            holiday_open=np.array([c.work_on_holidays for c in contracts], dtype=bool),
            grace_minutes=np.array([c.grace_minutes for c in contracts], dtype=np.int64),
        )

    def frame(self) -> pd.DataFrame:
        crew = np.full(self.n, "", dtype=object)
        for c, walk in enumerate(self.crews):
            crew[walk[walk >= 0]] = self.crew_names[c]
        return pd.DataFrame(
            {
                S.ZONE_ID: self.zone_ids,
                S.BUILDING: [self.buildings[b] for b in self.building],
                S.FLOOR: self.floor,
                S.ZONE: self.zone,
                S.CLIENT_ID: [self.client_ids[k] for k in self.client],
                "rated_power_w": self.rated_w,
                "crew": pd.array(crew, dtype="str"),
            }
        )


def _building_plans(site: SiteConfig) -> list[_BuildingPlan]:
    plans = [p for p in _DEFAULT_PLAN if all(c in site.clients for c in p.clients)]
    placed = {c for p in plans for c in p.clients}
    rest = [c for c in site.clients if c not in placed]
    for j, i in enumerate(range(0, len(rest), 2)):
        name = _MORE_BUILDINGS[j] if j < len(_MORE_BUILDINGS) else f"B{j + 1}"
        plans.append(_BuildingPlan(name, (4, 6, 5)[j % 3], tuple(rest[i : i + 2]), 15))
    return plans


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; everyone gets one first)."""
    n = len(weights)
    if total <= n:
        return [1] * total + [0] * (n - total)
    share = np.asarray(weights, dtype=float) / sum(weights) * (total - n)
    counts = np.floor(share).astype(int) + 1
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts.tolist()


def _crews(building: np.ndarray, always: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Split each building's cleanable zones (floors in order) into walks of at most _ZONES_PER_CREW."""
    walks: list[np.ndarray] = []
    crew_names: list[str] = []
    for b, name in enumerate(names):
        zones = np.flatnonzero((building == b) & ~always)
        if zones.size == 0:
            continue
        parts = np.array_split(zones, -(-zones.size // _ZONES_PER_CREW))
        walks.extend(parts)
        crew_names.extend(f"{name} crew {i + 1}" for i in range(len(parts)))
    width = max((w.size for w in walks), default=0)
    crews = np.full((len(walks), width), -1, dtype=np.int64)
    for c, walk in enumerate(walks):
        crews[c, : walk.size] = walk
    return crews, crew_names


# --- events ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Events:
    """Intervals ``[start, end)`` [min since t0] in zones; ``kind`` 0 = occupancy (not a label)."""

    zone: np.ndarray  # int64
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    level: np.ndarray  # float64, share of the zone's rated power while lit
    kind: np.ndarray  # int8
    cause: np.ndarray  # int8, index into _CAUSES
    magnitude: np.ndarray  # float64, see LABEL_COLUMNS
    aux: np.ndarray  # int64: crew index for cleaning, else 0

    def __len__(self) -> int:
        return len(self.zone)

    def take(self, index: np.ndarray) -> _Events:
        return _Events(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def replace(self, **arrays: np.ndarray) -> _Events:
        return dataclasses.replace(self, **arrays)

    @staticmethod
    def concat(parts: Sequence[_Events]) -> _Events:
        return _Events(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(_Events))
        )

    @staticmethod
    def of(
        zone: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        kind: int,
        *,
        level: np.ndarray | float = 1.0,
        cause: int = 0,
        magnitude: np.ndarray | float = np.nan,
        aux: np.ndarray | int = 0,
    ) -> _Events:
        n = len(zone)
        return _Events(
            zone=np.asarray(zone, dtype=np.int64),
            start=np.asarray(start, dtype=np.int64),
            end=np.asarray(end, dtype=np.int64),
            level=np.broadcast_to(np.asarray(level, dtype=np.float64), (n,)).copy(),
            kind=np.full(n, kind, dtype=np.int8),
            cause=np.full(n, cause, dtype=np.int8),
            magnitude=np.broadcast_to(np.asarray(magnitude, dtype=np.float64), (n,)).copy(),
            aux=np.broadcast_to(np.asarray(aux, dtype=np.int64), (n,)).copy(),
        )

    def sorted_disjoint(self) -> _Events:
        """Sorted by (zone, start); an interval overlapping an earlier one of its zone starts where that
        one ends (and is dropped when nothing is left), so the intervals of a zone never overlap."""
        ev = self.take(np.lexsort((self.end, self.start, self.zone)))
        key_end = ev.zone * _BIG + ev.end
        before = np.concatenate([[-1], np.maximum.accumulate(key_end)[:-1]])
        start = np.maximum(ev.zone * _BIG + ev.start, before) - ev.zone * _BIG
        ev = ev.replace(start=start)
        return ev.take(ev.start < ev.end)


def _overlaps(ev: _Events, other: _Events) -> np.ndarray:
    """Per interval of ``ev``: does it overlap an interval of ``other`` (disjoint per zone) in its zone?"""
    if len(other) == 0 or len(ev) == 0:
        return np.zeros(len(ev), dtype=bool)
    other = other.take(np.lexsort((other.start, other.zone)))
    # with disjoint `other`, only the latest one starting before the end of `ev` can overlap it
    last = np.searchsorted(other.zone * _BIG + other.start, ev.zone * _BIG + ev.end, side="left") - 1
    j = np.maximum(last, 0)
    return (last >= 0) & (other.zone[j] == ev.zone) & (other.end[j] > ev.start)


def _tenant_events(
    cal: _Calendar, lay: _Layout, rng: np.random.Generator
) -> tuple[_Events, np.ndarray, np.ndarray]:
    """Occupancy in contracted hours plus tenant overtime; and per (zone, day) when the tenant has left and
    when the contract opens [min since t0; -1 on days the zone's contract is closed]."""
    Z, D = lay.n, cal.days
    shape = (Z, D)
    k_open, k_close, k_working = _contract_times(cal, lay)
    opens, closes, working = k_open[lay.client], k_close[lay.client], k_working[lay.client]  # (Z, D)
    closed = ~working & ~lay.always_open[:, None]

    dark = working & (rng.random(shape) < _P_DARK_DAY)
    late = np.minimum(rng.exponential(20.0, shape), 90.0).round().astype(np.int64)
    early_leave = np.minimum(rng.exponential(25.0, shape), 120.0).round().astype(np.int64)
    p = lay.propensity[:, None]
    after = working & ~dark & (rng.random(shape) < np.minimum(_P_AFTER_CLOSING * p, 0.6))
    after_min = rng.integers(30, 181, shape)
    before = working & ~dark & (rng.random(shape) < np.minimum(_P_BEFORE_OPENING * p, 0.3))
    before_min = rng.integers(30, 121, shape)
    lunch = working & (rng.random(shape) < _P_LUNCH_BREAK)
    lunch_start = cal.at(720)[None, :] + rng.integers(0, 91, shape)
    lunch_min = rng.integers(30, 76, shape)
    day_level = rng.uniform(0.6, 1.0, shape)
    extra_level = rng.uniform(0.3, 0.8, shape)
    weekend = closed & (rng.random(shape) < np.minimum(_P_CLOSED_DAY_WORK * p, 0.3))
    weekend_start = cal.at(540)[None, :] + rng.integers(0, 301, shape)
    weekend_min = rng.integers(60, 361, shape)
    night_level = rng.uniform(0.4, 0.6, shape)

    arrive = np.where(before, opens, opens + late)
    leave = np.where(after, closes, closes - early_leave)
    squeezed = arrive >= leave  # short windows: present the whole window
    arrive, leave = np.where(squeezed, opens, arrive), np.where(squeezed, closes, leave)
    lunch &= (lunch_start > arrive) & (lunch_start + lunch_min < leave)
    lunch_end = np.where(lunch, lunch_start + lunch_min, arrive)
    lunch_start = np.where(lunch, lunch_start, arrive)
    rated = lay.rated_w[:, None]

    def ev(mask, start, end, kind=_OCCUPANCY, level=day_level, cause=0) -> _Events:
        z, d = np.nonzero(mask)
        lv = level[z, d] if np.ndim(level) == 2 else np.full(z.size, level)
        pick = (z, d)
        return _Events.of(
            z, _at(start, pick), _at(end, pick), kind, level=lv, cause=cause,
            magnitude=rated[z, 0] * lv if kind == _OVERTIME else np.nan,
        )  # fmt: skip

    present = working & ~dark
    mid = cal.at(0)
    next_mid = np.append(mid[1:], cal.total_minutes)
    six, ten = cal.at(360), cal.at(1320)
    full = np.broadcast_to(lay.always_open[:, None], shape)

    def daily(t: np.ndarray) -> np.ndarray:
        return np.broadcast_to(t, shape)

    parts = [
        ev(present, arrive, lunch_start),
        ev(present, lunch_end, leave),
        ev(before, opens - before_min, opens, _OVERTIME, extra_level, 2),
        ev(after, closes, closes + after_min, _OVERTIME, extra_level, 1),
        ev(weekend, weekend_start, weekend_start + weekend_min, _OVERTIME, extra_level, 3),
        ev(full, daily(mid), daily(six), level=night_level),
        ev(full, daily(six), daily(ten)),
        ev(full, daily(ten), daily(next_mid), level=night_level),
    ]
    busy_until = np.where(after, closes + after_min, closes)
    busy_until = np.where(working, busy_until, -1)
    return _Events.concat(parts).sorted_disjoint(), busy_until, np.where(working, opens, -1)


def _contract_times(cal: _Calendar, lay: _Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per client and day (K, D): contracted opening and closing [min since t0] and whether the contract
    has hours that day at all (False on closed days, holidays and for 24/7 clients)."""
    open_minute = lay.open_minute[:, cal.weekday]
    working = (open_minute >= 0) & ~(cal.holiday[None, :] & ~lay.holiday_open[:, None])
    opens = np.stack([cal.at(np.maximum(m, 0)) for m in open_minute]).reshape(working.shape)
    closes = np.stack([cal.at(np.maximum(m, 0)) for m in lay.close_minute[:, cal.weekday]])
    return opens, closes.reshape(working.shape), working


def _at(values: np.ndarray, pick: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.asarray(values)[pick].astype(np.int64)


def _cleaning_events(
    cal: _Calendar,
    lay: _Layout,
    tenant: _Events,
    busy_until: np.ndarray,
    opens: np.ndarray,
    rng: np.random.Generator,
) -> _Events:
    """Each crew walks its zones in order after closing on the zones' working days (SPEC §4)."""
    C, K = lay.crews.shape
    D = cal.days
    if C == 0:
        return _Events.of(np.zeros(0), np.zeros(0), np.zeros(0), _CLEANING)
    walk = np.where(lay.crews >= 0, lay.crews, 0)  # (C, K)
    active = (lay.crews >= 0)[:, :, None] & (busy_until[walk] >= 0)  # (C, K, D)
    first_close = np.where(active, busy_until[walk], _BIG).min(axis=1)  # (C, D)
    cursor = first_close + rng.integers(10, 41, (C, D))
    parts = []
    for k in range(K):
        act = active[:, k]
        z = np.broadcast_to(walk[:, k : k + 1], (C, D))
        start = np.maximum(cursor, busy_until[walk[:, k]])
        deep = rng.random((C, D)) < _P_DEEP_CLEAN
        work = np.where(deep, rng.integers(60, 151, (C, D)), rng.integers(30, 61, (C, D)))
        left_on = rng.random((C, D)) < _P_LIGHTS_LEFT_ON
        lit = np.where(left_on, rng.integers(185, 331, (C, D)), work)
        level = rng.uniform(0.9, 1.0, (C, D))
        c = np.broadcast_to(np.arange(C)[:, None], (C, D))
        for cause, mask in ((4, act & ~left_on), (5, act & left_on)):
            parts.append(
                _Events.of(
                    z[mask],
                    start[mask],
                    start[mask] + lit[mask],
                    _CLEANING,
                    level=level[mask],
                    cause=cause,
                    magnitude=lay.rated_w[z[mask]] * level[mask],
                    aux=c[mask],
                )  # fmt: skip
            )
        cursor = np.where(act, start + work + rng.integers(2, 9, (C, D)), cursor)
    ev = _Events.concat(parts)
    # lights left on go off at the latest when the contract opens or the tenant comes back
    z_open, d_open = np.nonzero(opens >= 0)
    bound = np.minimum(
        _next_start(tenant.zone, tenant.start, ev), _next_start(z_open, opens[z_open, d_open], ev)
    )
    ev = ev.replace(end=np.minimum(ev.end, bound))
    return ev.take(ev.start < ev.end).sorted_disjoint()


def _next_start(zone: np.ndarray, start: np.ndarray, ev: _Events) -> np.ndarray:
    """Per interval of ``ev``, the first of the times ``start`` (sorted by zone, then time) in its zone after
    its start; int64 max where there is none."""
    key = zone.astype(np.int64) * _BIG + start
    nxt = np.searchsorted(key, ev.zone * _BIG + ev.start, side="right")
    j = np.minimum(nxt, len(key) - 1)
    found = (nxt < len(key)) & (zone[j] == ev.zone) if len(key) else np.zeros(len(ev), dtype=bool)
    return np.where(found, start[j] if len(key) else 0, np.iinfo(np.int64).max)


def _fault_events(
    cal: _Calendar,
    lay: _Layout,
    grid: _Grid,
    window_start: int,
    rates: FaultRates,
    rng: np.random.Generator,
) -> _Events:
    """Drift, stuck-on and dropout faults, all starting at or after ``window_start`` (SPEC §5)."""
    Z, end = lay.n, grid.end
    window = end - window_start
    zone_days = Z * window / 1440
    parts = []
    # drift: on-power rising from an onset to the end of the period
    n_drift = max(1, round(rates.drift_zone_share * Z)) if window >= 2 * 1440 else 0
    zones = rng.choice(Z, size=min(n_drift, Z), replace=False)
    visible = min(7 * 1440, window // 2)
    onset = rng.integers(window_start, max(window_start + 1, end - visible), zones.size)
    rate = rng.uniform(0.005, 0.02, zones.size)
    parts.append(_Events.of(zones, onset, np.full(zones.size, end), _DRIFT, magnitude=rate))
    # stuck-on: lights on from (just after) a closing until the next opening, over 12 h outside the
    # (grace-widened) contracted hours
    k_open, k_close, k_working = _contract_times(cal, lay)
    z_all, d_all = np.nonzero(k_working[lay.client])
    gap_start = k_close[lay.client[z_all], d_all]
    gap_end = np.append(k_open[lay.client[z_all[1:]], d_all[1:]], 0)
    need = _MIN_STUCK_MINUTES + 2 * lay.grace_minutes[lay.client[z_all]]
    fits = (
        (np.append(z_all[1:], -1) == z_all)
        & (gap_end - gap_start >= need + 60)
        & (gap_start >= window_start)
        & (gap_end <= end)
    )
    candidates = np.flatnonzero(fits)
    n_stuck = min(max(1, round(rates.stuck_on_per_zone_day * zone_days)), candidates.size)
    pick = np.sort(rng.choice(candidates, size=n_stuck, replace=False))
    slack = gap_end[pick] - gap_start[pick] - need[pick]
    s_start = gap_start[pick] + rng.integers(0, np.minimum(slack, 60) + 1)
    stuck = _Events.of(z_all[pick], s_start, gap_end[pick], _STUCK, magnitude=lay.rated_w[z_all[pick]])
    parts.append(stuck)
    # dropout: a zone silent for 25–72 h, never overlapping a stuck-on fault or another dropout
    n_drop = max(1, round(rates.dropout_per_zone_day * zone_days)) if window >= 2 * 1440 else 0
    taken: dict[int, list[tuple[int, int]]] = {}
    for z, a, b in zip(stuck.zone.tolist(), stuck.start.tolist(), stuck.end.tolist(), strict=True):
        taken.setdefault(z, []).append((a, b))
    drop: list[tuple[int, int, int]] = []
    for _ in range(20 * n_drop):
        if len(drop) == n_drop:
            break
        z = int(rng.integers(Z))
        length = int(rng.integers(25 * 60, min(72 * 60, window - 60) + 1))
        start = int(rng.integers(window_start, end - length + 1))
        if all(b <= start or a >= start + length for a, b in taken.get(z, [])):
            taken.setdefault(z, []).append((start, start + length))
            drop.append((z, start, start + length))
    d = np.array(drop, dtype=np.int64).reshape(-1, 3)
    parts.append(_Events.of(d[:, 0], d[:, 1], d[:, 2], _DROPOUT))
    return _Events.concat(parts)


# --- readings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """Reading times per zone, zone-major: rows of zone z are ``starts[z]:starts[z + 1]``, by time."""

    zone: np.ndarray  # (N,) int32
    t: np.ndarray  # (N,) int32 minutes since t0
    starts: np.ndarray  # (Z + 1,)
    step: int  # periodic step [min]; 0 = legacy (random minutes)
    end: int  # minutes since t0 where the period ends

    @property
    def n(self) -> int:
        return len(self.t)

    @classmethod
    def periodic(cls, zones: int, total_minutes: int, step: int) -> _Grid:
        steps = total_minutes // step
        t = np.arange(steps, dtype=np.int32) * np.int32(step)
        return cls(
            zone=np.repeat(np.arange(zones, dtype=np.int32), steps),
            t=np.tile(t, zones),
            starts=np.arange(zones + 1, dtype=np.int64) * steps,
            step=step,
            end=steps * step,
        )

    @classmethod
    def legacy(cls, zones: int, total_minutes: int, rng: np.random.Generator) -> _Grid:
        """1–3 readings per zone and hour at random distinct minutes (one per 20-minute third at most)."""
        hours = -(-total_minutes // 60)
        count = rng.integers(1, 4, (zones, hours, 1))
        rank = np.argsort(rng.random((zones, hours, 3)), axis=2)
        minute = (
            np.arange(hours)[None, :, None] * 60
            + np.arange(3)[None, None, :] * 20
            + rng.integers(0, 20, (zones, hours, 3))
        )
        keep = (rank < count) & (minute < total_minutes)
        zone = np.broadcast_to(np.arange(zones)[:, None, None], keep.shape)[keep].astype(np.int32)
        return cls(
            zone=zone,
            t=minute[keep].astype(np.int32),
            starts=np.searchsorted(zone, np.arange(zones + 1)),
            step=0,
            end=total_minutes,
        )

    def snap(self, t: np.ndarray) -> np.ndarray:
        """Times onto the grid: the first reading time at or after ``t`` (periodic), within the period."""
        t = np.clip(t, 0, self.end)
        return -(-t // self.step) * self.step if self.step else t

    def snapped(self, ev: _Events) -> _Events:
        ev = ev.replace(start=self.snap(ev.start), end=self.snap(ev.end))
        return ev.take((ev.start < ev.end) | (ev.kind == _SPIKE))

    def positions(self, zone: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Row of the first reading of ``zone`` at or after ``t``."""
        if self.step:
            return self.starts[zone] + np.minimum(-(-t // self.step), self.end // self.step)
        key = self.zone.astype(np.int64) * _BIG + self.t
        return np.searchsorted(key, zone * _BIG + t, side="left")

    def mask(self, ev: _Events) -> np.ndarray:
        """Per row, whether it lies in an interval of ``ev`` (few intervals: a loop over them, not rows)."""
        out = np.zeros(self.n, dtype=bool)
        starts, ends = self.positions(ev.zone, ev.start), self.positions(ev.zone, ev.end)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            out[a:b] = True
        return out

    def spread(self, ev: _Events, values: np.ndarray) -> np.ndarray:
        """Per row, the value of the interval of ``ev`` it lies in, else 0. The intervals must be sorted by
        (zone, start) and disjoint: the rows then fall into runs gap, interval, gap, … repeated in order."""
        edges = np.empty(2 * len(ev) + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, self.n
        edges[1:-1:2] = self.positions(ev.zone, ev.start)
        edges[2:-1:2] = self.positions(ev.zone, ev.end)
        runs = np.diff(edges)
        if (runs < 0).any():
            raise AssertionError("intervals overlap or are out of order")  # a bug, not a user error
        fill = np.zeros(2 * len(ev) + 1, dtype=values.dtype)
        fill[1::2] = values
        return np.repeat(fill, runs)


def _paint(
    grid: _Grid,
    lay: _Layout,
    tenant: _Events,
    cleaning: _Events,
    faults: _Events,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per grid row: power [W, unrounded], lit, cleaning staff present, kept (False inside dropouts)."""
    stuck = faults.take(faults.kind == _STUCK).sorted_disjoint()
    dropout = faults.take(faults.kind == _DROPOUT).sorted_disjoint()
    level = grid.spread(tenant, tenant.level)  # share of rated power; 0 = dark
    cleaning_level = grid.spread(cleaning, cleaning.level)
    staff = cleaning_level > 0
    np.copyto(level, cleaning_level, where=staff)
    del cleaning_level
    level[grid.mask(stuck)] = 1.0
    keep = ~grid.mask(dropout)
    drift = faults.take(faults.kind == _DRIFT)
    for z, onset, rate in zip(drift.zone, drift.start, drift.magnitude, strict=True):
        rows = slice(grid.starts[z], grid.starts[z + 1])
        days = np.maximum(grid.t[rows] - onset, 0) / 1440.0
        level[rows] *= 1.0 + np.minimum(rate * days, _DRIFT_CAP)
    noise = rng.standard_normal(grid.n, dtype=np.float32)
    per_zone = np.diff(grid.starts)
    lit = level > 0
    power = np.repeat(lay.rated_w, per_zone)
    power *= level
    del level
    power *= 1.0 + 0.02 * noise
    standby = np.repeat(lay.standby_w, per_zone)
    standby += 0.25 * noise
    np.clip(standby, 0.0, lay.standby_max_w, out=standby)
    np.copyto(power, standby, where=~lit)
    return power, lit, staff, keep


def _spikes(
    grid: _Grid,
    power: np.ndarray,
    lit: np.ndarray,
    window_start: int,
    config: GeneratorConfig,
    rng: np.random.Generator,
) -> _Events:
    """Single lit readings in the fault window multiplied by 2.5–4 (modifies ``power`` in place)."""
    if not config.faults:
        return _Events.of(np.zeros(0), np.zeros(0), np.zeros(0), _SPIKE)
    eligible = np.flatnonzero(lit & (grid.t >= window_start))
    if eligible.size == 0:
        return _Events.of(np.zeros(0), np.zeros(0), np.zeros(0), _SPIKE)
    n = max(1, int(rng.binomial(eligible.size, config.fault_rates.spike_share)))
    rows = np.sort(rng.choice(eligible, size=min(n, eligible.size), replace=False))
    factor = rng.uniform(2.5, 4.0, rows.size)
    normal = np.round(power[rows], 1)
    power[rows] = normal * factor
    spiked = np.round(power[rows], 1)
    # the label's factor is the one the rounded readings show
    return _Events.of(
        grid.zone[rows], grid.t[rows], grid.t[rows], _SPIKE, magnitude=np.round(spiked / normal, 3),
        level=normal,
    )  # fmt: skip


def _readings_frame(
    grid: _Grid,
    lay: _Layout,
    cal: _Calendar,
    power: np.ndarray,
    staff: np.ndarray,
    keep: np.ndarray,
    fmt: str,
) -> pd.DataFrame:
    if grid.step:  # zone-major → time-major: a transposed view, masked in its own (time-major) order
        shape = (lay.n, grid.end // grid.step)
        kept = keep.reshape(shape).T

        def take(values: np.ndarray) -> np.ndarray:
            return values.reshape(shape).T[kept]
    else:
        order = np.argsort(grid.t, kind="stable")
        order = order[keep[order]]

        def take(values: np.ndarray) -> np.ndarray:
            return values[order]

    zone = take(grid.zone)
    ms = (take(grid.t).astype(np.int64) + cal.t0_minutes) * 60_000
    utc = pd.DatetimeIndex(ms.view("datetime64[ms]"), copy=False).tz_localize("UTC")
    zones = pd.Categorical.from_codes(zone, categories=lay.zone_ids)
    clients = pd.Categorical.from_codes(lay.client[zone], categories=lay.client_ids)
    buildings = pd.Categorical.from_codes(lay.building[zone], categories=lay.buildings)
    floor, zno = lay.floor[zone], lay.zone[zone]
    watts, flag = take(power), take(staff)
    if fmt == "periodic":
        columns = (utc.tz_convert(cal.timezone), zones, clients, watts, flag, buildings, floor, zno)
        names = READING_COLUMNS
    else:
        local = utc.tz_convert(cal.timezone).tz_localize(None).as_unit("s")
        yes_no = pd.Categorical.from_codes(flag.astype(np.int8), categories=["No", "Yes"])
        columns = (local, zones, clients, watts, yes_no, buildings, floor, zno)
        names = LEGACY_COLUMNS
    return pd.DataFrame(dict(zip(names, columns, strict=True)), copy=False)


def _labels_frame(ev: _Events, lay: _Layout, cal: _Calendar, flag_after_minutes: int) -> pd.DataFrame:
    ev = ev.take(np.lexsort((ev.kind, ev.zone, ev.start)))
    minutes = (ev.end - ev.start).astype(np.float64)
    kind = ev.kind.astype(np.int64)
    magnitude = np.select(
        [kind == _DRIFT, kind == _SPIKE],
        [np.round(ev.magnitude, 6), np.round(ev.magnitude, 3)],
        np.round(ev.magnitude, 1),
    )
    flagged = (kind == _CLEANING) & (minutes > flag_after_minutes)
    details = [
        _detail(k, c, m, g, lv, lay.crew_names[a] if k == _CLEANING else "", cal.total_minutes - s)
        for k, c, m, g, lv, a, s in zip(
            kind.tolist(), ev.cause.tolist(), minutes.tolist(), magnitude.tolist(),
            ev.level.tolist(), ev.aux.tolist(), ev.start.tolist(), strict=True,
        )
    ]  # fmt: skip

    def stamp(t: np.ndarray) -> pd.DatetimeIndex:
        ms = (t + cal.t0_minutes) * 60_000
        return pd.DatetimeIndex(ms.astype("datetime64[ms]")).tz_localize("UTC").tz_convert(cal.timezone)

    return pd.DataFrame(
        {
            "kind": pd.array(np.array(_KIND_NAMES, dtype=object)[kind], dtype="str"),
            S.ZONE_ID: pd.array([lay.zone_ids[z] for z in ev.zone], dtype="str"),
            S.CLIENT_ID: pd.array([lay.client_ids[lay.client[z]] for z in ev.zone], dtype="str"),
            S.BUILDING: pd.array([lay.buildings[lay.building[z]] for z in ev.zone], dtype="str"),
            "start": stamp(ev.start),
            "end": stamp(ev.end),
            "minutes": minutes,
            "magnitude": magnitude,
            "flagged": flagged,
            "is_fault": kind >= _DRIFT,
            "cause": pd.array(np.array(_CAUSES, dtype=object)[ev.cause], dtype="str"),
            "detail": pd.array(details, dtype="str"),
        }
    )


def _detail(
    kind: int, cause: int, minutes: float, magnitude: float, level: float, crew: str, left: float
) -> str:
    """One line a manager understands (no commas, so CSV cells need no quoting)."""
    if kind == _OVERTIME:
        what = {1: "after closing", 2: "before opening", 3: "on a closed day"}[cause]
        return f"tenant lights on {minutes:.0f} min {what} at {magnitude:.0f} W"
    if kind == _CLEANING:
        if cause == 5:
            return f"{crew} left the lights on: {minutes:.0f} min at {magnitude:.0f} W"
        return f"{crew} cleaned for {minutes:.0f} min at {magnitude:.0f} W"
    if kind == _DRIFT:
        rise = min(magnitude * left / 1440, _DRIFT_CAP)
        return (
            f"on-power rising {100 * magnitude:.1f} %/day from onset (at most +{100 * _DRIFT_CAP:.0f} %);"
            f" +{100 * rise:.0f} % by the end"
        )
    if kind == _SPIKE:
        return f"single reading of {level * magnitude:.1f} W: {magnitude:.2f} x the normal {level:.1f} W"
    if kind == _STUCK:
        return f"lights stuck on for {minutes / 60:.1f} h outside contracted hours at {magnitude:.0f} W"
    return f"no readings for {minutes / 60:.1f} h"


# --- writing -----------------------------------------------------------------------------------------


def write_generated(
    data: GeneratedData, out_path: str | Path, labels_path: str | Path | None = None
) -> list[Path]:
    """Write the readings (and the labels when ``labels_path`` is given) by suffix: ``.csv``, ``.csv.gz``
    or ``.parquet``. Times in CSV are ISO 8601 with the site's UTC offset (legacy readings: naive local
    ``YYYY-MM-DD HH:MM:SS``, as the legacy export). Each file appears complete or not at all. Returns the
    paths written."""
    targets = [(Path(out_path), data.readings)]
    if labels_path is not None:
        targets.append((Path(labels_path), data.labels))
    for path, _ in targets:
        _file_format(path)  # refuse a bad suffix before writing anything
    for path, frame in targets:
        _write_frame(frame, path)
    return [path for path, _ in targets]


def _file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in ((".csv.gz", "csv.gz"), (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    raise SlemError(f"{path.name}: unknown output format (use .csv, .csv.gz or .parquet)")


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    kind = _file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False, compression="zstd")
        else:
            _write_csv(frame, tmp, gzip=kind == "csv.gz")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(frame: pd.DataFrame, path: Path, *, gzip: bool) -> None:
    """pyarrow's CSV writer over text-encoded columns: fast for millions of rows; quotes only when needed."""
    table = pa.table({str(name): _csv_column(frame[name]) for name in frame.columns})
    header = ",".join(_csv_cell(str(name)) for name in frame.columns) + "\n"
    for quoting in ("none", "needed"):  # "none" raises on a value that needs quotes
        sink = pa.CompressedOutputStream(str(path), "gzip") if gzip else pa.OSFile(str(path), "wb")
        with sink:
            sink.write(header.encode())
            try:
                pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style=quoting))
                return
            except pa.ArrowInvalid:
                if quoting == "needed":
                    raise


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def _csv_column(column: pd.Series) -> pa.Array:
    """Times as ISO 8601 text and floats as Python writes them (``17.0``), dictionary-encoded: only the
    distinct values are formatted."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            text = [ts.isoformat() for ts in uniques]
        else:
            text = list(pd.DatetimeIndex(uniques).strftime("%Y-%m-%d %H:%M:%S"))
        return _dictionary(codes, text)
    if pd.api.types.is_float_dtype(column):
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        return _dictionary(codes, [repr(float(v)) for v in uniques])
    return pa.array(column, from_pandas=True)


def _dictionary(codes: np.ndarray, text: list[str]) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(text, type=pa.string()))

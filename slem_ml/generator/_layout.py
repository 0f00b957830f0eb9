"""The site's zones: buildings → floors → zones (``B-F{floor}-Z{zone}``), each leased to one client, with
its rated power, standby draw, overtime propensity and the cleaning crew that walks it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S

_ZONES_PER_CREW = 6


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
class Layout:
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
    def build(cls, zones: int, site: SiteConfig, rng: np.random.Generator) -> Layout:
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

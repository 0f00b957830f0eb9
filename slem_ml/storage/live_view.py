"""What the Live tab reads (SPEC §9): a few small SELECTs on the live state, never the readings store.

:func:`read_live` takes one snapshot for one refresh of the tab:

* every zone as the stream last saw it (``live_zones`` joined to its place in ``store_zones``: one row per
  zone, a few thousand rows);
* each building's energy per quarter hour in ``[start_ms, end_ms)`` (``live_power``, read through its
  primary key, building by building);
* each building's expected band per hour in the same span: the zones' bands (``live_bands``) summed in SQL
  — the costliest of these SELECTs, so a :class:`BandCache` keeps the sums until the span's rows change
  (they are written once a day) or for a few minutes at most;
* the open alerts (``open`` or ``ongoing``): how many each zone has, and the newest few in full.

Instants are UTC milliseconds, power in W, energy in Wh. A user tied to a client (``client_id``) gets only
the zones that client's latest readings name and their alerts, and no building totals: those add up
every client's light.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from slem_ml.storage.tables import Alert, LiveBand, LivePower, LiveZone, StoreZone

__all__ = [
    "ALERT_COLUMNS",
    "BAND_COLUMNS",
    "POWER_COLUMNS",
    "ZONE_COLUMNS",
    "BandCache",
    "LiveSnapshot",
    "read_live",
]

#: :attr:`LiveSnapshot.zones`: the place of each zone and its ``live_zones`` row (see
#: :class:`~slem_ml.storage.live_tables.LiveZone` for the units).
ZONE_COLUMNS: tuple[str, ...] = (
    "zone_id", "building", "floor", "client_id", "last_ms", "power_w", "lit", "in_contract", "cleaning",
    "interval_ms", "run_start_ms", "run_energy_wh",
)  # fmt: skip
POWER_COLUMNS: tuple[str, ...] = ("building", "bucket_ms", "energy_wh")  # [UTC ms], [Wh] per quarter hour
BAND_COLUMNS: tuple[str, ...] = ("building", "hour_ms", "expected_w", "lower_w", "upper_w")  # [UTC ms], [W]
#: :attr:`LiveSnapshot.alerts`; ``detected_at`` is a tz-aware UTC timestamp.
ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id", "zone_id", "kind", "severity", "status", "detected_at", "detail",
)  # fmt: skip
_OPEN = ("open", "ongoing")  # SPEC §5: an alert nobody has resolved
_IN_CHUNK = 900  # values per SQL IN list (SQLite allows 999 parameters by default)


@dataclass(frozen=True)
class LiveSnapshot:
    """The live state one refresh of the Live tab shows (module docstring)."""

    zones: pd.DataFrame  # ZONE_COLUMNS, by zone id
    power: pd.DataFrame  # POWER_COLUMNS, by building and quarter hour
    bands: pd.DataFrame  # BAND_COLUMNS, by building and hour: the sums of the buildings' zones' bands
    alerts: pd.DataFrame  # ALERT_COLUMNS: the newest open alerts, newest first
    open_alerts: dict[str, int]  # zone id -> how many open alerts it has


class BandCache:
    """The buildings' bands of a span as last summed, per database: summed again when the span's number of
    ``live_bands`` rows changes (an index-only count) or the sums are older than ``max_age_s`` [s] (a day's
    bands written again in place). Safe to share between threads."""

    def __init__(self, max_age_s: float = 300.0) -> None:
        self.max_age_s = max_age_s
        self._kept: dict[tuple[str, int, int], tuple[int, float, pd.DataFrame]] = {}
        self._lock = threading.Lock()

    def bands(self, connection: Connection, start_ms: int, end_ms: int) -> pd.DataFrame:
        """:data:`BAND_COLUMNS` of ``[start_ms, end_ms)`` [UTC ms], from the cache when still right."""
        key = (connection.engine.url.render_as_string(), start_ms, end_ms)
        span = (LiveBand.hour_ms >= start_ms) & (LiveBand.hour_ms < end_ms)
        rows = int(connection.execute(select(func.count()).select_from(LiveBand).where(span)).scalar_one())
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[0] == rows and now - kept[1] <= self.max_age_s:
            return kept[2]
        bands = _bands(connection, start_ms, end_ms)
        with self._lock:
            self._kept = {k: v for k, v in self._kept.items() if k[0] != key[0] or k == key}  # one span
            self._kept[key] = (rows, now, bands)
        return bands


def read_live(
    engine: Engine,
    start_ms: int,
    end_ms: int,
    *,
    client_id: str | None = None,
    alert_limit: int = 50,
    cache: BandCache | None = None,
) -> LiveSnapshot:
    """The live state in one read transaction (module docstring): power and bands of ``[start_ms,
    end_ms)`` [UTC ms] (bands through ``cache`` when given), at most ``alert_limit`` open alerts in full;
    only ``client_id``'s zones when given.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":  # one snapshot for all the SELECTs, as SQLite has
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        zones = _zones(connection, client_id)
        counts = _open_counts(connection)
        if client_id is None:
            buildings = sorted(set(zones["building"]))
            power = _power(connection, buildings, start_ms, end_ms)
            bands = (
                _bands(connection, start_ms, end_ms)
                if cache is None
                else cache.bands(connection, start_ms, end_ms)
            )
            alerts = _newest_alerts(connection, None, alert_limit)
        else:
            mine = set(zones["zone_id"])
            counts = {zone: n for zone, n in counts.items() if zone in mine}
            power = pd.DataFrame(columns=list(POWER_COLUMNS))
            bands = pd.DataFrame(columns=list(BAND_COLUMNS))
            alerts = _newest_alerts(connection, sorted(counts), alert_limit)
    return LiveSnapshot(zones=zones, power=power, bands=bands, alerts=alerts, open_alerts=counts)


def _zones(connection: Connection, client_id: str | None) -> pd.DataFrame:
    live = [getattr(LiveZone, c) for c in ZONE_COLUMNS[3:]]
    query = (
        select(StoreZone.zone_id, StoreZone.building, StoreZone.floor, *live)
        .join(StoreZone, StoreZone.id == LiveZone.zone_key)
        .order_by(StoreZone.zone_id)
    )
    if client_id is not None:
        query = query.where(LiveZone.client_id == client_id)
    frame = _frame(connection.execute(query).all(), ZONE_COLUMNS)
    for column in ("lit", "in_contract", "cleaning"):  # SQLite gives 0/1
        frame[column] = frame[column].astype(bool)
    types = {"last_ms": "int64", "interval_ms": "int64", "power_w": float, "run_energy_wh": float}
    return frame.astype(types)


def _power(connection: Connection, buildings: list[str], start_ms: int, end_ms: int) -> pd.DataFrame:
    """Quarter hours of ``buildings``: ``building IN (…)`` lets both backends range-scan the primary key
    (building, bucket_ms) instead of reading every building's whole history."""
    rows: list[Any] = []
    for at in range(0, len(buildings), _IN_CHUNK):
        query = (
            select(LivePower.building, LivePower.bucket_ms, LivePower.energy_wh)
            .where(LivePower.building.in_(buildings[at : at + _IN_CHUNK]))
            .where(LivePower.bucket_ms >= start_ms, LivePower.bucket_ms < end_ms)
            .order_by(LivePower.building, LivePower.bucket_ms)
        )
        rows += connection.execute(query).all()
    return _frame(rows, POWER_COLUMNS)


def _bands(connection: Connection, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The buildings' hourly bands: sums over their zones, aggregated by the database (index on hour_ms)."""
    query = (
        select(
            StoreZone.building,
            LiveBand.hour_ms,
            func.sum(LiveBand.expected_w),
            func.sum(LiveBand.lower_w),
            func.sum(LiveBand.upper_w),
        )
        .join(StoreZone, StoreZone.id == LiveBand.zone_key)
        .where(LiveBand.hour_ms >= start_ms, LiveBand.hour_ms < end_ms)
        .group_by(StoreZone.building, LiveBand.hour_ms)
        .order_by(StoreZone.building, LiveBand.hour_ms)
    )
    return _frame(connection.execute(query).all(), BAND_COLUMNS)


def _open_counts(connection: Connection) -> dict[str, int]:
    query = select(Alert.zone_id, func.count()).where(Alert.status.in_(_OPEN)).group_by(Alert.zone_id)
    return {str(zone): int(n) for zone, n in connection.execute(query)}


def _newest_alerts(connection: Connection, zone_ids: Sequence[str] | None, limit: int) -> pd.DataFrame:
    """The ``limit`` newest open alerts (of ``zone_ids`` when given), newest first."""
    columns = [getattr(Alert, c) for c in ALERT_COLUMNS]
    base = select(*columns).where(Alert.status.in_(_OPEN)).order_by(Alert.detected_at.desc(), Alert.id.desc())
    rows: list[Any] = []
    if zone_ids is None:
        rows += connection.execute(base.limit(limit)).all()
    else:  # each chunk's newest, then the newest of those
        for at in range(0, len(zone_ids), _IN_CHUNK):
            chunk = base.where(Alert.zone_id.in_(zone_ids[at : at + _IN_CHUNK])).limit(limit)
            rows += connection.execute(chunk).all()
    frame = _frame(rows, ALERT_COLUMNS)
    frame["detected_at"] = pd.to_datetime(frame["detected_at"], utc=True)
    return frame.sort_values("detected_at", ascending=False, kind="stable").head(limit).reset_index(drop=True)


def _frame(rows: Sequence[Any], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows as a frame, column by column (pandas probes every row object it is given: 10× slower)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame(dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)))

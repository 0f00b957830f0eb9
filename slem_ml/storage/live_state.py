"""Reading and writing the live state (SPEC §9; tables in :mod:`slem_ml.storage.live_tables`) and the alerts
the live detectors raise.

Everything here runs in the caller's transaction: the worker moves the state and writes alerts in the
transaction that stores the readings, so a crash leaves both as before or both as after. Write transactions
are serialised (:func:`~slem_ml.storage.database.write_session`), so several workers never interleave a
zone's state; the upsert still keeps the later reading should two ever race.

Live alerts belong to no scoring run (``run_id`` NULL). An alert is keyed by ``alert_id`` as a run's are:
the live detectors and a later scoring run of the same readings update one alert, never raise two.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from slem_ml.storage.blocks import MS_PER_DAY, decode, fetch
from slem_ml.storage.live_tables import LiveBand, LivePower, LiveZone
from slem_ml.storage.rebill import client_names, readings_frame, zone_names
from slem_ml.storage.tables import Alert, AuditEntry, StoreZone

__all__ = [
    "PUBLISHED_FIELDS",
    "add_power",
    "apply_alerts",
    "end_alerts",
    "forget_spikes",
    "load_states",
    "read_bands",
    "save_states",
    "site_hours",
    "stored_alert_ids",
    "stored_history",
    "write_bands",
    "zone_ids",
]

#: The fields of an alert as published on ``slem/alerts/<zone_id>`` (times as ISO 8601 UTC).
PUBLISHED_FIELDS = (
    "alert_id", "zone_id", "kind", "severity", "status", "detected_at", "first_seen", "last_seen", "score",
    "detail",
)  # fmt: skip
_STATE = cast(Table, LiveZone.__table__)
_POWER = cast(Table, LivePower.__table__)
_BANDS = cast(Table, LiveBand.__table__)
_ALERTS = cast(Table, Alert.__table__)
_STATE_COLUMNS = [c.name for c in _STATE.columns if c.name not in ("zone_key", "updated_at")]
_CHUNK = 500  # keys per IN (...) list


def _insert(connection: Connection, table: Table) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def load_states(connection: Connection, zone_keys: list[int] | None = None) -> pd.DataFrame:
    """The live state of ``zone_keys`` (default: every zone), indexed by zone key; NULLs as NaN."""
    columns = [_STATE.c.zone_key, *(_STATE.c[name] for name in _STATE_COLUMNS)]
    rows: list[Any] = []
    if zone_keys is None:
        rows = list(connection.execute(select(*columns)))
    else:
        for at in range(0, len(zone_keys), _CHUNK):
            chunk = zone_keys[at : at + _CHUNK]
            rows += connection.execute(select(*columns).where(_STATE.c.zone_key.in_(chunk))).all()
    frame = pd.DataFrame(rows, columns=["zone_key", *_STATE_COLUMNS])
    for name in ("last_ms", "interval_ms", "run_start_ms", "spike_first_ms", "spike_last_ms"):
        frame[name] = pd.to_numeric(frame[name]).astype("float64")  # NULL → NaN (ms fit a float exactly)
    return frame.set_index("zone_key")


def save_states(connection: Connection, states: pd.DataFrame, now: dt.datetime) -> None:
    """Upsert zones' states (``load_states``' columns; -1 or NaN for NULL instants); a stored state with a
    later reading is kept."""
    if states.empty:
        return
    rows = []
    for key, row in zip(states.index.tolist(), states.to_dict("records"), strict=True):
        record = {"zone_key": int(key), "updated_at": now}
        for name in _STATE_COLUMNS:
            value = row[name]
            if name.endswith("_ms"):
                value = None if value is None or value != value or value < 0 else int(value)
            elif name in ("lit", "in_contract", "cleaning"):
                value = bool(value)
            elif name == "client_id":
                value = str(value)[:64]
            else:
                value = float(value)
            record[name] = value
        rows.append(record)
    statement = _insert(connection, _STATE)
    fresh = {name: statement.excluded[name] for name in (*_STATE_COLUMNS, "updated_at")}
    statement = statement.on_conflict_do_update(
        index_elements=[_STATE.c.zone_key], set_=fresh, where=statement.excluded.last_ms > _STATE.c.last_ms
    )
    connection.execute(statement, rows)


def add_power(connection: Connection, power: pd.DataFrame) -> None:
    """Add energy [Wh] to buildings' quarter hours (``building``, ``bucket_ms``, ``energy_wh``)."""
    if power.empty:
        return
    rows = [
        {"building": str(b)[:64], "bucket_ms": int(t), "energy_wh": float(e)}
        for b, t, e in zip(power["building"], power["bucket_ms"], power["energy_wh"], strict=True)
    ]
    statement = _insert(connection, _POWER)
    statement = statement.on_conflict_do_update(
        index_elements=[_POWER.c.building, _POWER.c.bucket_ms],
        set_={"energy_wh": _POWER.c.energy_wh + statement.excluded.energy_wh},
    )
    connection.execute(statement, rows)


def forget_spikes(connection: Connection, zone_keys: list[int]) -> None:
    """End zones' spike episodes in their live state."""
    for at in range(0, len(zone_keys), _CHUNK):
        connection.execute(
            update(_STATE)
            .where(_STATE.c.zone_key.in_(zone_keys[at : at + _CHUNK]))
            .values(spike_first_ms=None, spike_last_ms=None)
        )


def zone_ids(connection: Connection) -> pd.Series:
    """Every stored zone's id, indexed by zone key."""
    names = zone_names(connection)
    return pd.Series(list(names.values()), index=pd.Index(list(names), name="zone_key"), dtype=object)


def stored_history(connection: Connection, from_ms: int, to_ms: int) -> pd.DataFrame:
    """Every zone's stored readings in ``[from_ms, to_ms)`` [UTC ms] as a validated-readings frame with
    ``building`` and ``floor`` (:func:`~slem_ml.storage.rebill.readings_frame`)."""
    zones = cast(Table, StoreZone.__table__)
    places = {
        int(k): (str(b), str(f))
        for k, b, f in connection.execute(select(zones.c.id, zones.c.building, zones.c.floor))
    }
    first, last = from_ms // MS_PER_DAY, (to_ms - 1) // MS_PER_DAY
    rows = fetch(connection, [(key, first, last) for key in places])
    readings = decode(rows, {key: (from_ms, to_ms) for key in places})
    return readings_frame(readings, zone_names(connection), client_names(connection), places)


# --- alerts ----------------------------------------------------------------------------------------


def apply_alerts(connection: Connection, alerts: pd.DataFrame, at: dt.datetime, actor: str) -> list[dict]:
    """Raise the new alerts of ``alerts`` (:func:`~slem_ml.models.alerts.alert_columns`), update the known
    ones' evidence, and resolve those whose condition ended; what a person resolved stays resolved.

    Returns the alerts raised or resolved here, as :data:`PUBLISHED_FIELDS` dicts, to publish."""
    if alerts.empty:
        return []
    ids = alerts["alert_id"].astype(str).tolist()
    known: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(_ALERTS).where(_ALERTS.c.alert_id.in_(ids[start : start + _CHUNK]))
        known.update({row.alert_id: row for row in connection.execute(query)})
    changed: list[dict] = []
    for row in alerts.to_dict("records"):
        fields = {name: row[name] for name in PUBLISHED_FIELDS}
        for name in ("detected_at", "first_seen", "last_seen"):
            fields[name] = pd.Timestamp(fields[name]).to_pydatetime()
        fields["alert_id"], fields["score"] = str(fields["alert_id"]), float(fields["score"])
        stored = known.get(fields["alert_id"])
        if stored is None:
            connection.execute(insert(_ALERTS).values(**fields, run_id=None, last_run_id=None))
            _audit(connection, at, actor, "alert.raised", fields["alert_id"], _raised(fields))
            known[fields["alert_id"]] = fields
            changed.append(fields)
            continue
        values: dict[str, Any] = {"last_seen": max(stored.last_seen, fields["last_seen"])}
        if fields["kind"] != "spike" or stored.score is None or fields["score"] > stored.score:
            # the evidence now; a spike alert keeps the words of its largest spike
            values.update(severity=fields["severity"], score=fields["score"], detail=fields["detail"])
        ending = fields["status"] == "resolved" and stored.status in ("open", "ongoing")
        if ending:
            values["status"] = "resolved"
            _audit(connection, at, actor, "alert.status", fields["alert_id"],
                   {"old_status": stored.status, "new_status": "resolved", "live": True})  # fmt: skip
        connection.execute(update(_ALERTS).where(_ALERTS.c.alert_id == fields["alert_id"]).values(**values))
        if ending:
            changed.append({**fields, "first_seen": stored.first_seen, "detected_at": stored.detected_at})
    return changed


def site_hours(connection: Connection, from_ms: int, to_ms: int) -> np.ndarray:
    """The UTC hours (hours since the epoch, sorted) in ``[from_ms, to_ms)`` in which any zone of the site
    had a live reading (``live_power``'s quarter hours)."""
    query = select(_POWER.c.bucket_ms).where(_POWER.c.bucket_ms >= from_ms, _POWER.c.bucket_ms < to_ms)
    buckets = np.fromiter(connection.execute(query.distinct()).scalars(), dtype=np.int64)
    return np.unique(buckets // 3_600_000)


def stored_alert_ids(connection: Connection, alert_ids: list[str]) -> set[str]:
    """Those of ``alert_ids`` that are stored."""
    found: set[str] = set()
    for at in range(0, len(alert_ids), _CHUNK):
        query = select(_ALERTS.c.alert_id).where(_ALERTS.c.alert_id.in_(alert_ids[at : at + _CHUNK]))
        found.update(connection.execute(query).scalars())
    return found


def end_alerts(connection: Connection, alert_ids: list[str], at: dt.datetime, actor: str) -> list[dict]:
    """Resolve open alerts whose condition ended (the stored words stay); the ones resolved, to publish."""
    if not alert_ids:
        return []
    rows = connection.execute(
        select(_ALERTS).where(_ALERTS.c.alert_id.in_(alert_ids), _ALERTS.c.status.in_(("open", "ongoing")))
    ).all()
    out = []
    for row in rows:
        connection.execute(update(_ALERTS).where(_ALERTS.c.id == row.id).values(status="resolved"))
        _audit(connection, at, actor, "alert.status", row.alert_id,
               {"old_status": row.status, "new_status": "resolved", "live": True})  # fmt: skip
        out.append({**{name: getattr(row, name) for name in PUBLISHED_FIELDS}, "status": "resolved"})
    return out


def _raised(fields: dict[str, Any]) -> dict[str, Any]:
    keep = ("zone_id", "kind", "severity", "detail")
    return {**{k: fields[k] for k in keep}, "live": True}


def _audit(
    connection: Connection, at: dt.datetime, actor: str, action: str, alert_id: str, detail: dict
) -> None:
    connection.execute(
        insert(cast(Table, AuditEntry.__table__)).values(
            at=at, actor=actor, action=action, entity="alert", entity_id=alert_id, detail=detail
        )
    )


# --- expected bands -------------------------------------------------------------------------------


def write_bands(connection: Connection, bands: pd.DataFrame, keep_after_ms: int) -> int:
    """Store zones' hourly bands (``zone_key``, ``hour_ms``, ``expected_w``, ``lower_w``, ``upper_w``) where
    none is stored yet, and drop those of hours before ``keep_after_ms``; how many were new."""
    connection.execute(delete(_BANDS).where(_BANDS.c.hour_ms < keep_after_ms))
    if bands.empty:
        return 0
    rows = [
        {
            "zone_key": int(z),
            "hour_ms": int(h),
            "expected_w": float(e),
            "lower_w": float(lo),
            "upper_w": float(u),
        }
        for z, h, e, lo, u in zip(
            bands["zone_key"],
            bands["hour_ms"],
            bands["expected_w"],
            bands["lower_w"],
            bands["upper_w"],
            strict=True,
        )
    ]
    result = connection.execute(_insert(connection, _BANDS).on_conflict_do_nothing(), rows)
    return max(int(result.rowcount or 0), 0)


def read_bands(connection: Connection, from_ms: int, to_ms: int) -> pd.DataFrame:
    """The stored bands of hours in ``[from_ms, to_ms)``, ordered by (zone key, hour)."""
    query = (
        select(_BANDS.c.zone_key, _BANDS.c.hour_ms, _BANDS.c.expected_w, _BANDS.c.upper_w)
        .where(_BANDS.c.hour_ms >= from_ms, _BANDS.c.hour_ms < to_ms)
        .order_by(_BANDS.c.zone_key, _BANDS.c.hour_ms)
    )
    frame = pd.DataFrame(
        connection.execute(query).all(), columns=["zone_key", "hour_ms", "expected_w", "upper_w"]
    )
    return frame.astype({"zone_key": np.int64, "hour_ms": np.int64, "expected_w": float, "upper_w": float})

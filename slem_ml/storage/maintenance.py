"""What people do about alerts (SPEC §5): acknowledge, resolve, record maintenance; and reading it back.

An alert moves ``open → ongoing → resolved``. Scoring runs raise alerts and move them between ``open`` and
``ongoing`` (:mod:`slem_ml.storage.store`); a person acknowledges one ("I am on it") and resolves it with a
note saying what was done. A resolution stands: a later run that sees the same ``alert_id`` again updates
its evidence (``last_seen``, ``score``, ``detail``) but never reopens it.

Every change here is one transaction that writes the alert, a ``maintenance_actions`` row and an audit entry
(``alert.acknowledged``, ``alert.resolved``, ``maintenance.recorded``) with the person as actor. Which roles
may call these is the caller's check (:func:`slem_ml.storage.users.role_allows` with ``"maintain"``).
Times are UTC instants; the frames returned have tz-aware UTC columns.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from slem_ml.errors import SlemError
from slem_ml.storage.database import write_session
from slem_ml.storage.tables import ALERT_STATUSES, Alert, AuditEntry, MaintenanceAction

__all__ = [
    "ALERT_FRAME_COLUMNS",
    "HISTORY_COLUMNS",
    "MaintenanceError",
    "acknowledge_alert",
    "alerts_frame",
    "maintenance_history",
    "record_action",
    "resolve_alert",
]

ALERT_FRAME_COLUMNS: tuple[str, ...] = (
    "alert_id", "zone_id", "kind", "severity", "status", "detected_at", "first_seen", "last_seen", "score",
    "detail", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "note",
)  # fmt: skip
HISTORY_COLUMNS: tuple[str, ...] = ("zone_id", "at", "action", "note", "user_name", "alert_id")
_ALERT_TIMES = ("detected_at", "first_seen", "last_seen", "acknowledged_at", "resolved_at")
_ACTIVE = ("open", "ongoing")
_USER_MAX, _ACTION_MAX, _ZONE_MAX = 100, 64, 64  # column lengths


class MaintenanceError(SlemError):
    """An alert cannot be changed as asked (unknown, already resolved, no note) or a record is incomplete."""


def acknowledge_alert(engine: Engine, alert_id: str, user_name: str, note: str | None = None) -> None:
    """Mark ``alert_id`` as taken on by ``user_name`` (and replace its note when ``note`` is given).

    The status stays ``open``/``ongoing``. Acknowledging again records the newer person and time.

    Raises
    ------
    MaintenanceError
        When there is no such alert, it is already resolved, or ``user_name`` is empty or too long.
    """
    _check_text("user name", user_name, _USER_MAX)
    note = _optional(note)
    now = dt.datetime.now(dt.UTC)
    with write_session(engine) as session:
        alert = _active_alert(session, alert_id)
        previous = {"by": alert.acknowledged_by, "at": _iso(alert.acknowledged_at)}
        alert.acknowledged_by, alert.acknowledged_at = user_name, now
        if note is not None:
            alert.note = note
        session.add(_action(alert.zone_id, "acknowledged", note, user_name, now, alert_id))
        detail: dict[str, Any] = {"zone_id": alert.zone_id, "status": alert.status, "note": note}
        if previous["by"] is not None:
            detail["previous"] = previous
        session.add(_audit(now, user_name, "alert.acknowledged", "alert", alert_id, detail))


def resolve_alert(
    engine: Engine, alert_id: str, user_name: str, note: str, *, action: str = "repaired"
) -> None:
    """Close ``alert_id``: status ``resolved``, by ``user_name``, with ``note`` saying what was done.

    ``action`` names the maintenance done (``repaired``, ``relamped``, ``sensor replaced``,
    ``false alarm``, ...) for :func:`maintenance_history`.

    Raises
    ------
    MaintenanceError
        When ``note`` is empty; there is no such alert or it is already resolved; ``user_name`` or
        ``action`` is empty or too long.
    """
    _check_text("user name", user_name, _USER_MAX)
    _check_text("action", action, _ACTION_MAX)
    text = _optional(note)
    if text is None:
        raise MaintenanceError(f"resolving alert {alert_id} needs a note saying what was done")
    now = dt.datetime.now(dt.UTC)
    with write_session(engine) as session:
        alert = _active_alert(session, alert_id)
        old_status = alert.status
        alert.status, alert.resolved_by, alert.resolved_at, alert.note = "resolved", user_name, now, text
        session.add(_action(alert.zone_id, action, text, user_name, now, alert_id))
        detail = {"zone_id": alert.zone_id, "old_status": old_status, "action": action, "note": text}
        session.add(_audit(now, user_name, "alert.resolved", "alert", alert_id, detail))


def record_action(
    engine: Engine,
    zone_id: str,
    action: str,
    note: str | None,
    user_name: str,
    *,
    at: dt.datetime | None = None,
    alert_id: str | None = None,
) -> None:
    """Record maintenance done on ``zone_id`` at ``at`` (default now; tz-aware) without changing any alert.

    ``alert_id``, when given, must be an alert of that zone (of any status): the work is linked to it.

    Raises
    ------
    MaintenanceError
        When ``zone_id``, ``action`` or ``user_name`` is empty or too long, ``at`` has no timezone, or
        ``alert_id`` is unknown or belongs to another zone.
    """
    _check_text("zone", zone_id, _ZONE_MAX)
    _check_text("action", action, _ACTION_MAX)
    _check_text("user name", user_name, _USER_MAX)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise MaintenanceError(f"the time {at.isoformat()} has no timezone")
    now = dt.datetime.now(dt.UTC)
    when = now if at is None else at.astimezone(dt.UTC)
    note = _optional(note)
    with write_session(engine) as session:
        if alert_id is not None:
            alert = _alert(session, alert_id)
            if alert.zone_id != zone_id:
                raise MaintenanceError(f"alert {alert_id} is about zone {alert.zone_id}, not {zone_id}")
        session.add(_action(zone_id, action, note, user_name, when, alert_id))
        detail = {"action": action, "note": note, "at": when.isoformat(), "alert_id": alert_id}
        session.add(_audit(now, user_name, "maintenance.recorded", "zone", zone_id, detail))


def alerts_frame(engine: Engine, *, status: str | None = None) -> pd.DataFrame:
    """Stored alerts, newest ``detected_at`` first, in :data:`ALERT_FRAME_COLUMNS` (times tz-aware UTC).

    ``status``: ``None`` for all, ``"open"`` for the active ones (``open`` or ``ongoing``), or exactly
    ``"ongoing"`` / ``"resolved"``; ``ValueError`` for anything else.
    """
    query = select(*(getattr(Alert, column) for column in ALERT_FRAME_COLUMNS))
    if status == "open":
        query = query.where(Alert.status.in_(_ACTIVE))
    elif status in ALERT_STATUSES:
        query = query.where(Alert.status == status)
    elif status is not None:
        raise ValueError(f"unknown alert status {status!r}: one of {', '.join(ALERT_STATUSES)}")
    query = query.order_by(Alert.detected_at.desc(), Alert.id.desc())
    with Session(engine) as session:
        rows = [tuple(row) for row in session.execute(query)]
    frame = pd.DataFrame.from_records(rows, columns=list(ALERT_FRAME_COLUMNS))
    times = {column: pd.to_datetime(frame[column], utc=True) for column in _ALERT_TIMES}
    return frame.assign(**times, score=frame["score"].astype("float64"))


def maintenance_history(engine: Engine, zone_id: str | None = None) -> pd.DataFrame:
    """Maintenance actions, newest first, of one zone or all, in :data:`HISTORY_COLUMNS` (``at`` in UTC)."""
    query = select(*(getattr(MaintenanceAction, column) for column in HISTORY_COLUMNS))
    if zone_id is not None:
        query = query.where(MaintenanceAction.zone_id == zone_id)
    query = query.order_by(MaintenanceAction.at.desc(), MaintenanceAction.id.desc())
    with Session(engine) as session:
        rows = [tuple(row) for row in session.execute(query)]
    frame = pd.DataFrame.from_records(rows, columns=list(HISTORY_COLUMNS))
    return frame.assign(at=pd.to_datetime(frame["at"], utc=True))


# --- internals ----------------------------------------------------------------------------------------


def _alert(session: Session, alert_id: str) -> Alert:
    alert = session.scalars(select(Alert).where(Alert.alert_id == alert_id)).first()
    if alert is None:
        raise MaintenanceError(f"no alert {alert_id!r}")
    return alert


def _active_alert(session: Session, alert_id: str) -> Alert:
    alert = _alert(session, alert_id)
    if alert.status == "resolved":
        who = f" by {alert.resolved_by}" if alert.resolved_by else " (the condition ended)"
        when = f" at {alert.resolved_at:%Y-%m-%d %H:%M} UTC" if alert.resolved_at else ""
        raise MaintenanceError(f"alert {alert_id} is already resolved{who}{when}")
    return alert


def _check_text(what: str, value: str, longest: int) -> None:
    if not value or not value.strip():
        raise MaintenanceError(f"the {what} cannot be empty")
    if len(value) > longest:
        raise MaintenanceError(f"the {what} {value[:20]!r}... is longer than {longest} characters")


def _optional(note: str | None) -> str | None:
    return None if note is None or not note.strip() else note.strip()


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _action(
    zone_id: str, action: str, note: str | None, user_name: str, at: dt.datetime, alert_id: str | None
) -> MaintenanceAction:
    return MaintenanceAction(
        zone_id=zone_id, action=action, note=note, user_name=user_name, at=at, alert_id=alert_id
    )


def _audit(
    at: dt.datetime, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]
) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, action=action, entity=entity, entity_id=entity_id, detail=detail)

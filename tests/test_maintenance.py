"""Maintenance: acknowledging and resolving alerts, recording work, and reading both back (SPEC §5).

Alerts come from real stored runs (the hand-built results of ``test_storage``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from slem_ml.errors import SlemError
from slem_ml.storage import (
    MaintenanceError,
    acknowledge_alert,
    alerts_frame,
    audit_log,
    maintenance_history,
    record_action,
    resolve_alert,
    store_result,
)
from slem_ml.storage.maintenance import ALERT_FRAME_COLUMNS, HISTORY_COLUMNS
from slem_ml.storage.tables import Alert, MaintenanceAction
from tests.test_storage import FEBRUARY, make_alert, make_result

A1 = "stuck_on:HQ-F1-Z1:20250210T1800Z"


def store_alerts(engine: Engine, *alerts: pd.DataFrame, sha: str = "a") -> int:
    """Store a run of FEBRUARY's invoices that raises ``alerts``; its run id."""
    frame = pd.concat(alerts, ignore_index=True)
    return store_result(engine, make_result(FEBRUARY, input_sha256=sha * 64, alerts=frame)).run_id


def stored_alert(engine: Engine, alert_id: str = A1) -> Alert:
    with Session(engine) as session:
        return session.scalars(select(Alert).where(Alert.alert_id == alert_id)).one()


def actions(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(MaintenanceAction)) or 0


# --- acknowledge and resolve --------------------------------------------------------------------------


def test_acknowledge_then_resolve(engine: Engine) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    before = dt.datetime.now(dt.UTC)

    acknowledge_alert(engine, A1, "mia", note="  electrician booked  ")
    acked = stored_alert(engine)
    resolve_alert(engine, A1, "ben", "replaced the stuck relay", action="relay replaced")
    resolved = stored_alert(engine)

    assert (acked.status, acked.acknowledged_by, acked.note) == ("open", "mia", "electrician booked")
    assert acked.acknowledged_at is not None and before <= acked.acknowledged_at <= dt.datetime.now(dt.UTC)
    assert acked.resolved_by is None and acked.resolved_at is None
    assert (resolved.status, resolved.resolved_by, resolved.note) == (
        "resolved",
        "ben",
        "replaced the stuck relay",
    )
    assert resolved.resolved_at is not None and resolved.resolved_at >= acked.acknowledged_at
    assert (resolved.acknowledged_by, resolved.acknowledged_at) == ("mia", acked.acknowledged_at)
    history = maintenance_history(engine)
    assert history[["action", "user_name", "note", "alert_id", "zone_id"]].values.tolist() == [
        ["relay replaced", "ben", "replaced the stuck relay", A1, "HQ-F1-Z1"],
        ["acknowledged", "mia", "electrician booked", A1, "HQ-F1-Z1"],
    ]
    entries = audit_log(engine, entity="alert", entity_id=A1)
    assert [(e.action, e.actor) for e in entries] == [
        ("alert.resolved", "ben"), ("alert.acknowledged", "mia"), ("alert.raised", "slem"),
    ]  # fmt: skip
    assert entries[0].detail == {
        "zone_id": "HQ-F1-Z1", "old_status": "open", "action": "relay replaced",
        "note": "replaced the stuck relay",
    }  # fmt: skip
    assert entries[1].detail == {"zone_id": "HQ-F1-Z1", "status": "open", "note": "electrician booked"}


def test_acknowledging_without_a_note_keeps_the_note_and_again_names_the_newer_person(engine: Engine) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    acknowledge_alert(engine, A1, "mia", note="ticket 42")
    first = stored_alert(engine).acknowledged_at

    acknowledge_alert(engine, A1, "ben")

    alert = stored_alert(engine)
    assert (alert.acknowledged_by, alert.note, alert.status) == ("ben", "ticket 42", "open")
    [latest, _] = audit_log(engine, action="alert.acknowledged")
    assert latest.detail["previous"] == {"by": "mia", "at": first.isoformat() if first else None}
    assert pd.isna(maintenance_history(engine)["note"].iloc[0])  # missing text is NA, as pandas has it


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: acknowledge_alert(e, "no-such-alert", "mia"), "no alert 'no-such-alert'"),
        (lambda e: resolve_alert(e, "no-such-alert", "mia", "fixed"), "no alert 'no-such-alert'"),
        (
            lambda e: resolve_alert(e, A1, "mia", ""),
            f"resolving alert {A1} needs a note saying what was done",
        ),
        (lambda e: resolve_alert(e, A1, "mia", "   "), "needs a note"),
        (lambda e: acknowledge_alert(e, A1, ""), "the user name cannot be empty"),
        (lambda e: resolve_alert(e, A1, "mia", "fixed", action=""), "the action cannot be empty"),
    ],
)
def test_a_change_that_cannot_be_made_is_one_clear_error_and_writes_nothing(
    engine: Engine, call: Any, message: str
) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    entries = len(audit_log(engine, limit=None))

    with pytest.raises(MaintenanceError, match=message) as raised:
        call(engine)

    assert isinstance(raised.value, SlemError) and "\n" not in str(raised.value)
    alert = stored_alert(engine)
    assert (alert.status, alert.acknowledged_by, alert.resolved_by, alert.note) == ("open", None, None, None)
    assert actions(engine) == 0 and len(audit_log(engine, limit=None)) == entries


def test_a_resolved_alert_cannot_be_acknowledged_or_resolved_again(engine: Engine) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    resolve_alert(engine, A1, "mia", "relamped")

    with pytest.raises(MaintenanceError, match=f"alert {A1} is already resolved by mia at 20"):
        acknowledge_alert(engine, A1, "ben")
    with pytest.raises(MaintenanceError, match="already resolved by mia"):
        resolve_alert(engine, A1, "ben", "relamped again")

    assert stored_alert(engine).resolved_by == "mia" and actions(engine) == 1


def test_an_alert_the_detectors_closed_cannot_be_acknowledged(engine: Engine) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z", status="resolved"))

    with pytest.raises(MaintenanceError, match=r"already resolved \(the condition ended\)"):
        acknowledge_alert(engine, A1, "mia")


@pytest.mark.parametrize("later_status", [None, "open", "ongoing"])
def test_a_resolution_stands_when_a_later_run_sees_the_alert_again(
    engine: Engine, later_status: str | None
) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    resolve_alert(engine, A1, "mia", "replaced the relay")
    extra = {} if later_status is None else {"status": later_status}
    later = make_alert(A1, "2025-02-12T08:00Z", score=0.95, **extra)

    second = store_alerts(engine, later, sha="b")

    with Session(engine) as session:
        [alert] = session.scalars(select(Alert)).all()  # not raised a second time
    assert (alert.status, alert.resolved_by, alert.note) == ("resolved", "mia", "replaced the relay")
    assert alert.last_run_id == second and alert.score == 0.95  # the run's evidence is kept
    assert alert.last_seen == dt.datetime(2025, 2, 12, 8, tzinfo=dt.UTC)
    assert [e.action for e in audit_log(engine, entity="alert")] == ["alert.resolved", "alert.raised"]
    assert alerts_frame(engine, status="open").empty


def test_an_acknowledged_alert_seen_again_becomes_ongoing_and_keeps_its_acknowledgement(
    engine: Engine,
) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    acknowledge_alert(engine, A1, "mia", note="on it")

    store_alerts(engine, make_alert(A1, "2025-02-12T08:00Z", status="open"), sha="b")

    alert = stored_alert(engine)
    assert (alert.status, alert.acknowledged_by, alert.note) == ("ongoing", "mia", "on it")
    resolve_alert(engine, A1, "mia", "fixed")
    assert audit_log(engine, action="alert.resolved")[0].detail["old_status"] == "ongoing"


# --- maintenance without an alert ---------------------------------------------------------------------


def test_record_maintenance_done_without_an_alert(engine: Engine) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    at = pd.Timestamp("2025-02-14 09:30", tz="Europe/Berlin").to_pydatetime()

    record_action(engine, "HQ-F2-Z1", "relamped", "all six tubes", "ben", at=at)
    record_action(engine, "HQ-F1-Z1", "sensor cleaned", None, "mia", alert_id=A1)

    history = maintenance_history(engine)
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert history[["zone_id", "action", "note", "user_name", "alert_id"]].fillna("-").values.tolist() == [
        ["HQ-F1-Z1", "sensor cleaned", "-", "mia", A1],  # now, so newest
        ["HQ-F2-Z1", "relamped", "all six tubes", "ben", "-"],
    ]
    assert history["at"].iloc[1] == pd.Timestamp("2025-02-14T08:30Z")
    assert str(history["at"].dt.tz) == "UTC"
    zone = maintenance_history(engine, "HQ-F2-Z1")
    assert zone["action"].tolist() == ["relamped"]
    assert maintenance_history(engine, "HQ-F9-Z9").empty
    assert stored_alert(engine).status == "open"  # recording work does not close the alert
    [_, entry] = audit_log(engine, action="maintenance.recorded")  # newest first
    assert (entry.actor, entry.entity, entry.entity_id) == ("ben", "zone", "HQ-F2-Z1")
    assert entry.detail == {
        "action": "relamped", "note": "all six tubes", "at": "2025-02-14T08:30:00+00:00", "alert_id": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at": dt.datetime(2025, 2, 14, 9, 30)}, "the time 2025-02-14T09:30:00 has no timezone"),
        ({"alert_id": "no-such-alert"}, "no alert 'no-such-alert'"),
        ({"zone_id": "HQ-F2-Z1", "alert_id": A1}, f"alert {A1} is about zone HQ-F1-Z1, not HQ-F2-Z1"),
        ({"zone_id": " "}, "the zone cannot be empty"),
        ({"action": "x" * 65}, "the action 'xxxxxxxxxxxxxxxxxxxx'... is longer than 64 characters"),
    ],
)
def test_a_record_that_cannot_be_made_is_one_clear_error(
    engine: Engine, kwargs: dict[str, Any], message: str
) -> None:
    store_alerts(engine, make_alert(A1, "2025-02-11T08:00Z"))
    args = {"zone_id": "HQ-F1-Z1", "action": "relamped", "note": None, "user_name": "ben"} | kwargs

    with pytest.raises(MaintenanceError, match=message):
        record_action(engine, **args)

    assert actions(engine) == 0


# --- reading alerts back ------------------------------------------------------------------------------


def test_alerts_frame_filters_by_status_newest_first(engine: Engine) -> None:
    a = make_alert("A", "2025-02-11T08:00Z")
    b = make_alert("B", "2025-02-13T08:00Z", zone_id="HQ-F2-Z1", kind="dropout", score=None)
    c = make_alert("C", "2025-02-12T08:00Z")
    store_alerts(engine, a, b, c)
    resolve_alert(engine, "C", "mia", "false alarm: a party", action="false alarm")
    store_alerts(engine, make_alert("A", "2025-02-14T08:00Z", status="open"), sha="b")  # A: ongoing

    every = alerts_frame(engine)
    active = alerts_frame(engine, status="open")

    assert list(every.columns) == list(ALERT_FRAME_COLUMNS)
    assert every["alert_id"].tolist() == ["B", "C", "A"]  # detected 13th, 12th, 11th
    assert every["status"].tolist() == ["open", "resolved", "ongoing"]
    assert active["alert_id"].tolist() == ["B", "A"]
    assert alerts_frame(engine, status="ongoing")["alert_id"].tolist() == ["A"]
    assert alerts_frame(engine, status="resolved")["alert_id"].tolist() == ["C"]
    c_row = every.iloc[1]
    assert (c_row["resolved_by"], c_row["note"]) == ("mia", "false alarm: a party")
    for column in ("detected_at", "first_seen", "last_seen", "acknowledged_at", "resolved_at"):
        assert str(every[column].dt.tz) == "UTC", column
    assert every["last_seen"].iloc[2] == pd.Timestamp("2025-02-14T08:00Z")
    assert pd.isna(every["resolved_at"].iloc[0]) and pd.notna(every["resolved_at"].iloc[1])
    assert every["score"].dtype == "float64" and pd.isna(every["score"].iloc[0])
    with pytest.raises(ValueError, match="unknown alert status 'closed'"):
        alerts_frame(engine, status="closed")


def test_nothing_stored_reads_back_as_empty_frames(engine: Engine) -> None:
    alerts, history = alerts_frame(engine), maintenance_history(engine)

    assert alerts.empty and list(alerts.columns) == list(ALERT_FRAME_COLUMNS)
    assert history.empty and list(history.columns) == list(HISTORY_COLUMNS)

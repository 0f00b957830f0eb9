"""The Maintenance tab's actions (SPEC §5): a zone's power against its expected band with its alerts and
the maintenance done, acknowledging and resolving alerts, and the alert tables as people read them (most
severe first, the explanation last, "acknowledged" once someone has).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from slem_ml.app import analysis, charts
from slem_ml.app.access import require, view_of
from slem_ml.app.tables import for_people
from slem_ml.app.views import zone_readings
from slem_ml.app.workspace import AppConfig, champion_bundle
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.models.alerts import kind_words, severity_rank
from slem_ml.storage import open_database
from slem_ml.storage.maintenance import acknowledge_alert, maintenance_history, resolve_alert
from slem_ml.storage.users import role_allows

__all__ = [
    "ALERT_SHOWN",
    "ZoneDetail",
    "acknowledge",
    "alerts_shown",
    "open_alerts",
    "resolve",
    "zone_detail",
]

#: Alert columns as the tables show them: the explanation last, so it gets the room that is left.
ALERT_SHOWN = [
    "alert_id", "zone_id", "kind", "severity", "status", "detected_at", "first_seen", "last_seen",
    "acknowledged_by", "resolved_by", "note", "detail",
]  # fmt: skip
EFFECT_SHOWN = ("at", "action", "note", "user_name", "before_w", "after_w", "change", "verdict")


@dataclass(frozen=True)
class ZoneDetail:
    """One zone on the Maintenance tab."""

    chart: go.Figure
    alerts: pd.DataFrame  # every stored alert of the zone
    history: pd.DataFrame  # maintenance done, with before/after power and a verdict
    status: str = ""  # markdown: which detectors judge the zone this month, and why not


def zone_detail(
    config: AppConfig, username: str | None, zone_id: str | None, period: str | None = None
) -> ZoneDetail:
    """A zone's actual vs expected power with its band and alerts, and its maintenance history."""
    view = require(view_of(config, username, period))
    if not zone_id:
        raise SlemError("choose a zone first")
    models = champion_bundle(config)
    readings = zone_readings(config, view, zone_id)
    series = analysis.zone_series(view, zone_id, models, readings)
    alerts = view.alerts[view.alerts[S.ZONE_ID] == zone_id]
    tz = view.site.site.timezone
    marks = alerts.assign(detected_at=alerts["detected_at"].dt.tz_convert(tz).dt.tz_localize(None))
    engine = open_database(config.database_url)
    try:
        history = maintenance_history(engine, zone_id)
    finally:
        engine.dispose()
    effects = analysis.fix_effects(series, history, tz)
    return ZoneDetail(
        chart=charts.zone_power_chart(series, marks, zone_id),
        alerts=alerts_shown(alerts, tz),
        history=for_people(effects, EFFECT_SHOWN),
        status=analysis.detector_status(view, zone_id, readings, models),
    )


def acknowledge(
    config: AppConfig, username: str | None, alert_id: str | None, note: str, period: str | None = None
) -> pd.DataFrame:
    """Acknowledge an open alert (managers, admins); returns the open alerts as they are now."""
    return _maintain(config, username, alert_id, note, resolve=False, period=period)


def resolve(
    config: AppConfig, username: str | None, alert_id: str | None, note: str, period: str | None = None
) -> pd.DataFrame:
    """Resolve an alert with a note on what was done (managers, admins); returns the open alerts."""
    return _maintain(config, username, alert_id, note, resolve=True, period=period)


def _maintain(
    config: AppConfig,
    username: str | None,
    alert_id: str | None,
    note: str,
    *,
    resolve: bool,
    period: str | None = None,
) -> pd.DataFrame:
    view = require(view_of(config, username, period))
    if not role_allows(view.user, "maintain"):
        raise SlemError(f"{view.user.name} ({view.user.role}) may not acknowledge or resolve alerts")
    alert_id = (alert_id or "").strip()
    if alert_id not in set(view.alerts["alert_id"]):
        raise SlemError("choose an alert of this month first (its id from the table)")
    engine = open_database(config.database_url)
    try:
        if resolve:
            resolve_alert(engine, alert_id, view.user.name, note)
        else:
            acknowledge_alert(engine, alert_id, view.user.name, note or None)
    finally:
        engine.dispose()
    after = require(view_of(config, username, period))
    return alerts_shown(open_alerts(after.alerts), after.site.site.timezone)


def open_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The alerts still open (``open`` or ``ongoing``)."""
    return alerts[alerts["status"].isin(["open", "ongoing"])]


def alerts_shown(alerts: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Alerts for a table: the most severe first, then the newest; times in site time, the columns that
    say something, the explanation last. An open alert someone acknowledged reads "acknowledged" (an
    ongoing one "ongoing, acknowledged"): the status a person acts on (issue 14 review item 11)."""
    local = {c: alerts[c].dt.tz_convert(timezone) for c in ("detected_at", "first_seen", "last_seen")}
    rank = severity_rank(alerts["severity"])
    shown = alerts.assign(
        **local, _rank=rank, status=_status_shown(alerts), kind=kind_words(alerts["kind"])
    ).sort_values(["_rank", "detected_at", "alert_id"], ascending=[False, False, True], kind="stable")
    keep = [c for c in ALERT_SHOWN if c in ("alert_id", "detail") or shown[c].notna().any()]
    return for_people(shown, keep)


def _status_shown(alerts: pd.DataFrame) -> pd.Series:
    """The alerts' status as the tables show it: ``open`` with an acknowledgement is ``acknowledged``."""
    status = alerts["status"].astype(str)
    if "acknowledged_by" not in alerts:
        return status
    by = alerts["acknowledged_by"]
    acknowledged = by.notna() & (by.astype(str).str.strip() != "")
    status = status.mask(acknowledged & (status == "open"), "acknowledged")
    return status.mask(acknowledged & (status == "ongoing"), "ongoing, acknowledged")

"""Gathering a report, the parts the store keeps ready (SPEC §10): overtime billed per client from the
stored invoices, cleaning sessions over the limit, alerts raised, open and resolved, and maintenance done
with its measured effect.

``zones`` limits a part to a scope's zones (``None``: the whole site, every zone, also those silent in the
period); a client's scope also keeps only that client's invoice lines and cleaning sessions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.io import schema as S
from slem_ml.models.alerts import kind_words, severity_rank
from slem_ml.reports.periods import ReportPeriod, period_bounds_ms
from slem_ml.reports.scope import Scope, client_label
from slem_ml.storage.maintenance import maintenance_history
from slem_ml.storage.months import period_cleaning, stored_readings
from slem_ml.storage.periods import period_invoices
from slem_ml.storage.tables import StoreZone

__all__ = [
    "EFFECT_DAYS",
    "Billed",
    "alert_frames",
    "alerts_raised",
    "check_building",
    "cleaning_frame",
    "held_notes",
    "maintenance_frame",
    "months_of",
    "overtime_billed",
]

#: Days before and after a maintenance action compared for its effect (as the app's Maintenance tab).
EFFECT_DAYS = 7
#: An alert's kind in a report's words.
_COUNTED = ("billed", "released")  # the line statuses an invoice's total counts (SPEC §8.4)
_HELD = "held"  # a line held on a fault (SPEC §8.4): in the invoice's held_total, not its total
_ACTIVE = ("open", "ongoing")
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Billed:
    """Overtime billed in a period: ``table`` as ``ReportContent.overtime``, its ``total`` [currency] and
    the amount ``held`` per client label [currency] (only clients with a held line)."""

    table: pd.DataFrame
    total: Decimal
    held: dict[str, Decimal] = field(default_factory=dict)


def held_notes(billed: Billed, currency: str) -> list[str]:
    """The note naming the overtime held on a fault, not in the billed figures; none when nothing is held."""
    if not billed.held:
        return []
    parts = ", ".join(f"{amount:,.2f} {currency} of {client}" for client, amount in billed.held.items())
    return [f"Overtime held on a fault (lights stuck on), not in the billed figures until released: {parts}."]


def months_of(period: ReportPeriod) -> list[str]:
    """The calendar months (``YYYY-MM``) the period's days fall in."""
    first, last = period.start, period.end - dt.timedelta(days=1)
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [
        f"{first.year + (first.month - 1 + i) // 12:04d}-{(first.month - 1 + i) % 12 + 1:02d}"
        for i in range(count)
    ]


def overtime_billed(
    engine: Engine, site: SiteConfig, period: ReportPeriod, scope: Scope, zones: list[str] | None
) -> Billed:
    """The overtime billed per client in ``period`` (SPEC §3.4–3.8): the stored invoice lines of the
    months it touches whose session starts in it, counting the lines an invoice's total counts (billed,
    released), net; the held lines' amount apart, in ``Held [<currency>]`` (SPEC §8.4)."""
    currency = site.site.currency
    parts = [period_invoices(engine, site, month)[0] for month in months_of(period)]
    lines = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(S.INVOICE_LINE_COLUMNS))
    )
    status = lines["status"].astype(str).to_numpy()
    keep = np.isin(status, [*_COUNTED, _HELD]) & _date_in(lines["date"], period)
    if scope.kind == "client":
        keep &= (lines[S.CLIENT_ID].astype(str) == scope.value).to_numpy()
    if zones is not None:
        keep &= lines[S.ZONE_ID].astype(str).isin(zones).to_numpy()
    lines, held = lines[keep], status[keep] == _HELD
    money, held_money = f"Billed [{currency}]", f"Held [{currency}]"
    if lines.empty:
        columns = ["Client", "Sessions", "Hours [h]", "Energy [kWh]", money, held_money]
        return Billed(pd.DataFrame({c: [] for c in columns}), Decimal("0.00"))
    zero = Decimal("0.00")
    amounts = lines["amount"].to_numpy(dtype=object)
    nothing = np.full(len(lines), zero, dtype=object)
    counted = pd.DataFrame(
        {
            S.CLIENT_ID: lines[S.CLIENT_ID].astype(str).to_numpy(),
            "sessions": (~held).astype(np.int64),
            "minutes": np.where(held, 0.0, lines["billable_minutes"].to_numpy(dtype=float)),
            "kwh": np.where(held, 0.0, lines["energy_kwh"].astype(float).to_numpy()),
            "billed": np.where(held, nothing, amounts),
            "held": np.where(held, amounts, nothing),
        }
    )
    grouped = counted.groupby(S.CLIENT_ID).agg(
        sessions=("sessions", "sum"),
        minutes=("minutes", "sum"),
        kwh=("kwh", "sum"),
        billed=("billed", lambda v: sum(v, zero)),
        held=("held", lambda v: sum(v, zero)),
    )
    grouped = grouped.sort_values("billed", ascending=False, kind="stable")
    labels = [client_label(site, str(c)) for c in grouped.index]
    table = pd.DataFrame(
        {
            "Client": labels,
            "Sessions": grouped["sessions"].to_numpy(dtype=np.int64),
            "Hours [h]": np.round(grouped["minutes"].to_numpy(dtype=float) / 60.0, 2),
            "Energy [kWh]": grouped["kwh"].to_numpy(dtype=float),
            money: list(grouped["billed"]),
            held_money: list(grouped["held"]),
        }
    )
    on_hold = {label: amount for label, amount in zip(labels, grouped["held"], strict=True) if amount > 0}
    return Billed(table, sum(grouped["billed"], zero), on_hold)


def cleaning_frame(
    engine: Engine,
    site: SiteConfig,
    period: ReportPeriod,
    scope: Scope,
    zones: list[str] | None,
    currency: str,
) -> pd.DataFrame:
    """Cleaning sessions over the flag limit in ``period`` (SPEC §4), longest first, with their savings."""
    parts = [period_cleaning(engine, site, month) for month in months_of(period)]
    sessions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    columns = ["Date", "Zone", "Client", "Start", "Duration [min]", "Energy [kWh]", f"Savings [{currency}]"]
    if sessions.empty:
        return pd.DataFrame({c: [] for c in columns})
    keep = sessions["flagged"].to_numpy(dtype=bool, copy=True) & _date_in(sessions["date"], period)
    if scope.kind == "client":
        keep &= (sessions[S.CLIENT_ID].astype(str) == scope.value).to_numpy()
    if zones is not None:
        keep &= sessions[S.ZONE_ID].astype(str).isin(zones).to_numpy()
    sessions = sessions[keep]
    minutes = sessions["minutes"].to_numpy(dtype=float)
    order = np.lexsort((sessions["start"].to_numpy(), -minutes))
    sessions = sessions.iloc[order]
    start = sessions["start"].dt.tz_convert(site.site.timezone)
    return pd.DataFrame(
        {
            "Date": list(sessions["date"]),
            "Zone": sessions[S.ZONE_ID].astype(str).to_numpy(),
            "Client": [client_label(site, str(c)) for c in sessions[S.CLIENT_ID]],
            "Start": start.dt.strftime("%H:%M").to_numpy(),
            "Duration [min]": minutes[order],
            "Energy [kWh]": sessions["wasted_kwh"].to_numpy(dtype=float),
            f"Savings [{currency}]": list(sessions["savings"]),
        },
        columns=columns,
    )


def alert_frames(
    stored: pd.DataFrame, period: ReportPeriod, zones: list[str] | None, timezone: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per kind: raised in the period, and open and resolved among the alerts listed; the alerts active
    or resolved in the period, most severe first, then newest).
    Kinds are in words (:data:`slem_ml.models.alerts.KIND_WORDS`).

    An alert is listed when its episode overlaps the period or a person resolved it in the period; the
    counts of ``Open`` and ``Resolved`` are those listed alerts by their status now, so they agree with
    the list (an alert whose episode ended in scoring is resolved without a ``resolved_at``)."""
    alerts = _scope_alerts(stored, zones)
    start, end = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in period_bounds_ms(period, timezone))
    raised = ((alerts["first_seen"] >= start) & (alerts["first_seen"] < end)).to_numpy(dtype=bool)
    active = ((alerts["first_seen"] < end) & (alerts["last_seen"] >= start)).to_numpy(dtype=bool)
    closed_in = ((alerts["resolved_at"] >= start) & (alerts["resolved_at"] < end)).fillna(False)
    listed = active | closed_in.to_numpy(dtype=bool)
    status = alerts["status"].astype(str).to_numpy()
    kinds = alerts["kind"].astype(str)
    counts = pd.DataFrame(
        {
            "Kind": _kind_words(kinds),
            "Raised": raised.astype(int),
            "Open": (listed & np.isin(status, _ACTIVE)).astype(int),
            "Resolved": (listed & (status == "resolved")).astype(int),
        }
    )
    per_kind = counts[raised | listed].groupby("Kind", as_index=False)[["Raised", "Open", "Resolved"]].sum()
    shown = alerts[listed]
    shown = shown.assign(rank=severity_rank(shown["severity"].astype(str)).to_numpy())
    shown = shown.sort_values(["rank", "first_seen"], ascending=[False, False], kind="stable")
    listed_frame = pd.DataFrame(
        {
            "Zone": shown[S.ZONE_ID].astype(str).to_numpy(),
            "Kind": _kind_words(shown["kind"].astype(str)),
            "Severity": shown["severity"].astype(str).to_numpy(),
            "First seen": shown["first_seen"]
            .dt.tz_convert(timezone)
            .dt.strftime("%Y-%m-%d %H:%M")
            .to_numpy(),
            "Status": shown["status"].astype(str).to_numpy(),
            "Explanation": shown["detail"].fillna("").astype(str).to_numpy(),
        }
    )
    return per_kind.reset_index(drop=True), listed_frame


def alerts_raised(stored: pd.DataFrame, period: ReportPeriod, zones: list[str] | None, timezone: str) -> int:
    """How many alerts of the zones (of ``stored``, :func:`~slem_ml.storage.maintenance.alerts_frame`'s)
    were first seen in ``period``."""
    alerts = _scope_alerts(stored, zones)
    start, end = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in period_bounds_ms(period, timezone))
    return int(((alerts["first_seen"] >= start) & (alerts["first_seen"] < end)).sum())


def maintenance_frame(
    engine: Engine, site: SiteConfig, period: ReportPeriod, zones: list[str] | None
) -> pd.DataFrame:
    """Maintenance recorded in ``period`` with its measured effect: the zone's mean lit power [W] in the
    :data:`EFFECT_DAYS` days before and after the action, as the app's Maintenance tab judges it."""
    tz = site.site.timezone
    history = maintenance_history(engine)
    start, end = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in period_bounds_ms(period, tz))
    keep = (history["at"] >= start) & (history["at"] < end)
    if zones is not None:
        keep &= history[S.ZONE_ID].isin(zones)
    done = history[keep].sort_values("at", kind="stable").reset_index(drop=True)
    columns = ["Date", "Zone", "Action", "By", "Effect"]
    if done.empty:
        return pd.DataFrame({c: [] for c in columns})
    local = done["at"].dt.tz_convert(tz)
    return pd.DataFrame(
        {
            "Date": list(local.dt.date),
            "Zone": done[S.ZONE_ID].astype(str).to_numpy(),
            "Action": done["action"].astype(str).to_numpy(),
            "By": done["user_name"].astype(str).to_numpy(),
            "Effect": _effects(engine, site, done),
        },
        columns=columns,
    )


def check_building(engine: Engine, scope: Scope) -> None:
    """Refuse a building scope the store has no zone of, naming the buildings it has.

    Raises
    ------
    InputError
        ``scope 'building:Nowhere': the store has no building 'Nowhere' (buildings: HQ, Lab)``.
    """
    if scope.kind != "building":
        return
    with engine.connect() as connection:
        known = sorted(set(connection.execute(select(StoreZone.building).distinct()).scalars()))
    if scope.value not in known:
        names = ", ".join(known) or "none stored yet"
        raise InputError(
            f"scope {scope.text!r}: the store has no building {scope.value!r} (buildings: {names})"
        )


# --- internals ---------------------------------------------------------------------------------------------


def _scope_alerts(alerts: pd.DataFrame, zones: list[str] | None) -> pd.DataFrame:
    return alerts if zones is None else alerts[alerts[S.ZONE_ID].isin(zones)]


def _kind_words(kinds: pd.Series) -> np.ndarray:
    """Alert kinds (codes) in words (:data:`slem_ml.models.alerts.KIND_WORDS`)."""
    return kind_words(kinds).to_numpy(dtype=object)


def _date_in(dates: pd.Series, period: ReportPeriod) -> np.ndarray:
    """Which local dates (``datetime.date`` values) lie in ``period``."""
    days = pd.to_datetime(pd.Series(dates, dtype=object)).to_numpy(dtype="datetime64[D]")
    first, after = np.datetime64(period.start, "D"), np.datetime64(period.end, "D")
    return (days >= first) & (days < after)


def _effects(engine: Engine, site: SiteConfig, actions: pd.DataFrame) -> list[str]:
    """The measured effect of each action in words, from one read of its zones' readings around them."""
    at_ms = actions["at"].dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]").view(np.int64)
    window = EFFECT_DAYS * _MS_PER_DAY
    zones = sorted(set(actions[S.ZONE_ID].astype(str)))
    readings = stored_readings(engine, int(at_ms.min()) - window, int(at_ms.max()) + window, zones)
    lit = readings[readings[S.POWER_W] >= site.sampling.on_threshold_w]
    joined = pd.DataFrame(
        {
            "action": np.arange(len(actions)),
            S.ZONE_ID: actions[S.ZONE_ID].astype(str).to_numpy(),
            "at_ms": at_ms,
        }
    ).merge(
        pd.DataFrame(
            {
                S.ZONE_ID: lit[S.ZONE_ID].astype(str).to_numpy(),
                "t_ms": lit[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64),
                "power": lit[S.POWER_W].to_numpy(dtype=float),
            }
        ),
        on=S.ZONE_ID,
    )
    offset = joined["t_ms"].to_numpy() - joined["at_ms"].to_numpy()
    joined = joined[(offset >= -window) & (offset < window)].assign(
        after=offset[(offset >= -window) & (offset < window)] >= 0
    )
    means = joined.groupby(["action", "after"])["power"].mean().unstack()
    before = means.get(False, pd.Series(dtype=float)).reindex(range(len(actions)))
    after = means.get(True, pd.Series(dtype=float)).reindex(range(len(actions)))
    return [_effect_words(b, a) for b, a in zip(before.to_numpy(), after.to_numpy(), strict=True)]


def _effect_words(before: float, after: float) -> str:
    if np.isnan(before) or np.isnan(after) or before <= 0:
        return "not enough readings to measure"
    change = after / before - 1.0
    verdict = (
        "lower draw after the fix"
        if change <= -0.05
        else "higher draw after the fix"
        if change >= 0.05
        else "no change"
    )
    return f"mean lit power {before:,.0f} W before, {after:,.0f} W after ({change:+.0%}): {verdict}"

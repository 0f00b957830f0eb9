"""Gathering a report, the parts the store keeps ready (SPEC §10): overtime billed per client from the
stored invoices, cleaning sessions over the limit, alerts raised, open and resolved, and maintenance done
with its measured effect.

``zones`` limits a part to a scope's zones (``None``: the whole site, every zone, also those silent in the
period); a client's scope also keeps only that client's invoice lines and cleaning sessions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.reports.periods import ReportPeriod, period_bounds_ms
from slem_ml.reports.scope import Scope, client_label
from slem_ml.storage.maintenance import alerts_frame, maintenance_history
from slem_ml.storage.months import period_cleaning, stored_readings
from slem_ml.storage.periods import period_invoices

__all__ = [
    "EFFECT_DAYS",
    "Billed",
    "alert_frames",
    "alerts_raised",
    "cleaning_frame",
    "maintenance_frame",
    "months_of",
    "overtime_billed",
]

#: Days before and after a maintenance action compared for its effect (as the app's Maintenance tab).
EFFECT_DAYS = 7
_COUNTED = ("billed", "released")  # the line statuses an invoice's total counts (SPEC §8.4)
_ACTIVE = ("open", "ongoing")
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Billed:
    """Overtime billed in a period: ``table`` as ``ReportContent.overtime`` and its ``total`` [currency]."""

    table: pd.DataFrame
    total: Decimal


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
    released), net."""
    currency = site.site.currency
    parts = [period_invoices(engine, site, month)[0] for month in months_of(period)]
    lines = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(S.INVOICE_LINE_COLUMNS))
    )
    keep = lines["status"].isin(_COUNTED).to_numpy(dtype=bool, copy=True)
    keep &= _date_in(lines["date"], period)
    if scope.kind == "client":
        keep &= (lines[S.CLIENT_ID].astype(str) == scope.value).to_numpy()
    if zones is not None:
        keep &= lines[S.ZONE_ID].astype(str).isin(zones).to_numpy()
    lines = lines[keep]
    money = f"Billed [{currency}]"
    if lines.empty:
        empty: dict[str, list] = {
            "Client": [],
            "Sessions": [],
            "Hours [h]": [],
            "Energy [kWh]": [],
            money: [],
        }
        return Billed(pd.DataFrame(empty), Decimal("0.00"))
    grouped = lines.groupby(S.CLIENT_ID, observed=True).agg(
        sessions=("amount", "size"),
        minutes=("billable_minutes", "sum"),
        kwh=("energy_kwh", lambda v: float(sum(v, Decimal(0)))),
        billed=("amount", lambda v: sum(v, Decimal("0.00"))),
    )
    grouped = grouped.sort_values("billed", ascending=False, kind="stable")
    table = pd.DataFrame(
        {
            "Client": [client_label(site, str(c)) for c in grouped.index],
            "Sessions": grouped["sessions"].to_numpy(dtype=np.int64),
            "Hours [h]": np.round(grouped["minutes"].to_numpy(dtype=float) / 60.0, 2),
            "Energy [kWh]": grouped["kwh"].to_numpy(dtype=float),
            money: list(grouped["billed"]),
        }
    )
    return Billed(table, sum(grouped["billed"], Decimal("0.00")))


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
    engine: Engine, period: ReportPeriod, zones: list[str] | None, timezone: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per kind: raised, open, resolved in the period; the alerts active in it, newest first)."""
    alerts = _scope_alerts(engine, zones)
    start, end = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in period_bounds_ms(period, timezone))
    raised = (alerts["first_seen"] >= start) & (alerts["first_seen"] < end)
    active = (alerts["first_seen"] < end) & (alerts["last_seen"] >= start)
    still_open = active & alerts["status"].isin(_ACTIVE)
    resolved = (alerts["resolved_at"] >= start) & (alerts["resolved_at"] < end)
    counts = pd.DataFrame(
        {
            "Kind": alerts["kind"].astype(str),
            "Raised": raised.astype(int),
            "Open": still_open.astype(int),
            "Resolved": resolved.fillna(False).astype(int),
        }
    )
    per_kind = counts[(counts[["Raised", "Open", "Resolved"]] > 0).any(axis=1)]
    per_kind = per_kind.groupby("Kind", as_index=False)[["Raised", "Open", "Resolved"]].sum()
    shown = alerts[active | resolved.fillna(False)].sort_values("first_seen", ascending=False, kind="stable")
    listed = pd.DataFrame(
        {
            "Zone": shown[S.ZONE_ID].astype(str).to_numpy(),
            "Kind": shown["kind"].astype(str).to_numpy(),
            "Severity": shown["severity"].astype(str).to_numpy(),
            "First seen": shown["first_seen"]
            .dt.tz_convert(timezone)
            .dt.strftime("%Y-%m-%d %H:%M")
            .to_numpy(),
            "Status": shown["status"].astype(str).to_numpy(),
            "Explanation": shown["detail"].fillna("").astype(str).to_numpy(),
        }
    )
    return per_kind.reset_index(drop=True), listed


def alerts_raised(engine: Engine, period: ReportPeriod, zones: list[str] | None, timezone: str) -> int:
    """How many alerts of the zones were first seen in ``period``."""
    alerts = _scope_alerts(engine, zones)
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


# --- internals ---------------------------------------------------------------------------------------------


def _scope_alerts(engine: Engine, zones: list[str] | None) -> pd.DataFrame:
    alerts = alerts_frame(engine)
    return alerts if zones is None else alerts[alerts[S.ZONE_ID].isin(zones)]


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

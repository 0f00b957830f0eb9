"""Gathering a report (SPEC §10): everything a :class:`~slem_ml.outputs.report_content.ReportContent` holds,
read from the store for a scope and period.

The store is read once per span: the period together with the weeks before it (the previous period, the
savings' learning weeks and the forecast's history), and the same period a year earlier, each read on
``max_gap_minutes`` past its end so that a period's last readings cover what scoring says. A period is
compared with another only when both have readings on (nearly) all their days. Every reading's
energy and usage class come from billing's coverage (:func:`slem_ml.billing.coverage.compute_coverage`),
as the app's Overview computes them; the money billed comes from the stored invoices, cleaning from the
stored sessions, alerts and maintenance from their tables (:mod:`.gather_store`); forecast and savings
from the models (:mod:`.gather_models`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from slem_ml.billing.coverage import CLASS_CODES, compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.bundle import ModelBundle
from slem_ml.outputs.report_content import ReportContent
from slem_ml.reports import gather_frames as frames
from slem_ml.reports.co2 import co2_factor
from slem_ml.reports.gather_frames import USE_LABELS
from slem_ml.reports.gather_models import forecast_frames, savings_frame
from slem_ml.reports.gather_store import (
    Billed,
    alert_frames,
    alerts_raised,
    check_building,
    cleaning_frame,
    held_notes,
    maintenance_frame,
    overtime_billed,
)
from slem_ml.reports.periods import ReportPeriod, dates_bounds_ms, period_bounds_ms
from slem_ml.reports.scope import Scope
from slem_ml.storage.maintenance import alerts_frame
from slem_ml.storage.months import of_known_clients, stored_readings

__all__ = ["COMPLETE_SHARE", "USE_LABELS", "days_with_readings", "gather", "scope_energy"]

#: The share of a period's days with readings from which it counts as complete and is compared.
COMPLETE_SHARE = 0.9
#: Weeks of readings before the period that the savings learn from.
HISTORY_WEEKS = 8
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
_KWH_PER_W_MS = 1.0 / 3_600_000_000.0
_CENT = Decimal("0.01")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH = dt.date(1970, 1, 1)


def gather(
    engine: Engine,
    site: SiteConfig,
    period: ReportPeriod,
    scope: Scope,
    *,
    models: ModelBundle | None,
    now: dt.datetime,
) -> ReportContent:
    """Every frame and figure of the report on ``scope`` over ``period`` from the store (SPEC §10).

    ``models``: the champion (its forecaster forecasts the next period), or ``None``; ``now``: when the
    report is made (UTC), its ``generated_at``. A scope with no stored reading in the period gives a
    content whose :attr:`~ReportContent.empty` is true.
    """
    tz, currency = site.site.timezone, site.site.currency
    price = site.cleaning.energy_price
    co2 = co2_factor(site)
    notes: list[str] = []

    previous, earlier = period.previous(), period.year_earlier()
    check_building(engine, scope)
    history_start = min(previous.start, period.start - dt.timedelta(weeks=HISTORY_WEEKS))
    span = _load(engine, site, scope, *dates_bounds_ms(history_start, period.end, tz))
    this = _between(span, *period_bounds_ms(period, tz))
    before = _between(span, *period_bounds_ms(previous, tz))
    ago = _load(engine, site, scope, *period_bounds_ms(earlier, tz))

    zones = None if scope.kind == "site" else _zones(this)
    stored_alerts = alerts_frame(engine)  # read once: this period's list and each period's count
    billed = overtime_billed(engine, site, period, scope, zones)
    notes += held_notes(billed, currency)
    cleaning = cleaning_frame(engine, site, period, scope, zones, currency)
    figures = _figures(stored_alerts, site, period, this, zones, price, co2.kg_per_kwh, billed, len(cleaning))
    days_with = days_with_readings(this)
    whole = _complete(days_with, period.days)
    if len(this) and not whole:
        notes.append(
            f"{period.label}: readings on {days_with} of {period.days} days; not compared with others."
        )
    compared: dict[str, _Figures | None] = {}
    for name, other, energy in (("previous period", previous, before), ("year earlier", earlier, ago)):
        other_days = days_with_readings(energy)
        if not _complete(other_days, other.days):
            compared[name] = None
            why = f"readings on {other_days} of {other.days} days" if other_days else "no readings"
            notes.append(f"The {name} ({other.label}): {why}; not compared.")
            continue
        other_zones = None if scope.kind == "site" else _zones(energy)
        other_billed = overtime_billed(engine, site, other, scope, other_zones)
        flagged = len(cleaning_frame(engine, site, other, scope, other_zones, currency))
        compared[name] = _figures(
            stored_alerts, site, other, energy, other_zones, price, co2.kg_per_kwh, other_billed, flagged
        )

    alerts, alert_list = alert_frames(stored_alerts, period, zones, tz)
    learn = _between(
        span, *dates_bounds_ms(period.start - dt.timedelta(weeks=HISTORY_WEEKS), period.start, tz)
    )
    forecast, peaks, forecast_notes = forecast_frames(span, site, period, models)
    savings, savings_notes = savings_frame(learn, this, site, price, co2.kg_per_kwh)
    notes += [*forecast_notes, *savings_notes]
    energy_kwh = float(this["kwh"].sum()) if len(this) else 0.0
    return ReportContent(
        title=f"Energy report — {scope.label} — {period.label}",
        scope=scope.text,
        scope_label=scope.label,
        period=period.text,
        period_label=period.label,
        start=period.start,
        end=period.end,
        timezone=tz,
        currency=currency,
        generated_at=now.astimezone(dt.UTC),
        co2=co2,
        headline=_headline(
            figures, compared["previous period"], compared["year earlier"], currency, compare=whole
        ),
        by_use=frames.by_use(this, price, currency),
        by_place=frames.by_place(this, site, price, currency),
        by_building=frames.by_building(this, price, currency),
        daily=frames.daily(this, period),
        by_hour=frames.by_hour(this, site),
        by_weekday=frames.by_weekday(this),
        overtime=billed.table,
        cleaning=cleaning,
        alerts=alerts,
        alert_list=alert_list,
        maintenance=maintenance_frame(engine, site, period, zones),
        forecast=forecast,
        peak_hours=peaks,
        savings=savings,
        energy_kwh=energy_kwh,
        cost=frames.money(energy_kwh, price),
        notes=tuple(notes),
        days_with_readings=days_with,
    )


def scope_energy(frame: pd.DataFrame, site: SiteConfig, scope: Scope) -> pd.DataFrame:
    """The readings of ``frame`` (as :func:`~slem_ml.storage.months.stored_readings` gives them) that
    belong to ``scope``, with their energy: the stored columns plus ``kwh`` [kWh], ``usage`` (class code of
    :data:`~slem_ml.billing.coverage.CLASS_CODES`), ``t_ms`` [UTC ms], ``day`` (local day number since
    1970-01-01) and ``hour`` (local, 0–23).

    A reading's energy is its power times the time it covers (SPEC §3.1), worked out on every reading of the
    scope's zones, so a zone let to two clients covers the same whatever the scope; a client's scope then
    keeps that client's readings only.
    """
    frame = of_known_clients(frame, site)  # the contracts of today, as the app's Overview
    if scope.kind == "client":
        mine = scope.reading_mask(frame)
        codes = frame[S.ZONE_ID].cat.codes.to_numpy()
        in_zone = np.zeros(len(frame[S.ZONE_ID].cat.categories), dtype=bool)
        in_zone[codes[mine]] = True
        frame = frame[in_zone[codes]].reset_index(drop=True)
    elif scope.kind == "building":
        frame = frame[scope.reading_mask(frame)].reset_index(drop=True)
    coverage = compute_coverage(frame, site)
    t_ms = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    wall = frame[S.TIMESTAMP].dt.tz_convert(site.site.timezone).dt.tz_localize(None)
    wall_ms = wall.to_numpy(dtype="datetime64[ms]").view(np.int64)
    out = frame.assign(
        kwh=frame[S.POWER_W].to_numpy(dtype=float) * coverage.covered_ms * _KWH_PER_W_MS,
        usage=coverage.usage,
        t_ms=t_ms,
        day=wall_ms // _MS_PER_DAY,
        hour=((wall_ms % _MS_PER_DAY) // _MS_PER_HOUR).astype(np.int8),
    )
    if scope.kind == "client":
        out = out[scope.reading_mask(out)].reset_index(drop=True)
    return out


# --- figures for the headline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Figures:
    energy_kwh: float  # [kWh]
    cost: Decimal  # [currency]
    overtime_kwh: float  # [kWh]
    billed: Decimal  # [currency]
    cleaning_flagged: int
    co2_kg: float  # [kg]
    alerts_raised: int


def _figures(
    stored_alerts: pd.DataFrame,
    site: SiteConfig,
    period: ReportPeriod,
    energy: pd.DataFrame,
    zones: list[str] | None,
    price: Decimal,
    co2_kg_per_kwh: float,
    billed: Billed,
    cleaning_flagged: int,
) -> _Figures:
    """The headline's figures of one period (``zones``: the scope's, ``None`` for the whole site)."""
    kwh = float(energy["kwh"].sum())
    return _Figures(
        energy_kwh=kwh,
        cost=frames.money(kwh, price),
        overtime_kwh=float(energy.loc[energy["usage"] == CLASS_CODES["overtime"], "kwh"].sum()),
        billed=billed.total,
        cleaning_flagged=cleaning_flagged,
        co2_kg=kwh * co2_kg_per_kwh,
        alerts_raised=alerts_raised(stored_alerts, period, zones, site.site.timezone),
    )


def _headline(
    this: _Figures, previous: _Figures | None, earlier: _Figures | None, currency: str, *, compare: bool
) -> pd.DataFrame:
    """One row per measure: this period, the previous one and a year earlier (``None`` where not compared)
    with the changes [%]; ``compare`` false (this period only partly stored) leaves every change ``None``."""
    measures = (
        ("Energy [kWh]", "energy_kwh"),
        (f"Energy cost [{currency}]", "cost"),
        ("Overtime energy [kWh]", "overtime_kwh"),
        (f"Overtime billed [{currency}]", "billed"),
        ("Cleaning sessions over the limit", "cleaning_flagged"),
        ("CO₂ [kg]", "co2_kg"),
        ("Alerts raised", "alerts_raised"),
    )
    rows = []
    for label, name in measures:
        value = getattr(this, name)
        before = None if previous is None else getattr(previous, name)
        ago = None if earlier is None else getattr(earlier, name)
        changes = (_change(value, before), _change(value, ago)) if compare else (None, None)
        rows.append((label, value, before, changes[0], ago, changes[1]))
    columns = ["Measure", "This period", "Previous period", "Change vs previous [%]", "Year earlier"]
    return pd.DataFrame(rows, columns=[*columns, "Change vs year earlier [%]"], dtype=object)


def _change(value: float | Decimal, base: float | Decimal | None) -> float | None:
    """The change from ``base`` to ``value`` [%], one decimal; ``None`` without a base or from zero."""
    if base is None or float(base) == 0.0:
        return None
    return round((float(value) / float(base) - 1.0) * 100.0, 1)


# --- the period's energy, by use, place and time -----------------------------------------------------------


def days_with_readings(energy: pd.DataFrame) -> int:
    """How many local days of ``energy`` (an energy frame of :func:`scope_energy`) have a reading."""
    return len(np.unique(energy["day"].to_numpy(dtype=np.int64)))


def _complete(days_with: int, days: int) -> bool:
    """Whether readings on ``days_with`` of a period's ``days`` days are :data:`COMPLETE_SHARE` of them."""
    return days > 0 and days_with >= COMPLETE_SHARE * days


def _load(engine: Engine, site: SiteConfig, scope: Scope, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The scope's energy frame of the readings in ``[start_ms, end_ms)`` [UTC ms]; read on to
    ``max_gap_minutes`` past the end, so that each zone's last reading covers up to its next one as
    scoring counts it (SPEC §3.1), then cut."""
    max_gap_ms = site.sampling.max_gap_minutes * 60_000
    return _between(
        scope_energy(stored_readings(engine, start_ms, end_ms + max_gap_ms), site, scope), start_ms, end_ms
    )


def _between(energy: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The readings of ``energy`` timed in ``[start_ms, end_ms)`` [UTC ms]."""
    t = energy["t_ms"].to_numpy()
    return energy[(t >= start_ms) & (t < end_ms)].reset_index(drop=True)


def _zones(energy: pd.DataFrame) -> list[str]:
    """The zones with readings in ``energy``."""
    codes = np.unique(energy[S.ZONE_ID].cat.codes.to_numpy())
    return [str(z) for z in energy[S.ZONE_ID].cat.categories[codes[codes >= 0]]]

"""What a signed-in user sees of a month: invoices, lines, cleaning, alerts and energy (SPEC §8).

:func:`period_view` is the app's one read: a month (``YYYY-MM``, default the latest with data) as the store
holds it — invoices as they stand, the month's cleaning sessions and alerts, the energy of every stored
reading — plus the latest run, whose files the Upload tab and the downloads show. Everything in a
:class:`RunView` is already limited to what the user may see: a user tied to a client
(:func:`slem_ml.storage.users.can_see_client`) gets that client's invoices and only the zones that client
leases — cleaning sessions, alerts and energy included.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from slem_ml.app.workspace import RUN_CONTRACTS, AppConfig, run_folder
from slem_ml.billing.coverage import compute_coverage
from slem_ml.config.site import SiteConfig, load_site
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.storage import RunRecord, latest_run, open_database
from slem_ml.storage.maintenance import alerts_frame
from slem_ml.storage.months import (
    available_periods,
    month_bounds_ms,
    of_known_clients,
    period_cleaning,
    stored_readings,
)
from slem_ml.storage.periods import parse_period, period_invoices
from slem_ml.storage.tables import ReadingBlock
from slem_ml.storage.users import User

__all__ = ["RunView", "Tiles", "period_view", "periods", "tiles", "zone_readings"]

#: Columns of :attr:`RunView.energy`, one row per reading.
ENERGY_COLUMNS = (S.ZONE_ID, S.CLIENT_ID, S.BUILDING, S.FLOOR, S.ZONE, "local_time", "kwh", S.USAGE_CLASS)


@dataclass(frozen=True)
class RunView:
    """The latest run as ``user`` may see it."""

    user: User
    run: RunRecord
    site: SiteConfig
    folder: Path  # the run's outputs (may be missing for a run stored by `slem score` elsewhere)
    invoices: pd.DataFrame  # schema.INVOICE_COLUMNS
    lines: pd.DataFrame  # schema.INVOICE_LINE_COLUMNS plus original_energy_kwh
    cleaning: pd.DataFrame  # schema.CLEANING_COLUMNS (start/end in site time)
    alerts: pd.DataFrame  # stored alerts of the visible zones (see storage.maintenance.alerts_frame)
    energy: pd.DataFrame  # ENERGY_COLUMNS; empty when the run's folder is gone
    zones: tuple[str, ...]  # zones the user may see
    period: str = ""  # the month shown (YYYY-MM); "" for a view of the latest run alone

    @property
    def currency(self) -> str:
        return self.site.site.currency


@dataclass(frozen=True)
class Tiles:
    """The overview's headline figures."""

    overtime_hours: Decimal  # [h] billable
    overtime_amount: Decimal  # [currency]
    cleaning_flagged: int  # sessions over the flag limit
    cleaning_savings: Decimal  # [currency]
    open_alerts: int
    energy_kwh: float  # [kWh] all readings
    overtime_kwh: float  # [kWh]


def periods(config: AppConfig) -> list[str]:
    """The months the store has readings or invoices for, newest first."""
    engine = open_database(config.database_url)
    try:
        return available_periods(engine)
    finally:
        engine.dispose()


def period_view(config: AppConfig, user: User, period: str | None = None) -> RunView | None:
    """The month ``period`` (default: the latest with data) as ``user`` may see it; ``None`` when nothing
    has been stored yet."""
    engine = open_database(config.database_url)
    try:
        run = latest_run(engine)
        months = available_periods(engine)
        if run is None and config.contracts is not None:
            run = _live_only(config)  # readings from live ingest alone: the month to date all the same
        if run is None or not months:
            return None
        period = period or months[0]
        parse_period(period)
        folder = run_folder(config, run.run_id)
        site = _site(folder, config)
        lines, invoices, _ = period_invoices(engine, site, period)
        cleaning = period_cleaning(engine, site, period)
        alerts = alerts_frame(engine)
        version = _store_version(engine)
    finally:
        engine.dispose()
    energy = _month_energy(config.database_url, version, period, site)
    start, end = month_bounds_ms(period, site.site.timezone)
    if user.client_id is not None:
        invoices = invoices[invoices["client_id"] == user.client_id]
        lines = lines[lines["client_id"] == user.client_id]
        energy = energy[energy[S.CLIENT_ID].astype(str) == user.client_id]
    zones = tuple(sorted({str(z) for z in energy[S.ZONE_ID].unique()} | set(lines[S.ZONE_ID].astype(str))))
    cleaning = cleaning.assign(
        start=cleaning["start"].dt.tz_convert(site.site.timezone),
        end=cleaning["end"].dt.tz_convert(site.site.timezone),
    )
    seen = alerts["last_seen"] >= pd.Timestamp(start, unit="ms", tz="UTC")
    seen &= alerts["first_seen"] < pd.Timestamp(end, unit="ms", tz="UTC")
    alerts = alerts[seen]
    if user.client_id is not None:  # nothing of other clients: only the zones this one leases
        cleaning = cleaning[cleaning[S.ZONE_ID].isin(zones)]
        alerts = alerts[alerts[S.ZONE_ID].isin(zones)]
    return RunView(
        user=user,
        run=run,
        site=site,
        folder=folder,
        invoices=invoices.reset_index(drop=True),
        lines=lines.reset_index(drop=True),
        cleaning=cleaning.reset_index(drop=True),
        alerts=alerts.reset_index(drop=True),
        energy=energy,
        zones=zones,
        period=period,
    )


def zone_readings(config: AppConfig, view: RunView, zone_id: str) -> pd.DataFrame:
    """One zone's stored readings of the view's month as scoring sees them (canonical columns, UTC);
    only the user's client's when the user is tied to one (a zone let to another client before or after).
    """
    start, end = month_bounds_ms(view.period, view.site.site.timezone)
    engine = open_database(config.database_url)
    try:
        frame = stored_readings(engine, start, end, [zone_id])
    finally:
        engine.dispose()
    frame = of_known_clients(frame, view.site)
    if view.user.client_id is not None:
        frame = frame[frame[S.CLIENT_ID] == view.user.client_id].reset_index(drop=True)
        frame[S.CLIENT_ID] = frame[S.CLIENT_ID].cat.remove_unused_categories()
    return frame


def _store_version(engine: Engine) -> tuple[int, str]:
    """Changes whenever a block is written: the cache key of the month's energy."""
    with engine.connect() as connection:
        count, newest = connection.execute(
            select(func.count(), func.max(ReadingBlock.updated_at)).select_from(ReadingBlock)
        ).one()
    return int(count), str(newest)


_ENERGY_CACHE: dict[tuple[str, tuple[int, str], str, str], pd.DataFrame] = {}
_ENERGY_LOCK = threading.Lock()  # the app's requests run in threads


def _month_energy(url: str, version: tuple[int, str], period: str, site: SiteConfig) -> pd.DataFrame:
    """Energy of every stored reading of the month [kWh] with its local time and usage class
    (:data:`ENERGY_COLUMNS`), cached per store version and site: the tabs share one read."""
    key = (url, version, period, repr(site))
    with _ENERGY_LOCK:
        if key in _ENERGY_CACHE:
            return _ENERGY_CACHE[key]
    energy = _read_month_energy(url, period, site)
    with _ENERGY_LOCK:
        while len(_ENERGY_CACHE) >= 4:
            _ENERGY_CACHE.pop(next(iter(_ENERGY_CACHE)))  # the oldest
        _ENERGY_CACHE[key] = energy
    return energy


def _read_month_energy(url: str, period: str, site: SiteConfig) -> pd.DataFrame:
    start, end = month_bounds_ms(period, site.site.timezone)
    engine = open_database(url)
    try:
        frame = stored_readings(engine, start, end)
    finally:
        engine.dispose()
    frame = of_known_clients(frame, site)  # the contracts of today
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ENERGY_COLUMNS})
    coverage = compute_coverage(frame, site)
    kwh = frame[S.POWER_W].to_numpy(dtype=float) * coverage.covered_ms / 3_600_000_000.0
    # the zone number, worked out per zone and not per reading
    numbers = frame[S.ZONE_ID].cat.categories.astype(str).str.extract(S.ZONE_ID_PATTERN)["zone"]
    labels, number_of_zone = np.unique(numbers.fillna("").to_numpy(dtype=str), return_inverse=True)
    zone = pd.Categorical.from_codes(number_of_zone[frame[S.ZONE_ID].cat.codes.to_numpy()], labels)
    return pd.DataFrame(
        {
            S.ZONE_ID: frame[S.ZONE_ID],
            S.CLIENT_ID: frame[S.CLIENT_ID],
            S.BUILDING: frame[S.BUILDING],
            S.FLOOR: frame[S.FLOOR],
            S.ZONE: zone,
            "local_time": frame[S.TIMESTAMP].dt.tz_convert(site.site.timezone),
            "kwh": kwh,
            S.USAGE_CLASS: pd.Categorical.from_codes(coverage.usage, categories=list(S.USAGE_CLASSES)),
        }
    )[list(ENERGY_COLUMNS)]


def tiles(view: RunView) -> Tiles:
    """The overview's figures for ``view``."""
    flagged = view.cleaning[view.cleaning["flagged"]]
    energy = view.energy
    return Tiles(
        overtime_hours=sum(view.invoices["billable_hours"], Decimal(0)),
        overtime_amount=sum(view.invoices["total"], Decimal(0)),
        cleaning_flagged=len(flagged),
        cleaning_savings=sum(flagged["savings"], Decimal(0)),
        open_alerts=int(view.alerts["status"].isin(["open", "ongoing"]).sum()),
        energy_kwh=float(energy["kwh"].sum()),
        overtime_kwh=float(energy.loc[energy[S.USAGE_CLASS] == "overtime", "kwh"].sum()),
    )


#: The run id of a store with live readings and no upload yet (no stored run has id 0).
LIVE_ONLY_RUN = 0


def _live_only(config: AppConfig) -> RunRecord:
    """A stand-in for the latest run when the store has only live readings (SPEC §9): the server's site."""
    site = load_site(config.contracts)  # type: ignore[arg-type]  # the caller checked
    return RunRecord(
        run_id=LIVE_ONLY_RUN, created_at=dt.datetime.now(dt.UTC), actor="live ingest", status="live",
        input_sha256="", source="live readings (no upload yet)", timezone=site.site.timezone,
        currency=site.site.currency, rows_in=0, rows_scored=0, rows_quarantined=0, rows_duplicate=0,
        timings={}, versions={}, invoices={},
    )  # fmt: skip


def _site(folder: Path, config: AppConfig) -> SiteConfig:
    """The site configuration the run was scored with (kept in its folder), else the server's."""
    kept = folder / RUN_CONTRACTS
    if kept.exists():
        return load_site(kept)
    if config.contracts is None:
        raise SlemError(f"the latest run's folder {folder} is missing and no contracts were given")
    return load_site(config.contracts)

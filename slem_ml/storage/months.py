"""What the store holds for a month (SPEC §8: the app by period, not by run).

* :func:`available_periods` — the months with readings or invoices, newest first;
* :func:`stored_readings` — the stored readings of an interval as a validated-readings frame;
* :func:`period_cleaning` — the cleaning sessions of a month, as the stored readings make them.

A month is the site's local calendar month (``YYYY-MM``), as invoices count it (SPEC §3.7).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import wall_to_utc
from slem_ml.storage.blocks import MS_PER_DAY, load
from slem_ml.storage.cleaning_store import month_cleaning
from slem_ml.storage.periods import parse_period
from slem_ml.storage.rebill import client_names, readings_frame, zone_names
from slem_ml.storage.tables import ClientDay, Invoice, StoreZone

__all__ = ["available_periods", "month_bounds_ms", "of_known_clients", "period_cleaning", "stored_readings"]


def available_periods(engine: Engine) -> list[str]:
    """Every month (YYYY-MM) with stored readings or invoices, newest first."""
    with engine.connect() as connection:
        days = connection.execute(select(ClientDay.date).distinct()).scalars().all()
        invoiced = connection.execute(select(Invoice.period).distinct()).scalars().all()
    return sorted({f"{d.year:04d}-{d.month:02d}" for d in days} | set(invoiced), reverse=True)


def month_bounds_ms(period: str, timezone: str) -> tuple[int, int]:
    """The month's first and next month's first local midnight, as UTC instants [ms]."""
    first, after = parse_period(period)
    days = np.array([first.toordinal(), after.toordinal()], dtype=np.int64) - 719_163  # 1970-01-01
    bounds = wall_to_utc(days, np.zeros(2, dtype=np.int64), timezone).astype(np.int64)
    return int(bounds[0]), int(bounds[1])


def stored_readings(
    engine: Engine, start_ms: int, end_ms: int, zone_ids: list[str] | None = None
) -> pd.DataFrame:
    """The stored readings in ``[start_ms, end_ms)`` [UTC ms] of every zone (or of ``zone_ids``):
    ``timestamp`` (UTC), ``zone_id`` and ``client_id`` (categorical), ``power_w`` [W], ``cleaning_staff``
    (bool, given or inferred), ``building``, ``floor``; sorted by zone and time."""
    with engine.connect() as connection:
        zones = zone_names(connection)
        if zone_ids is not None:
            zones = {key: zone for key, zone in zones.items() if zone in set(zone_ids)}
        places = {
            row.id: (row.building, row.floor)
            for row in connection.execute(select(StoreZone.id, StoreZone.building, StoreZone.floor))
        }
        ranges = [(key, start_ms // MS_PER_DAY, (end_ms - 1) // MS_PER_DAY) for key in sorted(zones)]
        readings, _ = load(connection, ranges)
        clients = client_names(connection)
    readings = readings.take((readings.t_ms >= start_ms) & (readings.t_ms < end_ms))
    return readings_frame(readings, zones, clients, places)


def of_known_clients(frame: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """The readings of ``frame`` (from :func:`stored_readings`) whose client the site's contracts know
    today, their categories trimmed to those in use; decided per client, not per reading."""
    known = frame[S.CLIENT_ID].cat.categories.isin(list(site.clients))
    frame = frame[known[frame[S.CLIENT_ID].cat.codes.to_numpy()]].reset_index(drop=True)
    for column in (S.ZONE_ID, S.CLIENT_ID):
        frame[column] = frame[column].cat.remove_unused_categories()
    return frame


def period_cleaning(engine: Engine, site: SiteConfig, period: str) -> pd.DataFrame:
    """The cleaning sessions of ``period`` (by their local date) as the stored readings make them
    (``cleaning_sessions.csv`` columns plus ``client_id``; times in the site timezone)."""
    parse_period(period)
    with engine.connect() as connection:
        return month_cleaning(connection, site, [period])

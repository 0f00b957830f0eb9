"""Cleaning sessions from every stored reading (SPEC §4, §8.2): ``store_cleaning_sessions``.

A cleaning session may run past midnight, so unlike billing sessions they are not recomputed per local
date: after an upload, :func:`recompute_cleaning` finds the sessions of the touched zones from one day
before the first changed reading to one day after the last (reading one more day either side for their
context) and replaces the stored sessions that start in that window. A session longer than a day across
the window's edge is the one limit. The first upload of a zone's days keeps the file's own sessions
(:func:`store_file_cleaning`), as billing does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, insert, select

from slem_ml.billing.cleaning import SESSION_ORDER, cleaning_sessions
from slem_ml.billing.coverage import compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.storage.blocks import MS_PER_DAY, load
from slem_ml.storage.payload import cleaning_rows
from slem_ml.storage.rebill import client_names, readings_frame, zone_names
from slem_ml.storage.tables import StoreCleaningSession, StoreZone

__all__ = ["month_cleaning", "recompute_cleaning", "store_file_cleaning"]


def store_file_cleaning(connection: Connection, sessions: pd.DataFrame) -> None:
    """Store an upload's own cleaning sessions (nothing was stored around its readings)."""
    rows = cleaning_rows(sessions)
    if rows:
        connection.execute(insert(cast(Table, StoreCleaningSession.__table__)), rows)


def recompute_cleaning(
    connection: Connection, site: SiteConfig, zone_key: np.ndarray, t_ms: np.ndarray, *, inferred: bool
) -> None:
    """Replace the stored cleaning sessions of the zones with changed readings (``zone_key``, ``t_ms``
    [UTC ms]) that start within a day of the changes (see the module docstring)."""
    if not len(t_ms):
        return
    keys = np.unique(zone_key)
    lo = (int(t_ms.min()) // MS_PER_DAY - 1) * MS_PER_DAY
    hi = (int(t_ms.max()) // MS_PER_DAY + 2) * MS_PER_DAY
    readings, _ = load(connection, [(int(k), lo // MS_PER_DAY - 1, hi // MS_PER_DAY) for k in keys])
    zones = zone_names(connection)
    places = {row.id: (row.building, row.floor) for row in connection.execute(select(StoreZone))}
    names = sorted(zones[int(k)] for k in keys)
    start, end = _utc(lo), _utc(hi)
    table = cast(Table, StoreCleaningSession.__table__)
    for at in range(0, len(names), 900):
        connection.execute(
            delete(table).where(
                table.c.zone_id.in_(names[at : at + 900]), table.c.start_at >= start, table.c.start_at < end
            )
        )
    if not len(readings):
        return
    frame = readings_frame(readings, zones, client_names(connection), places)
    frame = frame[frame[S.CLIENT_ID].astype(str).isin(list(site.clients))].reset_index(drop=True)
    if frame.empty:
        return
    for column in (S.ZONE_ID, S.CLIENT_ID):
        frame[column] = frame[column].cat.remove_unused_categories()
    sessions = cleaning_sessions(frame, compute_coverage(frame, site), site, inferred=inferred)
    if sessions.empty:
        return
    starts = pd.to_datetime(sessions["start"], utc=True)
    inside = ((starts >= start) & (starts < end)).to_numpy()
    store_file_cleaning(connection, sessions[inside])


def month_cleaning(connection: Connection, site: SiteConfig, months: Iterable[str]) -> pd.DataFrame:
    """The stored cleaning sessions dated in ``months`` (YYYY-MM), as :func:`cleaning_sessions` gives them
    (``cleaning_sessions.csv`` columns plus ``client_id``; times in the site timezone)."""
    table = cast(Table, StoreCleaningSession.__table__)
    parts: list[Any] = []
    for month in sorted(set(months)):
        year, number = (int(part) for part in month.split("-"))
        first = dt.date(year, number, 1)
        after = dt.date(year + number // 12, number % 12 + 1, 1)
        query = select(table).where(table.c.date >= first, table.c.date < after)
        parts += connection.execute(query).all()
    columns = [*S.CLEANING_COLUMNS, S.CLIENT_ID]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    tz = site.site.timezone
    frame = pd.DataFrame(
        {
            S.ZONE_ID: [r.zone_id for r in parts],
            S.BUILDING: [r.building for r in parts],
            S.FLOOR: [r.floor for r in parts],
            "date": [r.date for r in parts],
            "start": pd.to_datetime([r.start_at for r in parts], utc=True).tz_convert(tz),
            "end": pd.to_datetime([r.end_at for r in parts], utc=True).tz_convert(tz),
            "minutes": [_minutes(r.minutes) for r in parts],
            "flagged": [bool(r.flagged) for r in parts],
            "excess_minutes": [_minutes(r.excess_minutes) for r in parts],
            "wasted_kwh": [r.wasted_kwh for r in parts],
            "savings": [r.savings for r in parts],
            "inferred": [bool(r.inferred) for r in parts],
            S.CLIENT_ID: [r.client_id for r in parts],
        }
    )
    return frame.sort_values(SESSION_ORDER, kind="stable").reset_index(drop=True)[columns]


def _minutes(value: float) -> Decimal:
    """Minutes as scoring gives them (Decimal, 3 places) from the stored float."""
    return Decimal(f"{value:.3f}")


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)

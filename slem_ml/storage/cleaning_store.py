"""Cleaning sessions from every stored reading (SPEC §4, §8.2): ``store_cleaning_sessions``.

A cleaning session may run past midnight, so it is not tied to one local date as a billing session is:
:func:`slem_ml.storage.rebill.rebill` computes the cleaning sessions of the zones and dates it recomputes
from the same readings, with :data:`CLEANING_CONTEXT_MS` of readings either side, and
:func:`replace_cleaning` replaces the stored sessions that overlap those dates. A session reaching more than
that context beyond the dates is the one limit. The first upload of a zone's days keeps the file's own
sessions (:func:`store_file_cleaning`), as billing does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, insert, select

from slem_ml.billing.cleaning import SESSION_ORDER
from slem_ml.billing.invoices import month_span
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import utc_ms
from slem_ml.storage.payload import cleaning_rows
from slem_ml.storage.tables import StoreCleaningSession

__all__ = ["CLEANING_CONTEXT_MS", "month_cleaning", "replace_cleaning", "store_file_cleaning"]

#: Readings either side of the recomputed span a cleaning session is completed from: a session overlapping
#: the span and longer than this beyond it would be cut (cleaning takes an hour or three).
CLEANING_CONTEXT_MS = 12 * 3_600_000


def store_file_cleaning(connection: Connection, sessions: pd.DataFrame) -> None:
    """Store an upload's own cleaning sessions (nothing was stored around its readings)."""
    rows = cleaning_rows(sessions)
    if rows:
        connection.execute(insert(cast(Table, StoreCleaningSession.__table__)), rows)


def replace_cleaning(
    connection: Connection, sessions: pd.DataFrame, spans: dict[str, tuple[int, int]]
) -> None:
    """Replace, per zone, the stored cleaning sessions that overlap its span ``[start, end)`` [UTC ms] with
    those of ``sessions`` (recomputed with :data:`CLEANING_CONTEXT_MS` of readings either side) that do."""
    table = cast(Table, StoreCleaningSession.__table__)
    by_span: dict[tuple[int, int], list[str]] = {}
    for zone_id, span in spans.items():
        by_span.setdefault(span, []).append(zone_id)
    for (start, end), zones in by_span.items():  # usually one span for all zones: one statement
        for at in range(0, len(zones), 900):
            connection.execute(
                delete(table).where(
                    table.c.zone_id.in_(zones[at : at + 900]),
                    table.c.start_at < _utc(end),
                    table.c.end_at > _utc(start),
                )
            )
    if sessions.empty:
        return
    first, last = utc_ms(sessions["start"]), utc_ms(sessions["end"])
    zone = sessions[S.ZONE_ID].astype(str).to_numpy(dtype=object)
    lo = np.array([spans.get(z, (0, 0))[0] for z in zone], dtype=np.int64)
    hi = np.array([spans.get(z, (0, 0))[1] for z in zone], dtype=np.int64)
    store_file_cleaning(connection, sessions[(first < hi) & (last > lo)])


def month_cleaning(connection: Connection, site: SiteConfig, months: Iterable[str]) -> pd.DataFrame:
    """The stored cleaning sessions dated in ``months`` (YYYY-MM), as :func:`cleaning_sessions` gives them
    (``cleaning_sessions.csv`` columns plus ``client_id``; times in the site timezone)."""
    table = cast(Table, StoreCleaningSession.__table__)
    parts: list[Any] = []
    for month in sorted(set(months)):
        first, after = month_span(month)
        query = select(table).where(table.c.date >= first, table.c.date < after)
        parts += connection.execute(query).all()
    columns = [*S.CLEANING_COLUMNS, S.CLIENT_ID]
    tz = site.site.timezone
    if not parts:  # typed as a full frame's: callers use .dt on the times and mask by the flags
        dtypes = {"start": f"datetime64[ns, {tz}]", "end": f"datetime64[ns, {tz}]", "flagged": bool}
        dtypes |= {"inferred": bool, "minutes": float, "excess_minutes": float}
        return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, object)) for c in columns})
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

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
from sqlalchemy import Connection, Table, delete, select

from slem_ml.billing.cleaning import SESSION_ORDER
from slem_ml.billing.invoices import month_span
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import utc_ms
from slem_ml.storage.bulk import columns_of, dates, decimals, fetched, insert_columns, instants
from slem_ml.storage.payload import cleaning_stored
from slem_ml.storage.tables import StoreCleaningSession

__all__ = ["CLEANING_CONTEXT_MS", "month_cleaning", "replace_cleaning", "store_file_cleaning"]

#: Readings either side of the recomputed span a cleaning session is completed from: a session overlapping
#: the span and longer than this beyond it would be cut (cleaning takes an hour or three).
CLEANING_CONTEXT_MS = 12 * 3_600_000


def store_file_cleaning(connection: Connection, sessions: pd.DataFrame) -> None:
    """Store an upload's own cleaning sessions (nothing was stored around its readings)."""
    columns = cleaning_stored(sessions)  # checked as cleaning_rows, in the store's form
    if columns:
        insert_columns(connection, cast(Table, StoreCleaningSession.__table__), columns)


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
    names = [c.key for c in table.c if c.key != "id"]
    parts: list[Any] = []
    for month in sorted(set(months)):
        first, after = month_span(month)
        query = select(*(table.c[n] for n in names)).where(table.c.date >= first, table.c.date < after)
        for rows in fetched(connection, query, 100_000):  # the driver's values, converted per column
            parts += rows
    columns = [*S.CLEANING_COLUMNS, S.CLIENT_ID]
    tz = site.site.timezone
    if not parts:  # typed as a full frame's: callers use .dt on the times and mask by the flags
        dtypes = {"start": f"datetime64[ns, {tz}]", "end": f"datetime64[ns, {tz}]", "flagged": bool}
        dtypes |= {"inferred": bool, "minutes": float, "excess_minutes": float}
        return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, object)) for c in columns})
    raw = columns_of(parts, names)
    frame = pd.DataFrame(
        {
            S.ZONE_ID: np.array(raw["zone_id"], dtype=object),
            S.BUILDING: np.array(raw["building"], dtype=object),
            S.FLOOR: np.array(raw["floor"], dtype=object),
            "date": dates(raw["date"]),
            "start": instants(raw["start_at"]).tz_convert(tz),
            "end": instants(raw["end_at"]).tz_convert(tz),
            "minutes": _minutes(np.array(raw["minutes"], dtype=np.float64)),
            "flagged": np.array(raw["flagged"], dtype=bool),
            "excess_minutes": _minutes(np.array(raw["excess_minutes"], dtype=np.float64)),
            "wasted_kwh": decimals(raw["wasted_kwh"], 6),
            "savings": decimals(raw["savings"], 2),
            "inferred": np.array(raw["inferred"], dtype=bool),
            S.CLIENT_ID: np.array(raw["client_id"], dtype=object),
        }
    )
    return frame.sort_values(SESSION_ORDER, kind="stable").reset_index(drop=True)[columns]


def _minutes(values: np.ndarray) -> list[Decimal]:
    """Minutes as scoring gives them (Decimal, 3 places) from the stored floats."""
    return list(map(Decimal, np.char.mod("%.3f", values).tolist()))


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)

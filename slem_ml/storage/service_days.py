"""The days each client has stored readings on (``client_days``): invoices' service periods (SPEC §8).

Kept as the readings arrive (:func:`record_client_days`, in the upload's transaction) so that an invoice's
service period is one small query (:func:`stored_service_periods`), never a scan of the readings. A
correction that moves a day's every reading to another client leaves the day listed for the first one:
the period can only widen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, func, insert, select

from slem_ml.billing.invoices import invoice_month, month_span
from slem_ml.io import schema as S
from slem_ml.io.localtime import day_to_date, local_day_numbers
from slem_ml.storage.tables import ClientDay

__all__ = ["record_client_days", "stored_service_periods"]


def record_client_days(connection: Connection, frame: pd.DataFrame, timezone: str) -> None:
    """Add the (client, local date) pairs of ``frame``'s readings that are not listed yet."""
    if frame.empty:
        return
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    days = local_day_numbers(t, timezone)
    clients = frame[S.CLIENT_ID].astype("category")
    key = np.unique(clients.cat.codes.to_numpy().astype(np.int64) << 32 | (days + (1 << 31)))
    names = np.asarray(clients.cat.categories.astype(str), dtype=object)
    pairs = set(zip(names[key >> 32].tolist(), day_to_date((key & 0xFFFFFFFF) - (1 << 31)), strict=True))
    first, last = min(d for _, d in pairs), max(d for _, d in pairs)
    table = cast(Table, ClientDay.__table__)
    query = select(table.c.client_id, table.c.date).where(
        table.c.client_id.in_(sorted({c for c, _ in pairs})), table.c.date.between(first, last)
    )
    known = {(client_id, date) for client_id, date in connection.execute(query)}
    missing = [{"client_id": c, "date": d} for c, d in sorted(pairs - known)]
    if missing:
        connection.execute(insert(table), missing)


def stored_service_periods(
    connection: Connection, invoice_ids: Iterable[str]
) -> dict[str, tuple[dt.date, dt.date]]:
    """Per invoice id (``INV-{client}-{YYYYMM}``), the first and last date its client has readings in the
    month; invoices whose client has none are left out."""
    out: dict[str, tuple[dt.date, dt.date]] = {}
    table = cast(Table, ClientDay.__table__)
    for invoice_id in invoice_ids:
        client_id, period = invoice_month(invoice_id)
        first, after = month_span(period)
        row = connection.execute(
            select(func.min(table.c.date), func.max(table.c.date)).where(
                table.c.client_id == client_id, table.c.date >= first, table.c.date < after
            )
        ).one()
        if row[0] is not None:
            out[invoice_id] = (row[0], row[1])
    return out

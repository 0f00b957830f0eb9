"""The invoices as the stored billing sessions make them now (SPEC §8.2–§8.4): lines from the sessions,
held where a stuck-on alert overlaps them unless a person decided otherwise, invoices from the lines, and a
void for an invoice whose sessions are all gone — the same functions as one upload of everything
(:func:`~slem_ml.billing.invoices.lines_from_sessions`, :func:`~slem_ml.billing.holds.apply_holds`,
:func:`~slem_ml.billing.invoices.build_invoices`). :mod:`~slem_ml.storage.rebill` keeps the sessions.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, func, select

from slem_ml.billing.holds import apply_holds, line_key
from slem_ml.billing.invoices import SESSION_COLUMNS, build_invoices, invoice_month, lines_from_sessions
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.storage.bulk import columns_of, fetched
from slem_ml.storage.rebill import ROWS_PER_INSERT
from slem_ml.storage.tables import Alert, BillingSession, Invoice, LineDecision

__all__ = ["current_invoices", "stored_sessions"]

_EMPTY_HASH = hashlib.sha256(b"").hexdigest()


def current_invoices(
    connection: Connection,
    site: SiteConfig,
    invoice_ids: frozenset[str] | set[str],
    *,
    stuck_on: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The invoices ``invoice_ids`` as the stored sessions make them now: (lines, invoices) frames in the
    :class:`~slem_ml.scoring.result.ScoringResult` layout, revision 1 until stored.

    Lines overlapping a stored ``stuck_on`` alert of their zone (or one of ``stuck_on``: the upload's own,
    not stored yet; :func:`~slem_ml.billing.holds.stuck_on_spans`) are held unless a person decided
    otherwise (``line_decisions``; SPEC §8.4). An invoice that has a stored revision but no session left
    comes back **void** (SPEC §8.3): no lines, totals 0, the hash of no lines. One without any stored
    revision and no sessions does not come back.
    """
    ids = sorted(invoice_ids)
    lines = lines_from_sessions(_stored_sessions(connection, ids), site)
    if len(lines):
        zones = sorted(set(lines["zone_id"].astype(str)))
        spans = pd.concat(
            [frame for frame in (_stored_stuck_on(connection, zones), stuck_on) if frame is not None],
            ignore_index=True,
        )
        lines = apply_holds(lines, spans, _decisions(connection, ids))
    invoices = build_invoices(lines, site)
    void = sorted(set(ids) - set(invoices["invoice_id"]) & _stored_ids(connection, ids))
    if void:
        invoices = pd.concat([invoices, _void_rows(void, site)], ignore_index=True)
    return lines, invoices


def stored_sessions(connection: Connection, invoice_ids: frozenset[str] | set[str]) -> int:
    """How many billing sessions the store holds for the invoices ``invoice_ids``."""
    table = cast(Table, BillingSession.__table__)
    ids, count = sorted(invoice_ids), 0
    for at in range(0, len(ids), 900):
        query = select(func.count()).select_from(table).where(table.c.invoice_id.in_(ids[at : at + 900]))
        count += int(connection.execute(query).scalar_one())
    return count


def _stored_sessions(connection: Connection, ids: list[str]) -> pd.DataFrame:
    """The stored billing sessions of the invoices ``ids`` (:data:`SESSION_COLUMNS`; the ids as Python
    strings), read a partition of :data:`ROWS_PER_INSERT` rows at a time into compact columns."""
    table = cast(Table, BillingSession.__table__)
    names = [*SESSION_COLUMNS[:2], "date", *SESSION_COLUMNS[3:]]
    parts = []
    for at in range(0, len(ids), 900):
        query = select(*(table.c[c] for c in names)).where(table.c.invoice_id.in_(ids[at : at + 900]))
        for rows in fetched(connection, query, ROWS_PER_INSERT):  # the driver's values, per column
            raw = columns_of(rows, names)
            frame: dict[str, Any] = {c: np.array(raw[c], dtype=np.int64) for c in SESSION_COLUMNS[3:]}
            for c in ("client_id", "zone_id"):  # object: no conversion to Arrow strings
                frame[c] = pd.Series(raw[c], dtype=object)
            days = np.array(raw["date"], dtype="datetime64[D]").view(np.int64)  # text or date, as fetched
            parts.append(pd.DataFrame(frame | {"day": days}, copy=False)[list(SESSION_COLUMNS)])
    if not parts:
        return pd.DataFrame(columns=list(SESSION_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def _stored_stuck_on(connection: Connection, zones: list[str]) -> pd.DataFrame:
    """The stored ``stuck_on`` episodes of ``zones`` as ``zone_id, first_ms, last_ms``."""
    rows: list[Any] = []
    for at in range(0, len(zones), 900):
        query = select(Alert.zone_id, Alert.first_seen, Alert.last_seen).where(
            Alert.kind == "stuck_on", Alert.zone_id.in_(zones[at : at + 900])
        )
        rows += connection.execute(query).all()
    return pd.DataFrame(
        {
            "zone_id": [row[0] for row in rows],
            "first_ms": [int(row[1].timestamp() * 1000) for row in rows],
            "last_ms": [int(row[2].timestamp() * 1000) for row in rows],
        }
    )


def _decisions(connection: Connection, ids: list[str]) -> dict[tuple[str, int], str]:
    """The latest decision on each line of the invoices ``ids``, by :func:`line_key`."""
    out: dict[tuple[str, int], str] = {}
    for at in range(0, len(ids), 900):
        query = (
            select(LineDecision.zone_id, LineDecision.start_ms, LineDecision.decision)
            .where(LineDecision.invoice_id.in_(ids[at : at + 900]))
            .order_by(LineDecision.id)
        )
        for zone_id, start_ms, decision in connection.execute(query):
            out[line_key(zone_id, start_ms)] = decision  # the latest decision stands
    return out


def _stored_ids(connection: Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for at in range(0, len(ids), 900):
        query = select(Invoice.invoice_id).where(Invoice.invoice_id.in_(ids[at : at + 900])).distinct()
        found |= set(connection.execute(query).scalars())
    return found


def _void_rows(invoice_ids: list[str], site: SiteConfig) -> pd.DataFrame:
    rows = []
    for invoice_id in invoice_ids:
        client_id, period = invoice_month(invoice_id)
        rows.append(
            {
                "invoice_id": invoice_id,
                "client_id": client_id,
                "period": period,
                "revision": 1,
                "lines": 0,
                "billable_hours": Decimal("0.00"),
                "energy_kwh": Decimal("0.000000"),
                "total": Decimal("0.00"),
                "currency": site.site.currency,
                "content_hash": _EMPTY_HASH,
                "held_total": Decimal("0.00"),
            }
        )
    return pd.DataFrame(rows, columns=list(S.INVOICE_COLUMNS))

"""A month's invoices as they stand in the store (SPEC §8.7): ``slem invoices export`` and ``list``.

The invoices of a period are built from the billing sessions the store holds now
(:func:`~slem_ml.storage.stored_invoices.current_invoices`), numbered with their latest stored revision;
an invoice whose month has no overtime left shows as its void revision.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from sqlalchemy import Engine, func, select

from slem_ml.billing.invoices import month_span
from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.storage.service_days import stored_service_periods
from slem_ml.storage.store import with_revisions
from slem_ml.storage.stored_invoices import current_invoices
from slem_ml.storage.tables import BillingSession, Invoice

__all__ = ["InvoiceSummary", "latest_invoices", "parse_period", "period_invoices"]

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM`` → (first day, first day of the next month); :class:`SlemError` when malformed."""
    match = _PERIOD.match(text.strip())
    if match is None:
        raise SlemError(f"period {text!r}: use YYYY-MM, e.g. 2025-02")
    return month_span(text.strip())


def period_invoices(
    engine: Engine, site: SiteConfig, period: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, tuple[dt.date, dt.date]]]:
    """(lines, invoices, service periods) of ``period`` (YYYY-MM) as the store holds them, in the
    ``invoice_lines.csv`` and ``invoices.csv`` layouts (SPEC §7), revisions as stored."""
    first, after = parse_period(period)
    with engine.connect() as connection:
        ids = set(
            connection.execute(
                select(BillingSession.invoice_id)
                .where(BillingSession.date >= first, BillingSession.date < after)
                .distinct()
            ).scalars()
        )
        ids |= set(connection.execute(select(Invoice.invoice_id).where(Invoice.period == period)).scalars())
        lines, invoices = current_invoices(connection, site, ids)
        service = stored_service_periods(connection, invoices["invoice_id"].astype(str))
        latest = dict(
            connection.execute(
                select(Invoice.invoice_id, func.max(Invoice.revision))
                .where(Invoice.invoice_id.in_(sorted(ids)))
                .group_by(Invoice.invoice_id)
            ).all()
        )
    invoices = with_revisions(invoices, latest).sort_values("invoice_id", kind="stable")
    return lines, invoices.reset_index(drop=True), service


@dataclass(frozen=True)
class InvoiceSummary:
    """The latest stored revision of one invoice."""

    invoice_id: str
    client_id: str
    period: str
    revision: int
    lines: int
    total: Decimal
    currency: str
    created_at: dt.datetime  # UTC, when this revision was stored

    @property
    def void(self) -> bool:
        return self.lines == 0


def latest_invoices(
    engine: Engine, *, period: str | None = None, client_id: str | None = None
) -> list[InvoiceSummary]:
    """The latest revision of every stored invoice (of ``period`` / ``client_id`` when given), by id."""
    newest = select(Invoice.invoice_id, func.max(Invoice.revision).label("revision")).group_by(
        Invoice.invoice_id
    )
    if period is not None:
        parse_period(period)
        newest = newest.where(Invoice.period == period)
    if client_id is not None:
        newest = newest.where(Invoice.client_id == client_id)
    latest = newest.subquery()
    query = (
        select(Invoice)
        .join(
            latest,
            (Invoice.invoice_id == latest.c.invoice_id) & (Invoice.revision == latest.c.revision),
        )
        .order_by(Invoice.period, Invoice.invoice_id)
    )
    with engine.connect() as connection:
        return [
            InvoiceSummary(
                row.invoice_id,
                row.client_id,
                row.period,
                row.revision,
                row.lines,
                row.total,
                row.currency,
                row.created_at,
            )  # fmt: skip
            for row in connection.execute(query)
        ]

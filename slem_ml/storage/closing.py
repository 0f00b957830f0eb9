"""A month billed from live readings becomes final once it is over (SPEC §9 "draft until the month is over").

While a month runs its invoices are drafts, built from the stored billing sessions whenever they are shown
(:func:`~slem_ml.storage.stored_invoices.current_invoices`); nothing stores them. :func:`close_month`
stores the invoices of a month that has ended as revisions — a new revision only where the stored billing
differs from the latest stored one — with an ``invoice.created`` / ``invoice.revised`` audit entry, as an
upload's run would. The ingest worker calls it once a day for the month before the current one, so a late
reading of that month, re-billed after the month closed, gives a further revision the next day.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from slem_ml.billing.invoices import month_span
from slem_ml.config.site import SiteConfig
from slem_ml.storage.payload import invoice_payloads
from slem_ml.storage.store import RevisionOrigin, latest_revisions, write_invoices
from slem_ml.storage.stored_invoices import current_invoices
from slem_ml.storage.tables import BillingSession, Invoice

__all__ = ["close_month", "previous_month"]


def previous_month(site: SiteConfig, now: dt.datetime) -> str:
    """The local month (``YYYY-MM``) before the one ``now`` falls in."""
    local = now.astimezone(site.site.tz)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def close_month(session: Session, site: SiteConfig, period: str, now: dt.datetime, actor: str) -> list[str]:
    """Store the invoices of ``period`` as the stored billing makes them, where they differ from the latest
    stored revision (module docstring), in the caller's transaction; the invoice ids given a new revision."""
    first, after = month_span(period)
    sessions = cast(Table, BillingSession.__table__)
    connection = session.connection()
    ids = set(
        connection.execute(
            select(sessions.c.invoice_id).where(sessions.c.date >= first, sessions.c.date < after).distinct()
        ).scalars()
    )
    ids |= set(connection.execute(select(Invoice.invoice_id).where(Invoice.period == period)).scalars())
    if not ids:
        return []
    lines, invoices = current_invoices(connection, site, ids)
    payloads = invoice_payloads(invoices, lines, site.site.timezone)
    latest = latest_revisions(session, sorted(ids))
    _, new = write_invoices(session, RevisionOrigin(None, now), payloads, latest, actor)
    return new

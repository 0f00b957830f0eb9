"""A person's decision on an invoice line (SPEC §8.4): hold, release or waive, with a note.

:func:`decide_line` records the decision (``line_decisions``), rebuilds the invoice from the store with it
(:func:`~slem_ml.storage.stored_invoices.current_invoices`) and stores the result as a new revision with
an audit entry — in one transaction, under slem's write lock. Deciding what already stands changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from slem_ml.billing.holds import DECISIONS
from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io.localtime import utc_ms
from slem_ml.storage.database import write_session
from slem_ml.storage.payload import invoice_payloads
from slem_ml.storage.store import RevisionOrigin, latest_revisions, write_invoices
from slem_ml.storage.stored_invoices import current_invoices
from slem_ml.storage.tables import AuditEntry, LineDecision

__all__ = ["DecisionError", "LineDecided", "decide_line"]

_MAX_NOTE = 2000


class DecisionError(SlemError):
    """A decision that cannot be made: no such invoice or line, no note, an unknown decision."""


@dataclass(frozen=True)
class LineDecided:
    """What :func:`decide_line` did."""

    invoice_id: str
    status: str  # the line's status now
    revision: int  # the invoice's revision now
    changed: bool  # False: the line already had that status
    total: str  # the invoice's total now [currency], as text
    held_total: str


def decide_line(
    engine: Engine,
    site: SiteConfig,
    invoice_id: str,
    zone_id: str,
    start: str | dt.datetime | pd.Timestamp,
    decision: str,
    note: str,
    user: str,
) -> LineDecided:
    """Hold, release or waive the line of ``invoice_id`` in ``zone_id`` that starts at ``start`` (an ISO 8601
    instant with its offset, as ``invoice_lines.csv`` gives it), saying why in ``note``."""
    if decision not in DECISIONS:
        raise DecisionError(f"decision {decision!r}: use one of {', '.join(DECISIONS)}")
    note = (note or "").strip()
    if not note:
        raise DecisionError("a decision needs a note saying why")
    if len(note) > _MAX_NOTE:
        raise DecisionError(f"the note is longer than {_MAX_NOTE} characters")
    start_ms = _instant_ms(start)
    status = DECISIONS[decision]
    now = dt.datetime.now(dt.UTC)
    with write_session(engine) as session:
        connection = session.connection()
        lines, _ = current_invoices(connection, site, {invoice_id})
        mine = lines.iloc[:0]
        if len(lines):
            mine = lines[(lines["zone_id"].astype(str) == zone_id) & (utc_ms(lines["start"]) == start_ms)]
        if mine.empty:
            raise DecisionError(
                f"{invoice_id} has no line in zone {zone_id} starting at {start}; "
                "`slem invoices export` lists the lines"
            )
        before = str(mine["status"].iloc[0])
        session.add(
            LineDecision(
                invoice_id=invoice_id,
                zone_id=zone_id,
                start_ms=start_ms,
                decision=status,
                note=note,
                user_name=user,
                at=now,
            )  # fmt: skip
        )
        session.add(
            AuditEntry(
                at=now,
                actor=user,
                action=f"invoice.line_{status}",
                entity="invoice",
                entity_id=invoice_id,
                detail={
                    "zone_id": zone_id,
                    "start": str(start),
                    "old_status": before,
                    "new_status": status,
                    "note": note,
                },
            )  # fmt: skip
        )
        session.flush()
        lines, invoices = current_invoices(connection, site, {invoice_id})
        payloads = invoice_payloads(invoices, lines, site.site.timezone)
        latest = latest_revisions(session, [invoice_id])
        revisions, _ = write_invoices(session, RevisionOrigin(None, now), payloads, latest, user)
        row = invoices.iloc[0]
        return LineDecided(
            invoice_id, status, revisions[invoice_id], before != status, str(row["total"]),
            str(row["held_total"]),
        )  # fmt: skip


def _instant_ms(value: str | dt.datetime | pd.Timestamp) -> int:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DecisionError(f"start {value!r} is not an ISO 8601 instant") from None
    if stamp.tzinfo is None:
        raise DecisionError(f"start {value!r} needs its UTC offset, as invoice_lines.csv gives it")
    return int(stamp.value) // 1_000_000  # Timestamp.value is in ns whatever its unit

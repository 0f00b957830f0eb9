"""Reading back what was stored: the latest run, an invoice's revisions, a run's outputs, the audit log.

Results are plain frozen dataclasses, detached from the database, with tz-aware UTC datetimes and ``Decimal``
money; invoice lines come back as a frame in the ``schema.INVOICE_LINE_COLUMNS`` layout with ``start``/``end``
in the site timezone, as ``invoice_lines.csv`` has them; cleaning sessions likewise in the
``schema.CLEANING_COLUMNS`` layout of ``cleaning_sessions.csv``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from slem_ml.io.schema import CLEANING_COLUMNS, INVOICE_LINE_COLUMNS
from slem_ml.storage.tables import AuditEntry, CleaningSession, Invoice, RunInvoice, ScoreRun

__all__ = [
    "AuditRecord",
    "UploadRecord",
    "InvoiceRevision",
    "RunRecord",
    "audit_log",
    "invoice_history",
    "latest_run",
    "run_cleaning",
    "run_invoices",
    "upload_history",
]


@dataclass(frozen=True)
class RunRecord:
    """A stored score run."""

    run_id: int
    created_at: dt.datetime  # UTC
    actor: str
    status: str
    input_sha256: str
    source: str
    timezone: str
    currency: str
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    rows_duplicate: int
    timings: dict[str, Any]  # stage -> seconds
    versions: dict[str, Any]  # slem, python, pandas, ... and "models"
    invoices: dict[str, int]  # invoice_id -> the revision this run created or confirmed


@dataclass(frozen=True)
class InvoiceRevision:
    """One stored revision of an invoice; ``line_items`` holds its lines."""

    invoice_id: str
    revision: int
    client_id: str
    period: str  # YYYY-MM
    content_hash: str
    lines: int
    billable_hours: Decimal
    energy_kwh: Decimal  # [kWh]
    total: Decimal
    currency: str
    run_id: int | None  # the run that created this revision (None: a decision on a line did)
    created_at: dt.datetime  # UTC
    line_items: pd.DataFrame = field(compare=False, repr=False)
    held_total: Decimal = Decimal("0.00")  # lines held for review, not in the total (SPEC §8.4)

    @property
    def void(self) -> bool:
        """A revision that cancels the invoice: no overtime left in its month (SPEC §8.3)."""
        return self.lines == 0


@dataclass(frozen=True)
class AuditRecord:
    """One audit-log entry; ``detail`` says what changed (for ``invoice.revised``: lines, totals, hashes)."""

    entry_id: int
    at: dt.datetime  # UTC
    actor: str
    action: str  # run.stored, invoice.created, alert.raised, alert.resolved, user.added, ...
    entity: str  # score_run, invoice, alert, user, zone
    entity_id: str
    detail: dict[str, Any]


def latest_run(engine: Engine) -> RunRecord | None:
    """The most recently stored score run, or ``None`` when nothing is stored."""
    with Session(engine) as session:
        run = session.scalars(select(ScoreRun).order_by(ScoreRun.id.desc()).limit(1)).first()
        if run is None:
            return None
        pairs = session.execute(
            select(Invoice.invoice_id, Invoice.revision)
            .join(RunInvoice, RunInvoice.invoice_pk == Invoice.id)
            .where(RunInvoice.run_id == run.id)
            .order_by(Invoice.invoice_id)
        )
        return RunRecord(
            run_id=run.id,
            created_at=run.created_at,
            actor=run.actor,
            status=run.status,
            input_sha256=run.input_sha256,
            source=run.source,
            timezone=run.timezone,
            currency=run.currency,
            rows_in=run.rows_in,
            rows_scored=run.rows_scored,
            rows_quarantined=run.rows_quarantined,
            rows_duplicate=run.rows_duplicate,
            timings=dict(run.timings),
            versions=dict(run.versions),
            invoices={invoice_id: revision for invoice_id, revision in pairs},
        )


@dataclass(frozen=True)
class UploadRecord:
    """One stored run as the upload history lists it (SPEC §8.6)."""

    run_id: int
    created_at: dt.datetime  # UTC
    actor: str
    source: str
    rows_in: int
    rows_quarantined: int
    rows_duplicate: int
    readings_added: int | None  # None: stored before the readings store
    readings_unchanged: int | None
    readings_corrected: int | None


def upload_history(engine: Engine, limit: int = 200) -> list[UploadRecord]:
    """The latest ``limit`` stored runs, newest first: who uploaded what, when, and what it changed."""
    query = select(ScoreRun).order_by(ScoreRun.id.desc()).limit(limit)
    with Session(engine) as session:
        return [
            UploadRecord(
                r.id,
                r.created_at,
                r.actor,
                r.source,
                r.rows_in,
                r.rows_quarantined,
                r.rows_duplicate,
                r.readings_added,
                r.readings_unchanged,
                r.readings_corrected,
            )  # fmt: skip
            for r in session.scalars(query)
        ]


def invoice_history(engine: Engine, invoice_id: str) -> list[InvoiceRevision]:
    """Every stored revision of ``invoice_id``, oldest first (empty when it was never stored)."""
    with Session(engine) as session:
        invoices = session.scalars(
            select(Invoice)
            .where(Invoice.invoice_id == invoice_id)
            .order_by(Invoice.revision)
            .options(selectinload(Invoice.items))
        ).all()
        return [_revision(invoice) for invoice in invoices]


def run_invoices(engine: Engine, run_id: int, *, client_id: str | None = None) -> list[InvoiceRevision]:
    """The invoice revisions run ``run_id`` created or confirmed, by invoice id.

    Only ``client_id``'s when given; empty for an unknown run.
    """
    query = (
        select(Invoice)
        .join(RunInvoice, RunInvoice.invoice_pk == Invoice.id)
        .where(RunInvoice.run_id == run_id)
        .order_by(Invoice.invoice_id)
        .options(selectinload(Invoice.items))
    )
    if client_id is not None:
        query = query.where(Invoice.client_id == client_id)
    with Session(engine) as session:
        return [_revision(invoice) for invoice in session.scalars(query)]


def run_cleaning(engine: Engine, run_id: int) -> pd.DataFrame:
    """The cleaning sessions run ``run_id`` found, as ``cleaning_sessions.csv`` has them (SPEC §7).

    Columns ``schema.CLEANING_COLUMNS``; ``start``/``end`` in the run's site timezone, ``wasted_kwh`` [kWh]
    and ``savings`` as ``Decimal``; ordered by start, then zone. Empty (UTC times) for an unknown run.
    """
    with Session(engine) as session:
        timezone = session.scalar(select(ScoreRun.timezone).where(ScoreRun.id == run_id)) or "UTC"
        sessions = session.scalars(
            select(CleaningSession)
            .where(CleaningSession.run_id == run_id)
            .order_by(CleaningSession.start_at, CleaningSession.zone_id, CleaningSession.id)
        ).all()
        frame = _cleaning_frame(sessions, timezone)
    return frame.drop(columns="run_id")


def _cleaning_frame(sessions: Sequence[CleaningSession], timezone: str) -> pd.DataFrame:
    records = [
        {
            "zone_id": s.zone_id,
            "building": s.building,
            "floor": s.floor,
            "date": s.date,
            "start": s.start_at,
            "end": s.end_at,
            "minutes": s.minutes,
            "flagged": s.flagged,
            "excess_minutes": s.excess_minutes,
            "wasted_kwh": s.wasted_kwh,
            "savings": s.savings,
            "inferred": s.inferred,
            "run_id": s.run_id,
        }
        for s in sessions
    ]
    frame = pd.DataFrame.from_records(records, columns=[*CLEANING_COLUMNS, "run_id"])
    return frame.assign(
        start=pd.to_datetime(frame["start"], utc=True).dt.tz_convert(timezone),
        end=pd.to_datetime(frame["end"], utc=True).dt.tz_convert(timezone),
        minutes=frame["minutes"].astype("float64"),
        flagged=frame["flagged"].astype("bool"),
        excess_minutes=frame["excess_minutes"].astype("float64"),
        inferred=frame["inferred"].astype("bool"),
    )


def audit_log(
    engine: Engine,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    limit: int | None = 100,
) -> list[AuditRecord]:
    """Audit entries, newest first, optionally only those about one entity or of one action."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if limit is not None:
        query = query.limit(limit)
    with Session(engine) as session:
        return [
            AuditRecord(e.id, e.at, e.actor, e.action, e.entity, e.entity_id, dict(e.detail))
            for e in session.scalars(query)
        ]


def _revision(invoice: Invoice) -> InvoiceRevision:
    return InvoiceRevision(
        invoice_id=invoice.invoice_id,
        revision=invoice.revision,
        client_id=invoice.client_id,
        period=invoice.period,
        content_hash=invoice.content_hash,
        lines=invoice.lines,
        billable_hours=invoice.billable_hours,
        energy_kwh=invoice.energy_kwh,
        total=invoice.total,
        currency=invoice.currency,
        run_id=invoice.run_id,
        created_at=invoice.created_at,
        line_items=_line_frame(invoice),
        held_total=invoice.held_total,
    )


def _line_frame(invoice: Invoice) -> pd.DataFrame:
    records = [
        {
            "invoice_id": invoice.invoice_id,
            "client_id": invoice.client_id,
            "zone_id": line.zone_id,
            "date": line.date,
            "start": line.start_at,
            "end": line.end_at,
            "minutes": line.minutes,
            "billable_minutes": line.billable_minutes,
            "energy_kwh": line.energy_kwh,
            "hours_charge": line.hours_charge,
            "energy_charge": line.energy_charge,
            "amount": line.amount,
            "currency": invoice.currency,
            "adjusted": line.adjusted,
            "original_energy_kwh": line.original_energy_kwh,
            "status": line.status,
        }
        for line in invoice.items
    ]
    frame = pd.DataFrame.from_records(records, columns=list(INVOICE_LINE_COLUMNS))
    return frame.assign(
        start=pd.to_datetime(frame["start"], utc=True).dt.tz_convert(invoice.timezone),
        end=pd.to_datetime(frame["end"], utc=True).dt.tz_convert(invoice.timezone),
        minutes=frame["minutes"].astype("float64"),
        billable_minutes=frame["billable_minutes"].astype("int64"),
        adjusted=frame["adjusted"].astype("bool"),
    )

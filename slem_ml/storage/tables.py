"""The database schema as SQLAlchemy 2 declarative models (SPEC §3.7–3.8, §7).

Conventions, the same on SQLite and PostgreSQL:

* Every ``*_at`` column, ``start_at``/``end_at`` and the alert times are **UTC instants**
  (:class:`~slem_ml.storage.types.UTCDateTime`): ``timestamptz`` on PostgreSQL, UTC text on SQLite, always
  read back tz-aware UTC. The site's IANA timezone is kept beside them (``score_runs.timezone``,
  ``invoices.timezone``) so that local times (SPEC §7: "ISO 8601 with the site's UTC offset") are rebuilt
  exactly; ``date`` columns hold the local date billing assigned.
* Money and energy are :class:`~slem_ml.storage.types.ExactDecimal`: ``NUMERIC(14, 2)`` for currency,
  ``NUMERIC(18, 6)`` for kWh and hours — never a float.
* ``start``/``end`` are SQL keywords, so the columns are ``start_at``/``end_at``.

The live stream's tables are in :mod:`slem_ml.storage.live_tables` (re-exported here). The schema is
created and upgraded only by the Alembic migrations in ``slem_ml/storage/migrations``; a test
checks that these models and the migrated database agree.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from slem_ml.storage.base import MONEY, QUANTITY, Base
from slem_ml.storage.live_tables import (
    ApiToken,
    LiveBand,
    LivePower,
    LiveQuarantine,
    LiveZone,
    RebillQueue,
)
from slem_ml.storage.report_tables import KeptReport, ReportFile  # noqa: F401  (registers the report tables)

__all__ = [
    "ALERT_STATUSES",
    "USER_ROLES",
    "Alert",
    "ApiToken",
    "AuditEntry",
    "Base",
    "BillingSession",
    "CleaningSession",
    "ClientDay",
    "StoreCleaningSession",
    "Invoice",
    "InvoiceLine",
    "LineDecision",
    "LiveBand",
    "LivePower",
    "LiveQuarantine",
    "LiveZone",
    "MaintenanceAction",
    "ReadingBlock",
    "ReadingCorrection",
    "RebillQueue",
    "RunInvoice",
    "ScoreRun",
    "StoreClient",
    "StoreZone",
    "User",
]

ALERT_STATUSES: tuple[str, ...] = ("open", "ongoing", "resolved")  # SPEC §5
#: What each role may do is in :mod:`slem_ml.storage.users`; migration 0002 spells the list out again.
USER_ROLES: tuple[str, ...] = ("viewer", "manager", "data_scientist", "admin")


class ScoreRun(Base):
    """One stored ``slem score`` run and the facts of its input (SPEC §7 ``summary.json``)."""

    __tablename__ = "score_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # "complete": a run is written whole or not at all
    #: sha256 over the input hash, row counts and every output's content: equal = the identical run.
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    input_sha256: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64))  # the site's IANA zone
    currency: Mapped[str] = mapped_column(String(3))
    rows_in: Mapped[int]
    rows_scored: Mapped[int]
    rows_quarantined: Mapped[int]
    rows_duplicate: Mapped[int]
    first_timestamp: Mapped[dt.datetime | None]
    last_timestamp: Mapped[dt.datetime | None]
    #: What the run did to the readings store (SPEC §8.6); NULL for runs stored before the store existed
    #: or scored with ``--db none``.
    readings_added: Mapped[int | None]
    readings_unchanged: Mapped[int | None]
    readings_corrected: Mapped[int | None]
    timings: Mapped[dict[str, Any]]  # stage -> seconds
    versions: Mapped[dict[str, Any]]  # slem, python, pandas, ... and "models": {name: version}


class Invoice(Base):
    """One revision of one invoice (SPEC §3.7–3.8). Revisions are never updated or deleted."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("invoice_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64))  # INV-C001-202502; indexed by the unique key
    revision: Mapped[int]  # 1, 2, ... per invoice_id
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM, site time
    content_hash: Mapped[str] = mapped_column(String(64))
    lines: Mapped[int]
    billable_hours: Mapped[Decimal] = mapped_column(QUANTITY)
    energy_kwh: Mapped[Decimal] = mapped_column(QUANTITY)
    total: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    #: the run that created it; NULL for a revision a person's decision on a line made (SPEC §8.4)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id"), index=True)
    created_at: Mapped[dt.datetime]
    #: the amount of the lines held for review, not in ``total`` (SPEC §8.4)
    held_total: Mapped[Decimal] = mapped_column(MONEY, server_default="0.00")

    items: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.line_no", cascade="all, delete-orphan"
    )


class InvoiceLine(Base):
    """One overtime session billed on one invoice revision (SPEC §3.4–3.6, §3.9)."""

    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_pk", "line_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_pk: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    line_no: Mapped[int]  # 1-based order within the revision
    zone_id: Mapped[str] = mapped_column(String(64))
    date: Mapped[dt.date] = mapped_column(Date)  # local date of the session start
    start_at: Mapped[dt.datetime]
    end_at: Mapped[dt.datetime]
    minutes: Mapped[float] = mapped_column(Double)  # [min] covered, may be fractional
    billable_minutes: Mapped[int]  # [min] rounded up to whole blocks
    energy_kwh: Mapped[Decimal] = mapped_column(QUANTITY)
    hours_charge: Mapped[Decimal] = mapped_column(MONEY)
    energy_charge: Mapped[Decimal] = mapped_column(MONEY)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    adjusted: Mapped[bool] = mapped_column(Boolean)  # energy re-priced at expected power (SPEC §3.9)
    original_energy_kwh: Mapped[Decimal | None] = mapped_column(QUANTITY)
    status: Mapped[str] = mapped_column(String(8), server_default="billed")  # billed/held/released/waived

    invoice: Mapped[Invoice] = relationship(back_populates="items")


class RunInvoice(Base):
    """Which invoice revision each run produced or confirmed unchanged."""

    __tablename__ = "run_invoices"

    run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id"), primary_key=True)
    invoice_pk: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True, index=True)


class CleaningSession(Base):
    """A cleaning session found by one run (SPEC §4)."""

    __tablename__ = "cleaning_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id"), index=True)
    zone_id: Mapped[str] = mapped_column(String(64))
    building: Mapped[str] = mapped_column(String(64))
    floor: Mapped[str] = mapped_column(String(32))
    date: Mapped[dt.date] = mapped_column(Date)  # local date of the session start
    start_at: Mapped[dt.datetime]
    end_at: Mapped[dt.datetime]
    minutes: Mapped[float] = mapped_column(Double)
    flagged: Mapped[bool] = mapped_column(Boolean)
    excess_minutes: Mapped[float] = mapped_column(Double)
    wasted_kwh: Mapped[Decimal] = mapped_column(QUANTITY)
    savings: Mapped[Decimal] = mapped_column(MONEY)
    inferred: Mapped[bool] = mapped_column(Boolean)


class Alert(Base):
    """A maintenance alert (SPEC §5), raised once and then moved through open → ongoing → resolved."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'ongoing', 'resolved')", name="status"),
        Index(None, "zone_id", "status"),
        Index(None, "status", "detected_at"),  # the open alerts, newest first (the Live tab's feed)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(128), unique=True)
    zone_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # spike / drift / stuck_on / dropout
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    detected_at: Mapped[dt.datetime]
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    score: Mapped[float | None] = mapped_column(Double)  # higher = more anomalous
    detail: Mapped[str] = mapped_column(Text)
    #: the run that raised it and the last run that saw it; NULL: the live detectors (SPEC §9)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id"))
    last_run_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id"))
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[dt.datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


class MaintenanceAction(Base):
    """What someone did about a zone (relamping, sensor fix, ...), optionally in answer to an alert."""

    __tablename__ = "maintenance_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    user_name: Mapped[str] = mapped_column(String(100))  # "user" is reserved in PostgreSQL
    at: Mapped[dt.datetime]
    alert_id: Mapped[str | None] = mapped_column(String(128))


class AuditEntry(Base):
    """Who did what to which record, and what changed (SPEC §3.8)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))  # run.stored, invoice.created, invoice.revised, ...
    entity: Mapped[str] = mapped_column(String(64))  # score_run, invoice, alert, ...
    entity_id: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]]


class User(Base):
    """Someone who signs in to the app; only an argon2id hash of the password is kept."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(role) for role in USER_ROLES)})", name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2 PHC string, about 100 characters
    role: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str | None] = mapped_column(String(64))  # set: sees only this client's data
    created_at: Mapped[dt.datetime]


# --- the readings store (SPEC §8, docs/store.md) ------------------------------------------------------


class StoreZone(Base):
    """A zone the store holds readings of; blocks refer to it by ``id``."""

    __tablename__ = "store_zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[str] = mapped_column(String(64), unique=True)
    building: Mapped[str] = mapped_column(String(64))
    floor: Mapped[str] = mapped_column(String(32))


class StoreClient(Base):
    """A client id as blocks refer to it (``id`` fits in an int16)."""

    __tablename__ = "store_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)


class ReadingBlock(Base):
    """One zone's readings of one UTC day as packed little-endian arrays of ``n`` entries, ordered by time
    (:mod:`slem_ml.storage.blocks`). The key of a reading is (zone, instant): one entry per instant."""

    __tablename__ = "reading_blocks"

    zone_key: Mapped[int] = mapped_column(ForeignKey("store_zones.id"), primary_key=True)
    utc_day: Mapped[int] = mapped_column(Integer, primary_key=True)  # days since 1970-01-01 (UTC)
    n: Mapped[int]
    ts: Mapped[bytes] = mapped_column(LargeBinary)  # int32 [ms] since the UTC day's midnight
    power: Mapped[bytes] = mapped_column(LargeBinary)  # float64 [W]
    client: Mapped[bytes] = mapped_column(LargeBinary)  # int16 store_clients.id
    cleaning: Mapped[bytes] = mapped_column(LargeBinary)  # int8: 1 cleaning staff, 0 not, -1 not given
    #: float64 [W] the reading is billed at where the models found a spike (SPEC §3.9), NaN elsewhere;
    #: NULL when no reading of the block is adjusted.
    billed: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime]


class ReadingCorrection(Base):
    """A stored reading replaced by other values (SPEC §8.1): old → new, where from and who."""

    __tablename__ = "reading_corrections"
    __table_args__ = (Index(None, "zone_id", "timestamp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[dt.datetime]
    old_power_w: Mapped[float] = mapped_column(Double)
    new_power_w: Mapped[float] = mapped_column(Double)
    old_client_id: Mapped[str] = mapped_column(String(64))
    new_client_id: Mapped[str] = mapped_column(String(64))
    old_cleaning: Mapped[bool | None] = mapped_column(Boolean)
    new_cleaning: Mapped[bool | None] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(500))  # the file (or, live, the topic)
    line: Mapped[int | None]  # 1-based source line of the new values
    run_id: Mapped[int | None] = mapped_column(ForeignKey("score_runs.id"), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime]


class BillingSession(Base):
    """An overtime session as billing finds it in the stored readings now (SPEC §8.2), in exact integers.

    Rows of a (zone, local date) are replaced whenever readings of that date change; an invoice revision is
    built from its client's rows of the month (:mod:`slem_ml.storage.rebill`).
    """

    __tablename__ = "billing_sessions"
    __table_args__ = (Index(None, "zone_id", "date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    zone_id: Mapped[str] = mapped_column(String(64))
    date: Mapped[dt.date] = mapped_column(Date)  # local date of the session
    start_ms: Mapped[int] = mapped_column(BigInteger)  # UTC [ms]
    end_ms: Mapped[int] = mapped_column(BigInteger)  # UTC [ms]
    covered_ms: Mapped[int] = mapped_column(BigInteger)  # [ms]
    billable_minutes: Mapped[int] = mapped_column(BigInteger)  # [min]
    energy_units: Mapped[int] = mapped_column(BigInteger)  # billed energy [mW·ms]
    measured_units: Mapped[int] = mapped_column(BigInteger)  # measured energy [mW·ms]
    hours_cents: Mapped[int] = mapped_column(BigInteger)  # [cent]
    energy_cents: Mapped[int] = mapped_column(BigInteger)  # [cent]


class LineDecision(Base):
    """A person's decision on an overtime line (SPEC §8.4): hold, release (bill) or waive (never bill).

    A line is named by its zone and start (:func:`slem_ml.billing.holds.line_key`); the latest decision on
    a line stands, the earlier ones stay as its history.
    """

    __tablename__ = "line_decisions"
    __table_args__ = (
        CheckConstraint("decision IN ('held', 'released', 'waived')", name="decision"),
        Index(None, "zone_id", "start_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), index=True)
    zone_id: Mapped[str] = mapped_column(String(64))
    start_ms: Mapped[int] = mapped_column(BigInteger)  # the session's start [UTC ms]
    decision: Mapped[str] = mapped_column(String(8))  # the status it gives the line
    note: Mapped[str] = mapped_column(Text)
    user_name: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime]


class ClientDay(Base):
    """A local date on which a client has stored readings: the service period of its invoices (SPEC §8)."""

    __tablename__ = "client_days"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)


class StoreCleaningSession(Base):
    """A cleaning session as the stored readings make it now (SPEC §4, §8.2); rows of a zone are replaced
    where an upload changed its readings (:mod:`slem_ml.storage.cleaning_store`)."""

    __tablename__ = "store_cleaning_sessions"
    __table_args__ = (Index(None, "zone_id", "start_at"), Index(None, "date"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))  # at the session's start
    building: Mapped[str] = mapped_column(String(64))
    floor: Mapped[str] = mapped_column(String(32))
    date: Mapped[dt.date] = mapped_column(Date)  # local date of the session start
    start_at: Mapped[dt.datetime]
    end_at: Mapped[dt.datetime]
    minutes: Mapped[float] = mapped_column(Double)
    flagged: Mapped[bool] = mapped_column(Boolean)
    excess_minutes: Mapped[float] = mapped_column(Double)
    wasted_kwh: Mapped[Decimal] = mapped_column(QUANTITY)
    savings: Mapped[Decimal] = mapped_column(MONEY)
    inferred: Mapped[bool] = mapped_column(Boolean)

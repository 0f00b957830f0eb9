"""The kept reports (SPEC §10): every report made — on a schedule, by ``slem report`` or the app's
*Generate now* — with its files, and whether and to whom it was mailed.

``reports`` has one row per report; ``report_files`` its files, one per format, whole (``LargeBinary``:
``BYTEA`` on PostgreSQL, ``BLOB`` on SQLite) with their SHA-256 and size. ``UNIQUE (schedule, period,
scope)`` lets only one of two processes running the same schedule at once (``slem serve`` and a cron
``slem report --due``) keep its report; a report made by hand has no schedule (``NULL``), so any number of
those may exist. Created only by migration 0008.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slem_ml.storage.base import Base

__all__ = ["KeptReport", "ReportFile"]


class KeptReport(Base):
    """A report: what it covers, who made it when, and its delivery by mail.

    ``mail_to`` is where it is to be sent (comma-separated; NULL: kept only); ``sent_at`` is set once the
    mail server accepted it, ``send_error`` holds the last failure in words (cleared when it is sent).
    ``send_started_at`` claims a send, so two processes do not both mail it."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("schedule", "period", "scope"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime]
    period: Mapped[str] = mapped_column(String(16))  # "2025-03", "2025-W10", "2025-Q1"
    scope: Mapped[str] = mapped_column(String(200))  # "site", "building:HQ", "client:C001"
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text)  # the mail's text: a few lines about the period
    created_by: Mapped[str] = mapped_column(String(100))  # a user name, "schedule" or "cli"
    schedule: Mapped[str | None] = mapped_column(String(100))  # the schedule's name; NULL: made by hand
    mail_to: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    send_error: Mapped[str | None] = mapped_column(Text)
    send_attempts: Mapped[int] = mapped_column(Integer)
    send_started_at: Mapped[dt.datetime | None]


class ReportFile(Base):
    """One file of a report, in one format, whole."""

    __tablename__ = "report_files"

    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    format: Mapped[str] = mapped_column(String(8), primary_key=True)  # "pdf", "html", "xlsx"
    file_name: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # [B]

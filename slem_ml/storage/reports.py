"""Keeping reports (SPEC §10): every report made is stored with its files, listed for the app's Reports tab,
and read back for download or to mail it (again).

A client-scoped user sees only its own client's reports (issue 14 item 4): :func:`list_reports` and
:func:`report_file` take the caller's ``client_id`` and keep to reports whose scope is ``client:<that id>``;
anything else is "no such report", so a client cannot even learn that another report exists.

A scheduled report is kept once per (schedule, period, scope): :func:`keep_report` raises
:class:`ReportExists` when another process kept it first, which the scheduler takes as "already made".
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slem_ml.errors import InputError, SlemError
from slem_ml.storage.database import write_session
from slem_ml.storage.report_tables import KeptReport, ReportFile

__all__ = [
    "REPORT_COLUMNS",
    "KeptReportInfo",
    "ReportExists",
    "claim_send",
    "keep_report",
    "kept_report",
    "list_reports",
    "record_send",
    "report_file",
    "report_files",
]

#: The columns of :func:`list_reports`.
REPORT_COLUMNS = (
    "report_id", "created_at", "period", "scope", "title", "formats", "created_by", "schedule", "sent_to",
    "sent_at", "send_error",
)  # fmt: skip
#: A send claimed this long ago and not finished is taken as abandoned (its process died) [s].
_SEND_CLAIM_S = 600


class ReportExists(SlemError):
    """The schedule's report of that period and scope is kept already (by this or another process)."""


@dataclass(frozen=True)
class KeptReportInfo:
    """A kept report as the scheduler needs it (no file bytes)."""

    report_id: int
    title: str
    summary: str
    mail_to: tuple[str, ...]
    sent_at: dt.datetime | None
    send_error: str | None
    send_attempts: int


def keep_report(
    engine: Engine,
    made_files: Mapping[str, tuple[str, bytes]],
    *,
    scope: str,
    period: str,
    title: str,
    created_by: str,
    schedule: str | None = None,
    mail_to: Sequence[str] = (),
    summary: str = "",
    now: dt.datetime | None = None,
) -> int:
    """Store a report and its files (format → (file name, bytes)) in one transaction; return its id.

    Raises
    ------
    ReportExists
        When ``schedule`` is given and its report of ``period`` and ``scope`` is kept already.
    """
    if not made_files:
        raise SlemError(f"report {title!r} has no files to keep")
    created = now or dt.datetime.now(dt.UTC)
    try:
        with write_session(engine) as session:
            if schedule is not None and _find(session, schedule, period, scope) is not None:
                raise ReportExists(f"the {schedule!r} report of {period} for {scope} is kept already")
            report = KeptReport(
                created_at=created, period=period, scope=scope, title=title, summary=summary,
                created_by=created_by, schedule=schedule, mail_to=", ".join(mail_to) or None, sent_at=None,
                send_error=None, send_attempts=0, send_started_at=None,
            )  # fmt: skip
            session.add(report)
            session.flush()  # its id; a concurrent keeper of the same schedule fails here (PostgreSQL)
            for fmt, (name, content) in made_files.items():
                session.add(
                    ReportFile(
                        report_id=report.id, format=fmt, file_name=name, content=content,
                        sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content),
                    )
                )  # fmt: skip
            report_id = int(report.id)
    except IntegrityError as exc:
        if schedule is None:
            raise
        # the write lock makes this rare (two processes, the other committed between check and insert)
        raise ReportExists(f"the {schedule!r} report of {period} for {scope} is kept already") from exc
    return report_id


def kept_report(engine: Engine, schedule: str, period: str, scope: str) -> KeptReportInfo | None:
    """The schedule's report of ``period`` and ``scope``, if kept."""
    with engine.connect() as connection:
        row = connection.execute(
            select(KeptReport).where(
                KeptReport.schedule == schedule, KeptReport.period == period, KeptReport.scope == scope
            )
        ).first()
    if row is None:
        return None
    return KeptReportInfo(
        report_id=int(row.id),
        title=row.title,
        summary=row.summary,
        mail_to=tuple(a.strip() for a in (row.mail_to or "").split(",") if a.strip()),
        sent_at=row.sent_at,
        send_error=row.send_error,
        send_attempts=int(row.send_attempts),
    )


def list_reports(engine: Engine, *, client_id: str | None = None) -> pd.DataFrame:
    """Every kept report, newest first (:data:`REPORT_COLUMNS`); with ``client_id``, only that client's.

    ``formats`` is the formats kept, comma-separated (``html, pdf, xlsx``); ``sent_to`` the addresses it
    was mailed to (None until the mail server accepted it); ``send_error`` the last failure in words."""
    query = select(
        KeptReport.id, KeptReport.created_at, KeptReport.period, KeptReport.scope, KeptReport.title,
        KeptReport.created_by, KeptReport.schedule, KeptReport.mail_to, KeptReport.sent_at,
        KeptReport.send_error,
    ).order_by(KeptReport.created_at.desc(), KeptReport.id.desc())  # fmt: skip
    if client_id is not None:
        query = query.where(KeptReport.scope == f"client:{client_id}")
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        ids = [r.id for r in rows]
        formats: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            for report_id, fmt in connection.execute(
                select(ReportFile.report_id, ReportFile.format)
                .where(ReportFile.report_id.in_(ids))
                .order_by(ReportFile.format)
            ):
                formats[report_id].append(fmt)
    frame = pd.DataFrame(
        {
            "report_id": pd.array(ids, dtype="int64"),
            "created_at": pd.to_datetime([r.created_at for r in rows], utc=True),
            "period": [r.period for r in rows],
            "scope": [r.scope for r in rows],
            "title": [r.title for r in rows],
            "formats": [", ".join(formats[r.id]) for r in rows],
            "created_by": [r.created_by for r in rows],
            "schedule": [r.schedule for r in rows],
            "sent_to": [r.mail_to if r.sent_at is not None else None for r in rows],
            "sent_at": pd.to_datetime([r.sent_at for r in rows], utc=True),
            "send_error": [r.send_error for r in rows],
        },
        columns=list(REPORT_COLUMNS),
    )
    return frame


def report_file(
    engine: Engine, report_id: int, fmt: str, *, client_id: str | None = None
) -> tuple[str, bytes]:
    """A kept report's file in format ``fmt``: (file name, bytes), checked against its SHA-256.

    Raises
    ------
    InputError
        "no such report" when there is none with that id and format, or ``client_id`` is given and the
        report is not that client's.
    """
    query = (
        select(ReportFile.file_name, ReportFile.content, ReportFile.sha256)
        .join(KeptReport, KeptReport.id == ReportFile.report_id)
        .where(ReportFile.report_id == int(report_id), ReportFile.format == fmt)
    )
    if client_id is not None:
        query = query.where(KeptReport.scope == f"client:{client_id}")
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        raise InputError("no such report")
    content = bytes(row.content)
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise SlemError(f"report {report_id}'s {fmt} file is damaged in the database (its SHA-256 differs)")
    return str(row.file_name), content


def report_files(engine: Engine, report_id: int) -> dict[str, tuple[str, bytes]]:
    """All files of a kept report: format → (file name, bytes), to mail it again."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(ReportFile.format, ReportFile.file_name, ReportFile.content)
            .where(ReportFile.report_id == int(report_id))
            .order_by(ReportFile.format)
        ).all()
    return {r.format: (str(r.file_name), bytes(r.content)) for r in rows}


def claim_send(engine: Engine, report_id: int, *, now: dt.datetime) -> bool:
    """Claim the mailing of an unsent report; False when it is sent already or another process is on it
    (a claim older than 10 minutes is taken as abandoned)."""
    stale = now - dt.timedelta(seconds=_SEND_CLAIM_S)
    with write_session(engine) as session:
        claimed = (
            session.connection()
            .execute(
                update(KeptReport)
                .where(
                    KeptReport.id == int(report_id),
                    KeptReport.sent_at.is_(None),
                    or_(KeptReport.send_started_at.is_(None), KeptReport.send_started_at < stale),
                )
                .values(send_started_at=now, send_attempts=KeptReport.send_attempts + 1)
            )
            .rowcount
        )
    return bool(claimed)


def record_send(engine: Engine, report_id: int, *, at: dt.datetime, sent: bool, error: str | None) -> None:
    """The outcome of a claimed send: ``sent`` at ``at``, or not; ``error`` says in words what failed
    (with ``sent``: the addresses the server refused while taking the others)."""
    values: dict[str, object] = {"send_started_at": None, "send_error": error}
    if sent:
        values["sent_at"] = at
    with write_session(engine) as session:
        session.execute(update(KeptReport).where(KeptReport.id == int(report_id)).values(**values))


def _find(session: Session, schedule: str, period: str, scope: str) -> int | None:
    return session.scalar(
        select(KeptReport.id).where(
            KeptReport.schedule == schedule, KeptReport.period == period, KeptReport.scope == scope
        )
    )

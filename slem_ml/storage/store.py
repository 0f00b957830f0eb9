"""Storing a score run: one transaction, invoice revisions and the audit trail (SPEC §3.8).

:func:`store_result` writes the run, its invoices, cleaning sessions and alerts in **one** transaction: a
failure anywhere leaves nothing behind. For each invoice of the result:

* no stored revision yet → revision 1 (audit ``invoice.created``);
* the latest stored revision has the same ``content_hash`` → nothing new, the run points at that revision;
* a different hash → revision n + 1 beside the earlier ones, and an audit entry ``invoice.revised`` that names
  the lines added, removed and changed, the old and new total and the old and new hash.

Storing the identical run again (same fingerprint, see :mod:`~slem_ml.storage.payload`, while every one of its
invoices is still the latest revision) writes nothing and returns the stored run with ``created=False``. Once
another run has revised one of its invoices, storing it again is new information — the invoice goes back to
that content as revision n + 1 — so it is stored.

Concurrency: the write transaction holds slem's write lock (:func:`~slem_ml.storage.database.write_session`),
so stores are serialised and each sees the revisions the previous one committed. If a writer without the lock
gets there first anyway, ``UNIQUE (invoice_id, revision)`` refuses the duplicate and the whole transaction is
retried from the start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from slem_ml.scoring.result import ScoringResult
from slem_ml.storage.database import write_session
from slem_ml.storage.payload import InvoicePayload, Row, RunPayload, prepare
from slem_ml.storage.tables import (
    Alert,
    AuditEntry,
    CleaningSession,
    Invoice,
    InvoiceLine,
    RunInvoice,
    ScoreRun,
)

__all__ = [
    "RevisionOrigin",
    "StoredRun",
    "latest_revisions",
    "store_payload",
    "store_result",
    "with_revisions",
    "write_invoices",
]

_ATTEMPTS = 4
#: Line fields compared between revisions; a line is identified by its zone and start.
_LINE_FIELDS = (
    "date", "end_at", "minutes", "billable_minutes", "energy_kwh", "hours_charge", "energy_charge",
    "amount", "adjusted", "original_energy_kwh", "status",
)  # fmt: skip


@dataclass(frozen=True)
class StoredRun:
    """What :func:`store_result` did.

    ``revisions`` maps every invoice of the result to its stored revision (apply it with
    :func:`with_revisions`); ``new_revisions`` lists the invoices that got a new revision in this call.
    """

    run_id: int
    created: bool  # False: the identical run was already stored, nothing was written
    revisions: dict[str, int]
    new_revisions: tuple[str, ...]


def store_result(
    engine: Engine,
    result: ScoringResult,
    *,
    actor: str = "slem",
    before_commit: Callable[[], None] | None = None,
) -> StoredRun:
    """Store ``result`` as one score run; see the module docstring for revisions and idempotence.

    ``result`` is not modified. Raises ``ValueError`` for a malformed result (before anything is written).
    ``before_commit`` runs inside the transaction, last: if it raises, nothing is stored.
    """
    payload = prepare(result)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with write_session(engine) as session:
                stored = store_payload(session, payload, actor)
                if before_commit is not None:
                    before_commit()
                return stored
        except (IntegrityError, OperationalError) as exc:
            if attempt == _ATTEMPTS or not _worth_retrying(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def with_revisions(invoices: pd.DataFrame, revisions: Mapping[str, int]) -> pd.DataFrame:
    """A copy of an ``invoices`` frame whose ``revision`` column holds the stored revisions."""
    stored = invoices["invoice_id"].map(dict(revisions))
    return invoices.assign(revision=stored.fillna(invoices["revision"]).astype("int64"))


# --- the transaction ----------------------------------------------------------------------------------


def store_payload(
    session: Session, payload: RunPayload, actor: str, *, new_readings: bool = False
) -> StoredRun:
    """Store ``payload`` in ``session``; ``new_readings``: the run changed the readings store, so it is
    stored even when an identical run was (its corrections name it)."""
    latest = latest_revisions(session, [inv.invoice_id for inv in payload.invoices])
    same = None if new_readings else _identical_run(session, payload, latest)
    if same is not None:
        revisions = {inv.invoice_id: latest[inv.invoice_id].revision for inv in payload.invoices}
        return StoredRun(same, False, revisions, ())
    now = dt.datetime.now(dt.UTC)
    run = ScoreRun(
        **payload.run, fingerprint=payload.fingerprint, created_at=now, actor=actor, status="complete"
    )
    session.add(run)
    session.flush()
    revisions, new = write_invoices(session, run, payload.invoices, latest, actor)
    _write_cleaning(session, run, payload.cleaning)
    _write_alerts(session, run, payload.alerts, actor)
    detail = {
        "source": run.source,
        "input_sha256": run.input_sha256,
        "rows_in": run.rows_in,
        "invoices": len(revisions),
        "new_revisions": {invoice_id: revisions[invoice_id] for invoice_id in new},
        "cleaning_sessions": len(payload.cleaning),
        "alerts": len(payload.alerts),
    }
    session.add(_audit(now, actor, "run.stored", "score_run", str(run.id), detail))
    session.flush()
    return StoredRun(run.id, True, revisions, tuple(new))


def latest_revisions(session: Session, invoice_ids: list[str]) -> dict[str, Invoice]:
    if not invoice_ids:
        return {}
    rows = session.scalars(
        select(Invoice).where(Invoice.invoice_id.in_(invoice_ids)).order_by(Invoice.revision)
    )
    return {invoice.invoice_id: invoice for invoice in rows}  # the highest revision wins


def _identical_run(session: Session, payload: RunPayload, latest: dict[str, Invoice]) -> int | None:
    run_id = session.scalar(
        select(ScoreRun.id)
        .where(ScoreRun.fingerprint == payload.fingerprint)
        .order_by(ScoreRun.id.desc())
        .limit(1)
    )
    if run_id is None:
        return None
    current = all(
        inv.invoice_id in latest and latest[inv.invoice_id].content_hash == inv.content_hash
        for inv in payload.invoices
    )
    return run_id if current else None


@dataclass(frozen=True)
class RevisionOrigin:
    """What made a revision when no run did: a person's decision on a line (SPEC §8.4)."""

    id: int | None  # no run
    created_at: dt.datetime


def write_invoices(
    session: Session,
    run: ScoreRun | RevisionOrigin,
    invoices: Iterable[InvoicePayload],
    latest: dict[str, Invoice],
    actor: str,
) -> tuple[dict[str, int], list[str]]:
    revisions: dict[str, int] = {}
    new: list[str] = []
    targets: list[Invoice] = []
    created: list[tuple[Invoice, InvoicePayload]] = []
    for inv in invoices:
        previous = latest.get(inv.invoice_id)
        if previous is not None and previous.content_hash == inv.content_hash:
            targets.append(previous)
            revisions[inv.invoice_id] = previous.revision
            continue
        invoice = Invoice(
            **inv.row,
            revision=1 if previous is None else previous.revision + 1,  # same content returned above
            run_id=run.id,
            created_at=run.created_at,
        )
        session.add(invoice)
        if previous is None:
            action, detail = "invoice.created", _created(invoice, run)
        else:
            lines = [SimpleNamespace(**line) for line in inv.lines]
            action, detail = "invoice.revised", _revised(previous, invoice, lines, run)
            if invoice.lines == 0:  # SPEC §8.3: no overtime left in the month
                action = "invoice.voided"
        session.add(_audit(run.created_at, actor, action, "invoice", inv.invoice_id, detail))
        targets.append(invoice)
        created.append((invoice, inv))
        revisions[inv.invoice_id] = invoice.revision
        new.append(inv.invoice_id)
    session.flush()
    # Lines as one bulk INSERT: a month of a large site has tens of thousands of them.
    rows = [{**line, "invoice_pk": invoice.id} for invoice, inv in created for line in inv.lines]
    if rows:
        # Core, not the ORM: no per-object bookkeeping
        session.connection().execute(insert(cast(Table, InvoiceLine.__table__)), rows)
    if run.id is not None:
        session.add_all(RunInvoice(run_id=run.id, invoice_pk=invoice.id) for invoice in targets)
    return revisions, new


def _write_cleaning(session: Session, run: ScoreRun, cleaning: Iterable[Row]) -> None:
    rows = [{**row, "run_id": run.id} for row in cleaning]
    if rows:  # a bulk INSERT (executemany): a month of a large site has tens of thousands of sessions
        session.connection().execute(insert(cast(Table, CleaningSession.__table__)), rows)


def _write_alerts(session: Session, run: ScoreRun, alerts: tuple[Row, ...], actor: str) -> None:
    """Insert new alerts; for known ones keep people's acknowledgements and resolutions, update the rest."""
    if not alerts:
        return
    ids = [row["alert_id"] for row in alerts]
    known = {a.alert_id: a for a in session.scalars(select(Alert).where(Alert.alert_id.in_(ids)))}
    for row in alerts:
        fields = dict(row)
        status = fields.pop("status", None)
        alert = known.get(fields["alert_id"])
        if alert is None:
            alert = Alert(**fields, status=status or "open", run_id=run.id, last_run_id=run.id)
            session.add(alert)
            known[alert.alert_id] = alert
            detail = {
                "zone_id": alert.zone_id,
                "kind": alert.kind,
                "severity": alert.severity,
                "detail": alert.detail,
                "run_id": run.id,
            }
            session.add(_audit(run.created_at, actor, "alert.raised", "alert", alert.alert_id, detail))
            continue
        alert.last_seen = max(alert.last_seen, fields["last_seen"])
        alert.severity, alert.score, alert.detail = fields["severity"], fields["score"], fields["detail"]
        alert.last_run_id = run.id
        if status == "open" and alert.status in ("open", "ongoing"):
            status = "ongoing"  # seen again by a later run and still active: the same alert, not a repeat
        elif alert.status == "resolved" and (status == "open" or alert.resolved_by is not None):
            # resolved stays resolved: a new episode is a new id, and no run reopens what a person closed
            status = None
        if status is not None and status != alert.status:
            detail = {"old_status": alert.status, "new_status": status, "run_id": run.id}
            session.add(_audit(run.created_at, actor, "alert.status", "alert", alert.alert_id, detail))
            alert.status = status
    session.flush()


# --- audit details ------------------------------------------------------------------------------------


def _audit(
    at: dt.datetime, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]
) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, action=action, entity=entity, entity_id=entity_id, detail=detail)


def _created(invoice: Invoice, run: ScoreRun | RevisionOrigin) -> dict[str, Any]:
    return {
        "revision": invoice.revision,
        "client_id": invoice.client_id,
        "period": invoice.period,
        "lines": invoice.lines,
        "total": str(invoice.total),
        "currency": invoice.currency,
        "content_hash": invoice.content_hash,
        "run_id": run.id,
        "summary": f"revision 1: {_count(invoice.lines)}, total {invoice.total} {invoice.currency}",
    }


def _revised(
    old: Invoice, new: Invoice, new_lines: list[Any], run: ScoreRun | RevisionOrigin
) -> dict[str, Any]:
    """What changed between two revisions, line by line, in JSON-ready form."""
    tz = ZoneInfo(new.timezone)
    before, after = _keyed(old.items), _keyed(new_lines)
    added = [_line_ref(after[key], tz) for key in after if key not in before]
    removed = [_line_ref(before[key], tz) for key in before if key not in after]
    changed = []
    for key in after:
        if key in before:
            old_line, new_line = before[key], after[key]
            diff = {
                name: {"old": _json(getattr(old_line, name), tz), "new": _json(getattr(new_line, name), tz)}
                for name in _LINE_FIELDS
                if getattr(old_line, name) != getattr(new_line, name)
            }
            if diff:
                changed.append(_line_ref(after[key], tz) | {"changes": diff})
    found = {"added": added, "removed": removed, "changed": changed}
    parts = [f"{_count(len(lines))} {what}" for what, lines in found.items() if lines]
    summary = (
        f"revision {old.revision} → {new.revision}: {', '.join(parts) or 'no line differences'}; "
        f"total {old.total} → {new.total} {new.currency}"
    )
    return {
        "old_revision": old.revision,
        "new_revision": new.revision,
        "old_hash": old.content_hash,
        "new_hash": new.content_hash,
        "old_total": str(old.total),
        "new_total": str(new.total),
        "currency": new.currency,
        "lines_added": added,
        "lines_removed": removed,
        "lines_changed": changed,
        "run_id": run.id,
        "summary": summary,
    }


def _keyed(lines: Iterable[InvoiceLine]) -> dict[tuple[str, dt.datetime, int], InvoiceLine]:
    out: dict[tuple[str, dt.datetime, int], InvoiceLine] = {}
    for line in lines:
        n = 0
        while (line.zone_id, line.start_at, n) in out:  # two sessions of a zone never share a start
            n += 1
        out[(line.zone_id, line.start_at, n)] = line
    return out


def _line_ref(line: InvoiceLine, tz: ZoneInfo) -> dict[str, Any]:
    return {"zone_id": line.zone_id, "start": _json(line.start_at, tz), "amount": str(line.amount)}


def _json(value: Any, tz: ZoneInfo) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(tz).isoformat()  # SPEC §7: ISO 8601 with the site's offset
    if isinstance(value, dt.date | Decimal):
        return str(value)
    return value


def _count(lines: int) -> str:
    return f"{lines} line{'s' * (lines != 1)}"


def _worth_retrying(exc: DBAPIError) -> bool:
    """A lost race (duplicate revision) or a PostgreSQL serialization failure/deadlock: start again."""
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("23505", "40001", "40P01"):  # unique_violation, serialization_failure, deadlock
        return True
    return isinstance(exc, IntegrityError) and "UNIQUE constraint failed" in str(exc.orig)

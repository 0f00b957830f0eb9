"""Storing a score run: one transaction, invoice revisions and the audit trail (SPEC §3.8).

:func:`store_result` writes the run, its invoices, cleaning sessions and alerts in **one** transaction: a
failure anywhere leaves nothing behind. For each invoice of the result:

* no stored revision yet → revision 1 (audit ``invoice.created``);
* the latest stored revision has the same ``content_hash`` → nothing new, the run points at that revision;
* a different hash → revision n + 1 beside the earlier ones, and an audit entry ``invoice.revised`` that names
  the lines added, removed and changed (at most :data:`LISTED_LINES` of each, all counted), the old and new
  total and the old and new hash.

Memory stays bounded whatever the number of lines of an invoice: lines are inserted
:data:`LINES_PER_INSERT` at a time, and two revisions are compared by key and digest, the old one's lines read
in partitions of that size.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from slem_ml.scoring.result import ScoringResult
from slem_ml.storage.bulk import insert_columns
from slem_ml.storage.database import write_session
from slem_ml.storage.payload import InvoiceLines, InvoicePayload, Row, RunPayload, prepare
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
#: Invoice lines inserted at once, and compared at once between revisions: bounds memory.
LINES_PER_INSERT = 50_000
#: Lines named in a revision's audit entry per kind (added, removed, changed); all are counted.
LISTED_LINES = 1_000
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
    fingerprint: str = ""  # the run's ``score_runs.fingerprint``: with ``run_id``, what its files are named


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
        return StoredRun(same, False, revisions, (), payload.fingerprint)
    now = dt.datetime.now(dt.UTC)
    run = ScoreRun(
        **payload.run, fingerprint=payload.fingerprint, created_at=now, actor=actor, status="complete"
    )
    session.add(run)
    session.flush()
    revisions, new = write_invoices(session, run, payload.invoices, latest, actor)
    _write_cleaning(session, run, payload.cleaning_stored)
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
    return StoredRun(run.id, True, revisions, tuple(new), payload.fingerprint)


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
            action, detail = "invoice.revised", _revised(session, previous, invoice, inv.lines, run)
            if invoice.lines == 0:  # SPEC §8.3: no overtime left in the month
                action = "invoice.voided"
        session.add(_audit(run.created_at, actor, action, "invoice", inv.invoice_id, detail))
        targets.append(invoice)
        created.append((invoice, inv))
        revisions[inv.invoice_id] = invoice.revision
        new.append(inv.invoice_id)
    session.flush()
    # Lines in bulk (no ORM objects), LINES_PER_INSERT at a time at most: a month of a large site has up
    # to a million of them, and memory stays bounded. Checked frames go as stored columns through the
    # driver (bulk.insert_columns); lines given as rows through SQLAlchemy's typed insert.
    table = cast(Table, InvoiceLine.__table__)
    for invoice, inv in created:
        for columns in inv.lines.stored() if isinstance(inv.lines, InvoiceLines) else ():
            pk = [invoice.id] * len(columns["line_no"])
            insert_columns(session.connection(), table, columns | {"invoice_pk": pk})
    for rows in _line_rows([(i, inv) for i, inv in created if not isinstance(inv.lines, InvoiceLines)]):
        session.connection().execute(insert(table), rows)
    if run.id is not None:
        session.add_all(RunInvoice(run_id=run.id, invoice_pk=invoice.id) for invoice in targets)
    return revisions, new


def _line_rows(created: list[tuple[Invoice, InvoicePayload]]) -> Iterator[list[Row]]:
    """The ``invoice_lines`` rows of the new revisions, in lists of at most :data:`LINES_PER_INSERT`."""
    rows: list[Row] = []
    for invoice, inv in created:
        for line in inv.lines:
            rows.append({**line, "invoice_pk": invoice.id})
            if len(rows) == LINES_PER_INSERT:
                yield rows
                rows = []
    if rows:
        yield rows


def _write_cleaning(session: Session, run: ScoreRun, stored: Mapping[str, list[Any]] | None) -> None:
    """Insert the run's cleaning sessions, stored columns (``RunPayload.cleaning_stored``), in bulk: a month
    of a large site has tens of thousands."""
    if stored:
        count = len(next(iter(stored.values())))
        table = cast(Table, CleaningSession.__table__)
        insert_columns(session.connection(), table, {**stored, "run_id": [run.id] * count})


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


class _Lines(Protocol):
    """An invoice's new lines: a tuple of rows, or rows made as they are read."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Row]: ...
    def __getitem__(self, index: int) -> Row: ...


def _revised(
    session: Session, old: Invoice, new: Invoice, new_lines: _Lines, run: ScoreRun | RevisionOrigin
) -> dict[str, Any]:
    """What changed between two revisions, line by line, in JSON-ready form.

    Every line is compared — by its key (zone, start) and a digest of its fields, the old revision's lines
    read :data:`LINES_PER_INSERT` at a time — and counted (``line_counts``); at most
    :data:`LISTED_LINES` of each kind are named, so that an invoice of a million lines needs neither a
    million objects nor a giant audit entry."""
    tz = ZoneInfo(new.timezone)
    table = cast(Table, InvoiceLine.__table__)
    fields = [table.c.zone_id, table.c.start_at, *(table.c[name] for name in _LINE_FIELDS)]
    query = select(table.c.line_no, *fields).where(table.c.invoice_pk == old.id).order_by(table.c.line_no)
    parts = []
    with session.connection().execute(query.execution_options(yield_per=LINES_PER_INSERT)) as result:
        for rows in result.partitions():
            parts.append(_digests([row[1:] for row in rows], [row[0] for row in rows]))
    before = pd.concat(parts, ignore_index=True) if parts else _digests([], [])
    keys = ("zone_id", "start_at", *_LINE_FIELDS)
    after = _digests([tuple(line[k] for k in keys) for line in new_lines], list(range(len(new_lines))))
    both = before.merge(
        after, on=["zone", "start", "n"], how="outer", suffixes=("_old", "_new"), indicator=True
    )
    kinds = {
        "added": both[both["_merge"] == "right_only"].sort_values("at_new"),
        "removed": both[both["_merge"] == "left_only"].sort_values("at_old"),
        "changed": both[(both["_merge"] == "both") & (both["digest_old"] != both["digest_new"])].sort_values(
            "at_new"
        ),
    }
    counts = {kind: len(frame) for kind, frame in kinds.items()}
    listed = {kind: frame.head(LISTED_LINES) for kind, frame in kinds.items()}
    wanted = [*listed["removed"]["at_old"].astype(np.int64), *listed["changed"]["at_old"].astype(np.int64)]
    olds = _old_lines(session, old.id, wanted)
    added = [_line_ref(new_lines[i], tz) for i in listed["added"]["at_new"].astype(np.int64).tolist()]
    removed = [_line_ref(olds[i], tz) for i in listed["removed"]["at_old"].astype(np.int64).tolist()]
    changed = []
    pairs = listed["changed"][["at_old", "at_new"]].astype(np.int64).itertuples(index=False)
    for at_old, at_new in pairs:
        old_line, new_line = olds[at_old], new_lines[at_new]
        diff = {
            name: {"old": _json(old_line[name], tz), "new": _json(new_line[name], tz)}
            for name in _LINE_FIELDS
            if old_line[name] != new_line[name]
        }
        changed.append(_line_ref(new_line, tz) | {"changes": diff})
    parts_text = [f"{_count(count)} {kind}" for kind, count in counts.items() if count]
    summary = (
        f"revision {old.revision} → {new.revision}: {', '.join(parts_text) or 'no line differences'}; "
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
        "line_counts": counts,  # the lists above name at most LISTED_LINES each
        "run_id": run.id,
        "summary": summary,
    }


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _digests(rows: Sequence[Sequence[Any]], at: Sequence[int]) -> pd.DataFrame:
    """Lines ``(zone_id, start_at, *fields)`` as their key — ``zone``, ``start`` [UTC µs] and ``n``, the
    line's rank among those of the same zone and start (two sessions of a zone never share a start) — the
    digest of their fields (Python's hash: equal values, equal digests) and ``at``, their position."""
    zones, starts, digests = [], [], []
    for row in rows:
        zones.append(row[0])
        starts.append((row[1] - _EPOCH) // _MICROSECOND)
        digests.append(hash(tuple(row[2:])))
    frame = pd.DataFrame(
        {
            "zone": pd.Series(zones, dtype=object),
            "start": np.array(starts, dtype=np.int64),
            "digest": np.array(digests, dtype=np.int64),
            "at": np.array(at, dtype=np.int64),
        }
    )
    frame["n"] = frame.groupby(["zone", "start"], sort=False).cumcount()
    return frame


def _old_lines(session: Session, invoice_pk: int, line_nos: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The stored lines ``line_nos`` of the revision ``invoice_pk``, by line number, as dicts."""
    table = cast(Table, InvoiceLine.__table__)
    out: dict[int, dict[str, Any]] = {}
    numbers = sorted(set(line_nos))
    for start in range(0, len(numbers), 900):
        query = select(table).where(
            table.c.invoice_pk == invoice_pk, table.c.line_no.in_(numbers[start : start + 900])
        )
        out |= {row.line_no: dict(row._mapping) for row in session.connection().execute(query)}
    return out


def _line_ref(line: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    return {"zone_id": line["zone_id"], "start": _json(line["start_at"], tz), "amount": str(line["amount"])}


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

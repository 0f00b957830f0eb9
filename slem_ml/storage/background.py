"""Storing a run while the outputs are written: the two are independent and each takes about a second.

``slem score`` writes its files and stores the run at once, in two processes: a forked child stores (it
inherits the result, nothing is copied), the parent writes. Before that, :func:`planned_revisions` reads the
revision each invoice will get, so the files can show it; if another writer got in between, the caller
re-renders the invoices with the revisions the store actually assigned.

Where ``os.fork`` does not exist the store simply runs first, in the same process (:mod:`slem_ml.forked`).
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from slem_ml import forked
from slem_ml.forked import ForkJob
from slem_ml.result import ScoringResult
from slem_ml.storage.database import open_database
from slem_ml.storage.models import Invoice
from slem_ml.storage.store import StoredRun, store_result

__all__ = ["planned_revisions", "start_store"]


def planned_revisions(engine: Engine, result: ScoringResult) -> dict[str, int]:
    """The revision each invoice of ``result`` gets if stored now (SPEC §3.8): same content, same revision."""
    ids = [str(i) for i in result.invoices["invoice_id"]]
    if not ids:
        return {}
    newest = (
        select(Invoice.invoice_id, func.max(Invoice.revision).label("revision"))
        .where(Invoice.invoice_id.in_(ids))
        .group_by(Invoice.invoice_id)
        .subquery()
    )
    query = select(Invoice.invoice_id, Invoice.revision, Invoice.content_hash).join(
        newest,
        (Invoice.invoice_id == newest.c.invoice_id) & (Invoice.revision == newest.c.revision),
    )
    with engine.connect() as connection:
        latest = {row.invoice_id: (row.revision, row.content_hash) for row in connection.execute(query)}
    hashes = dict(zip(result.invoices["invoice_id"], result.invoices["content_hash"], strict=True))
    planned = {}
    for invoice_id in ids:
        revision, content_hash = latest.get(invoice_id, (0, None))
        planned[invoice_id] = revision if content_hash == hashes[invoice_id] else revision + 1
    return planned


def start_store(url: str, result: ScoringResult, *, actor: str = "slem") -> ForkJob[StoredRun]:
    """Store ``result`` in the database at ``url`` in a forked child; ``.result()`` waits for it."""
    return forked.start(lambda: _store(url, result, actor))


def _store(url: str, result: ScoringResult, actor: str) -> StoredRun:
    engine = open_database(url)
    try:
        return store_result(engine, result, actor=actor)
    finally:
        engine.dispose()

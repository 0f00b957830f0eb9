"""slem's database: score runs, invoice revisions, cleaning sessions, alerts, audit log (SPEC §3.8, §6).

A thin adapter over SQLAlchemy 2 and Alembic; SQLite (default ``sqlite:///slem.db``) and PostgreSQL
(``postgresql+psycopg://``) behave the same::

    engine = open_database(url)              # creates or upgrades the schema
    stored = store_result(engine, result)    # one transaction; invoice revisions + audit log
    invoices = with_revisions(result.invoices, stored.revisions)
    engine.dispose()

Times are stored as UTC instants and read back tz-aware UTC (invoice lines: in the site timezone);
money is ``Decimal`` end to end. See :mod:`slem_ml.storage.store` for the revision rules and
:mod:`slem_ml.storage.database` for locking.
"""

from slem_ml.storage.database import DEFAULT_URL, StorageError, open_database
from slem_ml.storage.queries import (
    AuditRecord,
    InvoiceRevision,
    RunRecord,
    audit_log,
    invoice_history,
    latest_run,
)
from slem_ml.storage.store import StoredRun, store_result, with_revisions

__all__ = [
    "DEFAULT_URL",
    "AuditRecord",
    "InvoiceRevision",
    "RunRecord",
    "StorageError",
    "StoredRun",
    "audit_log",
    "invoice_history",
    "latest_run",
    "open_database",
    "store_result",
    "with_revisions",
]

"""slem's database: runs, invoices, cleaning sessions, alerts, maintenance, users, audit log (SPEC §3.8, §6).

A thin adapter over SQLAlchemy 2 and Alembic; SQLite (default ``sqlite:///slem.db``) and PostgreSQL
(``postgresql+psycopg://``) behave the same::

    engine = open_database(url)              # creates or upgrades the schema
    stored = store_result(engine, result)    # one transaction; invoice revisions + audit log
    invoices = with_revisions(result.invoices, stored.revisions)
    engine.dispose()

Times are stored as UTC instants and read back tz-aware UTC (invoice lines: in the site timezone);
money is ``Decimal`` end to end. See :mod:`slem_ml.storage.store` for the revision rules,
:mod:`slem_ml.storage.database` for locking, :mod:`slem_ml.storage.users` for accounts and roles and
:mod:`slem_ml.storage.maintenance` for acknowledging and resolving alerts.
"""

from slem_ml.storage.database import DEFAULT_URL, StorageError, database_url, open_database
from slem_ml.storage.maintenance import (
    MaintenanceError,
    acknowledge_alert,
    alerts_frame,
    maintenance_history,
    record_action,
    resolve_alert,
)
from slem_ml.storage.queries import (
    AuditRecord,
    InvoiceRevision,
    RunRecord,
    audit_log,
    invoice_history,
    latest_run,
    run_cleaning,
    run_invoices,
)
from slem_ml.storage.store import StoredRun, store_result, with_revisions
from slem_ml.storage.users import (
    ROLES,
    User,
    UserError,
    add_user,
    authenticate,
    can_see_client,
    count_users,
    get_user,
    list_users,
    remove_user,
    role_allows,
)

__all__ = [
    "DEFAULT_URL",
    "ROLES",
    "AuditRecord",
    "InvoiceRevision",
    "MaintenanceError",
    "RunRecord",
    "StorageError",
    "StoredRun",
    "User",
    "UserError",
    "acknowledge_alert",
    "add_user",
    "alerts_frame",
    "audit_log",
    "database_url",
    "authenticate",
    "can_see_client",
    "count_users",
    "get_user",
    "invoice_history",
    "latest_run",
    "list_users",
    "maintenance_history",
    "open_database",
    "record_action",
    "remove_user",
    "resolve_alert",
    "role_allows",
    "run_cleaning",
    "run_invoices",
    "store_result",
    "with_revisions",
]

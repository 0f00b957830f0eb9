"""Opening slem's database (SPEC §6 ``--db``): the SQLAlchemy engine, its locking, and the schema migrations.

:func:`open_database` creates the schema on an empty database and upgrades an older one with Alembic
``upgrade head``, run programmatically from the migrations shipped inside the package (no ``alembic.ini``).

Locking, so that several processes can store results at once:

* PostgreSQL: a write transaction first takes a transaction-scoped advisory lock
  (``pg_advisory_xact_lock``), so writers queue one behind the other and each sees what the previous one
  committed; the migration takes another one, so two processes opening a fresh database do not both create
  it. ``UNIQUE (invoice_id, revision)`` stays as the backstop, and :mod:`~slem_ml.storage.store` retries a
  transaction that hits it.
* SQLite: in WAL mode (readers do not wait for a writer); pysqlite's own transaction handling is
  replaced by explicit ``BEGIN`` (the recipe in SQLAlchemy's
  SQLite documentation) so that DDL is transactional and a write transaction can start with
  ``BEGIN IMMEDIATE``: it takes the database's write lock up front and waits (up to 30 s, or the URL's
  ``?timeout=SECONDS``) for another writer instead of failing on a lock upgrade.

A lock not granted in time (SQLite ``database is locked``; PostgreSQL ``lock_timeout``, e.g.
``?options=-c%20lock_timeout%3D10s`` in the URL) is said in words (:data:`LOCKED`, :func:`database_locked`).

To write a new migration after changing :mod:`~slem_ml.storage.tables`::

    from alembic import command
    from slem_ml.storage.database import alembic_config
    command.revision(alembic_config(url="sqlite:///dev.db"), message="...", autogenerate=True)

then read the new file in ``slem_ml/storage/migrations/versions`` (autogenerate is a draft) and run
``ruff`` on it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session

from slem_ml.errors import SlemError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "DEFAULT_URL",
    "VERSION_TABLE",
    "LOCKED",
    "StorageError",
    "alembic_config",
    "database_locked",
    "locked_error",
    "open_database",
    "parse_url",
    "shown_url",
    "write_session",
]

DEFAULT_URL = "sqlite:///slem.db"
#: Not Alembic's default ``alembic_version``: the database may be shared with another Alembic user (MLflow).
VERSION_TABLE = "slem_alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_WRITE = "slem_write"  # execution option: this transaction writes (BEGIN IMMEDIATE on SQLite)
_STORE_LOCK_KEY = 0x736C656D_0001  # "slem" + 1: advisory lock held by every write transaction
_MIGRATE_LOCK_KEY = 0x736C656D_0002  # "slem" + 2: advisory lock held while migrating
_SQLITE_BUSY_TIMEOUT_S = 30.0
#: What a user reads when the database stays locked past the lock timeout.
LOCKED = "the database is locked by another slem process; try again when it finishes"
#: PostgreSQL's SQLSTATE for a lock not granted within ``lock_timeout`` (lock_not_available).
_PG_LOCK_NOT_AVAILABLE = "55P03"
# Alembic's `context` and `op` are process-wide proxies: two threads must not migrate at once.
_MIGRATE_THREAD_LOCK = threading.Lock()


class StorageError(SlemError):
    """The database cannot be used: a bad URL, an unreachable server, a schema newer than this slem."""


def database_url(given: str | None = None) -> str:
    """The database to use: ``given`` (``--db``), else ``$SLEM_DATABASE_URL``, else :data:`DEFAULT_URL`."""
    return given or os.environ.get("SLEM_DATABASE_URL") or DEFAULT_URL


def open_database(url: str = DEFAULT_URL) -> Engine:
    """Connect to ``url``, create or upgrade slem's schema, and return the engine.

    Parameters
    ----------
    url
        ``sqlite:///path.db`` (default ``sqlite:///slem.db``) or ``postgresql+psycopg://user@host/db``
        (``postgresql://`` and ``postgres://`` are read as psycopg 3).

    Returns
    -------
    Engine
        Call ``engine.dispose()`` when done with it.

    Raises
    ------
    StorageError
        When the URL is malformed or not SQLite/PostgreSQL, the database cannot be reached, slem's tables
        cannot be created in it, or its schema was written by a newer slem.
    """
    parsed = parse_url(url)
    engine = _create_engine(parsed)
    try:
        _check_reachable(engine)
        if engine.dialect.name == "sqlite":
            _use_wal(engine)
        _upgrade(engine)
    except DBAPIError as exc:
        engine.dispose()
        if database_locked(exc):
            raise locked_error(parsed) from None
        # permissions, no schema to create in, a read-only file: the user's to fix, so one line
        raise StorageError(
            f"cannot create or upgrade slem's schema in {shown_url(parsed)}: {_reason(exc)}"
        ) from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def database_locked(exc: BaseException) -> bool:
    """Whether ``exc`` (a SQLAlchemy ``DBAPIError`` or the driver's own error) is a lock not granted in
    time: SQLite's ``database is locked`` (also ``… table is locked``), PostgreSQL's lock_not_available."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        return "is locked" in str(orig)
    return getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


def locked_error(url: URL) -> StorageError:
    """The one-line refusal for a database that stayed locked (:data:`LOCKED`), naming it."""
    return StorageError(f"{shown_url(url)}: {LOCKED}")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session in one transaction that holds slem's write lock; commits on success, else rolls back."""
    with Session(engine.execution_options(**{_WRITE: True})) as session, session.begin():
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _STORE_LOCK_KEY})
        yield session


def alembic_config(*, url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for slem's migrations, bound to a URL or to an open connection."""
    from alembic.config import Config  # lazy: only opening a database needs Alembic

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# --- internals --------------------------------------------------------------------------------------


def parse_url(url: str) -> URL:
    """``url`` parsed, ``postgresql://`` read as psycopg 3; :class:`StorageError` for a malformed URL or
    a database other than SQLite and PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"database URL {url!r} is not a URL (e.g. sqlite:///slem.db or postgresql+psycopg://user@host/db)"
        ) from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(
            f"database URL {shown_url(parsed)}: only sqlite:/// and postgresql+psycopg:// are supported"
        )
    return parsed


def _sqlite_timeout_s(url: URL) -> float:
    """How long [s] a SQLite connection waits for a lock: the URL's ``?timeout=`` (pysqlite's own
    parameter), else :data:`_SQLITE_BUSY_TIMEOUT_S`."""
    given = url.query.get("timeout")
    try:
        return float(given if isinstance(given, str) else _SQLITE_BUSY_TIMEOUT_S)
    except ValueError:
        raise StorageError(
            f"database URL {shown_url(url)}: timeout={given!r} is not a number of seconds"
        ) from None


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": _sqlite_timeout_s(url)})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from pysqlite (which defers it and skips it for DDL); _sqlite_on_begin emits it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")


def _use_wal(engine: Engine) -> None:
    """Put a SQLite database in write-ahead-log mode (kept by the file): readers never wait for a writer
    (the app while an upload commits), and a commit appends instead of rewriting pages (docs/store.md).

    Changing the mode needs the file to itself for a moment: while another process holds it (several
    opening a fresh database at once), wait and try again, as SQLite's busy timeout does for writes.
    """
    deadline = time.monotonic() + _sqlite_timeout_s(engine.url)
    while True:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    cursor.execute("PRAGMA journal_mode = WAL")
                return
            finally:
                cursor.close()
        except sqlite3.DatabaseError as exc:  # "database is locked": wait; anything else is the user's
            if database_locked(exc) and time.monotonic() > deadline:
                raise locked_error(engine.url) from None
            if not database_locked(exc):
                raise StorageError(
                    f"cannot create or upgrade slem's schema in {shown_url(engine.url)}: {exc}"
                ) from None
        finally:
            raw.close()
        time.sleep(0.05)


def _check_reachable(engine: Engine) -> None:
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        raise StorageError(f"cannot open database {shown_url(engine.url)}: {_reason(exc)}") from None


#: The newest migration in slem_ml/storage/migrations/versions; a test checks it is Alembic's head.
HEAD_REVISION = "0008"


def _at_head(engine: Engine) -> bool:
    """Whether the schema is already at :data:`HEAD_REVISION` (then Alembic need not even be imported)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    except DBAPIError:
        return False  # no version table yet
    return [r[0] for r in rows] == [HEAD_REVISION]


def _upgrade(engine: Engine) -> None:
    if _at_head(engine):
        return
    # lazy: Alembic is needed only when the schema must be created or upgraded
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with _MIGRATE_THREAD_LOCK, engine.execution_options(**{_WRITE: True}).begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK_KEY})
        config = alembic_config(connection=connection)
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        unknown = [rev for rev in context.get_current_heads() if rev not in known]
        if unknown:
            raise StorageError(
                f"database {shown_url(engine.url)} has schema revision {', '.join(unknown)}, which this "
                "version of slem does not know: it was written by a newer slem; upgrade slem"
            )
        command.upgrade(config, "head")


def _reason(exc: DBAPIError) -> str:
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def shown_url(url: URL) -> str:
    """``url`` as text for messages, its password hidden."""
    return url.render_as_string(hide_password=True)

"""Alembic environment for slem's database.

Run through :func:`slem_ml.storage.open_database`, which passes an open connection in
``config.attributes["connection"]`` and holds the transaction (and the migration lock) around it; there is no
``alembic.ini``. :func:`slem_ml.storage.database.alembic_config` builds a config from a URL for developers
(``alembic revision --autogenerate`` through ``alembic.command``).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from slem_ml.storage.database import VERSION_TABLE
from slem_ml.storage.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite can ALTER little: later migrations copy-and-move tables
        compare_type=True,
        **options,
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL for a URL instead of running it (``alembic upgrade --sql``)."""
    _configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the caller's connection, or else a connection of its own to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("slem migrations need a connection or a sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""The Parquet files of :mod:`slem_ml.storage.backup` back into an empty database (SPEC §11 ``slem restore``).

:func:`check_table_files` proves the files fit this slem's schema before anything is written;
:func:`occupied_tables` says whether a target database already holds slem's data (without writing to it,
without even creating a SQLite file); :func:`load_tables` inserts every table in foreign-key order, a
chunk of rows at a time, in **one** transaction: resets PostgreSQL's sequences past the restored ids and
counts every table against what the archive says before it commits. Any failure rolls everything back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import JSON, Connection, Engine, create_engine, func, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError

from slem_ml.errors import SlemError
from slem_ml.progress import Progress, no_progress
from slem_ml.storage.backup import arrow_schema, chunk_rows, slem_tables
from slem_ml.storage.database import StorageError, parse_url, shown_url, write_session

__all__ = ["RestoreError", "check_table_files", "load_tables", "occupied_tables"]


class RestoreError(SlemError):
    """An archive that does not fit this slem, or a target that is not empty."""


def check_table_files(files: Mapping[str, Path]) -> None:
    """Raise :class:`RestoreError` unless ``files`` has one Parquet file for each of slem's tables, each
    with exactly that table's columns and types (:func:`~slem_ml.storage.backup.arrow_schema`)."""
    expected = {table.name: table for table in slem_tables()}
    missing = sorted(set(expected) - set(files))
    extra = sorted(set(files) - set(expected))
    if missing or extra:
        detail = "; ".join(
            part
            for part in (
                f"no file for {', '.join(missing)}" if missing else "",
                f"tables this slem does not have: {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise RestoreError(f"the archive's tables do not match this slem's schema: {detail}")
    for name, path in files.items():
        found = pq.read_schema(path)
        if not found.remove_metadata().equals(arrow_schema(expected[name])):
            raise RestoreError(f"the archive's table {name} does not have this slem's columns")


def occupied_tables(url: str) -> list[str]:
    """slem's tables that hold at least one row in the database at ``url`` (empty list: an empty
    database, one without slem's tables, or a SQLite file that does not exist yet). Reads only.

    Raises
    ------
    StorageError
        When the URL is malformed or the database cannot be reached.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).exists() or Path(path).stat().st_size == 0:
            return []
    engine = create_engine(parsed)
    try:
        with engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            return [
                table.name
                for table in slem_tables()
                if table.name in present
                and connection.execute(select(text("1")).select_from(table).limit(1)).first() is not None
            ]
    except DBAPIError as exc:
        lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise StorageError(f"cannot open database {shown_url(parsed)}: {reason}") from None
    finally:
        engine.dispose()


def load_tables(
    engine: Engine,
    files: Mapping[str, Path],
    expected_rows: Mapping[str, int],
    *,
    progress: Progress = no_progress,
) -> dict[str, int]:
    """Insert every table's file into ``engine``'s empty database in one transaction.

    Parameters
    ----------
    engine
        The target, opened by :func:`~slem_ml.storage.database.open_database` (schema at this slem's head)
        and holding no slem rows.
    files
        Table name → its Parquet file, checked by :func:`check_table_files`.
    expected_rows
        Table name → the rows the archive's manifest says it holds [rows].
    progress
        Told ``("database", fraction of tables done)``.

    Returns
    -------
    dict[str, int]
        Rows now in each table, equal to ``expected_rows``.

    Raises
    ------
    RestoreError
        When a table's count differs from ``expected_rows`` after the inserts (nothing is kept).
    """
    tables = slem_tables()
    counts: dict[str, int] = {}
    with write_session(engine) as session:
        connection = session.connection()
        for i, table in enumerate(tables):
            progress("database", i / len(tables))
            _insert_file(connection, table.name, files[table.name])
        if engine.dialect.name == "postgresql":
            _reset_sequences(connection)
        for table in tables:
            counts[table.name] = connection.execute(select(func.count()).select_from(table)).scalar_one()
        wrong = [name for name, n in counts.items() if n != expected_rows.get(name)]
        if wrong:
            name = wrong[0]
            raise RestoreError(
                f"table {name}: {counts[name]:,} rows restored, the manifest says "
                f"{expected_rows.get(name)}; nothing restored"
            )
    progress("database", 1.0)
    return counts


# --- internals --------------------------------------------------------------------------------------


def _insert_file(connection: Connection, name: str, path: Path) -> None:
    table = next(t for t in slem_tables() if t.name == name)
    json_columns = [c.name for c in table.columns if isinstance(c.type, JSON)]
    source = pq.ParquetFile(path)
    try:
        for batch in source.iter_batches(batch_size=chunk_rows(table)):
            rows = batch.to_pylist()
            for column in json_columns:
                for row in rows:
                    if row[column] is not None:
                        row[column] = json.loads(row[column])
            if rows:
                connection.execute(insert(table), rows)
    finally:
        source.close()


def _reset_sequences(connection: Connection) -> None:
    """Move each serial id's sequence past the largest id restored, so that new rows get fresh ids."""
    quote = connection.dialect.identifier_preparer.quote
    for table in slem_tables():
        column = table.autoincrement_column
        if column is None:
            continue
        c, t = quote(column.name), quote(table.name)
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX({c}), 1), "
                f"MAX({c}) IS NOT NULL) FROM {t}"
            ),
            {"table": table.name, "column": column.name},
        )

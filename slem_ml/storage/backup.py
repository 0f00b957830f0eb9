"""Every table of slem's database as Parquet files, database-neutral (SPEC §11 ``slem backup``).

:func:`dump_tables` reads each table of :data:`~slem_ml.storage.base.Base`'s metadata through SQLAlchemy
Core — so values come out as slem means them, whatever the backend: exact ``Decimal`` money, UTC
instants, dates, JSON, raw block bytes — and writes one Parquet file per table, a row group per chunk of
rows fetched, so memory follows the chunk and never the table (the readings store is one row per zone and
UTC day). Every table is read in one transaction (a snapshot: ``REPEATABLE READ`` on PostgreSQL, one read
transaction on SQLite in WAL mode), so the counts and the foreign keys of the files agree with each other
while slem goes on writing. :mod:`slem_ml.storage.backup_load` puts the files back.

The Arrow type of each column follows from its SQLAlchemy type (:func:`arrow_type`): a new column type in
:mod:`slem_ml.storage.tables` without a rule here is refused, not guessed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    select,
)

from slem_ml.progress import Progress, no_progress
from slem_ml.storage import tables as _tables  # noqa: F401  (registers every table on the metadata)
from slem_ml.storage.base import Base
from slem_ml.storage.types import ExactDecimal, UTCDateTime

__all__ = [
    "READINGS_TABLE",
    "TableDump",
    "arrow_schema",
    "arrow_type",
    "chunk_rows",
    "dump_tables",
    "slem_tables",
]

#: The readings store's table; the manifest also gives the number of readings its blocks hold.
READINGS_TABLE = "reading_blocks"
#: Rows fetched and written as one row group, and inserted per statement on restore [rows]: fewer for
#: tables of binary blobs (a reading block is 4–25 kB, a kept report's file up to a few MB).
_CHUNK_ROWS = 20_000
_CHUNK_ROWS_BINARY = 256
_CHUNK_ROWS_BY_TABLE = {"report_files": 8}
_COMPRESSION = "zstd"


@dataclass(frozen=True)
class TableDump:
    """One table written to ``path``: ``rows`` rows (``readings``: readings in them, for the store)."""

    name: str
    path: Path
    rows: int
    readings: int | None = None


def slem_tables() -> list[Table]:
    """slem's tables in foreign-key order (a table after the tables it refers to)."""
    return list(Base.metadata.sorted_tables)


def arrow_type(column: Column[Any]) -> pa.DataType:
    """The Arrow type a column's values are kept as in the archive.

    ``ExactDecimal(p, s)`` → ``decimal128(p, s)``; ``UTCDateTime`` → ``timestamp[us, UTC]``; JSON → its text;
    the rest by their SQL type. Raises ``TypeError`` for a type without a rule.
    """
    kind = column.type
    if isinstance(kind, ExactDecimal):
        return pa.decimal128(kind.precision, kind.scale)
    if isinstance(kind, UTCDateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, JSON):
        return pa.string()
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Integer):  # BigInteger too
        return pa.int64()
    if isinstance(kind, Float):  # Double too; before Numeric, whose subclass it is
        return pa.float64()
    if isinstance(kind, Date):
        return pa.date32()
    if isinstance(kind, LargeBinary):
        return pa.large_binary()
    if isinstance(kind, String):  # Text too
        return pa.large_string()
    raise TypeError(f"{column.table.name}.{column.name}: no archive type for {kind!r}")


def chunk_rows(table: Table) -> int:
    """How many of a table's rows are held in memory at once, dumping or restoring it [rows]."""
    if table.name in _CHUNK_ROWS_BY_TABLE:
        return _CHUNK_ROWS_BY_TABLE[table.name]
    binary = any(isinstance(c.type, LargeBinary) for c in table.columns)
    return _CHUNK_ROWS_BINARY if binary else _CHUNK_ROWS


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema of a table's file: its columns in order, nullable as in the database."""
    return pa.schema([pa.field(c.name, arrow_type(c), nullable=bool(c.nullable)) for c in table.columns])


def dump_tables(engine: Engine, folder: Path, *, progress: Progress = no_progress) -> list[TableDump]:
    """Write every slem table to ``folder/<table>.parquet`` from one consistent snapshot.

    Parameters
    ----------
    engine
        slem's database, opened (and so at this slem's schema revision) by
        :func:`~slem_ml.storage.database.open_database`.
    folder
        An existing folder; the files are created in it.
    progress
        Told ``("tables", fraction of tables done)``.

    Returns
    -------
    list[TableDump]
        One per table, in foreign-key order.
    """
    tables = slem_tables()
    done: list[TableDump] = []
    with _snapshot(engine) as connection:
        for i, table in enumerate(tables):
            progress("tables", i / len(tables))
            done.append(_dump_table(connection, table, folder / f"{table.name}.parquet"))
    progress("tables", 1.0)
    return done


# --- internals --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in one read transaction that sees one state of the database throughout."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with connection.begin() as transaction:
            yield connection
            transaction.rollback()  # read only: nothing to keep


def _dump_table(connection: Connection, table: Table, path: Path) -> TableDump:
    schema = arrow_schema(table)
    chunk = chunk_rows(table)
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    rows = readings = 0
    with pq.ParquetWriter(path, schema, compression=_COMPRESSION) as writer:
        for part in _chunks(connection, table, chunk):
            writer.write_batch(_batch(part, schema, json_columns))
            rows += len(part)
            if table.name == READINGS_TABLE:
                readings += sum(row.n for row in part)
    return TableDump(table.name, path, rows, readings if table.name == READINGS_TABLE else None)


def _chunks(connection: Connection, table: Table, size: int) -> Iterator[Sequence[Any]]:
    """The table's rows, ordered by primary key, ``size`` at a time (a server-side cursor on PostgreSQL)."""
    statement = select(table).order_by(*table.primary_key.columns)
    result = connection.execution_options(yield_per=size).execute(statement)
    yield from result.partitions(size)


def _batch(rows: Sequence[Any], schema: pa.Schema, json_columns: set[str]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if field.name in json_columns:
            values = tuple(None if v is None else json.dumps(v) for v in values)
        arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)

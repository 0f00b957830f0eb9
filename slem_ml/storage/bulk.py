"""Bulk writes and raw reads of the store's rows, without SQLAlchemy's per-value type processing.

:func:`insert_columns` writes stored columns (:func:`~slem_ml.storage.columns.checked_columns`: fixed-point
text for ``ExactDecimal``, naive UTC text for ``UTCDateTime``, ``YYYY-MM-DD`` dates) with the driver itself:
``executemany`` on SQLite, ``COPY ... FROM STDIN`` (psycopg 3) on PostgreSQL, whose ``NUMERIC``,
``timestamptz`` and ``date`` parse the same text. :func:`fetched` reads rows straight from the driver's
cursor; :func:`decimals`, :func:`instants` and :func:`dates` convert what it returns a column at a time, to
what the typed columns would have returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql as pgsql
from sqlalchemy import Connection, Select, Table

from slem_ml.storage.columns import fixed_point
from slem_ml.storage.types import UTCDateTime

__all__ = ["columns_of", "dates", "decimals", "fetched", "insert_columns", "instants", "stored_dates"]


# --- writing -------------------------------------------------------------------------------------------


def insert_columns(connection: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """Insert rows given as stored columns (:func:`checked_columns`; equal lengths) into ``table``, in the
    connection's transaction: the driver's ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""
    names = list(columns)
    if not names or not len(columns[names[0]]):
        return
    dialect = connection.dialect.name
    if dialect == "sqlite":
        quote = connection.dialect.identifier_preparer.quote
        statement = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
        connection.exec_driver_sql(statement, list(zip(*columns.values(), strict=True)))
        return
    if dialect != "postgresql":  # pragma: no cover - open_database accepts only these two
        raise ValueError(f"no bulk insert for {dialect}")
    values = [
        [None if v is None else f"{v}+00" for v in columns[n]]
        if isinstance(table.c[n].type, UTCDateTime)
        else columns[n]
        for n in names
    ]
    copying = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table.name), pgsql.SQL(", ").join(map(pgsql.Identifier, names))
    )
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(copying) as copy:
        for row in zip(*values, strict=True):
            copy.write_row(row)


def stored_dates(days: np.ndarray) -> list[str]:
    """Day numbers (days since 1970-01-01) as ``YYYY-MM-DD`` texts."""
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").tolist()


# --- reading -------------------------------------------------------------------------------------------


def fetched(connection: Connection, query: Select[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``query`` straight from the driver's cursor (tuples, no result processing), ``size`` at
    a time, in the connection's transaction."""
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if connection.dialect.paramstyle == "qmark":
        args: Any = tuple(params[name] for name in compiled.positiontup or ())
    else:
        args = params
    raw: Any = connection.connection.driver_connection
    cursor = raw.cursor()
    try:
        cursor.execute(str(compiled), args)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def columns_of(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Fetched rows as columns by name (no per-row work in pandas: a Row is read as a tuple)."""
    columns = list(zip(*rows, strict=True)) if len(rows) else [() for _ in names]
    return {name: list(column) for name, column in zip(names, columns, strict=True)}


def decimals(values: Sequence[Any], scale: int) -> list[Decimal | None]:
    """Raw decimal values as ``Decimal`` with ``scale`` places, as
    :class:`~slem_ml.storage.types.ExactDecimal` reads them (only cells at another scale are quantized)."""
    out: list[Any] = (
        list(map(Decimal, map(str, values)))
        if None not in values
        else [None if v is None else Decimal(str(v)) for v in values]
    )
    texts = ["0." + "0" * scale if v is None else str(v) for v in out]
    quantum = Decimal(1).scaleb(-scale)
    for i in np.flatnonzero(~fixed_point(texts, 10**6, scale)).tolist():
        out[i] = out[i].quantize(quantum)
    return out


def instants(values: Sequence[Any]) -> pd.DatetimeIndex:
    """Raw instants (naive UTC text on SQLite, aware datetimes from psycopg) as a UTC ``DatetimeIndex``."""
    if len(values) and isinstance(values[0], str):
        return pd.DatetimeIndex(pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True))
    return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True))


def dates(values: Sequence[Any]) -> list[dt.date]:
    """Raw dates (``YYYY-MM-DD`` text on SQLite, ``date`` from psycopg) as ``date`` objects."""
    if len(values) and isinstance(values[0], str):
        return list(np.array(values, dtype="datetime64[D]").astype(object))
    return list(values)

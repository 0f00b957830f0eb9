"""Spreadsheet-safe CSV writing: every CSV slem writes goes through :func:`write_csv` (SPEC §7).

A spreadsheet runs a cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a
formula (OWASP "CSV injection"). Such a text cell gets a leading single quote, which spreadsheets show as
plain text. Numbers stay numbers: numeric columns are never touched, and a text cell that is exactly a plain
decimal number (``-3.5``, ``+12``, ``-1e-3``) cannot run anything, so it is left as it is — a negative power
in ``quarantine.csv`` or a Decimal written as text still reads back as a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pandas.api.types import is_object_dtype, is_string_dtype

__all__ = ["CHUNK_ROWS", "FORMULA_PREFIXES", "escape_cell", "escape_frame", "escape_series", "write_csv"]

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

# A plain decimal number, nothing before or after it: safe even though it may start with "+" or "-".
_PLAIN_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PLAIN_NUMBER_RE = re.compile(_PLAIN_NUMBER)
#: Rows escaped (and formatted) at once by :func:`write_csv`: ~100 MB of text cells for invoice lines.
CHUNK_ROWS = 100_000


def escape_cell(value: str) -> str:
    """One cell's text as it is safe to write: quoted with ``'`` when a spreadsheet would run it."""
    if value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER_RE.fullmatch(value):
        return "'" + value
    return value


def escape_series(values: pd.Series) -> pd.Series:
    """:func:`escape_cell` over a column of text, vectorised; non-text cells and missing values are kept."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        if not (is_string_dtype(categories.dtype) or is_object_dtype(categories.dtype)):
            return values
        values = values.astype(categories.dtype)  # renaming categories could merge two of them
    if not (is_string_dtype(values.dtype) or is_object_dtype(values.dtype)):
        return values
    try:
        risky = values.str.startswith(FORMULA_PREFIXES, na=False).astype(bool)
    except AttributeError:  # an object column with no text in it (Decimals, dates, ...)
        return values
    if not risky.any():
        return values
    candidates = values[risky]
    risky.loc[risky] = ~candidates.str.fullmatch(_PLAIN_NUMBER, na=False).to_numpy(dtype=bool)
    if not risky.any():
        return values
    out = values.astype(object) if is_object_dtype(values.dtype) else values.copy()
    out.loc[risky] = "'" + values[risky]
    return out


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell and every header escaped; numeric columns unchanged."""
    out = frame.copy()
    for column in out.columns:
        out[column] = escape_series(out[column])
    out.columns = [escape_cell(str(name)) for name in out.columns]
    return out


def write_csv(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    formatter: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Write ``frame`` as UTF-8 CSV (header, ``\\n`` line ends, no index), escaped for spreadsheets.

    Cells are written as they are: format values (timestamps, Decimals, booleans) before calling this, or
    pass ``formatter`` (a frame of values → the same rows as text cells, e.g.
    :func:`~slem_ml.outputs.formatting.format_invoice_lines`), which is then applied a chunk of
    ``chunk_rows`` rows at a time as they are written. Either way memory stays bounded: the escaped (and
    formatted) copy is made one chunk at a time, and the file is the same as written whole. An empty frame
    gives a file with the header only.
    """
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as out:
        for start in range(0, max(len(frame), 1), chunk_rows):
            part = frame.iloc[start : start + chunk_rows]
            cells = part if formatter is None else formatter(part)
            escape_frame(cells).to_csv(out, index=False, header=start == 0, lineterminator="\n")
    return path

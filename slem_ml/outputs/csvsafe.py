"""Spreadsheet-safe CSV writing: every CSV slem writes goes through :func:`write_csv` (SPEC §7).

A spreadsheet runs a cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a
formula (OWASP "CSV injection"). Such a text cell gets a leading single quote, which spreadsheets show as
plain text. Numbers stay numbers: numeric columns are never touched, and a text cell that is exactly a plain
decimal number (``-3.5``, ``+12``, ``-1e-3``) cannot run anything, so it is left as it is — a negative power
in ``quarantine.csv`` or a Decimal written as text still reads back as a number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import infer_dtype, is_object_dtype, is_string_dtype

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
    parts: Mapping[Path, np.ndarray] | None = None,
) -> Path:
    """Write ``frame`` as UTF-8 CSV (header, ``\\n`` line ends, no index), escaped for spreadsheets.

    Cells are written as they are: format values (timestamps, Decimals, booleans) before calling this, or
    pass ``formatter`` (a frame of values → the same rows as text cells, e.g.
    :func:`~slem_ml.outputs.formatting.format_invoice_lines`), which is then applied a chunk of
    ``chunk_rows`` rows at a time as they are written. Either way memory stays bounded: the escaped (and
    formatted) copy is made one chunk at a time, and the file is the same as written whole. An empty frame
    gives a file with the header only.

    ``parts``: further files, each with the header and the rows of ``frame`` at the given positions
    (ascending), as :func:`write_csv` would write ``frame.take(positions)`` — made from the same formatted
    chunks, so those rows are formatted once (a summarised invoice's ``INV-….lines.csv`` beside
    ``invoice_lines.csv``).

    Text tables (every column ``str``) are joined by Arrow's string kernels (:func:`_text_rows`), other
    tables written by pandas' ``to_csv``; both give the same bytes.
    """
    path = Path(path)
    parts = {Path(name): np.asarray(at, dtype=np.int64) for name, at in (parts or {}).items()}
    with path.open("wb") as out:
        for start in range(0, max(len(frame), 1), chunk_rows):
            chunk = frame.iloc[start : start + chunk_rows]
            cells = escape_frame(chunk if formatter is None else formatter(chunk))
            if start == 0:
                header = _pandas_csv(cells.iloc[:0], header=True)
                out.write(header)
                for name in parts:
                    name.write_bytes(header)
            text = _text_rows(cells)
            out.write(_pandas_csv(cells, header=False) if text is None else text[1])
            for name, at in parts.items():
                mine = at[(at >= start) & (at < start + len(chunk))] - start
                if len(mine):
                    with name.open("ab") as part:
                        part.write(_some_rows(cells, text, mine))
    return path


def _some_rows(cells: pd.DataFrame, text: tuple[pa.Array, bytes] | None, at: np.ndarray) -> bytes:
    """The rows of ``cells`` at positions ``at`` as written (``text``: :func:`_text_rows` of ``cells``)."""
    return _pandas_csv(cells.iloc[at], header=False) if text is None else _lines(text[0].take(at))


def _pandas_csv(cells: pd.DataFrame, *, header: bool) -> bytes:
    """``cells`` as pandas writes them (UTF-8, ``\\n`` line ends, no index)."""
    return cells.to_csv(index=False, header=header, lineterminator="\n").encode("utf-8")


def _csv_quoted() -> tuple[str, ...]:
    """The characters that make Python's csv writer (pandas' ``to_csv``) quote a field, as it does it."""
    probe = io.StringIO()
    writer = csv.writer(probe, lineterminator="\n")
    found = []
    for char in ",\"\n\r\t\x00 ;'\\|":
        probe.seek(0)
        probe.truncate()
        writer.writerow([char, "x"])
        if probe.getvalue() != f"{char},x\n":
            found.append(char)
    return tuple(found)


_QUOTED = _csv_quoted()  # ',', '"' and '\n' on Python 3.11
_TEXT = pa.large_string()


def _text_rows(cells: pd.DataFrame) -> tuple[pa.Array, bytes] | None:
    """The rows of ``cells`` as :func:`_pandas_csv` writes them: each row's text (an Arrow array) and all
    of them as the file's bytes. Built by Arrow's string kernels, one element-wise join of the columns and
    one join of the rows (pandas' writer costs ~0.3 µs a cell).

    Only for two or more columns of text (``str`` or object columns of ``str``; missing → ``""``) and at
    least one row; None otherwise. A field is quoted (``a,b`` → ``"a,b"``, quotes in it doubled) exactly
    when the csv module would: first the whole text is checked at once, then, only when a quote, newline or
    extra comma is in it, each column.
    """
    rows, width = cells.shape
    if rows == 0 or width < 2:
        return None
    columns = []
    for name in cells.columns:
        values = cells[name]
        if isinstance(values.dtype, pd.StringDtype):
            array = pa.array(values.array, from_pandas=True)
            if isinstance(array, pa.ChunkedArray):  # e.g. a column put together from parts
                array = array.combine_chunks()
        elif is_object_dtype(values.dtype) and infer_dtype(values, skipna=True) in ("string", "empty"):
            array = pa.array(values.to_numpy(), type=_TEXT, from_pandas=True)
        else:
            return None
        columns.append(array.cast(_TEXT).fill_null(""))
    joined = _cells_joined(columns)
    text = _lines(joined)
    counts = {char: text.count(char.encode()) for char in _QUOTED}
    plain = {",": rows * (width - 1), "\n": rows}  # the separators and line ends alone
    if any(count != plain.get(char, 0) for char, count in counts.items()):
        joined = _cells_joined([_quote(column) for column in columns])
        text = _lines(joined)
    return joined, text


def _cells_joined(columns: list[pa.Array]) -> pa.Array:
    """Each row's cells joined by ``,``."""
    return pc.binary_join_element_wise(*columns, pa.scalar(",", _TEXT))


def _lines(rows: pa.Array) -> bytes:
    """Rows joined by ``\\n``, one after the last row too, as UTF-8."""
    whole = pa.LargeListArray.from_arrays(pa.array([0, len(rows)], pa.int64()), rows)
    text = pc.binary_join(whole, pa.scalar("\n", _TEXT)).cast(pa.large_binary())[0].as_py()
    return bytes(text) + b"\n"


def _quote(values: pa.Array) -> pa.Array:
    """``values`` with each field quoted that the csv module quotes (quotes in it doubled)."""
    need = np.zeros(len(values), dtype=bool)
    for char in _QUOTED:
        need |= pc.match_substring(values, char).to_numpy(zero_copy_only=False)
    if not need.any():
        return values
    quote = pa.scalar('"', _TEXT)
    doubled = pc.replace_substring(values, '"', '""')
    quoted = pc.binary_join_element_wise(quote, doubled, quote, pa.scalar("", _TEXT))
    return pc.if_else(pa.array(need), quoted, values)

"""Getting a table out of a readings file: CSV sniffing (separator, encoding, decimal commas, line
numbers) and Parquet, with headers mapped to canonical names (SPEC §1). Row validation is in reader.py.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from slem_ml.errors import InputError
from slem_ml.io import schema as S
from slem_ml.io.readings import Note, NoteKind

__all__ = [
    "DECIMAL_COMMA_NOTE",
    "CsvDialect",
    "CsvFile",
    "csv_dialect",
    "file_digest",
    "is_parquet",
    "map_headers",
    "parquet_line_note",
    "read_csv",
    "read_head",
    "read_parquet",
    "record_lines",
]

DECIMAL_COMMA_NOTE = Note(NoteKind.INPUT, "decimal commas read as decimal points")

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_DICT = pa.dictionary(pa.int32(), pa.string())


def read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip(b"\xef\xbb\xbf \r\n\t"):
        raise InputError(f"{path.name}: the file is empty")
    return head


def parquet_line_note(*, folder: bool) -> Note:
    """What the quarantine's ``line`` column counts in a Parquet input (a file, or a folder of files)."""
    return Note(
        NoteKind.LINE_NUMBERS,
        "line = Parquet row number" + (" across the folder's files in name order" if folder else ""),
    )


def is_parquet(path: Path, head: bytes | None = None) -> bool:
    """A folder (of Parquet files) or a Parquet file, by its magic bytes (``head``: the file's first bytes,
    read when not given) or its name; anything else is read as CSV."""
    if path.is_dir():
        return True
    head = read_head(path) if head is None else head
    return head.startswith(b"PAR1") or path.suffix.lower() in {".parquet", ".pq"}


def file_digest(path: Path) -> tuple[str, int]:
    """The file's sha256 and its number of physical lines (a last line without a line end counts)."""
    h = hashlib.sha256()
    newlines, last = 0, b"\n"
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            newlines += block.count(b"\n")
            last = block[-1:]
    return h.hexdigest(), newlines + (last != b"\n")


def _encoding(path: Path, head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        raise InputError(f"{path.name}: looks like an Excel or ZIP file; export the sheet as CSV")
    if b"\x00" in head:
        raise InputError(f"{path.name}: binary content, not a CSV or Parquet file")
    try:
        head.decode("utf-8")
        return "utf8"
    except UnicodeDecodeError as exc:
        if len(head) == _SNIFF_BYTES and exc.start >= len(head) - 4:  # a character cut by the window
            return "utf8"
    try:
        text = head.decode("cp1252")
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not a text file in UTF-8 or Windows-1252") from None
    if sum(not (c.isprintable() or c in "\r\n\t") for c in text) > len(text) // 100:
        raise InputError(f"{path.name}: binary content, not a CSV or Parquet file")
    return "cp1252"


@dataclass(frozen=True)
class CsvFile:
    frame: pd.DataFrame  # canonical column names, one row per well-formed record
    headers: dict[str, str]
    lines: np.ndarray  # 1-based line on which each row starts
    notes: tuple[Note, ...]
    original: Callable[[], pd.DataFrame]  # the same rows as text, for the quarantine
    malformed: pd.DataFrame  # records with the wrong number of fields: line, reason, text


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written: found from its first line."""

    encoding: str  # "utf8" or "cp1252"
    delimiter: str
    names: list[str]  # the header's column names
    headers: dict[str, str]  # canonical name -> header
    notes: tuple[Note, ...]


def csv_dialect(path: Path, head: bytes) -> CsvDialect:
    """Encoding, separator and columns of a CSV of readings; :class:`InputError` when it is none."""
    encoding = _encoding(path, head)
    header_line = head.decode("utf-8" if encoding == "utf8" else "cp1252", errors="replace")
    header_line = header_line.lstrip("\ufeff").splitlines()[0] if header_line.strip() else ""
    delimiter = max(_DELIMITERS, key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise InputError(
            f"{path.name}: not a CSV of readings (the first line has no column separator: "
            f"{header_line[:60]!r})"
        )
    names = [n.strip().strip('"') for n in header_line.split(delimiter)]
    headers = map_headers(names, path.name)
    notes: list[Note] = []
    if delimiter != ",":
        notes.append(Note(NoteKind.INPUT, f"columns separated by {delimiter!r}"))
    if encoding != "utf8":
        notes.append(Note(NoteKind.INPUT, f"text encoding {encoding}"))
    return CsvDialect(encoding, delimiter, names, headers, tuple(notes))


def read_csv(path: Path, head: bytes, physical_lines: int) -> CsvFile:
    dialect = csv_dialect(path, head)
    encoding, delimiter, names, headers = dialect.encoding, dialect.delimiter, dialect.names, dialect.headers
    notes = list(dialect.notes)
    text_cols = {h: _DICT for c, h in headers.items() if c not in (S.TIMESTAMP, S.POWER_W)}
    read = pacsv.ReadOptions(encoding=encoding, block_size=1 << 24)
    invalid: list[int] = []

    def skip_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    parse = pacsv.ParseOptions(
        delimiter=delimiter, ignore_empty_lines=False, invalid_row_handler=skip_invalid
    )
    wanted = list(headers.values())
    try:
        table = pacsv.read_csv(
            path,
            read_options=read,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=text_cols, include_columns=wanted),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise InputError(f"{path.name}: no readings (only a header line)") from None
        invalid.clear()
        table = _read_csv_text(path, read, parse, wanted, [headers[S.TIMESTAMP], headers[S.POWER_W]])
    frame = table.to_pandas().rename(columns={h: c for c, h in headers.items()})
    if len(frame) == 0 and invalid:
        raise InputError(
            f"{path.name}: no well-formed rows ({len(invalid)} rows with {invalid[0]} fields, "
            f"expected {len(names)}; check the separator)"
        )
    if len(frame) == 0:
        raise InputError(f"{path.name}: no readings (only a header line)")
    if delimiter != "," and not pd.api.types.is_numeric_dtype(frame[S.POWER_W]):
        frame[S.POWER_W] = frame[S.POWER_W].str.replace(",", ".", regex=False)
        notes.append(DECIMAL_COMMA_NOTE)

    malformed = pd.DataFrame({S.LINE: pd.Series(dtype=np.int64), "reason": "", "text": ""})
    if not invalid and physical_lines == len(frame) + 1:
        lines = np.arange(2, len(frame) + 2, dtype=np.int64)  # one record per line: the usual case
    else:  # quoted line breaks or malformed records: find where each record starts
        lines, malformed = record_lines(path, encoding, delimiter, len(names))
        if len(lines) != len(frame):
            raise InputError(f"{path.name}: not a readable CSV (records could not be matched to lines)")

    def original() -> pd.DataFrame:  # the file's own text, for the quarantine
        return _read_csv_text(path, read, parse, wanted, wanted).to_pandas()

    return CsvFile(frame, headers, lines, tuple(notes), original, malformed)


def record_lines(path: Path, encoding: str, delimiter: str, columns: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Start line of each well-formed record, and the malformed ones, by reading the file as Python csv.

    The slow path: only files with line breaks inside quoted cells or with malformed records take it.
    """
    starts: list[int] = []
    bad: list[tuple[int, str, str]] = []
    text_encoding = "utf-8-sig" if encoding == "utf8" else encoding
    with path.open(encoding=text_encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        next(reader, None)
        line = reader.line_num + 1
        for record in reader:
            if not record or len(record) == columns:
                starts.append(line)
            else:
                reason = f"malformed row: {len(record)} fields, expected {columns}"
                bad.append((line, reason, delimiter.join(record)))
            line = reader.line_num + 1
    malformed = pd.DataFrame(bad, columns=[S.LINE, "reason", "text"]).astype({S.LINE: np.int64})
    return np.asarray(starts, dtype=np.int64), malformed


def _read_csv_text(
    path: Path,
    read: pacsv.ReadOptions,
    parse: pacsv.ParseOptions,
    wanted: list[str],
    as_text: frozenset[str] | list[str] = frozenset(),
) -> pa.Table:
    """Every column as text (ids dictionary-encoded): the forgiving path for files pyarrow cannot type."""
    try:
        return pacsv.read_csv(
            path,
            read_options=read,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() if h in as_text else _DICT for h in wanted},
                include_columns=wanted,
            ),
        )
    except pa.ArrowInvalid as exc:
        detail = str(exc).splitlines()[0]
        raise InputError(f"{path.name}: not a readable CSV ({detail})") from None


def read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, str], np.ndarray, tuple]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path.name}: not a readable Parquet file ({exc})") from None
    headers = map_headers(list(pf.schema_arrow.names), path.name)
    table = pf.read(columns=list(headers.values()))
    if table.num_rows == 0:
        raise InputError(f"{path.name}: no readings (the Parquet file has no rows)")
    frame = table.to_pandas().rename(columns={h: c for c, h in headers.items()})
    return frame, headers, np.arange(1, len(frame) + 1, dtype=np.int64), (parquet_line_note(folder=False),)


def map_headers(names: list[str], source: str) -> dict[str, str]:
    """canonical name -> header as found; refuses a missing required column, naming near misses."""
    found: dict[str, str] = {}
    for name in names:
        canonical = S.canonical_column(name)
        if canonical is None:
            continue
        if canonical in found:
            raise InputError(
                f"{source}: columns {found[canonical]!r} and {name!r} both mean {canonical}; keep one"
            )
        found[canonical] = name
    missing = [c for c in S.REQUIRED_COLUMNS if c not in found]
    if missing:
        unknown = [n for n in names if S.canonical_column(n) is None]
        hints = []
        for column in missing:
            close = difflib.get_close_matches(
                S.normalise_header(column),
                [S.normalise_header(n) for n in unknown],
                n=1,
                cutoff=0.6,
            )
            legacy = {
                S.ZONE_ID: "Room_ID",
                S.POWER_W: "Power_Usage_W",
                S.CLIENT_ID: "Client_ID",
                S.TIMESTAMP: "Timestamp",
            }[column]
            hint = f"{column} (or {legacy})"
            if close:
                match = next(n for n in unknown if S.normalise_header(n) == close[0])
                hint += f" — is {match!r} a typo?"
            hints.append(hint)
        raise InputError(f"{source}: missing required column {'; '.join(hints)}")
    return found

"""Reading a large input in batches of whole zones, so that memory depends on the batch, not on the file.

Billing, cleaning, drift and the other alerts are per zone, so a batch holds *every* reading of some zones
and is validated and scored on its own (:mod:`slem_ml.run.batched` puts the batches back together). Where the
session classifier decides cleaning (no ``cleaning_staff`` column), it compares the zones of a building, so
batches then hold whole buildings.

A row's batch follows from its zone id alone — ``crc32(key) % batches`` with the key the stripped zone id,
or its building part (``HQ`` of ``HQ-F4-Z2``) — so any process can pick out its batch without a first pass.

Inputs:

* a Parquet file, or a directory of Parquet files (not its sub-directories) read in name order; each batch
  reads the key column of every row group, and the whole row group where it has rows there; ``line`` is the
  row number across the files (1-based);
* a CSV file: split once, in blocks, into one Parquet spill file per batch (text columns, as the CSV has
  them); ``line`` is the record's line in the CSV, as :func:`slem_ml.io.reader.read_readings` gives it.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.io import schema as S
from slem_ml.io.reader import NULL_WORDS, extra_columns_note, validate_parsed
from slem_ml.io.readings import Note, Readings
from slem_ml.io.sources import (
    DECIMAL_COMMA_NOTE,
    csv_dialect,
    file_digest,
    is_parquet,
    map_headers,
    parquet_line_note,
    read_head,
    record_lines,
)

__all__ = ["BATCH_ROWS", "BatchPlan", "input_headers", "input_rows", "plan_batches", "read_batch"]

#: Readings per batch aimed at: about 1 GB of working memory for scoring with models.
BATCH_ROWS = 2_000_000
_RECORD = "__record"  # 0-based row (Parquet) or record (CSV) number carried through a batch


@dataclass(frozen=True)
class BatchPlan:
    """How an input splits into batches (picklable: Dask workers read their batch with it)."""

    source: str  # the input's name, as reports show it
    kind: str  # "parquet" | "csv"
    files: tuple[str, ...]  # Parquet inputs in order; for CSV the spill files, one per batch
    headers: dict[str, str]  # canonical name -> header in the input
    digest: str  # sha256 of the input's bytes (a directory: of its files' sha256s in name order)
    notes: tuple[Note, ...]
    batches: int
    by_building: bool
    rows: int  # rows (Parquet) or well-formed records (CSV) in the input
    decimal_comma: bool = False
    spilled: frozenset[int] = frozenset()  # CSV: the batches that have a spill file (the others are empty)
    record_lines: np.ndarray | None = None  # CSV: the line of each record, where not record + 2
    malformed: pd.DataFrame = field(default_factory=pd.DataFrame)  # CSV records with a wrong field count


def input_headers(path: Path) -> dict[str, str]:
    """The input's columns (canonical name -> header), from the Parquet schema or the CSV's first line."""
    if is_parquet(path):
        first = _parquet_files(path)[0]
        return map_headers(list(pq.ParquetFile(first).schema_arrow.names), first.name)
    return csv_dialect(path, read_head(path)).headers


def input_rows(path: Path) -> int:
    """Rows in a Parquet file or directory (from the metadata), or an estimate for a CSV (from its size)."""
    if is_parquet(path):
        return sum(pq.ParquetFile(f).metadata.num_rows for f in _parquet_files(path))
    head = read_head(path)
    if not head:
        return 0
    lines = max(head.count(b"\n"), 1)
    return int(path.stat().st_size / (len(head) / lines))


def plan_batches(
    path: str | Path, *, batch_rows: int = BATCH_ROWS, by_building: bool, spill_dir: Path
) -> BatchPlan:
    """Plan the batches of ``path``; a CSV is split into ``spill_dir`` now (one pass over the file).

    ``by_building``: keep a building's zones together (the session classifier needs them). Raises
    :class:`InputError` for an input that cannot be used at all.
    """
    path = Path(path).absolute()  # workers elsewhere resolve it on the same shared storage
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if is_parquet(path):
        return _plan_parquet(path, batch_rows, by_building)
    return _plan_csv(path, batch_rows, by_building, spill_dir)


def read_batch(plan: BatchPlan, index: int, site: SiteConfig) -> Readings | None:
    """The validated readings of batch ``index`` (``None`` when no row falls into it)."""
    if plan.kind == "parquet":
        raw = _parquet_batch(plan, index)
    elif index in plan.spilled:
        spill = Path(plan.files[index])
        if not spill.exists():  # a worker that cannot see the client's storage must not drop zones
            raise InputError(
                f"{spill}: this batch of the CSV is not readable here; put --out on shared storage"
            )
        raw = pq.read_table(spill).to_pandas().rename(columns={h: c for c, h in plan.headers.items()})
    else:
        raw = None
    malformed = plan.malformed if index == 0 and len(plan.malformed) else None
    if raw is None or len(raw) == 0:
        if malformed is None:
            return None
        raw = pd.DataFrame(
            {**{c: pd.Series(dtype=object) for c in plan.headers}, _RECORD: pd.Series(dtype=np.int64)}
        )
    record = raw.pop(_RECORD).to_numpy(dtype=np.int64)
    if plan.kind == "parquet":
        lines = record + 1
    elif plan.record_lines is None:
        lines = record + 2
    else:
        lines = plan.record_lines[record]
    text = raw
    if plan.decimal_comma:  # the quarantine keeps the file's own text
        raw = raw.assign(**{S.POWER_W: raw[S.POWER_W].str.replace(",", ".", regex=False)})
    return validate_parsed(
        raw, plan.headers, lines, site, plan.source, plan.digest, plan.kind, plan.notes,
        original=lambda: text, malformed=malformed, whole_file=False,
    )  # fmt: skip


# --- Parquet ------------------------------------------------------------------------------------------


def _parquet_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("*.parquet") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"{path}: a folder without Parquet files (*.parquet)")
    return files


def _plan_parquet(path: Path, batch_rows: int, by_building: bool) -> BatchPlan:
    files = _parquet_files(path)
    digest = hashlib.sha256()
    rows = 0
    headers: dict[str, str] | None = None
    names: list[str] = []
    for file in files:
        try:
            meta = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{file.name}: not a readable Parquet file ({exc})") from None
        found = map_headers(list(meta.schema_arrow.names), file.name)
        if headers is None:
            headers, names = found, list(meta.schema_arrow.names)
        elif found != headers:
            raise InputError(f"{file.name}: its columns differ from {files[0].name}'s; one layout per folder")
        rows += meta.metadata.num_rows
        digest.update(bytes.fromhex(file_digest(file)[0]) if len(files) > 1 else b"")
    assert headers is not None
    if rows == 0:
        raise InputError(f"{path.name}: no readings (the Parquet input has no rows)")
    sha = file_digest(files[0])[0] if len(files) == 1 else digest.hexdigest()
    notes = [parquet_line_note(folder=path.is_dir()), *extra_columns_note(names)]
    return BatchPlan(
        source=path.name, kind="parquet", files=tuple(str(f) for f in files), headers=headers, digest=sha,
        notes=tuple(notes), batches=max(1, math.ceil(rows / batch_rows)), by_building=by_building, rows=rows,
    )  # fmt: skip


def _parquet_batch(plan: BatchPlan, index: int) -> pd.DataFrame | None:
    """Batch ``index``'s rows of every row group, with their row numbers in :data:`_RECORD`."""
    key_header = _key_header(plan.headers, plan.by_building)
    wanted = list(plan.headers.values())
    tables = []
    offset = 0
    for file in plan.files:
        pf = pq.ParquetFile(file)
        for group in range(pf.num_row_groups):
            size = pf.metadata.row_group(group).num_rows
            keys = pf.read_row_group(group, columns=[key_header]).column(0)
            rows = np.flatnonzero(_batch_ids(keys, plan.batches, plan.by_building) == index)
            if len(rows):
                table = pf.read_row_group(group, columns=wanted).take(pa.array(rows))
                tables.append(table.append_column(_RECORD, pa.array(offset + rows, pa.int64())))
            offset += size
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.to_pandas().rename(columns={h: c for c, h in plan.headers.items()})


# --- CSV ----------------------------------------------------------------------------------------------


def _plan_csv(path: Path, batch_rows: int, by_building: bool, spill_dir: Path) -> BatchPlan:
    head = read_head(path)
    dialect = csv_dialect(path, head)
    digest, physical_lines = file_digest(path)
    batches = max(1, math.ceil(input_rows(path) / batch_rows))
    wanted = list(dialect.headers.values())
    schema = pa.schema([*(pa.field(h, pa.string()) for h in wanted), pa.field(_RECORD, pa.int64())])
    invalid: list[int] = []

    def skip_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    spill_dir.mkdir(parents=True, exist_ok=True)
    files = [spill_dir / f"batch-{k:05d}.parquet" for k in range(batches)]
    writers: dict[int, pq.ParquetWriter] = {}
    records = 0
    power_numeric = True
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=dialect.encoding, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter, ignore_empty_lines=False, invalid_row_handler=skip_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in wanted}, include_columns=wanted
            ),
        )
        for block in reader:
            block = pa.Table.from_batches([block]).select(wanted)
            ids = _batch_ids(block.column(_key_header(dialect.headers, by_building)), batches, by_building)
            block = block.append_column(
                _RECORD, pa.array(np.arange(records, records + len(block)), pa.int64())
            )
            records += len(block)
            if power_numeric and dialect.delimiter != ",":
                power_numeric = _numeric(block.column(dialect.headers[S.POWER_W]))
            for k in np.unique(ids):
                if int(k) not in writers:
                    writers[int(k)] = pq.ParquetWriter(files[int(k)], schema)
                writers[int(k)].write_table(block.take(pa.array(np.flatnonzero(ids == k))))
    except pa.ArrowInvalid as exc:
        detail = str(exc).splitlines()[0]
        if "Empty CSV file" in detail:
            raise InputError(f"{path.name}: no readings (only a header line)") from None
        raise InputError(f"{path.name}: not a readable CSV ({detail})") from None
    finally:
        for writer in writers.values():
            writer.close()
    if records == 0 and invalid:
        raise InputError(
            f"{path.name}: no well-formed rows ({len(invalid)} rows with {invalid[0]} fields, "
            f"expected {len(dialect.names)}; check the separator)"
        )
    if records == 0:
        raise InputError(f"{path.name}: no readings (only a header line)")
    starts, malformed = None, pd.DataFrame()
    if invalid or physical_lines != records + 1:  # quoted line breaks or malformed records
        starts, malformed = record_lines(path, dialect.encoding, dialect.delimiter, len(dialect.names))
        if len(starts) != records:
            raise InputError(f"{path.name}: not a readable CSV (records could not be matched to lines)")
    notes = list(dialect.notes)
    decimal_comma = dialect.delimiter != "," and not power_numeric
    if decimal_comma:
        notes.append(DECIMAL_COMMA_NOTE)
    notes.extend(extra_columns_note(dialect.names))
    return BatchPlan(
        source=path.name, kind="csv", files=tuple(str(f) for f in files), headers=dialect.headers,
        digest=digest, notes=tuple(notes), batches=batches, by_building=by_building, rows=records,
        decimal_comma=decimal_comma, record_lines=starts, malformed=malformed, spilled=frozenset(writers),
    )  # fmt: skip


# --- which batch a zone belongs to --------------------------------------------------------------------


def _batch_ids(zones: pa.ChunkedArray | pa.Array, batches: int, by_building: bool) -> np.ndarray:
    """The batch of each row, from its zone id (computed once per distinct id, not per row)."""
    if batches == 1:
        return np.zeros(len(zones), dtype=np.int64)
    values = zones.to_pandas()
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("category")
    names = values.cat.categories.astype(str)
    batch_of = np.array([_batch_of(v, batches, by_building) for v in names], dtype=np.int64)
    codes = values.cat.codes.to_numpy().astype(np.int64)
    missing = _batch_of("", batches, by_building)  # a missing id is quarantined in whichever batch
    return np.where(codes >= 0, batch_of[np.maximum(codes, 0)] if len(names) else missing, missing)


def _key_header(headers: dict[str, str], by_building: bool) -> str:
    """The column a row's batch follows: its zone id, or its building (the file's column where it has one,
    as the session classifier groups by it)."""
    if by_building and S.BUILDING in headers:
        return headers[S.BUILDING]
    return headers[S.ZONE_ID]


def _batch_of(key: str | None, batches: int, by_building: bool) -> int:
    """A zone id's batch (by its building part when ``by_building``); a building name hashes as itself."""
    text = (key or "").strip()
    if by_building:
        match = S.ZONE_ID_PATTERN.match(text)
        text = match.group("building") if match else text
    return zlib.crc32(text.encode("utf-8")) % batches


def _numeric(power: pa.ChunkedArray | pa.Array) -> bool:
    """Whether every power cell reads as a number, as pyarrow's typed CSV reading would take it (null words
    count as missing): what decides, reading in one piece, that commas are decimal commas."""
    missing = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(power)), pa.array(sorted(NULL_WORDS)))
    try:
        pc.cast(pc.if_else(missing, pa.scalar(None, pa.string()), power), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True

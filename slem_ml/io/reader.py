"""Reading and validating sensor readings (SPEC §1).

The boundary of slem: legacy and canonical headers, CSV (any of ``, ; tab |``, comma decimals, BOM, CRLF) and
Parquet, naive local times and times with offsets all come in; out comes a
:class:`~slem_ml.io.readings.Readings` with canonical columns, tz-aware UTC timestamps, and a quarantine of
bad rows with their source line numbers. A file that cannot be used at all raises
:class:`~slem_ml.errors.InputError` with one line naming the problem.

Clean files take the fast path (pyarrow parses types); a column pyarrow cannot type is parsed as text,
vectorised, with a reason for every row that fails.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.io import schema as S
from slem_ml.io.localtime import localize_naive
from slem_ml.io.readings import Note, NoteKind, Readings, ValidationReport
from slem_ml.io.sources import (
    csv_dialect,
    file_digest,
    is_parquet,
    map_headers,
    read_csv,
    read_head,
    read_parquet,
)

__all__ = [
    "EXTRA_COLUMNS",
    "FUTURE",
    "FUTURE_SLACK_MS",
    "MAX_POWER_W",
    "NULL_WORDS",
    "UNKNOWN_CLIENT",
    "extra_columns_note",
    "no_known_client",
    "read_readings",
    "validate_frame",
    "validate_parsed",
]

#: A single lighting zone drawing a megawatt is a broken meter, not a reading.
MAX_POWER_W = 1_000_000.0
_TRUE = frozenset({"yes", "true", "1", "y", "t"})
_FALSE = frozenset({"no", "false", "0", "n", "f", ""})
#: Timestamp formats tried, in order, for text that is not ISO 8601 (day-first exports).
_EXTRA_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")
_OFFSET_RE = r"(?:[+-]\d{2}:?\d{2}|[zZ])$"
_GAP = "timestamp does not exist in site time (DST gap)"
#: Readings outside these years are typos (2200 for 2025); they would also break the time keys of billing.
_EARLIEST, _LATEST = np.datetime64("1990-01-01", "ms"), np.datetime64("2100-01-01", "ms")
_RANGE = "timestamp out of range (before 1990 or after 2099)"
#: [ms] A reading stamped later than this after now is a clock set wrong or a typo (2029 for 2025): it is
#: quarantined with :data:`FUTURE` rather than billed. A day covers every timezone and a meter's drift.
FUTURE_SLACK_MS = 86_400_000
FUTURE = "timestamp is more than a day in the future"
#: How the note on columns slem does not know begins (the names follow).
EXTRA_COLUMNS = "columns not used (not in slem's schema): "
#: The quarantine reason of a row whose client the contracts do not know (``{}``: the client id).
UNKNOWN_CLIENT = "unknown client_id '{}' (not in contracts)"
#: Cells that mean "no value" (pyarrow's CSV null words, lower case): missing, whichever way a file is read.
NULL_WORDS = frozenset(word.lower() for word in pacsv.ConvertOptions().null_values)


def no_known_client(source: str, found: Iterable[str]) -> InputError:
    """The error for an input none of whose clients the contracts know: the contracts are the likely
    mistake, so the input is refused as a whole (SPEC §1), naming the first five clients found."""
    shown = ", ".join(sorted(found)[:5])
    return InputError(
        f"{source}: no row has a client from the contracts (found {shown}); "
        "check the contracts file or the Client_ID column"
    )


def extra_columns_note(names: Iterable[str]) -> tuple[Note, ...]:
    """A note listing the input's columns that are neither canonical nor legacy (SPEC §1: nothing is
    dropped silently): :data:`EXTRA_COLUMNS` and the first ten names; none when every column is slem's."""
    extra = [
        repr(name) if name.strip() else "(unnamed)" for name in names if S.canonical_column(name) is None
    ]
    if not extra:
        return ()
    more = f" and {len(extra) - 10:,} more" if len(extra) > 10 else ""
    return (Note(NoteKind.EXTRA_COLUMNS, EXTRA_COLUMNS + ", ".join(extra[:10]) + more),)


def read_readings(path: str | Path, site: SiteConfig, *, now: dt.datetime | None = None) -> Readings:
    """Read a CSV or Parquet file of readings and validate it against the site's contracts.

    Raises :class:`InputError` for a file that cannot be used at all; bad rows are quarantined instead.
    ``now`` (tz-aware; default the clock's) is when the file is read: readings stamped more than
    :data:`FUTURE_SLACK_MS` after it are quarantined.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a CSV or Parquet file")
    head = read_head(path)
    digest, physical_lines = file_digest(path)
    if is_parquet(path, head):
        raw, headers, lines, notes = read_parquet(path)
        notes = (*notes, *extra_columns_note(pq.read_schema(path).names))
        return validate_parsed(
            raw, headers, lines, site, path.name, digest, "parquet", notes, original=None, now=now
        )
    csv_file = read_csv(path, head, physical_lines)
    if _blank_rows(csv_file.frame).all() and csv_file.malformed.empty:
        raise InputError(f"{path.name}: no readings (only blank lines after the header)")
    return validate_parsed(
        csv_file.frame,
        csv_file.headers,
        csv_file.lines,
        site,
        path.name,
        digest,
        "csv",
        (*csv_file.notes, *extra_columns_note(csv_dialect(path, head).names)),
        original=csv_file.original,
        malformed=csv_file.malformed,
        now=now,
    )


def validate_frame(
    df: pd.DataFrame, site: SiteConfig, *, source: str = "frame", now: dt.datetime | None = None
) -> Readings:
    """Validate an in-memory frame exactly as a file would be; ``line`` = row position + 2."""
    if len(df) == 0:
        raise InputError(f"{source}: no readings (the table is empty)")
    headers = map_headers([str(c) for c in df.columns], source)
    raw = df.rename(columns={h: c for c, h in headers.items()})[list(headers)].reset_index(drop=True)
    lines = np.arange(2, len(df) + 2, dtype=np.int64)
    notes = extra_columns_note(str(c) for c in df.columns)
    return validate_parsed(
        raw, headers, lines, site, source, "", "frame", notes, original=lambda: df, now=now
    )


# --- validation ---------------------------------------------------------------------------------


def validate_parsed(
    raw: pd.DataFrame,
    headers: dict[str, str],
    lines: np.ndarray,
    site: SiteConfig,
    source: str,
    digest: str,
    fmt: str,
    notes: tuple[Note, ...],
    original: Callable[[], pd.DataFrame] | None,
    malformed: pd.DataFrame | None = None,
    *,
    whole_file: bool = True,
    now: dt.datetime | None = None,
) -> Readings:
    """Validate parsed rows (the readers' and :mod:`~slem_ml.run.batches`' common step; see the module
    docstring).

    ``raw`` has canonical column names; ``lines`` the source line of each row. ``whole_file=False`` for a
    batch of a file's zones
    (:mod:`slem_ml.run.batches`): then a batch without a known client is not yet an unusable file.
    ``now`` (tz-aware UTC instant; default ``datetime.now(UTC)``): readings stamped more than
    :data:`FUTURE_SLACK_MS` after it are quarantined with :data:`FUTURE`."""
    n = len(raw)
    reason = np.full(n, "", dtype=object)
    bad = np.zeros(n, dtype=bool)

    def flag(mask: np.ndarray, text: str | Callable[[np.ndarray], np.ndarray]) -> None:
        """Quarantine rows in ``mask`` not yet quarantined; the first reason found stands.

        ``text`` is a reason, or a function giving the reasons of the rows it is handed.
        """
        if not mask.any():
            return
        new = np.flatnonzero(mask & ~bad)
        reason[new] = text(new) if callable(text) else text
        bad[new] = True

    blank = _blank_rows(raw)
    flag(blank, "blank line")

    zone = _labels(raw[S.ZONE_ID])
    flag(zone.codes == _code(zone, ""), "empty zone_id")
    client = _labels(raw[S.CLIENT_ID])
    flag(client.codes == _code(client, ""), "missing client_id")
    known = np.isin(client.categories, list(site.clients))[client.codes]
    named = (client.codes != _code(client, "")) & ~blank
    if whole_file and named.any() and not (known & named).any():
        raise no_known_client(source, pd.unique(client[named].astype(str)))
    unknown_text = np.array([UNKNOWN_CLIENT.format(c) for c in client.categories])
    unknown = ~known & ~bad  # the rows this check quarantines (the first reason found stands)
    flag(~known, lambda rows: unknown_text[client.codes[rows]])
    unknown_clients = pd.Series(client[unknown].astype(str)).value_counts().to_dict() if unknown.any() else {}

    power, findings = _power(raw[S.POWER_W])
    for mask, text in findings:
        flag(mask, text)

    timestamp, findings = _timestamps(raw[S.TIMESTAMP], zone, site)
    for mask, text in findings:
        flag(mask, text)
    flag(timestamp > _latest(now), FUTURE)  # NaT compares False; out of range was said first

    has_flag = S.CLEANING_STAFF in raw.columns
    cleaning = np.zeros(n, dtype=bool)
    if has_flag:
        column = raw[S.CLEANING_STAFF]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            numbers = column.astype("category")  # 1.0 / 0.0 / NaN from a Parquet or pandas 1/0 flag
            column = numbers.cat.rename_categories([f"{c:g}" for c in numbers.cat.categories])
        staff = _labels(column)
        lowered = staff.categories.str.lower()
        cleaning = lowered.isin(_TRUE)[staff.codes]
        unclear = ~(lowered.isin(_TRUE) | lowered.isin(_FALSE))[staff.codes]
        flag(unclear, "cleaning_staff is not yes/no, true/false or 1/0")

    good = ~bad
    source_text = original() if original is not None and not good.all() else raw
    quarantine = _quarantine(source_text, headers, lines, reason, ~good)
    if malformed is not None and len(malformed):
        first_column = next(iter(headers.values()))
        rows = malformed.rename(columns={"text": first_column})
        quarantine = pd.concat([quarantine, rows], ignore_index=True).fillna("")
        quarantine = quarantine.sort_values(S.LINE, kind="stable").reset_index(drop=True)
        reason = np.concatenate([reason, malformed["reason"].to_numpy(dtype=object)])
        bad = np.concatenate([bad, np.ones(len(malformed), dtype=bool)])

    rows = None if good.all() else np.flatnonzero(good)  # None: every row is good, copy nothing

    def pick(values: np.ndarray) -> np.ndarray:
        return values if rows is None else values[rows]

    frame = pd.DataFrame(
        {
            S.TIMESTAMP: pd.Series(pick(timestamp)).dt.tz_localize("UTC"),
            S.ZONE_ID: zone if rows is None else _drop_unused(zone[rows]),
            S.CLIENT_ID: client if rows is None else _drop_unused(client[rows]),
            S.POWER_W: pick(power),
            S.CLEANING_STAFF: pick(cleaning),
            S.LINE: pick(lines),
        }
    )
    frame = _structure(frame, raw, rows, headers)
    before = len(frame)
    frame = _dedupe_and_sort(frame)
    duplicates = before - len(frame)

    reasons = pd.Series(reason[bad]).value_counts().to_dict() if bad.any() else {}
    report = ValidationReport(
        source=source,
        input_sha256=digest,
        file_format=fmt,
        columns=dict(headers),
        rows_in=len(bad),
        rows_valid=len(frame),
        rows_quarantined=int(bad.sum()),
        rows_duplicate=duplicates,
        reasons={str(k): int(v) for k, v in reasons.items()},
        notes=tuple(notes) + (() if has_flag else (Note(NoteKind.INPUT, "no cleaning_staff column"),)),
        first_timestamp=frame[S.TIMESTAMP].min() if len(frame) else None,
        last_timestamp=frame[S.TIMESTAMP].max() if len(frame) else None,
        zones=int(frame[S.ZONE_ID].nunique()),
        clients=int(frame[S.CLIENT_ID].nunique()),
        unknown_clients={str(k): int(v) for k, v in unknown_clients.items()},
    )
    return Readings(frame=frame, quarantine=quarantine, report=report, has_cleaning_flag=has_flag)


def _labels(column: pd.Series) -> pd.Categorical:
    """A text column as a Categorical of stripped strings, missing values as ''.

    Works on the (few) distinct values, not on every row: ids repeat millions of times.
    """
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype("category")
    numbers = column.cat.categories
    if pd.api.types.is_float_dtype(numbers) and bool((numbers == np.floor(numbers)).all()):
        # whole numbers with gaps arrive as floats: floor 4.0 is "4"
        column = column.cat.rename_categories([str(int(c)) for c in numbers])
    cats = column.cat.categories
    stripped = pd.Index(cats.astype(str)).str.strip().to_numpy(dtype=object)
    codes = column.cat.codes.to_numpy()
    clean = (stripped == np.asarray(cats.astype(str), dtype=object)).all() and "" not in set(stripped)
    if clean and codes.min(initial=0) >= 0:  # clean ids, nothing missing: the usual case, no remapping
        return pd.Categorical.from_codes(codes, categories=pd.Index(stripped, dtype=object), validate=False)
    new_codes, new_cats = pd.factorize(np.append(stripped, ""))
    codes = codes.astype(np.int64)
    codes[codes < 0] = len(cats)
    return pd.Categorical.from_codes(
        new_codes[codes], categories=pd.Index(new_cats, dtype=object), validate=False
    )


def _code(values: pd.Categorical, text: str) -> int:
    """The code of ``text`` in ``values`` (-2, matching nothing, when absent)."""
    where = np.flatnonzero(values.categories == text)
    return int(where[0]) if len(where) else -2


def _blank_rows(raw: pd.DataFrame) -> np.ndarray:
    """Rows in which every cell is empty (a blank line in a CSV)."""
    blank = np.ones(len(raw), dtype=bool)
    first = raw[S.TIMESTAMP]
    if not pd.api.types.is_string_dtype(first) and first.dtype != object and not first.isna().any():
        return ~blank  # a typed timestamp column without gaps: no blank rows at all
    for name in raw.columns:
        col = raw[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            labels = _labels(col)
            blank &= labels.codes == _code(labels, "")
            continue
        empty = col.isna().to_numpy()
        if pd.api.types.is_string_dtype(col) or col.dtype == object:
            empty = empty | (col.fillna("").astype("str").str.strip() == "").to_numpy()
        blank &= empty
    return blank


#: A check's finding: the rows it fails and the reason it gives them.
Finding = tuple[np.ndarray, str]


def _power(column: pd.Series) -> tuple[np.ndarray, list[Finding]]:
    """Power [W] as float, and the rows that fail, most specific reason first."""
    if pd.api.types.is_bool_dtype(column):
        return np.full(len(column), np.nan), [(np.ones(len(column), bool), "non-numeric power_w")]
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        non_numeric = np.zeros(len(values), dtype=bool)
    else:
        text = column.astype("str").fillna("").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        missing = (text == "").to_numpy() | text.str.lower().isin(NULL_WORDS).to_numpy()
        non_numeric = np.isnan(values) & ~missing
    with np.errstate(invalid="ignore"):
        return values, [
            (missing, "missing power_w"),
            (non_numeric, "non-numeric power_w"),
            (values < 0, "negative power_w"),
            (np.isinf(values), "power_w is infinite"),
            (values > MAX_POWER_W, f"power_w above {MAX_POWER_W:,.0f} W (implausible)"),
        ]


def _timestamps(
    column: pd.Series, zone: pd.Categorical, site: SiteConfig
) -> tuple[np.ndarray, list[Finding]]:
    """UTC instants [datetime64[ms]], and the rows that fail with their reasons."""
    n = len(column)
    tz = site.site.timezone
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        utc = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
        return utc, [(np.isnat(utc), "missing timestamp"), _out_of_range(utc)]
    if pd.api.types.is_datetime64_dtype(column):
        naive = column.to_numpy(dtype="datetime64[ms]")
        utc, gap = localize_naive(naive, np.asarray(zone.codes), tz)
        return utc, [(np.isnat(naive), "missing timestamp"), (gap, _GAP), _out_of_range(utc)]
    utc = np.full(n, np.datetime64("NaT"), dtype="datetime64[ms]")
    gap = np.zeros(n, dtype=bool)
    text = column.astype("str").fillna("").str.strip()
    offset = text.str.contains(_OFFSET_RE, regex=True, na=False).to_numpy()
    if offset.any():
        parsed = pd.to_datetime(text[offset], format="ISO8601", utc=True, errors="coerce")
        utc[offset] = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    naive_rows = ~offset
    if naive_rows.any():
        naive = _parse_naive(text[naive_rows])
        utc[naive_rows], gap[naive_rows] = localize_naive(naive, np.asarray(zone.codes)[naive_rows], tz)
    empty = (text == "").to_numpy() | text.str.lower().isin(NULL_WORDS).to_numpy()
    unparsed = (np.isnat(utc), "unparseable timestamp")
    return utc, [(empty, "missing timestamp"), (gap, _GAP), unparsed, _out_of_range(utc)]


def _latest(now: dt.datetime | None) -> np.datetime64:
    """The latest plausible reading [datetime64[ms], UTC]: ``now`` (default the clock's) plus a day."""
    moment = dt.datetime.now(dt.UTC) if now is None else now
    return np.datetime64(round(moment.timestamp() * 1000) + FUTURE_SLACK_MS, "ms")


def _out_of_range(utc: np.ndarray) -> Finding:
    return ((utc < _EARLIEST) | (utc >= _LATEST), _RANGE)  # NaT compares False: not flagged twice


def _parse_naive(text: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    for fmt in _EXTRA_FORMATS:
        todo = parsed.isna() & (text != "")
        if not todo.any():
            break
        parsed = parsed.where(~todo, pd.to_datetime(text.where(todo), format=fmt, errors="coerce"))
    return parsed.to_numpy(dtype="datetime64[ms]")


def _structure(
    frame: pd.DataFrame, raw: pd.DataFrame, rows: np.ndarray | None, headers: dict[str, str]
) -> pd.DataFrame:
    """building / floor / zone: from the file where given, else derived from zone_id (SPEC §1).

    ``rows`` are the rows of ``raw`` that made ``frame`` (None: all of them).
    """
    zone_ids = pd.Series(frame[S.ZONE_ID].cat.categories.astype(str))
    parts = zone_ids.str.extract(S.ZONE_ID_PATTERN)
    parts["building"] = parts["building"].fillna(zone_ids)
    codes = frame[S.ZONE_ID].cat.codes.to_numpy()
    for column in (S.BUILDING, S.FLOOR, S.ZONE):
        derived = pd.Categorical(parts[column].fillna("").astype(str).to_numpy(dtype=object))
        values = pd.Categorical.from_codes(derived.codes[codes], categories=derived.categories)
        if column in headers:
            given = _labels(raw[column])
            given = given if rows is None else given[rows]
            blank = given.codes == _code(given, "")
            if not blank.any():
                values = given if rows is None else _drop_unused(given)
            else:
                values = pd.Categorical(np.where(blank, np.asarray(values), np.asarray(given)))
        frame[column] = values
    return frame[[*S.REQUIRED_COLUMNS, S.CLEANING_STAFF, S.BUILDING, S.FLOOR, S.ZONE, S.LINE]]


def _drop_unused(values: pd.Categorical) -> pd.Categorical:
    """``remove_unused_categories`` by counting codes instead of sorting them."""
    codes = np.asarray(values.codes)
    used = np.bincount(codes[codes >= 0], minlength=len(values.categories)) > 0
    if used.all():
        return values
    remap = np.cumsum(used) - 1
    return pd.Categorical.from_codes(
        np.where(codes >= 0, remap[codes], -1), categories=values.categories[used]
    )


def _dedupe_and_sort(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop exact duplicates (zone, timestamp, power; the later row stays); sort by zone, time, line.

    ``frame`` is in input order, so one stable sort on a (zone, time) key gives (zone, time, line).
    """
    for column in (S.ZONE_ID, S.CLIENT_ID):  # text order, whatever order the file met the ids in
        frame[column] = frame[column].cat.reorder_categories(sorted(frame[column].cat.categories))
    if frame.empty:
        return frame.reset_index(drop=True)
    ts = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    zone = frame[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)
    key = zone * S.GROUP_SPAN_MS + (ts - ts.min())
    # By zone first (a radix sort of small codes), then by key: input that is chronological within each
    # zone is then already in order, and the stable sort only checks it.
    by_zone = np.argsort(frame[S.ZONE_ID].cat.codes.to_numpy(), kind="stable")
    order = by_zone[np.argsort(key[by_zone], kind="stable")]
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    if same.any():  # rows sharing zone and instant (rare): exact duplicates among them go
        shared = np.zeros(len(order), dtype=bool)
        shared[:-1] |= same
        shared[1:] |= same
        rows = order[shared]
        candidates = pd.DataFrame({"key": key[rows], "power": frame[S.POWER_W].to_numpy()[rows]})
        dropped = rows[candidates.duplicated(keep="last").to_numpy()]
        order = order[~np.isin(order, dropped)]
    if len(order) == len(frame) and (order[1:] > order[:-1]).all():
        return frame.reset_index(drop=True)  # already in order and nothing dropped: no copy
    return frame.take(order).reset_index(drop=True)


def _quarantine(
    raw: pd.DataFrame, headers: dict[str, str], lines: np.ndarray, reason: np.ndarray, bad: np.ndarray
) -> pd.DataFrame:
    """``line, reason`` then the original columns as text, in file order (SPEC §1)."""
    rows = np.flatnonzero(bad)
    out = pd.DataFrame({S.LINE: lines[rows], "reason": reason[rows].astype(str)})
    for canonical, header in headers.items():
        column = raw[canonical] if canonical in raw.columns else raw[header]
        values = column.iloc[rows].astype(object).to_numpy()
        out[header] = pd.Series(values, dtype=object).astype("str").fillna("").to_numpy()
    return out

"""Frames checked column by column into what the store's rows hold (:mod:`~slem_ml.storage.payload`).

:func:`checked_columns` converts a frame's columns to the values rows hold (``Decimal`` with the column's
scale, UTC ``datetime``, ``date``, ...) and to what the store keeps of them (fixed-point text such as
``"1234.50"``, naive UTC text ``"2025-02-03 17:00:00.000000"`` as SQLAlchemy's SQLite ``DateTime`` writes it,
``"2025-02-03"``), refusing a malformed value with a ``ValueError`` naming the table, row and column.
Each column is tested vectorised first: the cells already in the column's form (a ``Decimal`` at the
column's scale, an aware instant, a ``date``, a finite float, ...) are taken as they are, their stored form
made at once. Any other cell goes through the column's per-cell converter, which converts it as it always
did or refuses it with the same message: the fast path changes the speed, never the values.
:func:`json_rows` makes the rows' canonical JSON (the run's fingerprint) a column at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.io.schema import LINE_STATUSES
from slem_ml.storage.tables import ALERT_STATUSES
from slem_ml.storage.types import to_exact_decimal, to_utc

__all__ = ["Column", "Converter", "Spec", "cents", "checked_columns", "fixed_point", "json_rows"]

Converter = Callable[[Any], Any]
#: frame column -> (row key, converter, required)
Spec = Mapping[str, tuple[str, Converter, bool]]
#: One converted column: the values rows hold (``Decimal``, aware ``datetime``, ``date``, ...) and what the
#: store keeps of each (fixed-point text, naive UTC text, ``YYYY-MM-DD``; the value itself otherwise).
Column = tuple[list[Any], list[Any]]
#: SQLAlchemy's SQLite ``DateTime`` storage format.
INSTANT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


# --- per-cell converters ------------------------------------------------------------------------------


def text(value: Any) -> str:
    out = str(value).strip()
    if not out:
        raise ValueError("is empty")
    return out


def money(value: Any) -> Decimal:
    return to_exact_decimal(value, 14, 2)


def quantity(value: Any) -> Decimal:
    return to_exact_decimal(value, 18, 6)


def hours(value: Any) -> Decimal:
    # Billable hours are billable_minutes / 60, a display figure: 1/6 h would never be exact.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
    return to_exact_decimal(Decimal(value).quantize(Decimal("0.000001"), ROUND_HALF_UP), 18, 6)


def date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def minutes(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a duration in minutes")
    return number


def score(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite score")
    return number


def whole(value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def flag(value: Any) -> bool:
    if isinstance(value, str) or value not in (True, False):
        raise ValueError(f"{value!r} is not true/false")
    return bool(value)


def period(value: Any) -> str:
    out = str(value)
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", out):
        raise ValueError(f"{value!r} is not a period YYYY-MM")
    return out


def sha256(value: Any) -> str:
    out = str(value)
    if not re.fullmatch(r"[0-9a-f]{64}", out):
        raise ValueError(f"{value!r} is not a sha256 hex digest")
    return out


def alert_status(value: Any) -> str:
    if value not in ALERT_STATUSES:
        raise ValueError(f"{value!r} is not one of {', '.join(ALERT_STATUSES)}")
    return str(value)


def line_status(value: Any) -> str:
    if value not in LINE_STATUSES:
        raise ValueError(f"{value!r} is not one of {', '.join(LINE_STATUSES)}")
    return str(value)


# --- vectorised fast paths: (cells that are certainly valid, their values, their stored form) ------------


class _Cells:
    """A column's cells as ``Series.tolist`` gives them (what the per-cell converters see), made once and
    only when needed: a column of instants as ``Timestamp`` objects is slow to make."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series
        self._all: list[Any] | None = None

    def all(self) -> list[Any]:
        if self._all is None:
            self._all = self.series.tolist()
        return self._all

    def some(self, at: np.ndarray) -> list[Any]:
        """The cells at the positions ``at``."""
        if self._all is not None:
            return [self._all[i] for i in at.tolist()]
        return self.series.iloc[at].tolist()


#: (series, cells, rows) -> (ok mask, values, stored); ``values`` may be None when ``rows`` is False
Fast = Callable[[pd.Series, _Cells, bool], tuple[np.ndarray, list[Any] | None, list[Any]]]
_Out = tuple[np.ndarray, list[Any] | None, list[Any]]


def _decimal_fast(precision: int, scale: int) -> Fast:
    """A ``Decimal`` whose text is ``-ddd.ff`` with ``scale`` places and at most ``precision - scale``
    integer digits is what :func:`~slem_ml.storage.types.to_exact_decimal` returns unchanged."""

    def fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
        values = cells.all()
        texts = list(map(str, values))
        ok = _exactly(values, Decimal) & fixed_point(texts, precision - scale, scale)
        return ok, values, texts

    return fast


def fixed_point(texts: list[str], digits: int, scale: int) -> np.ndarray:
    """Which texts of ``Decimal`` objects are fixed-point with ``scale`` places and at most ``digits``
    before the point (``str(Decimal)`` is ``[-]digits[.digits]``, scientific with an ``E``, or NaN/Infinity,
    which have no point)."""
    if not texts:
        return np.zeros(0, bool)
    array = np.array(texts, dtype=str)
    point = np.strings.rfind(array, ".")
    sign = np.strings.startswith(array, "-").astype(np.int64)
    return (
        (np.strings.find(array, "E") < 0)
        & (point == np.strings.str_len(array) - scale - 1)
        & (point - sign <= digits)
    )


def _instant_fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
    n = len(series)
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        return np.zeros(n, bool), None, [None] * n
    utc = series.dt.tz_convert("UTC")
    values = list(utc.dt.to_pydatetime()) if rows else None
    ns = utc.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    gone = np.isnat(ns)
    if (ns.view(np.int64)[~gone] % 1000).any():  # sub-µs: stored as the datetime (µs) says, per cell
        whole = list(utc.dt.to_pydatetime())
        return np.ones(n, bool), values, [None if pd.isna(v) else _instant_text(v) for v in whole]
    texts = np.char.replace(np.datetime_as_string(ns.astype("datetime64[us]"), unit="us"), "T", " ")
    stored = texts.astype(object)
    stored[gone] = None
    return np.ones(n, bool), values, stored.tolist()


def _date_fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
    values = cells.all()
    ok = _exactly(values, dt.date)
    if not ok.all():
        return ok, values, list(map(str, values))
    text = {day: str(day) for day in set(values)}  # a few distinct dates: each formatted once
    return ok, values, list(map(text.__getitem__, values))


def _float_fast(low: float) -> Fast:
    def fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
        try:
            numbers = np.asarray(series.to_numpy(), dtype=np.float64)
        except (TypeError, ValueError, ArithmeticError):
            return np.zeros(len(series), bool), None, [None] * len(series)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(numbers) & (numbers >= low)
        values = numbers.tolist()
        return ok, values, values

    return fast


def _whole_fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
    ok = pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    values = cells.all()
    return np.full(len(values), ok), values, values


def _flag_fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
    values = cells.all()
    return np.full(len(values), pd.api.types.is_bool_dtype(series.dtype)), values, values


def _text_fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
    given = cells.all()
    if _exactly(given, str).all():  # equal strings are the same text: each distinct one stripped once
        strip = {name: name.strip() for name in set(given)}
        values = list(map(strip.__getitem__, given))
    else:
        values = list(map(str.strip, map(str, given)))
    ok = np.fromiter(map(len, values), np.int64, len(values)) > 0
    return ok, values, values


def _member_fast(allowed: tuple[str, ...]) -> Fast:
    def fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
        values = cells.all()
        ok = _exactly(values, str) & series.isin(allowed).to_numpy(dtype=bool)
        return ok, values, values

    return fast


def _str_fast(series: pd.Series, cells: _Cells, rows: bool) -> _Out:
    values = list(map(str, cells.all()))
    return np.ones(len(values), bool), values, values


def _exactly(cells: list[Any], kind: type) -> np.ndarray:
    """Which cells are of type ``kind`` itself (not a subclass: a ``datetime`` is no ``date`` here)."""
    return np.fromiter(map(type, cells), object, len(cells)) == kind


_FAST: dict[Converter, Fast] = {
    money: _decimal_fast(14, 2),
    quantity: _decimal_fast(18, 6),
    to_utc: _instant_fast,
    date: _date_fast,
    minutes: _float_fast(0.0),
    score: _float_fast(-math.inf),
    whole: _whole_fast,
    flag: _flag_fast,
    text: _text_fast,
    alert_status: _member_fast(ALERT_STATUSES),
    line_status: _member_fast(tuple(LINE_STATUSES)),
    str: _str_fast,
}


def _instant_text(value: dt.datetime) -> str:
    return value.replace(tzinfo=None).strftime(INSTANT_FORMAT)


def _stored(convert: Converter, value: Any) -> Any:
    """What the store keeps of one converted value."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if convert is to_utc:
        return _instant_text(value)
    if convert is date:
        return str(value)
    return value


# --- checking ------------------------------------------------------------------------------------------


def checked_columns(
    frame: pd.DataFrame,
    table: str,
    spec: Spec,
    defaults: Mapping[str, Any],
    first: int = 1,
    *,
    rows: bool = True,
) -> dict[str, Column]:
    """``frame``'s columns by row key, checked and converted (module docstring); ``ValueError`` naming the
    table, row (``first`` is the number of the frame's first row) and column of the first malformed value,
    column by column. Columns the frame lacks hold ``defaults``; a required one missing is refused.
    ``rows=False``: only the stored form is wanted, the values may be left empty."""
    missing = [col for col, (_, _, required) in spec.items() if required and col not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")
    out: dict[str, Column] = {}
    n = len(frame)
    for column, (key, convert, required) in spec.items():
        default = defaults.get(key)
        if column not in frame.columns:
            out[key] = ([default] * n, [_stored(convert, default)] * n)
            continue
        series = frame[column]
        absent = series.isna().to_numpy()
        if required and absent.any():
            raise ValueError(f"{table} row {int(np.argmax(absent)) + first}: {column} is missing")
        cells = _Cells(series)
        fast = _FAST.get(convert)
        ok, values, stored = fast(series, cells, rows) if fast is not None else (np.zeros(n, bool), None, [])
        slow = np.flatnonzero(~ok | absent)
        if len(slow) or (rows and values is None):
            values = list(cells.all()) if values is None else list(values)
            stored = list(stored) if len(stored) == n else [None] * n
            for i, cell in zip(slow.tolist(), cells.some(slow), strict=True):
                if absent[i]:
                    values[i], stored[i] = default, _stored(convert, default)
                    continue
                try:
                    values[i] = convert(cell)
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise ValueError(f"{table} row {i + first}: {column}: {exc}") from None
                stored[i] = _stored(convert, values[i])
        out[key] = ([] if values is None else values, stored)
    return out


def cents(stored: Sequence[str]) -> np.ndarray:
    """Fixed-point texts with two places (``"-12.50"``) as integer cents."""
    return np.fromiter(map(int, (s.replace(".", "") for s in stored)), np.int64, len(stored))


# --- canonical text ------------------------------------------------------------------------------------


def json_rows(columns: Mapping[str, Sequence[Any]]) -> list[str]:
    """Each row of ``columns`` (values by key) as ``json.dumps(row, sort_keys=True, default=str)`` writes
    it, made a column at a time: distinct texts and names encoded once, numbers and flags vectorised."""
    keys = sorted(columns)
    if not keys or not len(columns[keys[0]]):
        return []
    encoded = [_json_column(columns[key]) for key in keys]
    cells = [
        json.dumps(k).replace("%", "%%") + (': "%s"' if quoted else ": %s")
        for k, (_, quoted) in zip(keys, encoded, strict=True)
    ]
    template = "{" + ", ".join(cells) + "}"
    return list(map(template.__mod__, zip(*(texts for texts, _ in encoded), strict=True)))


def _json_column(values: Sequence[Any]) -> tuple[list[str], bool]:
    """``json.dumps(value, default=str)`` of each value, or (``True``) the text inside its quotes."""
    kinds = set(map(type, values))
    if kinds <= {str, dt.date, type(None)}:  # names and dates: a few distinct values
        text = {v: json.dumps(v, default=str) for v in set(values)}
        return list(map(text.__getitem__, values)), False
    if kinds == {bool}:
        return np.where(np.array(values, dtype=bool), "true", "false").tolist(), False
    if kinds == {float} and np.isfinite(np.array(values, dtype=np.float64)).all():
        return list(map(float.__repr__, values)), False
    if kinds == {int}:
        return list(map(int.__repr__, values)), False
    if kinds in ({Decimal}, {dt.datetime}):  # their str() needs no escaping
        return list(map(str, values)), True
    return [json.dumps(v, default=str) for v in values], False

"""Columns of dates and instants as text, built as bytes in NumPy without a Python object per cell.

:mod:`~slem_ml.outputs.formatting` writes every session's date, start and end into the output files: as
Python strings that costs ~0.5 µs a cell. Here the text of a whole column is made at once: NumPy writes the
digits (``datetime_as_string``, C), the characters are cut and joined as a byte matrix, and the result is an
Arrow string array over that buffer (pandas' ``str`` columns are Arrow arrays too): ~0.05 µs a cell. The text
is the same as :func:`slem_ml.io.localtime.iso_local` and ``strftime("%Y-%m-%d")`` give (tests compare them);
for what they would write differently (years before 1000 or after 9999) these functions return None and the
caller takes the slow path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["date_array", "iso_array"]

_ISO_MS = 23  # 2025-02-10T18:00:00.250
_WHOLE = 19  # 2025-02-10T18:00:00
_OFFSET = 6  # +01:00
_DAY_MS = 86_400_000
_FIRST_DAY = int(np.datetime64("1000-01-01", "D").astype(np.int64))  # [days since 1970]
_LAST_DAY = int(np.datetime64("9999-12-31", "D").astype(np.int64))


def iso_array(index: pd.DatetimeIndex) -> pa.Array | None:
    """tz-aware instants (no missing ones) as :func:`~slem_ml.io.localtime.iso_local` writes them
    (``2025-02-10T18:00:00+01:00``, milliseconds only where not zero), as an Arrow string array; None for
    years outside 1000–9999 or an offset of 100 hours or more."""
    wall = index.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    utc = index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ms]")
    offset_min = (wall - utc).astype("timedelta64[m]").astype(np.int64)  # as iso_local computes it
    if len(wall) == 0:
        return pa.array([], pa.large_string())
    ms = wall.astype(np.int64)
    days, within = np.divmod(ms, _DAY_MS)
    day_text = _day_text(days)
    distinct, inverse = np.unique(offset_min, return_inverse=True)
    if day_text is None or np.abs(distinct).max() >= 100 * 60:
        return None
    suffix = np.array(  # a handful of distinct offsets: text as iso_local's _offset_text writes it
        [f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in distinct.tolist()],
        dtype=f"<U{_OFFSET}",
    )
    cells = np.empty((len(ms), _ISO_MS + _OFFSET), dtype=np.uint8)
    cells[:, :10] = day_text
    cells[:, 10:_ISO_MS] = np.frombuffer(b"T00:00:00.000", dtype=np.uint8)
    for column, value in (  # the digits of the time of day, two (or three) columns at a time
        (11, within // 3_600_000),
        (14, within // 60_000 % 60),
        (17, within // 1000 % 60),
    ):
        cells[:, column] += (value // 10).astype(np.uint8)
        cells[:, column + 1] += (value % 10).astype(np.uint8)
    fraction = within % 1000
    for column, value in ((20, fraction // 100), (21, fraction // 10 % 10), (22, fraction % 10)):
        cells[:, column] += value.astype(np.uint8)
    cells[:, _ISO_MS:] = _ascii(suffix, _OFFSET)[inverse]
    whole = fraction == 0
    keep = np.ones(cells.shape, dtype=bool)
    keep[whole, _WHOLE:_ISO_MS] = False  # no ".000"
    lengths = np.where(whole, _WHOLE + _OFFSET, _ISO_MS + _OFFSET)
    return _strings(cells[keep], lengths)


def date_array(days: np.ndarray) -> pa.Array | None:
    """Days (``datetime64``, no missing ones) as ``YYYY-MM-DD``, an Arrow string array; None for years
    outside 1000–9999 (where ``strftime`` pads differently)."""
    text = _day_text(days.astype("datetime64[D]").astype(np.int64))
    if text is None:
        return None
    return _strings(text.reshape(-1), np.full(len(days), 10))


def _day_text(days: np.ndarray) -> np.ndarray | None:
    """Days since 1970 as ``YYYY-MM-DD``, a (rows, 10) byte matrix; each distinct day is written once
    (NumPy's ``datetime_as_string``) and taken by row. None for years outside 1000–9999, or for days more
    than about 270 years apart."""
    if len(days) == 0:
        return np.zeros((0, 10), dtype=np.uint8)
    first, last = int(days.min()), int(days.max())
    if first < _FIRST_DAY or last > _LAST_DAY or last - first > 100_000:
        return None
    table = np.datetime_as_string(np.arange(first, last + 1).astype("datetime64[D]"), unit="D")
    return _ascii(table, 10)[days - first]


def _ascii(text: np.ndarray, width: int) -> np.ndarray:
    """NumPy text (``<U…``) of exactly ``width`` ASCII characters each, as a (rows, ``width``) byte matrix."""
    codes = text.view(np.uint32).reshape(len(text), text.dtype.itemsize // 4)
    if codes.shape[1] < width or (codes.shape[1] > width and codes[:, width].any()):
        raise ValueError(f"expected text of {width} characters")
    codes = codes[:, :width]
    if len(text) and (codes.max() >= 128 or codes[:, -1].min() == 0):
        raise ValueError(f"expected ASCII text of {width} characters")
    return codes.astype(np.uint8)


def _strings(data: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """An Arrow string array from the cells' bytes, one after the other, and each cell's length."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))
    )

"""How slem writes values into the files people read (SPEC §7): instants in site time with their offset,
exact Decimals, minutes, booleans; and each output table in its column order.

Vectorised: one call formats a whole column. Used by the output folder (:mod:`~slem_ml.outputs.writer`),
the printable invoices and the forecast files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from slem_ml.config.site import SiteConfig
from slem_ml.io import schema
from slem_ml.io.localtime import iso_local
from slem_ml.outputs.text_columns import date_array, iso_array

__all__ = [
    "aware_instants",
    "bool_text",
    "date_text",
    "decimal_text",
    "format_alerts",
    "format_cleaning_sessions",
    "format_invoice_lines",
    "format_invoices",
    "format_quarantine",
    "iso_text",
    "minutes_text",
]

_ALERT_TIMES = ("detected_at", "first_seen", "last_seen")
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def iso_text(values: pd.Series, timezone: str) -> pd.Series:
    """Instants as ISO 8601 in ``timezone`` with its offset, e.g. ``2025-02-10T18:00:00+01:00``.

    Milliseconds appear only where they are not zero (``…T18:00:00.250+01:00``). This is
    :func:`slem_ml.io.localtime.iso_local`, the text an invoice's content hash is computed from, so the file
    reproduces the hash. Missing values give ``""``; naive timestamps raise ``TypeError``.
    """
    local = aware_instants(values).dt.tz_convert(timezone)
    present = local.notna().to_numpy(dtype=bool)
    if present.all():  # no missing instants: the whole column as bytes at once
        fast = iso_array(pd.DatetimeIndex(local))
        if fast is not None:
            return pd.Series(fast, index=values.index, dtype="str")
    text = np.full(len(local), "", dtype=object)
    if present.any():
        text[present] = iso_local(pd.DatetimeIndex(local[present]))
    return pd.Series(text, index=values.index, dtype="str")


def date_text(values: pd.Series, timezone: str) -> pd.Series:
    """Dates as ``YYYY-MM-DD``; ``datetime.date`` values, or instants taken at their date in ``timezone``."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert(timezone)
    elif pd.api.types.infer_dtype(values, skipna=False) == "date":  # datetime.date, none missing
        ordinals = np.fromiter(
            map(dt.date.toordinal, values.to_numpy(dtype=object)), dtype=np.int64, count=len(values)
        )
        fast = date_array((ordinals - _EPOCH_ORDINAL).astype("datetime64[D]"))  # NumPy's own: 1 µs a date
        if fast is not None:
            return pd.Series(fast, index=values.index, dtype="str")
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values, format="ISO8601")
    return values.dt.strftime("%Y-%m-%d").fillna("").astype(str)


def decimal_text(values: pd.Series) -> pd.Series:
    """Decimals exactly as stored (``Decimal("0.50")`` → ``0.50``, never an exponent); missing → ``""``.

    Money must arrive as ``Decimal``: a float here would be a billing bug, so it raises ``TypeError``.
    """
    if len(values) and pd.api.types.infer_dtype(values, skipna=True) == "decimal":  # one C-level pass
        return _decimals_text(values)
    return values.map(_decimal_cell, na_action="ignore").fillna("").astype(str)


def _decimals_text(values: pd.Series) -> pd.Series:
    """:func:`decimal_text` of a column of Decimals (and missing values): ``str()`` of each, called from C
    (``map``, ~0.07 µs a cell; ``format(…, "f")`` costs twice that), then ``format(…, "f")`` for the few that
    ``str()`` writes with an exponent (``Decimal("0E-7")`` → ``0E-7``, ``Decimal("1E+2")`` → ``1E+2``),
    found with one search of the joined text. Without an ``E``, ``str()`` writes the plain notation, which
    is what ``"f"`` writes. ``Decimal("NaN")`` counts as missing, as pandas has it."""
    cells = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(cells, skipna=False) == "decimal":  # nothing missing but perhaps a NaN
        text = np.fromiter(map(str, cells), dtype=object, count=len(cells))
        joined = "".join(text)
        if "E" not in joined and "N" not in joined:  # the common case: plain numbers, no NaN
            return pd.Series(pa.array(text, type=pa.large_string()), index=values.index, dtype="str")
    present = ~values.isna().to_numpy(dtype=bool)
    shown = cells[present]
    text = np.fromiter(map(str, shown), dtype=object, count=len(shown))
    if "E" in "".join(text):
        exponent = np.flatnonzero(["E" in cell for cell in text])
        text[exponent] = [format(value, "f") for value in shown[exponent]]
    out = np.full(len(cells), "", dtype=object)
    out[present] = text
    return pd.Series(out, index=values.index, dtype="str")


def minutes_text(values: pd.Series) -> pd.Series:
    """Minutes with at most 3 decimals and no float noise.

    Decimals (billing's exact minutes) are written as stored (``67.500``); floats are rounded half up to
    3 decimals and written without trailing zeros (``15.000000000002`` → ``15``, ``7.25``, ``0.001``).
    """
    if pd.api.types.infer_dtype(values, skipna=True) == "decimal":
        return decimal_text(values)
    minutes = pd.to_numeric(values).astype("float64")
    missing = minutes.isna()
    thousandths = ((minutes.fillna(0).abs() * 1000 + 0.5) // 1).astype("int64")  # half up
    whole = (thousandths // 1000).astype(str)
    rest = thousandths % 1000
    frac = ("." + rest.astype(str).str.zfill(3).str.rstrip("0")).where(rest > 0, "")
    sign = pd.Series(np.where((minutes < 0) & (thousandths > 0), "-", ""), index=values.index, dtype="str")
    return (sign + whole + frac).where(~missing, "").astype(str)


def bool_text(values: pd.Series) -> pd.Series:
    """Booleans as ``true``/``false``; missing → ``""``."""
    flags = values.astype("boolean")
    text = pd.Series(np.where(flags.fillna(False).to_numpy(dtype=bool), "true", "false"), index=values.index)
    return text.where(flags.notna().to_numpy(dtype=bool), "").astype(str)


def _decimal_cell(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")


def aware_instants(values: pd.Series) -> pd.Series:
    """``values`` as tz-aware instants; raises ``TypeError`` for naive ones (an output never guesses)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ms, UTC]")
    if pd.api.types.is_object_dtype(values.dtype) and all(
        getattr(v, "tzinfo", None) is not None for v in values.dropna()
    ):  # tz-aware instants in more than one zone; only a fallback, scoring gives a tz dtype
        return pd.to_datetime(values, utc=True)
    raise TypeError(f"{values.name}: expected tz-aware timestamps, got {values.dtype}")


# --- tables as text ------------------------------------------------------------------------------


def format_invoice_lines(lines: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """``invoice_lines.csv`` as text cells (``schema.INVOICE_LINE_COLUMNS``, in that order), unescaped.

    Apart from ``invoice_id``, a line's cells are the text its invoice's ``content_hash`` is computed from
    (:func:`slem_ml.billing.invoices.canonical_lines_text`), unless a cell had to be escaped or quoted.
    """
    tz = site.site.timezone
    out = _columns(lines, schema.INVOICE_LINE_COLUMNS, "invoice lines", tz)
    out["date"] = date_text(out["date"], tz)
    for column in ("start", "end"):
        out[column] = iso_text(out[column], tz)
    out["minutes"] = minutes_text(out["minutes"])
    out["billable_minutes"] = _integer_text(out["billable_minutes"])
    for column in ("energy_kwh", "hours_charge", "energy_charge", "amount", "original_energy_kwh"):
        out[column] = decimal_text(out[column])
    out["adjusted"] = bool_text(out["adjusted"])
    return out


def format_invoices(invoices: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """``invoices.csv`` as text cells (``schema.INVOICE_COLUMNS``)."""
    out = _columns(invoices, schema.INVOICE_COLUMNS, "invoices", site.site.timezone)
    for column in ("revision", "lines"):
        out[column] = _integer_text(out[column])
    for column in ("billable_hours", "energy_kwh", "total", "held_total"):
        out[column] = decimal_text(out[column])
    return out


def format_cleaning_sessions(sessions: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """``cleaning_sessions.csv`` as text cells (``schema.CLEANING_COLUMNS``, then e.g. ``client_id``)."""
    tz = site.site.timezone
    out = _columns(sessions, schema.CLEANING_COLUMNS, "cleaning sessions", tz)
    out["date"] = date_text(out["date"], tz)
    for column in ("start", "end"):
        out[column] = iso_text(out[column], tz)
    for column in ("minutes", "excess_minutes"):
        out[column] = minutes_text(out[column])
    for column in ("wasted_kwh", "savings"):
        out[column] = decimal_text(out[column])
    for column in ("flagged", "inferred"):
        out[column] = bool_text(out[column])
    return out


def format_alerts(alerts: pd.DataFrame, site: SiteConfig) -> pd.DataFrame:
    """``alerts.csv`` (``schema.ALERT_COLUMNS``); ``score`` stays a number, rounded to 6 decimals."""
    out = _columns(alerts, schema.ALERT_COLUMNS, "alerts", site.site.timezone)
    for column in _ALERT_TIMES:
        out[column] = iso_text(out[column], site.site.timezone)
    out["score"] = pd.to_numeric(out["score"]).astype("float64").round(6)
    return out


def format_quarantine(quarantine: pd.DataFrame) -> pd.DataFrame:
    """``quarantine.csv``: ``line``, ``reason``, then the original columns as they were read."""
    out = quarantine.copy()
    for column in (schema.LINE, "reason"):
        if column not in out.columns:
            out[column] = pd.Series(dtype="object")
    rest = [c for c in out.columns if c not in (schema.LINE, "reason")]
    out = out[[schema.LINE, "reason", *rest]]
    out[schema.LINE] = _integer_text(out[schema.LINE])
    return out


def _columns(frame: pd.DataFrame, columns: Iterable[str], what: str, timezone: str) -> pd.DataFrame:
    """The contract's columns in order, then any further columns of ``frame`` in a generic text form."""
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")
    extra = [c for c in frame.columns if c not in columns]
    out = frame.loc[:, [*columns, *extra]]  # copy-on-write: a column is copied only if it is changed
    for column in extra:
        out[column] = _generic_text(out[column], timezone)
    return out


def _generic_text(values: pd.Series, timezone: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return iso_text(values, timezone)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "boolean":
        return bool_text(values)
    if kind == "decimal":
        return decimal_text(values)
    if kind == "date":
        return date_text(values, timezone)
    return values


def _integer_text(values: pd.Series) -> pd.Series:
    return values.astype("Int64").astype("string").fillna("").astype(str)

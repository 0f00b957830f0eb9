"""The printed summary of an invoice too long to print line by line (issue 15, item 6).

An invoice of more than :data:`PRINTED_LINES` lines would print as hundreds of pages (100,000 lines made
1,962): its printable version shows the lines summed by zone and local day instead, one row per (day, zone)
with the sessions, minutes, kWh and money of that zone on that day, and names the file beside it that holds
every line (``INV-….lines.csv``, written by :mod:`~slem_ml.outputs.invoice_render`). When there are more
(day, zone) pairs than :data:`PRINTED_LINES` too, the rows are one per zone for the month, and failing that
one per day (a month has at most 31).

The sums are exact: every money and energy column is turned into integers once (cents, micro-kWh,
thousandths of a minute; whole-array NumPy operations on the ``Decimal`` objects), summed per group with
integer arithmetic and written back as decimal text, so the rows add up to the invoice's total to the cent
(checked: a summary that does not is refused, as a line table that does not is). Only the printed rows
(at most :data:`PRINTED_LINES`) are formatted one by one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from slem_ml.billing.holds import counts_in_total

__all__ = ["PRINTED_LINES", "LineSums", "Summary", "scaled_integers", "summarise"]

#: Lines an invoice prints in full: about 40 A4 pages at the PDF's 51 lines a page. Above it the printed
#: invoice shows a summary of at most this many rows, and the lines go to a CSV file beside it.
PRINTED_LINES = 2_000

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: The exact integers summed, by line column: (unit, decimal places of the column).
_SCALED = {
    "minutes": 3,  # [1/1000 min]
    "energy_kwh": 6,  # [µkWh]
    "hours_charge": 2,  # [cent]
    "energy_charge": 2,
    "amount": 2,
}


@dataclass(frozen=True)
class LineSums:
    """Sums over the lines an invoice's total counts (billed and released), as exact integers."""

    minutes: int  # [1/1000 min]
    billable_minutes: int  # [min]
    energy_kwh: int  # [µkWh]
    hours_charge: int  # [cent]
    energy_charge: int  # [cent]
    amount: int  # [cent]


@dataclass(frozen=True)
class Summary:
    """An invoice's lines summed for print: ``rows`` in the line views' keys (see
    :func:`~slem_ml.outputs.invoice_render.invoice_view`), ``by`` what they are summed by."""

    by: str  # "zone and day", "zone" or "day"
    headings: tuple[str, str, str]  # the first three columns' headings
    rows: list[dict[str, Any]]
    lines: int  # the invoice's lines
    adjusted: int  # spike-adjusted lines among them
    uncounted: int  # lines not in the total (held, waived)
    totals: LineSums


def scaled_integers(values: pd.Series, places: int) -> np.ndarray:
    """Exact decimals (``Decimal``, or integers) times ``10**places`` as int64 [e.g. cents for 2].

    One NumPy operation on the object array (Python's ``Decimal`` arithmetic, exact); raises
    ``ValueError`` when a value has more decimals than ``places`` (it would not be a whole number).
    """
    objects = values.to_numpy(dtype=object)
    if not len(objects):
        return np.zeros(0, dtype=np.int64)
    fast = _arrow_scaled(objects, places)
    if fast is not None:
        return fast
    scaled = objects * (10**places)
    whole = scaled.astype(np.int64)
    if not (whole == scaled).all():
        raise ValueError(f"{values.name}: a value has more than {places} decimals")
    return whole


def _arrow_scaled(objects: np.ndarray, places: int) -> np.ndarray | None:
    """:func:`scaled_integers` by Arrow's conversion to ``decimal128(38, places)`` (C, exact: it refuses a
    value with more decimals, and ``Decimal("0.5")`` at 2 places is 50), read as int64 from its 16-byte
    integers; None when Arrow refuses a value, one is missing or a result needs more than 64 bits (the
    Python path then says why, as it did)."""
    if pd.api.types.infer_dtype(objects, skipna=False) != "decimal":  # floats, ints, missing: Python's way
        return None
    try:
        array = pa.array(objects, type=pa.decimal128(38, places))
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if array.null_count:
        return None
    words = np.frombuffer(array.buffers()[1], dtype=np.int64).reshape(-1, 2)[array.offset :][: len(array)]
    low, high = words[:, 0], words[:, 1]
    if not (high == (low >> 63)).all():  # little-endian two's complement: fits in int64
        return None
    return low.copy()


def summarise(lines: pd.DataFrame, limit: int) -> Summary:
    """The summary of one invoice's ``lines`` (its lines only, any order) in at most ``limit`` rows, or 31.

    Money, kWh and minutes are summed over the lines in the total (SPEC §8.4: billed and released);
    ``Sessions`` counts every line, and says how many of them are not in the total.
    """
    status = lines["status"].astype(str).to_numpy(dtype=object)
    counted = counts_in_total(status)
    values = {name: scaled_integers(lines[name], places) for name, places in _SCALED.items()}
    values["billable_minutes"] = lines["billable_minutes"].to_numpy(dtype=np.int64)
    values = {name: np.where(counted, column, 0) for name, column in values.items()}
    day_code, day_values = pd.factorize(lines["date"])
    days = [_as_date(day) for day in day_values]
    zone_code, zones = pd.factorize(lines["zone_id"].astype(str))
    pairs, pair_code = np.unique(day_code.astype(np.int64) * len(zones) + zone_code, return_inverse=True)
    if len(pairs) <= limit:
        by, group = "zone and day", pair_code
        keys = [(days[p // len(zones)], zones[p % len(zones)]) for p in pairs.tolist()]
        order = sorted(range(len(keys)), key=keys.__getitem__)
    elif len(zones) <= limit:
        by, group = "zone", zone_code
        order = sorted(range(len(zones)), key=lambda i: zones[i])
    else:
        by, group = "day", day_code
        order = sorted(range(len(days)), key=lambda i: days[i])
    groups = int(group.max()) + 1 if len(group) else 0
    sums = {name: _group_sums(group, column, groups) for name, column in values.items()}
    count = np.bincount(group, minlength=groups)
    other = np.bincount(group, weights=~counted, minlength=groups).astype(np.int64)
    if by == "zone and day":
        first = [f"{_WEEKDAYS[keys[i][0].weekday()]} {keys[i][0].isoformat()}" for i in range(groups)]
        second = [str(keys[i][1]) for i in range(groups)]
    elif by == "zone":
        spread = _distinct_per_group(group, day_code, groups)
        first = [f"{n} day{'s' * (n != 1)}" for n in spread.tolist()]
        second = [str(zone) for zone in zones]
    else:
        spread = _distinct_per_group(group, zone_code, groups)
        first = [f"{_WEEKDAYS[day.weekday()]} {day.isoformat()}" for day in days]
        second = [f"{n:,} zone{'s' * (n != 1)}" for n in spread.tolist()]
    columns = {name: sums[name].tolist() for name in sums}
    rows = [
        {
            "when": first[i],
            "zone_id": second[i],
            "time": _sessions_text(int(count[i]), int(other[i])),
            "minutes": _fixed(columns["minutes"][i], 3).rstrip("0").rstrip("."),
            "billable_minutes": f"{columns['billable_minutes'][i]:,}",
            "energy_kwh": _fixed(columns["energy_kwh"][i], 6),
            "hours_charge": _fixed(columns["hours_charge"][i], 2),
            "energy_charge": _fixed(columns["energy_charge"][i], 2),
            "amount": _fixed(columns["amount"][i], 2),
            "status": "billed",
            "adjusted": False,
            "original_energy_kwh": "",
        }
        for i in order
    ]
    headings = {
        "zone and day": ("Date", "Zone", "Sessions"),
        "zone": ("Days", "Zone", "Sessions"),
        "day": ("Date", "Zones", "Sessions"),
    }[by]
    totals = LineSums(**{name: int(column.sum()) for name, column in values.items()})
    adjusted = int(lines["adjusted"].astype(bool).sum())
    return Summary(by, headings, rows, len(lines), adjusted, int((~counted).sum()), totals)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return pd.Timestamp(value).date()


def _group_sums(group: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per group code (0 … ``groups`` − 1)."""
    out = np.zeros(groups, dtype=np.int64)
    np.add.at(out, group, values)
    return out


def _distinct_per_group(group: np.ndarray, other: np.ndarray, groups: int) -> np.ndarray:
    """How many distinct ``other`` codes each group has."""
    pairs = np.unique(group.astype(np.int64) << 32 | other.astype(np.int64))
    return np.bincount((pairs >> 32).astype(np.int64), minlength=groups)


def _sessions_text(count: int, uncounted: int) -> str:
    return f"{count:,}" if not uncounted else f"{count:,} ({uncounted:,} not billed)"


def _fixed(value: int, places: int) -> str:
    """An integer of ``10**-places`` units as decimal text with thousands separators (``1,234.50``)."""
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 10**places)
    return f"{sign}{whole:,}.{part:0{places}d}"

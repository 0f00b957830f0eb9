"""What a printed invoice shows (SPEC §3.7, §7): :func:`invoice_view`, one view for the HTML page
(:mod:`~slem_ml.outputs.invoice_render`) and the PDF (:mod:`~slem_ml.outputs.invoice_pdf`).

The supplier header, the client and its contract terms (hours, grace, block rounding, rates), a line per
overtime session, the totals, the content hash and a note on how overtime is computed — all as display text.
A month of a large client has thousands of lines: the view is built a column at a time. An invoice of more
than :data:`~slem_ml.outputs.invoice_summary.PRINTED_LINES` lines shows a summary by zone and day instead
(:mod:`~slem_ml.outputs.invoice_summary`), its lines going to a CSV file beside it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from slem_ml import __version__
from slem_ml.billing.holds import counts_in_total
from slem_ml.config.site import SiteConfig
from slem_ml.outputs.formatting import aware_instants as _aware
from slem_ml.outputs.formatting import minutes_text
from slem_ml.outputs.invoice_summary import PRINTED_LINES, Summary, summarise
from slem_ml.outputs.invoice_terms import (
    HELD_TEXT,
    VOID_TEXT,
    contract_terms,
    number_text,
    overtime_note,
    service_days,
    supplier_lines,
    tax_text,
)

__all__ = [
    "HELD_TEXT",
    "LINES_SUFFIX",
    "PRINTED_LINES",
    "SUPPLIER_TITLE",
    "VOID_TEXT",
    "invoice_file_name",
    "invoice_view",
]

SUPPLIER_TITLE = "slem — supplementary lighting invoice"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
#: The file beside a summarised printable invoice that holds all its lines: ``INV-….lines.csv``.
LINES_SUFFIX = ".lines.csv"


def invoice_view(
    invoice_row: Mapping[Any, Any] | pd.Series,
    lines_frame: pd.DataFrame,
    site: SiteConfig,
    *,
    issued: dt.date | None = None,
    service: tuple[dt.date, dt.date] | None = None,
    limit: int | None = PRINTED_LINES,
    lines_file: str | None = None,
) -> dict[str, Any]:
    """Everything a printed invoice shows, as display text; shared by the HTML and the PDF renderer.

    ``service`` is the first and last date the client has readings in the month (SPEC §8: the service
    period); without it the whole month is shown.

    ``lines_frame`` may hold other invoices' lines too: only those with the row's ``invoice_id`` are used.
    ``issued`` defaults to today in the site timezone. An invoice of more than ``limit`` lines (None: no
    limit) shows them summed by zone and day (:mod:`~slem_ml.outputs.invoice_summary`; ``view["lines"]``
    then holds the summary's rows) and names ``lines_file`` as the file with every line (default
    ``INV-….lines.csv``, as :func:`start_invoice_files_of` writes it). Raises ``ValueError`` when the lines
    do not add up to the invoice (count or total): such an invoice must not be printed.
    """
    row = dict(invoice_row)
    invoice_id = str(row["invoice_id"])
    frame = _own_lines(lines_frame, invoice_id)
    if limit is not None and len(frame) > limit:
        name = lines_file or invoice_file_name(invoice_id, LINES_SUFFIX)
        return _summary_view(row, frame, site, issued, service, summarise(frame, limit), name)
    tz = site.site.timezone
    lines = _invoice_lines(frame, tz)
    billed = counts_in_total(lines["status"]).tolist()  # SPEC §8.4: what the total counts
    amounts = sum((a for a, b in zip(lines["amount"], billed, strict=True) if b), Decimal("0"))
    _check(row, len(lines["date"]), amounts)
    views = _line_views(lines)
    view = _head_view(row, site, issued, service)
    has_adjusted = any(line["adjusted"] for line in views)
    return view | {
        "lines": views,
        "headings": _headings(("Date", "Zone", f"Time ({tz})"), view["currency"]),
        "summary": None,
        "has_adjusted": has_adjusted,
        "void": not views,
        "totals": view["totals"]
        | {
            "lines": len(views),
            "billable_minutes": str(int(_billed_sum(lines["billable_minutes"], billed))),
            "hours_charge": number_text(_billed_sum(lines["hours_charge"], billed)),
            "energy_charge": number_text(_billed_sum(lines["energy_charge"], billed)),
        },
        "has_held": any(s == "held" for s in lines["status"]),
        "note": ([VOID_TEXT] if not views else [])
        + overtime_note(view["terms"], view["currency"], has_adjusted)
        + ([HELD_TEXT] if any(s != "billed" for s in lines["status"]) else []),
    }


def _own_lines(frame: pd.DataFrame, invoice_id: str) -> pd.DataFrame:
    """The lines of ``invoice_id`` in ``frame`` (all of them, without a copy, when there are no others)."""
    if "invoice_id" in frame.columns:
        mine = frame["invoice_id"].astype(str).to_numpy(dtype=object) == invoice_id
        if not mine.all():
            return frame[mine]
    return frame


def _check(row: Mapping[str, Any], count: int, amounts: Decimal) -> None:
    if count != int(row["lines"]) or amounts != row["total"]:
        raise ValueError(
            f"{row['invoice_id']}: {count} line(s) adding up to {amounts} do not match the invoice "
            f"({row['lines']} line(s), total {row['total']})"
        )


def _head_view(
    row: Mapping[str, Any], site: SiteConfig, issued: dt.date | None, service: tuple[dt.date, dt.date] | None
) -> dict[str, Any]:
    """What every printed invoice shows above and below its table: supplier, invoice, client, terms,
    the invoice's own totals, the hash."""
    tz = site.site.timezone
    client_id = str(row["client_id"])
    contract = site.clients.get(client_id)
    year, month = (int(part) for part in str(row["period"]).split("-"))
    currency = str(row.get("currency") or site.site.currency)
    if issued is None:
        issued = dt.datetime.now(ZoneInfo(tz)).date()
    supplier = site.supplier
    return {
        "supplier_title": SUPPLIER_TITLE if supplier is None or not supplier.name else supplier.name,
        "supplier_lines": supplier_lines(supplier),
        "tax": tax_text(row["total"], supplier),
        "site_timezone": tz,
        "currency": currency,
        "invoice_id": str(row["invoice_id"]),
        "revision": int(row["revision"]),
        "issued": issued.isoformat(),
        "period": str(row["period"]),
        "period_label": f"{calendar.month_name[month]} {year}",
        "period_days": service_days(service, year, month, calendar.monthrange(year, month)[1]),
        "client_id": client_id,
        "client_name": contract.name if contract is not None else client_id,
        "terms": contract_terms(contract, site),
        "totals": {
            "billable_hours": number_text(row["billable_hours"]),
            "energy_kwh": number_text(row["energy_kwh"]),
            "total": number_text(row["total"]),
            "held_total": number_text(row.get("held_total") or Decimal("0.00")),
        },
        "content_hash": str(row["content_hash"]),
        "slem_version": __version__,
    }


def _headings(first: tuple[str, str, str], currency: str) -> list[str]:
    """The table's nine column headings: the first three by what a row is, then the numbers."""
    return [
        *first,
        "Minutes",
        "Billable min",
        "Energy kWh",
        "Hours charge",
        "Energy charge",
        f"Amount {currency}",
    ]


def _summary_view(
    row: Mapping[str, Any],
    frame: pd.DataFrame,
    site: SiteConfig,
    issued: dt.date | None,
    service: tuple[dt.date, dt.date] | None,
    summary: Summary,
    lines_file: str,
) -> dict[str, Any]:
    """:func:`invoice_view` of an invoice printed as a summary (its totals checked to the cent)."""
    sums = summary.totals
    total = Decimal(sums.amount).scaleb(-2)
    _check(row, summary.lines, total)
    view = _head_view(row, site, issued, service)
    statuses = frame["status"].astype(str) if "status" in frame.columns else pd.Series(["billed"])
    not_billed = bool((statuses != "billed").any())
    return view | {
        "lines": summary.rows,
        "headings": _headings(summary.headings, view["currency"]),
        "summary": {
            "by": summary.by,
            "rows": len(summary.rows),
            "lines_file": lines_file,
            "text": _summary_text(summary, lines_file),
        },
        "has_adjusted": False,
        "void": False,
        "totals": view["totals"]
        | {
            "lines": summary.lines,
            "billable_minutes": str(sums.billable_minutes),
            "hours_charge": number_text(Decimal(sums.hours_charge).scaleb(-2)),
            "energy_charge": number_text(Decimal(sums.energy_charge).scaleb(-2)),
        },
        "has_held": bool((statuses == "held").any()),
        "note": overtime_note(view["terms"], view["currency"], False) + ([HELD_TEXT] if not_billed else []),
    }


def _summary_text(summary: Summary, lines_file: str) -> str:
    """The paragraph above a summary's table: why, what a row is, where the lines are."""
    rows = {"zone and day": "zone and local day", "zone": "zone over the month", "day": "local day"}
    what = rows[summary.by]
    text = (
        f"This invoice has {summary.lines:,} lines, too many to print: each row below sums the lines of one "
        f"{what} (sessions, minutes, energy and charges), and the totals are the invoice's. Every line is in "
        f"the file {lines_file} beside this one."
    )
    if summary.uncounted:
        text += f" Sessions not billed ({summary.uncounted:,}: held or waived) are counted, not summed."
    if summary.adjusted:
        text += (
            f" {summary.adjusted:,} session{'s' * (summary.adjusted != 1)} with a meter spike "
            f"{'are' if summary.adjusted != 1 else 'is'} billed at the zone's expected power (marked in the "
            "file)."
        )
    return text


def _invoice_lines(frame: pd.DataFrame, timezone: str) -> dict[str, list[Any]]:
    """The invoice's lines as column lists in print order (date, zone, start); times as wall-clock ns.

    Plain lists, not a frame: an invoice has from one to a few thousand lines, and pandas' per-call overhead
    (filter, sort, ``to_dict``) would cost more than the work for most of them. Per-line work stays in
    list comprehensions and the times are converted in one vectorised step.
    """
    starts = _aware(frame["start"])
    columns: dict[str, list[Any]] = {name: frame[name].tolist() for name in _LINE_VALUES}
    columns["date"] = [day if type(day) is dt.date else _as_date(day) for day in frame["date"].tolist()]
    columns["zone_id"] = [str(zone) for zone in frame["zone_id"].tolist()]
    columns["adjusted"] = frame["adjusted"].astype(bool).tolist()
    columns["status"] = (
        frame["status"].astype(str).tolist() if "status" in frame.columns else ["billed"] * len(frame)
    )
    columns["original_energy_kwh"] = (
        frame["original_energy_kwh"].tolist()
        if "original_energy_kwh" in frame.columns
        else [None] * len(frame)
    )
    columns["instant"] = _ns(starts).tolist()  # orders sessions in the hour repeated when DST ends
    columns["start"] = _ns(starts.dt.tz_convert(timezone).dt.tz_localize(None)).tolist()
    columns["end"] = _ns(_aware(frame["end"]).dt.tz_convert(timezone).dt.tz_localize(None)).tolist()
    days, zones, instants = columns["date"], columns["zone_id"], columns["instant"]
    order = sorted(range(len(days)), key=lambda i: (days[i], zones[i], instants[i]))
    if order != list(range(len(order))):  # billing's lines come in this order already
        columns = {name: [values[i] for i in order] for name, values in columns.items()}
    return columns


_LINE_VALUES = ("minutes", "billable_minutes", "energy_kwh", "hours_charge", "energy_charge", "amount")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SECOND_NS = 10**9
_MINUTE_NS = 60 * _SECOND_NS
_DAY_NS = 1440 * _MINUTE_NS
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_HHMM = tuple(f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(1440))


def _ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since 1970 (UTC instants, or wall-clock times when ``values`` are naive)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return pd.Timestamp(value).date()


def _billed_sum(values: list[Any], billed: list[bool]) -> Any:
    """The sum of ``values`` over the lines in the total (billed or released)."""
    return sum((v for v, b in zip(values, billed, strict=True) if b), Decimal("0.00"))


def _line_views(lines: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """One dict of display text per line (vectorised per column: a large invoice has thousands of lines).

    ``when``, ``zone_id`` and ``time`` are the first three cells as printed (a summary's rows have the
    same keys, :mod:`~slem_ml.outputs.invoice_summary`); ``date``, ``weekday``, ``start``, ``end`` their
    parts.
    """
    days = lines["date"]
    ordinals = np.fromiter(map(dt.date.toordinal, days), dtype=np.int64, count=len(days))  # NumPy's: 2 µs
    day_ns = (ordinals - _EPOCH_ORDINAL) * _DAY_NS
    adjusted = lines["adjusted"]
    original = [
        number_text(value) if flag and value is not None else ""
        for flag, value in zip(adjusted, lines["original_energy_kwh"], strict=True)
    ]
    dates = [day.isoformat() for day in days]
    weekdays = [_WEEKDAYS[day.weekday()] for day in days]
    starts = _clocks(np.array(lines["start"], dtype=np.int64), day_ns)
    ends = _clocks(np.array(lines["end"], dtype=np.int64), day_ns)
    columns = {
        "date": dates,
        "weekday": weekdays,
        "when": [f"{weekday} {date}" for weekday, date in zip(weekdays, dates, strict=True)],
        "zone_id": lines["zone_id"],
        "start": starts,
        "end": ends,
        "time": [f"{start}–{end}" for start, end in zip(starts, ends, strict=True)],
        "minutes": minutes_text(pd.Series(lines["minutes"], dtype=object)).tolist(),
        "billable_minutes": [str(int(value)) for value in lines["billable_minutes"]],
        "energy_kwh": _numbers(lines["energy_kwh"]),
        "hours_charge": _numbers(lines["hours_charge"]),
        "energy_charge": _numbers(lines["energy_charge"]),
        "amount": [
            text if status == "billed" else f"{text} {status}"
            for text, status in zip(_numbers(lines["amount"]), lines["status"], strict=True)
        ],
        "status": lines["status"],
        "adjusted": adjusted,
        "original_energy_kwh": original,
    }
    keys = tuple(columns)
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _clocks(wall_ns: np.ndarray, day_ns: np.ndarray) -> list[str]:
    """Local wall times relative to each line's day (``18:05``, ``19:12:30``, ``02:00 (+1d)``).

    The midnight that ends a day's session is ``24:00``.
    """
    since = wall_ns - day_ns
    days = since // _DAY_NS
    within = since - days * _DAY_NS
    minutes = (within // _MINUTE_NS).tolist()
    seconds = (within // _SECOND_NS % 60).tolist()
    whole = (within % _MINUTE_NS == 0).tolist()
    out = []
    for day, minute, second, exact in zip(days.tolist(), minutes, seconds, whole, strict=True):
        if day > 0 and exact and minute == 0:
            out.append("24:00")
            continue
        text = _HHMM[minute] if exact else f"{_HHMM[minute]}:{second:02d}"
        out.append(text if day == 0 else f"{text} (+{day}d)")
    return out


def _numbers(values: list[Any]) -> list[str]:
    return [format(value, ",f") if type(value) is Decimal else number_text(value) for value in values]


def invoice_file_name(invoice_id: str, suffix: str = ".html") -> str:
    """A file name for an invoice that is safe on every file system (letters, digits, ``-`` and ``_``).

    Ids that had to be changed get a short hash of the original, so two clients never share a file.
    """
    name = _SAFE_NAME.sub("_", invoice_id).strip("_") or "invoice"
    if name != invoice_id:
        name += "-" + hashlib.sha256(invoice_id.encode("utf-8")).hexdigest()[:8]
    return name + suffix

"""Printable invoices (SPEC §3.7, §7): one self-contained HTML page per invoice, and the same as PDF.

Both renderings come from one view (:func:`invoice_view`): the supplier header, the client and its contract
terms (hours, grace, block rounding, rates), a line per overtime session, the totals, the content hash and a
note on how overtime is computed. The HTML is Jinja2 with autoescaping on, so a client name or zone id with
markup in it is shown, never run. It has no external assets and prints on A4. The PDF is drawn by
:mod:`~slem_ml.outputs.invoice_pdf`. A month of a large client has thousands of lines, and ``slem score``
writes every invoice: the view is built a column at a time, and computed once for both renderings.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from slem_ml import __version__, forked
from slem_ml.billing.holds import counts_in_total
from slem_ml.config.site import ClientContract, SiteConfig
from slem_ml.config.supplier import SupplierInfo, tax_of
from slem_ml.outputs.formatting import aware_instants as _aware
from slem_ml.outputs.formatting import minutes_text
from slem_ml.outputs.invoice_pdf import preload as preload_pdf
from slem_ml.outputs.invoice_pdf import render_view_pdf
from slem_ml.scoring.result import ScoringResult

__all__ = [
    "SUPPLIER_TITLE",
    "invoice_file_name",
    "invoice_view",
    "render_invoice_html",
    "render_invoice_pdf",
    "pdf_standby",
    "start_invoice_files",
    "start_invoice_files_of",
    "write_invoice_files",
]

SUPPLIER_TITLE = "slem — supplementary lighting invoice"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
# Letters that Unicode does not decompose into a base letter plus accent.


def invoice_view(
    invoice_row: Mapping[Any, Any] | pd.Series,
    lines_frame: pd.DataFrame,
    site: SiteConfig,
    *,
    issued: dt.date | None = None,
    service: tuple[dt.date, dt.date] | None = None,
) -> dict[str, Any]:
    """Everything a printed invoice shows, as display text; shared by the HTML and the PDF renderer.

    ``service`` is the first and last date the client has readings in the month (SPEC §8: the service
    period); without it the whole month is shown.

    ``lines_frame`` may hold other invoices' lines too: only those with the row's ``invoice_id`` are used.
    ``issued`` defaults to today in the site timezone. Raises ``ValueError`` when the lines do not add up to
    the invoice (count or total): such an invoice must not be printed.
    """
    row = dict(invoice_row)
    invoice_id = str(row["invoice_id"])
    tz = site.site.timezone
    lines = _invoice_lines(lines_frame, invoice_id, tz)
    billed = counts_in_total(lines["status"]).tolist()  # SPEC §8.4: what the total counts
    amounts = sum((a for a, b in zip(lines["amount"], billed, strict=True) if b), Decimal("0"))
    if len(lines["date"]) != int(row["lines"]) or amounts != row["total"]:
        raise ValueError(
            f"{invoice_id}: {len(lines['date'])} line(s) adding up to {amounts} do not match the invoice "
            f"({row['lines']} line(s), total {row['total']})"
        )
    client_id = str(row["client_id"])
    contract = site.clients.get(client_id)
    year, month = (int(part) for part in str(row["period"]).split("-"))
    month_name = calendar.month_name[month]
    last_day = calendar.monthrange(year, month)[1]
    currency = str(row.get("currency") or site.site.currency)
    if issued is None:
        issued = dt.datetime.now(ZoneInfo(tz)).date()
    views = _line_views(lines)
    terms = _terms(contract, site)
    has_adjusted = any(view["adjusted"] for view in views)
    supplier = site.supplier
    tax = _tax(row["total"], supplier)
    return {
        "supplier_title": SUPPLIER_TITLE if supplier is None or not supplier.name else supplier.name,
        "supplier_lines": _supplier_lines(supplier),
        "tax": tax,
        "site_timezone": tz,
        "currency": currency,
        "invoice_id": invoice_id,
        "revision": int(row["revision"]),
        "issued": issued.isoformat(),
        "period": str(row["period"]),
        "period_label": f"{month_name} {year}",
        "period_days": _service_days(service, year, month, last_day),
        "client_id": client_id,
        "client_name": contract.name if contract is not None else client_id,
        "terms": terms,
        "lines": views,
        "has_adjusted": has_adjusted,
        "void": not views,
        "totals": {
            "lines": len(views),
            "billable_minutes": str(int(_billed_sum(lines["billable_minutes"], billed))),
            "billable_hours": _number(row["billable_hours"]),
            "energy_kwh": _number(row["energy_kwh"]),
            "hours_charge": _number(_billed_sum(lines["hours_charge"], billed)),
            "energy_charge": _number(_billed_sum(lines["energy_charge"], billed)),
            "total": _number(row["total"]),
            "held_total": _number(row.get("held_total") or Decimal("0.00")),
        },
        "has_held": any(s == "held" for s in lines["status"]),
        "content_hash": str(row["content_hash"]),
        "slem_version": __version__,
        "note": ([VOID_TEXT] if not views else [])
        + _note(terms, currency, has_adjusted)
        + ([HELD_TEXT] if any(s != "billed" for s in lines["status"]) else []),
    }


def _invoice_lines(frame: pd.DataFrame, invoice_id: str, timezone: str) -> dict[str, list[Any]]:
    """The invoice's lines as column lists in print order (date, zone, start); times as wall-clock ns.

    Plain lists, not a frame: an invoice has from one to a few thousand lines, and pandas' per-call overhead
    (filter, sort, ``to_dict``) would cost more than the work for most of them. Per-line work stays in
    list comprehensions and the times are converted in one vectorised step.
    """
    if "invoice_id" in frame.columns:
        mine = frame["invoice_id"].astype(str).to_numpy(dtype=object) == invoice_id
        if not mine.all():
            frame = frame[mine]
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


def _terms(contract: ClientContract | None, site: SiteConfig) -> dict[str, Any]:
    billing = site.billing
    hourly = contract.hourly_rate if contract is not None else billing.hourly_rate
    energy = contract.energy_rate if contract is not None else billing.energy_rate
    grace = contract.grace_minutes if contract is not None else billing.grace_minutes
    holidays = bool(site.site.holiday_country or site.site.extra_holidays)
    return {
        "hours": contract.hours_text() if contract is not None else "not in the contracts file",
        "grace_minutes": grace,
        "grace_text": f"{grace} min before opening and after closing" if grace else "none",
        "block_minutes": billing.block_minutes,
        "hourly_rate": _rate(hourly),
        "energy_rate": _rate(energy),
        "holidays_closed": holidays and not (contract is not None and contract.work_on_holidays),
    }


#: The first paragraph of a void revision's note (SPEC §8.3); the HTML template shows it as a banner.
VOID_TEXT = (
    "VOID: this revision cancels the earlier revisions of this invoice. The readings now stored for the "
    "period show no lighting outside contracted hours; nothing is owed."
)


#: The note's last paragraph when lines are held, released or waived (SPEC §8.4); the HTML words it alike.
HELD_TEXT = (
    "Lines marked held overlap a time when the zone's lights were stuck on (a fault, not use): they are "
    "not in the total until a manager has reviewed them. Released lines are billed after that review; "
    "waived lines are never billed."
)


def _supplier_lines(supplier: SupplierInfo | None) -> list[str]:
    """The header lines under the supplier's name: address, VAT id, payment terms."""
    if supplier is None:
        return []
    lines = [part.strip() for part in supplier.address.splitlines() if part.strip()]
    if supplier.vat_id:
        lines.append(f"VAT id {supplier.vat_id}")
    if supplier.payment_terms_days is not None:
        lines.append(f"Payment due within {supplier.payment_terms_days} days of the issue date")
    return lines


def _tax(total: Decimal, supplier: SupplierInfo | None) -> dict[str, str] | None:
    """Net, tax and gross as text when the supplier has a tax rate (SPEC §8), else None."""
    if supplier is None or supplier.tax_rate is None:
        return None
    net = Decimal(total)
    tax = tax_of(net, supplier.tax_rate)
    percent = (supplier.tax_rate * 100).normalize()
    return {
        "label": f"Tax {percent:f} %",
        "net": _number(net),
        "tax": _number(tax),
        "gross": _number(net + tax),
    }


def _service_days(service: tuple[dt.date, dt.date] | None, year: int, month: int, last_day: int) -> str:
    """The service period as shown: ``10–11 February 2025``; the whole month when not known."""
    name = calendar.month_name[month]
    if service is None:
        return f"1–{last_day} {name} {year}"
    first, last = service
    return f"{first.day} {name} {year}" if first == last else f"{first.day}–{last.day} {name} {year}"


def _billed_sum(values: list[Any], billed: list[bool]) -> Any:
    """The sum of ``values`` over the lines in the total (billed or released)."""
    return sum((v for v, b in zip(values, billed, strict=True) if b), Decimal("0.00"))


def _note(terms: Mapping[str, Any], currency: str, has_adjusted: bool) -> list[str]:
    """How overtime is computed, in paragraphs (the PDF's; the HTML template words it the same)."""
    grace = f", widened by {terms['grace_minutes']} min at both ends" if terms["grace_minutes"] else ""
    holidays = "; public holidays count as closed" if terms["holidays_closed"] else ""
    note = [
        f"Lighting power in each zone is metered continuously. Time with the lights on outside your "
        f"contracted hours ({terms['hours']}{grace}) is overtime{holidays}. Time when cleaning staff are "
        f"present is not billed to you.",
        f"Each session — an unbroken run of overtime in one zone on one day, in site local time — is "
        f"rounded up to whole {terms['block_minutes']}-minute blocks and charged at {terms['hourly_rate']} "
        f"{currency} per zone-hour, plus the energy it used at {terms['energy_rate']} {currency} per kWh. "
        f"Each charge is rounded half up to the cent; the total is the sum of the lines.",
    ]
    if has_adjusted:
        note.append(
            "† A meter spike was detected during this session: its energy is billed at the zone's expected "
            "power, and the metered value is shown below it for reference."
        )
    return note


def _line_views(lines: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """One dict of display text per line (vectorised per column: a large invoice has thousands of lines)."""
    days = lines["date"]
    day_ns = np.array(days, dtype="datetime64[D]").astype("datetime64[ns]").astype(np.int64)
    adjusted = lines["adjusted"]
    original = [
        _number(value) if flag and value is not None else ""
        for flag, value in zip(adjusted, lines["original_energy_kwh"], strict=True)
    ]
    columns = {
        "date": [day.isoformat() for day in days],
        "weekday": [_WEEKDAYS[day.weekday()] for day in days],
        "zone_id": lines["zone_id"],
        "start": _clocks(np.array(lines["start"], dtype=np.int64), day_ns),
        "end": _clocks(np.array(lines["end"], dtype=np.int64), day_ns),
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
    return [format(value, ",f") if type(value) is Decimal else _number(value) for value in values]


def _number(value: Any) -> str:
    """A Decimal with thousands separators, keeping its stored decimals (``1,234.50``)."""
    return format(Decimal(value), ",f")


def _rate(value: Decimal) -> str:
    """A rate with at least 2 decimals (``15.00``, ``0.20``, ``0.175``)."""
    value = Decimal(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, ",f")


# --- HTML ----------------------------------------------------------------------------------------


@functools.cache
def _environment() -> Any:
    import jinja2  # lazy: only invoice writing needs it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("slem_ml.outputs", "templates"),
        autoescape=True,  # client names and zone ids come from user files
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_invoice_html(
    invoice_row: Mapping[Any, Any] | pd.Series,
    lines_frame: pd.DataFrame,
    site: SiteConfig,
    *,
    issued: dt.date | None = None,
    service: tuple[dt.date, dt.date] | None = None,
) -> str:
    """One invoice as a self-contained, printable HTML page (A4); ``service`` as :func:`invoice_view`."""
    return _html(invoice_view(invoice_row, lines_frame, site, issued=issued, service=service))


def _html(view: Mapping[str, Any]) -> str:
    template = _environment().get_template("invoice.html")
    return str(template.render(**view, rows_html=_rows_html(view["lines"])))


def _rows_html(lines: list[dict[str, Any]]) -> Any:
    """The table body, one f-string per line: jinja's loop cost 30 µs a line on month-long invoices.

    Every cell goes through ``escape`` as the template would (zone ids are the user's text).
    """
    rows = []
    for line in lines:
        energy = escape(line["energy_kwh"])
        if line["adjusted"]:
            metered = escape(line["original_energy_kwh"])
            energy = Markup(f'{energy} †<span class="orig">metered {metered}</span>')
        rows.append(
            f'<tr><td class="nowrap">{escape(line["weekday"])} {escape(line["date"])}</td>'
            f'<td class="zone">{escape(line["zone_id"])}</td>'
            f'<td class="nowrap">{escape(line["start"])}–{escape(line["end"])}</td>'
            f'<td class="num">{escape(line["minutes"])}</td>'
            f'<td class="num">{escape(line["billable_minutes"])}</td>'
            f'<td class="num">{energy}</td>'
            f'<td class="num">{escape(line["hours_charge"])}</td>'
            f'<td class="num">{escape(line["energy_charge"])}</td>'
            f'<td class="num">{escape(line["amount"])}</td></tr>\n'
        )
    return Markup("".join(rows))


def render_invoice_pdf(
    invoice_row: Mapping[Any, Any] | pd.Series,
    lines_frame: pd.DataFrame,
    site: SiteConfig,
    *,
    issued: dt.date | None = None,
    service: tuple[dt.date, dt.date] | None = None,
) -> bytes:
    """One invoice as an A4 PDF with the content of the HTML page (:mod:`slem_ml.outputs.invoice_pdf`).

    Uses the PDF core fonts (Windows-1252): letters outside it are reduced to ASCII (``Ł`` → ``L``).
    The output is reproducible: the PDF's creation date is the issue date.
    """

    return render_view_pdf(invoice_view(invoice_row, lines_frame, site, issued=issued, service=service))


def invoice_file_name(invoice_id: str, suffix: str = ".html") -> str:
    """A file name for an invoice that is safe on every file system (letters, digits, ``-`` and ``_``).

    Ids that had to be changed get a short hash of the original, so two clients never share a file.
    """
    name = _SAFE_NAME.sub("_", invoice_id).strip("_") or "invoice"
    if name != invoice_id:
        name += "-" + hashlib.sha256(invoice_id.encode("utf-8")).hexdigest()[:8]
    return name + suffix


def write_invoice_files(
    result: ScoringResult, out_dir: str | Path, *, issued: dt.date | None = None
) -> list[Path]:
    """Write ``out_dir/invoices/INV-….html`` and ``.pdf`` for every invoice; the folder is always made."""
    return start_invoice_files(result, out_dir, issued=issued)()


def start_invoice_files(
    result: ScoringResult,
    out_dir: str | Path,
    *,
    issued: dt.date | None = None,
    standby: forked.Standby | None = None,
) -> Callable[[], list[Path]]:
    """Start writing the printable invoices: the PDFs in a child process at once (``standby``'s, when
    given: it has fpdf2 imported already, see :func:`pdf_standby`), the HTML when the returned function is
    called (which then waits for the PDFs and returns every path written)."""
    return start_invoice_files_of(
        result.invoices,
        result.invoice_lines,
        result.site,
        out_dir,
        issued=issued,
        service_periods=result.service_periods,
        standby=standby,
    )


def pdf_standby() -> forked.Standby:
    """A child process that imports fpdf2 now (0.26 s) and then waits to write the PDFs
    (:func:`start_invoice_files`): start it before the work that comes first, and close it after."""
    return forked.Standby(preload_pdf)


def start_invoice_files_of(
    invoices: pd.DataFrame,
    lines: pd.DataFrame,
    site: SiteConfig,
    out_dir: str | Path,
    *,
    issued: dt.date | None = None,
    service_periods: Mapping[str, tuple[dt.date, dt.date]] | None = None,
    standby: forked.Standby | None = None,
) -> Callable[[], list[Path]]:
    """:func:`start_invoice_files` for ``invoices`` and their ``lines`` (the ``invoices.csv`` and
    ``invoice_lines.csv`` frames of SPEC §7); ``service_periods`` by invoice id (see :func:`invoice_view`)."""
    periods = service_periods or {}
    folder = Path(out_dir) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    by_invoice = dict(tuple(lines.groupby("invoice_id", sort=False)))
    no_lines = lines.iloc[:0]  # a void revision (SPEC §8.3)
    views = [
        invoice_view(
            row,
            by_invoice.get(str(row["invoice_id"]), no_lines),
            site,
            issued=issued,
            service=periods.get(str(row["invoice_id"])),
        )  # fmt: skip
        for row in invoices.to_dict("records")
    ]
    work = functools.partial(_write_pdfs, views, folder)
    pdfs = standby.run(work) if standby is not None else forked.start(work)  # on the other core

    def finish() -> list[Path]:
        try:
            html = []
            for view in views:
                path = folder / invoice_file_name(str(view["invoice_id"]))
                path.write_text(_html(view), encoding="utf-8")
                html.append(path)
            pdf = pdfs.result()
        finally:
            pdfs.close()
        return [path for pair in zip(html, pdf, strict=True) for path in pair]

    return finish


def _write_pdfs(views: list[dict[str, Any]], folder: Path) -> list[Path]:

    paths = []
    for view in views:
        path = folder / invoice_file_name(str(view["invoice_id"]), ".pdf")
        path.write_bytes(render_view_pdf(view))
        paths.append(path)
    return paths

"""Printable invoices (SPEC §3.7, §7): one self-contained HTML page per invoice, and the same as PDF.

Both renderings come from one view (:func:`invoice_view`): the supplier header, the client and its contract
terms (hours, grace, block rounding, rates), a line per overtime session, the totals, the content hash and a
note on how overtime is computed. The HTML is Jinja2 with autoescaping on, so a client name or zone id with
markup in it is shown, never run. It has no external assets and prints on A4.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from slem_ml import __version__
from slem_ml.contracts import ClientContract, SiteConfig
from slem_ml.outputs import minutes_text
from slem_ml.result import ScoringResult

__all__ = [
    "SUPPLIER_TITLE",
    "invoice_file_name",
    "invoice_view",
    "render_invoice_html",
    "render_invoice_pdf",
    "write_invoice_files",
]

SUPPLIER_TITLE = "slem — supplementary lighting invoice"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
# Letters that Unicode does not decompose into a base letter plus accent.
_PDF_FALLBACK = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i"})


def invoice_view(
    invoice_row: Mapping[Any, Any] | pd.Series,
    lines_frame: pd.DataFrame,
    site: SiteConfig,
    *,
    issued: dt.date | None = None,
) -> dict[str, Any]:
    """Everything a printed invoice shows, as display text; shared by the HTML and the PDF renderer.

    ``lines_frame`` may hold other invoices' lines too: only those with the row's ``invoice_id`` are used.
    ``issued`` defaults to today in the site timezone. Raises ``ValueError`` when the lines do not add up to
    the invoice (count or total): such an invoice must not be printed.
    """
    row = dict(invoice_row)
    invoice_id = str(row["invoice_id"])
    tz = site.site.timezone
    lines = lines_frame
    if "invoice_id" in lines.columns:
        lines = lines[lines["invoice_id"].astype(str) == invoice_id]
    lines = lines.sort_values(["date", "zone_id", "start"], kind="stable")
    amounts = sum(lines["amount"], Decimal("0"))
    if len(lines) != int(row["lines"]) or amounts != row["total"]:
        raise ValueError(
            f"{invoice_id}: {len(lines)} line(s) adding up to {amounts} do not match the invoice "
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
    return {
        "supplier_title": SUPPLIER_TITLE,
        "site_timezone": tz,
        "currency": currency,
        "invoice_id": invoice_id,
        "revision": int(row["revision"]),
        "issued": issued.isoformat(),
        "period": str(row["period"]),
        "period_label": f"{month_name} {year}",
        "period_days": f"1–{last_day} {month_name} {year}",
        "client_id": client_id,
        "client_name": contract.name if contract is not None else client_id,
        "terms": _terms(contract, site),
        "lines": _line_views(lines, tz),
        "has_adjusted": bool(lines["adjusted"].astype(bool).any()),
        "totals": {
            "lines": len(lines),
            "billable_minutes": str(int(lines["billable_minutes"].sum())),
            "billable_hours": _number(row["billable_hours"]),
            "energy_kwh": _number(row["energy_kwh"]),
            "hours_charge": _number(sum(lines["hours_charge"], Decimal("0.00"))),
            "energy_charge": _number(sum(lines["energy_charge"], Decimal("0.00"))),
            "total": _number(row["total"]),
        },
        "content_hash": str(row["content_hash"]),
        "slem_version": __version__,
    }


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


def _line_views(lines: pd.DataFrame, timezone: str) -> list[dict[str, Any]]:
    # An invoice has a line per overtime session (tens, not millions): plain Python is clearest here.
    minutes = minutes_text(lines["minutes"]).tolist()
    views = []
    for record, minute_text in zip(lines.to_dict("records"), minutes, strict=True):
        start = pd.Timestamp(record["start"]).tz_convert(timezone)
        end = pd.Timestamp(record["end"]).tz_convert(timezone)
        day = record["date"]
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            day = pd.Timestamp(day).date()
        adjusted = bool(record["adjusted"])
        original = record.get("original_energy_kwh")
        views.append(
            {
                "date": day.isoformat(),
                "weekday": day.strftime("%a"),
                "zone_id": str(record["zone_id"]),
                "start": _clock(start, day),
                "end": _clock(end, day),
                "minutes": minute_text,
                "billable_minutes": str(int(record["billable_minutes"])),
                "energy_kwh": _number(record["energy_kwh"]),
                "hours_charge": _number(record["hours_charge"]),
                "energy_charge": _number(record["energy_charge"]),
                "amount": _number(record["amount"]),
                "adjusted": adjusted,
                "original_energy_kwh": _number(original) if adjusted and original is not None else "",
            }
        )
    return views


def _clock(instant: pd.Timestamp, day: dt.date) -> str:
    """Local wall time; the midnight that ends a day's session is ``24:00``."""
    if instant.date() > day and instant.time() == dt.time(0):
        return "24:00"
    text = instant.strftime("%H:%M:%S" if instant.second or instant.microsecond else "%H:%M")
    return text if instant.date() == day else f"{text} (+{(instant.date() - day).days}d)"


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
        loader=jinja2.PackageLoader("slem_ml", "templates"),
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
) -> str:
    """One invoice as a self-contained, printable HTML page (A4)."""
    view = invoice_view(invoice_row, lines_frame, site, issued=issued)
    return str(_environment().get_template("invoice.html").render(**view))


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
    folder = Path(out_dir) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    by_invoice = dict(tuple(result.invoice_lines.groupby("invoice_id", sort=False)))
    for row in result.invoices.to_dict("records"):
        invoice_id = str(row["invoice_id"])
        lines = by_invoice[invoice_id]
        html_path = folder / invoice_file_name(invoice_id)
        html_path.write_text(render_invoice_html(row, lines, result.site, issued=issued), encoding="utf-8")
        pdf_path = folder / invoice_file_name(invoice_id, ".pdf")
        pdf_path.write_bytes(render_invoice_pdf(row, lines, result.site, issued=issued))
        paths.extend([html_path, pdf_path])
    return paths


# --- PDF -----------------------------------------------------------------------------------------


def render_invoice_pdf(
    invoice_row: Mapping[Any, Any] | pd.Series,
    lines_frame: pd.DataFrame,
    site: SiteConfig,
    *,
    issued: dt.date | None = None,
) -> bytes:
    """One invoice as an A4 PDF with the content of the HTML page (needs the ``fpdf2`` package).

    Uses the PDF core fonts (Windows-1252): letters outside it are reduced to ASCII (``Ł`` → ``L``).
    The output is reproducible: the PDF's creation date is the issue date.
    """
    from fpdf import FPDF  # lazy: fpdf2 is needed only for PDF invoices

    view = invoice_view(invoice_row, lines_frame, site, issued=issued)
    page_label = f"{view['invoice_id']} revision {view['revision']}"

    class _Invoice(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("helvetica", size=7)
            self.set_text_color(90)
            self.cell(0, 4, pdf_text(f"{page_label} · page {self.page_no()}/{{nb}}"), align="R")

    pdf = _Invoice(orientation="P", unit="mm", format="A4")
    pdf.core_fonts_encoding = "windows-1252"
    pdf.set_margins(12, 14, 12)
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_creation_date(dt.datetime.fromisoformat(view["issued"]).replace(tzinfo=dt.UTC))
    pdf.set_title(pdf_text(page_label))
    pdf.set_author("slem")
    pdf.add_page()
    _pdf_head(pdf, view)
    _pdf_lines(pdf, view)
    _pdf_totals(pdf, view)
    _pdf_note(pdf, view)
    return bytes(pdf.output())


def _pdf_text_line(pdf: Any, text: str, size: float = 9, style: str = "", height: float = 4.5) -> None:
    pdf.set_font("helvetica", style, size)
    pdf.multi_cell(0, height, pdf_text(text), new_x="LMARGIN", new_y="NEXT")


def _pdf_head(pdf: Any, view: dict[str, Any]) -> None:
    terms, cur = view["terms"], view["currency"]
    _pdf_text_line(pdf, view["supplier_title"], 15, "B", 7)
    _pdf_text_line(pdf, f"Site time zone {view['site_timezone']} · amounts in {cur}")
    pdf.ln(2)
    facts = [
        ("Invoice", view["invoice_id"]),
        ("Revision", str(view["revision"])),
        ("Issue date", view["issued"]),
        ("Period", f"{view['period_label']} ({view['period_days']})"),
        ("Bill to", f"{view['client_name']} (client id {view['client_id']})"),
        ("Contracted hours", terms["hours"]),
        ("Grace", terms["grace_text"]),
        ("Block rounding", f"each session rounded up to {terms['block_minutes']} min"),
        ("Hourly rate", f"{terms['hourly_rate']} {cur} per zone-hour"),
        ("Energy rate", f"{terms['energy_rate']} {cur} per kWh"),
    ]
    for label, value in facts:
        pdf.set_font("helvetica", "", 9)
        pdf.cell(38, 4.8, pdf_text(label))
        pdf.set_font("helvetica", "B", 9)
        pdf.multi_cell(0, 4.8, pdf_text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _pdf_lines(pdf: Any, view: dict[str, Any]) -> None:
    _pdf_text_line(
        pdf, f"Lighting outside contracted hours — {view['totals']['lines']} session(s)", 11, "B", 6
    )
    pdf.set_font("helvetica", "", 8)
    head = ["Date", "Zone", f"Time ({view['site_timezone']})", "Minutes", "Billable min", "Energy kWh"]
    head += ["Hours charge", "Energy charge", f"Amount {view['currency']}"]
    with pdf.table(
        col_widths=(22, 24, 24, 15, 15, 22, 19, 19, 21),
        text_align=("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout="HORIZONTAL_LINES",
        line_height=4.2,
        repeat_headings=1,
        padding=0.8,
    ) as table:
        table.row([pdf_text(text) for text in head])
        for item in view["lines"]:
            metered = f" †\nmetered {item['original_energy_kwh']}" if item["adjusted"] else ""
            cells = [
                f"{item['weekday']} {item['date']}",
                item["zone_id"],
                f"{item['start']}–{item['end']}",
                item["minutes"],
                item["billable_minutes"],
                item["energy_kwh"] + metered,
                item["hours_charge"],
                item["energy_charge"],
                item["amount"],
            ]
            table.row([pdf_text(text) for text in cells])
    pdf.ln(3)


def _pdf_totals(pdf: Any, view: dict[str, Any]) -> None:
    totals, cur = view["totals"], view["currency"]
    rows = [
        ("Billable time", f"{totals['billable_minutes']} min = {totals['billable_hours']} h", ""),
        ("Energy outside contracted hours", f"{totals['energy_kwh']} kWh", ""),
        ("Hours charges", f"{totals['hours_charge']} {cur}", ""),
        ("Energy charges", f"{totals['energy_charge']} {cur}", ""),
        ("Total", f"{totals['total']} {cur}", "B"),
    ]
    if pdf.will_page_break(5.5 * len(rows) + 4):  # keep the totals together
        pdf.add_page()
    for label, value, style in rows:
        pdf.set_font("helvetica", style, 10 if style else 9)
        border = "T" if style else 0
        pdf.set_x(pdf.w - pdf.r_margin - 110)
        pdf.cell(65, 5.5, pdf_text(label), border=border)
        pdf.cell(45, 5.5, pdf_text(value), border=border, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _pdf_note(pdf: Any, view: dict[str, Any]) -> None:
    terms, cur = view["terms"], view["currency"]
    holidays = "; public holidays count as closed" if terms["holidays_closed"] else ""
    grace = f", widened by {terms['grace_minutes']} min at both ends" if terms["grace_minutes"] else ""
    _pdf_text_line(pdf, "How overtime is computed", 9, "B")
    _pdf_text_line(
        pdf,
        f"Lighting power in each zone is metered continuously. Time with the lights on outside your "
        f"contracted hours ({terms['hours']}{grace}) is "
        f"overtime{holidays}. Time when cleaning staff are present is not billed to you. Each session — an "
        f"unbroken run of overtime in one zone on one day, in site local time — is rounded up to whole "
        f"{terms['block_minutes']}-minute blocks and charged at {terms['hourly_rate']} {cur} per zone-hour, "
        f"plus the energy it used at {terms['energy_rate']} {cur} per kWh. Each charge is rounded half up "
        f"to the cent; the total is the sum of the lines.",
        8,
        "",
        4,
    )
    if view["has_adjusted"]:
        _pdf_text_line(
            pdf,
            "† A meter spike was detected during this session: its energy is billed at the zone's "
            "expected power; the metered value is shown below it.",
            8,
            "",
            4,
        )
    pdf.ln(3)
    _pdf_text_line(pdf, f"Content hash (SHA-256 of this invoice's lines): {view['content_hash']}", 7, "", 3.5)
    _pdf_text_line(pdf, f"Generated by slem {view['slem_version']}.", 7, "", 3.5)


def pdf_text(text: str) -> str:
    """Text the PDF core fonts (Windows-1252) can show: accents kept, other letters reduced to ASCII."""
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text.translate(_PDF_FALLBACK):
        try:
            char.encode("cp1252")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
            out.append(base or "?")
    return "".join(out)

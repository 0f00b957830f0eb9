"""The words of a printed invoice (SPEC §3.7, §8): the contract terms applied, the supplier's header, net, tax
and gross, the service days and the note on how overtime is computed — the same words in the PDF
(:mod:`~slem_ml.outputs.invoice_pdf`) and the HTML template, which words the note alike."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from slem_ml.config.site import ClientContract, SiteConfig
from slem_ml.config.supplier import SupplierInfo, tax_of

__all__ = [
    "HELD_TEXT",
    "VOID_TEXT",
    "contract_terms",
    "number_text",
    "overtime_note",
    "service_days",
    "supplier_lines",
    "tax_text",
]


def contract_terms(contract: ClientContract | None, site: SiteConfig) -> dict[str, Any]:
    """The terms a client's invoice applies, as text: hours, grace [min], block [min], rates, holidays."""
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


def supplier_lines(supplier: SupplierInfo | None) -> list[str]:
    """The header lines under the supplier's name: address, VAT id, payment terms."""
    if supplier is None:
        return []
    lines = [part.strip() for part in supplier.address.splitlines() if part.strip()]
    if supplier.vat_id:
        lines.append(f"VAT id {supplier.vat_id}")
    if supplier.payment_terms_days is not None:
        lines.append(f"Payment due within {supplier.payment_terms_days} days of the issue date")
    return lines


def tax_text(total: Decimal, supplier: SupplierInfo | None) -> dict[str, str] | None:
    """Net, tax and gross as text when the supplier has a tax rate (SPEC §8), else None."""
    if supplier is None or supplier.tax_rate is None:
        return None
    net = Decimal(total)
    tax = tax_of(net, supplier.tax_rate)
    percent = (supplier.tax_rate * 100).normalize()
    return {
        "label": f"Tax {percent:f} %",
        "net": number_text(net),
        "tax": number_text(tax),
        "gross": number_text(net + tax),
    }


def service_days(service: tuple[dt.date, dt.date] | None, year: int, month: int, last_day: int) -> str:
    """The service period as shown: ``10–11 February 2025``; the whole month when not known."""
    name = calendar.month_name[month]
    if service is None:
        return f"1–{last_day} {name} {year}"
    first, last = service
    return f"{first.day} {name} {year}" if first == last else f"{first.day}–{last.day} {name} {year}"


def overtime_note(terms: Mapping[str, Any], currency: str, has_adjusted: bool) -> list[str]:
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


def _rate(value: Decimal) -> str:
    """A rate with at least 2 decimals (``15.00``, ``0.20``, ``0.175``)."""
    value = Decimal(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, ",f")


def number_text(value: Any) -> str:
    """A Decimal with thousands separators, keeping its stored decimals (``1,234.50``)."""
    return format(Decimal(value), ",f")

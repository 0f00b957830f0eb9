"""The invoice header and tax (SPEC §8 ``supplier:``) and the service period from the readings.

Hand-computed: 7.50 EUR at 19 % is 1.425 EUR of tax, rounded half up to 1.43; 11.25 at 7.7 % is 0.86625 →
0.87. The PDF is read back with ``pdftotext`` where poppler is installed (skipped elsewhere).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from slem_ml.config.site import parse_site
from slem_ml.config.supplier import tax_of
from slem_ml.errors import ConfigError
from slem_ml.io.reader import validate_frame
from slem_ml.outputs.invoice_render import invoice_view, render_invoice_html, render_invoice_pdf
from slem_ml.scoring.score import score

RAW = {
    "site": {"timezone": "Europe/Berlin", "currency": "EUR"},
    "clients": {"C001": {"name": "Acme", "hours": {"mon-fri": "08:00-18:00"}}},
    "supplier": {
        "name": "Facility Services GmbH",
        "address": "Hauptstraße 1\n10115 Berlin",
        "vat_id": "DE123456789",
        "payment_terms_days": 30,
        "tax_rate": 0.19,
    },
}


def scored(site, days=("2025-02-10", "2025-02-11")):
    rows = []
    for day in days:
        rows += [(f"{day}T18:00", 40.0), (f"{day}T18:15", 0.0)]
    frame = pd.DataFrame(
        {
            "timestamp": [t for t, _ in rows],
            "zone_id": "HQ-F1-Z1",
            "client_id": "C001",
            "power_w": [p for _, p in rows],
            "cleaning_staff": "No",
        }
    )
    return score(validate_frame(frame, site), site)


@pytest.mark.parametrize(
    ("net", "rate", "tax"),
    [("7.50", "0.19", "1.43"), ("11.25", "0.077", "0.87"), ("0.00", "0.19", "0.00"), ("10.00", "0", "0.00")],
)
def test_tax_is_rounded_half_up_once_per_invoice(net: str, rate: str, tax: str) -> None:
    assert str(tax_of(Decimal(net), Decimal(rate))) == tax


@pytest.mark.parametrize(
    ("supplier", "message"),
    [
        ({"tax_rate": 19}, "supplier.tax_rate: 19 must be a fraction"),
        ({"tax_rate": "x"}, "supplier.tax_rate: 'x' is not a number"),
        ({"iban": "DE00"}, "supplier.iban: unknown key"),
        ({"payment_terms_days": -1}, "supplier.payment_terms_days"),
        ("Acme", "supplier: expected a mapping"),
    ],
)
def test_a_bad_supplier_block_is_refused_naming_the_key(supplier, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_site({**RAW, "supplier": supplier})


def test_the_invoice_shows_the_supplier_net_tax_gross_and_the_service_days() -> None:
    site = parse_site(RAW)
    result = scored(site)
    assert result.service_periods == {"INV-C001-202502": (dt.date(2025, 2, 10), dt.date(2025, 2, 11))}
    row = result.invoices.iloc[0]
    assert str(row["total"]) == "7.50"  # two 15-min sessions, 3.75 each
    view = invoice_view(
        row,
        result.invoice_lines,
        site,
        issued=dt.date(2025, 3, 1),
        service=result.service_periods[row["invoice_id"]],
    )
    assert view["supplier_title"] == "Facility Services GmbH"
    assert view["supplier_lines"] == [
        "Hauptstraße 1", "10115 Berlin", "VAT id DE123456789", "Payment due within 30 days of the issue date"
    ]  # fmt: skip
    assert view["tax"] == {"label": "Tax 19 %", "net": "7.50", "tax": "1.43", "gross": "8.93"}
    assert view["period_days"] == "10–11 February 2025"
    html = render_invoice_html(row, result.invoice_lines, site, issued=dt.date(2025, 3, 1))
    assert "Total due (gross)" in html and "8.93 EUR" in html and "VAT id DE123456789" in html


def test_without_a_supplier_the_invoice_is_as_before() -> None:
    site = parse_site({k: v for k, v in RAW.items() if k != "supplier"})
    result = scored(site, days=("2025-02-10",))
    row = result.invoices.iloc[0]
    view = invoice_view(row, result.invoice_lines, site, service=(dt.date(2025, 2, 10), dt.date(2025, 2, 10)))
    assert view["tax"] is None and view["supplier_lines"] == []
    assert view["period_days"] == "10 February 2025"
    assert invoice_view(row, result.invoice_lines, site)["period_days"] == "1–28 February 2025"


def test_the_pdf_shows_net_tax_and_gross(tmp_path: Path) -> None:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    site = parse_site(RAW)
    result = scored(site)
    pdf = render_invoice_pdf(result.invoices.iloc[0], result.invoice_lines, site, issued=dt.date(2025, 3, 1))
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    text = subprocess.run([tool, "-layout", str(path), "-"], capture_output=True, check=True).stdout.decode()
    assert "Facility Services GmbH" in text and "VAT id DE123456789" in text
    assert "Tax 19 %" in text and "1.43 EUR" in text and "Total due (gross)" in text and "8.93 EUR" in text


def test_the_written_printable_invoice_carries_the_service_days(tmp_path: Path) -> None:
    from slem_ml.outputs.writer import write_outputs

    site = parse_site(RAW)
    write_outputs(scored(site), tmp_path / "out")
    html = (tmp_path / "out" / "invoices" / "INV-C001-202502.html").read_text(encoding="utf-8")
    assert "<th>Service days</th><td>10–11 February 2025</td>" in html

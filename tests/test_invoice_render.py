"""Tests for slem_ml.invoice_render: the printable invoice (SPEC §3.7, §7).

Built on the hand-made result of tests/test_outputs.py: INV-C001-202502 has two lines (67.5 and 10 minutes,
the second spike-adjusted) adding up to 22.52 EUR; the client's name carries a <script> tag.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pandas as pd
import pytest

from slem_ml.invoice_render import (
    invoice_file_name,
    invoice_view,
    pdf_text,
    render_invoice_html,
    render_invoice_pdf,
    write_invoice_files,
)
from tests.test_outputs import FORMULA_ZONE, _hash, _local, make_invoices, make_lines, make_result

ISSUED = dt.date(2025, 3, 3)


def _html(invoice: int = 0, **changes) -> str:
    result = make_result(**changes)
    row = result.invoices.iloc[invoice]
    return render_invoice_html(row, result.invoice_lines, result.site, issued=ISSUED)


def _text(html: str) -> str:
    """The visible text, tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_header_client_and_terms():
    html = _html()
    text = _text(html)
    assert "slem — supplementary lighting invoice" in text
    assert "Europe/Berlin" in text
    assert "INV-C001-202502" in text
    assert "Revision 1" in text
    assert "Issue date 2025-03-03" in text
    assert "February 2025" in text
    assert "1–28 February 2025" in text
    assert "Client id C001" in text
    assert "Contracted hours Mon–Fri 08:00–18:00" in text
    assert "5 min before opening and after closing" in text
    assert "rounded up to 15 min" in text
    assert "15.00 EUR per zone-hour" in text
    assert "0.20 EUR per kWh" in text


def test_client_rates_override_the_defaults():
    text = _text(_html(invoice=1))
    assert "12.50 EUR per zone-hour" in text
    assert "Mon–Sun 06:00–22:00" in text
    assert "1–31 March 2025" in text


def test_a_line_per_session_with_local_times_and_money():
    text = _text(_html())
    assert "Mon 2025-02-10 HQ-F4-Z2 18:05–19:12:30 67.500 75 0.112500 18.75 0.02 18.77" in text
    assert "Tue 2025-02-11" in text and "20:00–20:10 10.000 15 0.010000" in text
    assert "3.75 0.00 3.75" in text


def test_spike_adjusted_line_is_marked_with_the_metered_energy():
    html = _html()
    assert "0.010000 †" in html
    assert "metered 0.050000" in html
    assert "expected power" in _text(html)
    clean = make_lines()
    clean["adjusted"] = False
    assert "†" not in _html(invoice_lines=clean)


def test_totals_hash_and_note():
    text = _text(_html())
    assert "Billable time 90 min = 1.50 h" in text
    assert "0.122500 kWh" in text
    assert "Hours charges 22.50 EUR" in text
    assert "Energy charges 0.02 EUR" in text
    assert "Total 22.52 EUR" in text
    assert _hash("C001") in text
    assert "How overtime is computed" in text
    assert "rounded up to whole 15-minute blocks" in text
    assert "cleaning staff" in text


def test_markup_in_names_and_zone_ids_is_escaped():
    lines = make_lines()
    lines.loc[0, "zone_id"] = '<img src=x onerror="alert(2)">'
    html = _html(invoice_lines=lines)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    assert FORMULA_ZONE.replace('"', "&#34;") in html  # shown as it is: HTML is not a spreadsheet


def test_page_is_self_contained_and_prints_on_a4():
    html = _html()
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in html
    assert "size: A4" in html
    assert not re.search(r"<(link|script|img|iframe)\b", html)
    assert not re.search(r"(src|href)\s*=", html)
    assert "url(" not in html


def test_lines_of_other_invoices_are_left_out_and_sorted():
    result = make_result()
    shuffled = result.invoice_lines.iloc[::-1]
    view = invoice_view(result.invoices.iloc[0], shuffled, result.site, issued=ISSUED)
    assert [line["date"] for line in view["lines"]] == ["2025-02-10", "2025-02-11"]
    assert view["totals"]["lines"] == 2


def test_lines_that_do_not_add_up_are_refused():
    invoices = make_invoices()
    invoices.loc[0, "total"] = Decimal("22.53")
    with pytest.raises(ValueError, match="INV-C001-202502.*do not match"):
        _html(invoices=invoices)
    with pytest.raises(ValueError, match="do not match"):
        _html(invoice_lines=make_lines().iloc[1:])


def test_session_ending_at_midnight_shows_24_00():
    lines = make_lines()
    lines.loc[0, "end"] = _local("2025-02-11 00:00")
    assert "18:05–24:00" in _text(_html(invoice_lines=lines))


def test_issue_date_defaults_to_today_in_site_time():
    result = make_result()
    view = invoice_view(result.invoices.iloc[0], result.invoice_lines, result.site)
    today = pd.Timestamp.now(tz="Europe/Berlin").date()
    assert view["issued"] in (today.isoformat(), (today - dt.timedelta(days=1)).isoformat())


@pytest.mark.parametrize(
    ("invoice_id", "pattern"),
    [
        ("INV-C001-202502", r"^INV-C001-202502\.html$"),
        ("INV-../../etc-202502", r"^INV-______etc-202502-[0-9a-f]{8}\.html$"),
        ("INV-C001.x-202502", r"^INV-C001_x-202502-[0-9a-f]{8}\.html$"),
        ("INV-A B/C-202502", r"^INV-A_B_C-202502-[0-9a-f]{8}\.html$"),
        ("..", r"^invoice-[0-9a-f]{8}\.html$"),
    ],
)
def test_invoice_file_names_are_safe(invoice_id, pattern):
    assert re.match(pattern, invoice_file_name(invoice_id))


def test_invoice_file_names_stay_distinct():
    assert invoice_file_name("INV-A B-202502") != invoice_file_name("INV-A/B-202502")


def test_write_invoice_files(tmp_path):
    paths = write_invoice_files(make_result(), tmp_path, issued=ISSUED)
    assert [p.name for p in paths] == [
        "INV-C001-202502.html",
        "INV-C001-202502.pdf",
        "INV-C004-202503.html",
        "INV-C004-202503.pdf",
    ]
    assert all(p.read_bytes().startswith(b"%PDF") for p in paths if p.suffix == ".pdf")
    assert all(p.parent == tmp_path / "invoices" for p in paths)
    assert "Total 22.52 EUR" in _text(paths[0].read_text(encoding="utf-8"))


def test_write_invoice_files_without_invoices_makes_an_empty_folder(tmp_path):
    result = make_result(invoices=make_invoices().iloc[0:0], invoice_lines=make_lines().iloc[0:0])
    assert write_invoice_files(result, tmp_path) == []
    assert list((tmp_path / "invoices").iterdir()) == []


def test_pdf_text_keeps_windows_1252_and_reduces_the_rest():
    assert pdf_text("Müller – 12,50 € — †") == "Müller – 12,50 € — †"
    assert pdf_text("Łódź 東") == "Lódz ?"


def test_pdf_invoice():
    pytest.importorskip("fpdf")
    result = make_result()
    pdf = render_invoice_pdf(result.invoices.iloc[0], result.invoice_lines, result.site, issued=ISSUED)
    assert pdf.startswith(b"%PDF-")
    again = render_invoice_pdf(result.invoices.iloc[0], result.invoice_lines, result.site, issued=ISSUED)
    assert pdf == again  # reproducible

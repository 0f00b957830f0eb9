"""Tests for slem_ml.outputs.invoice_render and slem_ml.outputs.invoice_pdf: the printable invoice
(SPEC §3.7, §7).

Built on the hand-made result of tests/test_outputs.py: INV-C001-202502 has two lines (67.5 and 10 minutes,
the second spike-adjusted) adding up to 22.52 EUR; the client's name carries a <script> tag. The PDF's text
is read back with poppler's ``pdftotext`` (those tests are skipped where it is not installed).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from decimal import Decimal

import pandas as pd
import pytest

from slem_ml.config.site import parse_site
from slem_ml.io import schema
from slem_ml.outputs.invoice_render import (
    invoice_file_name,
    invoice_view,
    render_invoice_html,
    render_invoice_pdf,
    write_invoice_files,
)
from slem_ml.outputs.pdf_text import pdf_text
from tests.test_outputs import FORMULA_ZONE, TZ, _hash, _local, make_invoices, make_lines, make_result

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


# --- the PDF's content ---------------------------------------------------------------------------

WEEKDAY_ROW = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) 2025-\d\d-\d\d ", re.MULTILINE)


def _pdf_pages(pdf: bytes, tmp_path, mode: str = "-layout") -> list[str]:
    """The PDF's text, page by page, as ``pdftotext`` reads it (``-layout``: rows stay on one line)."""
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    out = subprocess.run([tool, mode, str(path), "-"], capture_output=True, check=True)
    return out.stdout.decode("utf-8").split("\f")[:-1]  # a form feed ends each page


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _pdf(result=None, invoice: int = 0) -> bytes:
    pytest.importorskip("fpdf")
    result = result if result is not None else make_result()
    row = result.invoices.iloc[invoice]
    return render_invoice_pdf(row, result.invoice_lines, result.site, issued=ISSUED)


def long_result(count: int):
    """One invoice (INV-C001-202502) of ``count`` lines: evening sessions in 40 zones, times to the
    millisecond, every 50th line spike-adjusted."""
    cent = Decimal("0.01")
    rows = []
    for i in range(count):
        day = dt.date(2025, 2, 1 + i * 28 // count)
        start = _local(f"{day} 18:00") + pd.Timedelta(seconds=97 * i % 14_000, milliseconds=250 * (i % 4))
        minutes = 1 + (31 * i) % 200
        billable = -(-minutes // 15) * 15
        energy = Decimal(1 + (7919 * i) % 900_000).scaleb(-6)
        hours_charge = (Decimal(billable) * 15 / 60).quantize(cent)
        energy_charge = (energy * Decimal("0.20")).quantize(cent)
        adjusted = i % 50 == 0
        rows.append(
            {
                "invoice_id": "INV-C001-202502",
                "client_id": "C001",
                "zone_id": f"HQ-F{i % 5 + 1}-Z{i % 8 + 1}",
                "date": day,
                "start": start,
                "end": start + pd.Timedelta(minutes=minutes),
                "minutes": Decimal(minutes).quantize(Decimal("0.001")),
                "billable_minutes": billable,
                "energy_kwh": energy,
                "hours_charge": hours_charge,
                "energy_charge": energy_charge,
                "amount": hours_charge + energy_charge,
                "currency": "EUR",
                "adjusted": adjusted,
                "original_energy_kwh": energy * 5 if adjusted else energy,
                "status": "billed",
            }
        )
    lines = pd.DataFrame(rows)[list(schema.INVOICE_LINE_COLUMNS)]
    for column in ("start", "end"):
        lines[column] = pd.to_datetime(lines[column]).dt.tz_convert(TZ).dt.as_unit("ms")
    invoices = make_invoices().iloc[[0]].reset_index(drop=True)
    invoices.loc[0, "lines"] = count
    invoices.loc[0, "billable_hours"] = (Decimal(int(lines["billable_minutes"].sum())) / 60).quantize(cent)
    invoices.loc[0, "energy_kwh"] = sum(lines["energy_kwh"], Decimal("0"))
    invoices.loc[0, "total"] = sum(lines["amount"], Decimal("0"))
    return make_result(invoices=invoices, invoice_lines=lines)


def test_pdf_shows_the_header_lines_totals_and_hash(tmp_path):
    pages = _pdf_pages(_pdf(), tmp_path)
    assert len(pages) == 1
    text = _squash(pages[0])
    for fact in [
        "slem — supplementary lighting invoice",
        "Site time zone Europe/Berlin · amounts in EUR",
        "Invoice INV-C001-202502",
        "Revision 1",
        "Issue date 2025-03-03",
        "Period February 2025",
        "Service days 1–28 February 2025",
        "Acme <script>alert(1)</script>",  # shown as it is: a PDF runs nothing
        "Client id C001",
        "Contracted hours Mon–Fri 08:00–18:00",
        "Grace 5 min before opening and after closing",
        "Block rounding each session rounded up to 15 min",
        "Hourly rate 15.00 EUR per zone-hour",
        "Energy rate 0.20 EUR per kWh",
        "Lighting outside contracted hours — 2 sessions",
        "Mon 2025-02-10 HQ-F4-Z2 18:05–19:12:30 67.500 75 0.112500 18.75 0.02 18.77",
        "Billable time 90 min = 1.50 h",
        "Energy outside contracted hours 0.122500 kWh",
        "Hours charges 22.50 EUR",
        "Energy charges 0.02 EUR",
        "Total 22.52 EUR",
        "rounded up to whole 15-minute blocks",
        "metered value is shown below it",
        "INV-C001-202502 · revision 1 · page 1 of 1",
        f"Content hash (SHA-256) {_hash('C001')}",
    ]:
        assert fact in text, fact
    assert re.search(r"Tue 2025-02-11 .* 20:00–20:10 10.000 15 0.010000 ?† 3.75 0.00 3.75", text)
    assert "metered 0.050000" in text


def test_pdf_of_2000_lines_repeats_the_headings_and_keeps_the_totals_together(tmp_path):
    result = long_result(2_000)
    pdf = _pdf(result)
    assert pdf.startswith(b"%PDF-")
    pages = _pdf_pages(pdf, tmp_path)
    count = len(pages)
    assert count > 30  # ~50 lines a page
    assert sum(len(WEEKDAY_ROW.findall(page)) for page in pages) == 2_000  # a text line per invoice line
    assert sum(len(re.findall(r"metered \d", page)) for page in pages) == 40  # under each adjusted line
    for number, page in enumerate(pages, start=1):
        text = _squash(page)
        assert f"INV-C001-202502 · revision 1 · page {number} of {count}" in text
        assert f"Content hash (SHA-256) {_hash('C001')}" in text
        if WEEKDAY_ROW.search(page):
            assert "Date Zone" in text and "Amount EUR" in text, number  # the headings on every page
        if number > 1:
            assert "INV-C001-202502 · revision 1 · Acme" in text and "continued" in text
    totals = [_squash(page) for page in pages if "Billable time" in page]
    assert len(totals) == 1
    assert f"Total {result.invoices.loc[0, 'total']:,f} EUR" in totals[0]  # on the page of "Billable time"
    note = _squash(pages[-1])
    assert "HOW OVERTIME IS COMPUTED" in note and "sum of the lines" in note and "Generated by slem" in note


def test_pdf_reduces_and_escapes_text(tmp_path):
    site = parse_site(
        {
            "site": {"timezone": TZ, "currency": "EUR"},
            "clients": {"C001": {"name": "Łódź Ölwerke 東京", "hours": {"mon-fri": "08:00-18:00"}}},
        }
    )
    lines = make_lines()
    lines.loc[0, "zone_id"] = "A(1)\\B-F1-Z1"
    long_zone = "Warehouse" * 6 + "-F2-Z3"
    lines.loc[1, "zone_id"] = long_zone
    result = make_result(site=site, invoice_lines=lines)
    pdf = _pdf(result)
    text = _squash(_pdf_pages(pdf, tmp_path)[0])
    assert "Lódz Ölwerke ??" in text  # Windows-1252 keeps ó and Ö
    assert "A(1)\\B-F1-Z1 18:05–19:12:30" in text
    raw = "".join(_pdf_pages(pdf, tmp_path, "-raw")[0].split())
    assert long_zone in raw  # wrapped in its column, nothing cut


def test_pdf_of_an_invoice_without_lines(tmp_path):
    invoices = make_invoices()
    invoices.loc[0, ["lines", "total"]] = [0, Decimal("0")]
    pdf = _pdf(make_result(invoices=invoices, invoice_lines=make_lines().iloc[2:]))
    text = _squash(_pdf_pages(pdf, tmp_path)[0])
    assert "— 0 sessions" in text and "Total 0 EUR" in text


def test_times_are_wall_clock_and_lines_follow_the_instants():
    lines = make_lines().iloc[:2].copy()
    lines["date"] = [dt.date(2025, 10, 26)] * 2
    lines["zone_id"] = "HQ-F1-Z1"
    # When DST ends 02:00-03:00 comes twice: the +02:00 session is the earlier one.
    lines["start"] = pd.to_datetime(["2025-10-26 02:10+01:00", "2025-10-26 02:30+02:00"], utc=True)
    lines["start"] = lines["start"].dt.tz_convert(TZ)
    ends = ["2025-10-27 03:00:01.500+01:00", "2025-10-26 02:40:00.000+02:00"]
    lines["end"] = pd.to_datetime(ends, utc=True)  # in UTC: any timezone is fine
    result = make_result(invoice_lines=lines)
    view = invoice_view(result.invoices.iloc[0], lines, result.site, issued=ISSUED)
    assert [(line["start"], line["end"]) for line in view["lines"]] == [
        ("02:30", "02:40"),
        ("02:10", "03:00:01 (+1d)"),
    ]

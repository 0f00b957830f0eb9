"""An invoice too long to print (issue 15, item 6): a summary by zone and day, every line in a CSV beside it,
and bounded memory while its lines are written and stored.

The small invoice below (INV-C001-202502, site rates 15.00 EUR per zone-hour and 0.20 EUR per kWh) is summed
by hand; the tests print it with a small ``limit`` so that six lines are "too many":

==  ==========  ========  =====  =======  ========  ========  =====  ======  ======  ========
#   date        zone      start  minutes  billable  kWh       hours  energy  amount  status
==  ==========  ========  =====  =======  ========  ========  =====  ======  ======  ========
1   2025-02-10  HQ-F1-Z1  18:15  30       30        0.300000  7.50   0.06    7.56    billed
2   2025-02-10  HQ-F1-Z1  20:00  10.5     15        0.105000  3.75   0.02    3.77    billed
3   2025-02-10  HQ-F1-Z2  19:00  60       60        1.000000  15.00  0.20    15.20   held
4   2025-02-11  HQ-F1-Z1  18:30  45       45        0.450000  11.25  0.09    11.34   billed †
5   2025-02-11  HQ-F1-Z2  06:00  90       90        2.000000  22.50  0.40    22.90   released
6   2025-02-11  HQ-F1-Z2  21:00  5        15        0.050000  3.75   0.01    3.76    billed
==  ==========  ========  =====  =======  ========  ========  =====  ======  ======  ========

The total counts the billed and released lines: 7.56 + 3.77 + 11.34 + 22.90 + 3.76 = 49.33 EUR (hours 48.75,
energy 0.58, 195 billable minutes, 2.905 kWh); the held line's 15.20 is not in it. By zone and day:
(10th, Z1) 2 sessions 40.5 min 11.33; (10th, Z2) 1 session, not billed, 0.00; (11th, Z1) 11.34; (11th, Z2)
2 sessions 95 min 105 billable 2.05 kWh 26.25 + 0.41 = 26.66 — 11.33 + 0 + 11.34 + 26.66 = 49.33.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from slem_ml.io import schema
from slem_ml.outputs.csvsafe import write_csv
from slem_ml.outputs.formatting import format_cleaning_sessions, format_invoice_lines
from slem_ml.outputs.invoice_render import (
    PRINTED_LINES,
    invoice_view,
    render_invoice_html,
    render_invoice_pdf,
    start_invoice_files_of,
)
from slem_ml.storage import audit_log, invoice_history, store_result
from slem_ml.storage import store as store_module
from slem_ml.storage.tables import Invoice, InvoiceLine
from tests import test_storage
from tests.test_invoice_render import long_result
from tests.test_outputs import _local, make_invoices, make_result

ISSUED = dt.date(2025, 3, 3)

# (date, zone, start, minutes, billable, kWh, hours, energy, status, adjusted)
LINES = [
    ("2025-02-10", "HQ-F1-Z1", "18:15", "30", 30, "0.300000", "7.50", "0.06", "billed", False),
    ("2025-02-10", "HQ-F1-Z1", "20:00", "10.5", 15, "0.105000", "3.75", "0.02", "billed", False),
    ("2025-02-10", "HQ-F1-Z2", "19:00", "60", 60, "1.000000", "15.00", "0.20", "held", False),
    ("2025-02-11", "HQ-F1-Z1", "18:30", "45", 45, "0.450000", "11.25", "0.09", "billed", True),
    ("2025-02-11", "HQ-F1-Z2", "06:00", "90", 90, "2.000000", "22.50", "0.40", "released", False),
    ("2025-02-11", "HQ-F1-Z2", "21:00", "5", 15, "0.050000", "3.75", "0.01", "billed", False),
]


def small_invoice(total: str = "49.33"):
    """The result holding the invoice of the module docstring."""
    rows = []
    for day, zone, clock, minutes, billable, kwh, hours, energy, status, adjusted in LINES:
        start = _local(f"{day} {clock}")
        rows.append(
            {
                "invoice_id": "INV-C001-202502",
                "client_id": "C001",
                "zone_id": zone,
                "date": dt.date.fromisoformat(day),
                "start": start,
                "end": start + pd.Timedelta(minutes=float(minutes)),
                "minutes": Decimal(minutes).quantize(Decimal("0.001")),
                "billable_minutes": billable,
                "energy_kwh": Decimal(kwh),
                "hours_charge": Decimal(hours),
                "energy_charge": Decimal(energy),
                "amount": Decimal(hours) + Decimal(energy),
                "currency": "EUR",
                "adjusted": adjusted,
                "original_energy_kwh": Decimal("0.900000") if adjusted else Decimal(kwh),
                "status": status,
            }
        )
    lines = pd.DataFrame(rows)[list(schema.INVOICE_LINE_COLUMNS)]
    for column in ("start", "end"):
        lines[column] = lines[column].dt.as_unit("ms")
    invoices = make_invoices().iloc[[0]].reset_index(drop=True)
    invoices.loc[0, ["lines", "total", "held_total"]] = [6, Decimal(total), Decimal("15.20")]
    invoices.loc[0, ["billable_hours", "energy_kwh"]] = [Decimal("3.25"), Decimal("2.905000")]
    return make_result(invoices=invoices, invoice_lines=lines)


def _view(limit: int | None, **changes: Any) -> dict[str, Any]:
    result = small_invoice(**changes)
    return invoice_view(
        result.invoices.iloc[0], result.invoice_lines, result.site, issued=ISSUED, limit=limit
    )


def _cells(view: dict[str, Any]) -> list[tuple[str, ...]]:
    keys = ("when", "zone_id", "time", "minutes", "billable_minutes", "energy_kwh", "hours_charge")
    return [tuple(row[k] for k in (*keys, "energy_charge", "amount")) for row in view["lines"]]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- the printed summary -------------------------------------------------------------------------


def test_an_invoice_over_the_limit_is_summed_by_zone_and_day():
    view = _view(limit=5)
    assert view["summary"]["by"] == "zone and day"
    assert view["headings"][:3] == ["Date", "Zone", "Sessions"]
    assert _cells(view) == [
        ("Mon 2025-02-10", "HQ-F1-Z1", "2", "40.5", "45", "0.405000", "11.25", "0.08", "11.33"),
        ("Mon 2025-02-10", "HQ-F1-Z2", "1 (1 not billed)", "0", "0", "0.000000", "0.00", "0.00", "0.00"),
        ("Tue 2025-02-11", "HQ-F1-Z1", "1", "45", "45", "0.450000", "11.25", "0.09", "11.34"),
        ("Tue 2025-02-11", "HQ-F1-Z2", "2", "95", "105", "2.050000", "26.25", "0.41", "26.66"),
    ]
    amounts = sum(Decimal(row["amount"]) for row in view["lines"])
    assert amounts == Decimal("49.33")  # to the cent: the invoice's total
    totals = view["totals"]
    assert (totals["lines"], totals["total"], totals["held_total"]) == (6, "49.33", "15.20")
    assert (totals["billable_minutes"], totals["hours_charge"], totals["energy_charge"]) == (
        "195",
        "48.75",
        "0.58",
    )
    assert view["has_held"] and not view["has_adjusted"]
    text = view["summary"]["text"]
    assert "6 lines" in text and "INV-C001-202502.lines.csv" in text
    assert "(1: held or waived)" in text and "1 session with a meter spike is billed" in text


def test_too_many_zone_days_are_summed_by_zone_and_then_by_day():
    by_zone = _view(limit=3)  # 4 (day, zone) pairs > 3, 2 zones
    assert by_zone["summary"]["by"] == "zone" and by_zone["headings"][:2] == ["Days", "Zone"]
    assert _cells(by_zone) == [
        ("2 days", "HQ-F1-Z1", "3", "85.5", "90", "0.855000", "22.50", "0.17", "22.67"),
        ("2 days", "HQ-F1-Z2", "3 (1 not billed)", "95", "105", "2.050000", "26.25", "0.41", "26.66"),
    ]
    by_day = _view(limit=1)  # 2 zones > 1: a row per day, whatever the limit (a month has at most 31)
    assert by_day["summary"]["by"] == "day" and by_day["headings"][:2] == ["Date", "Zones"]
    assert [(r["when"], r["zone_id"], r["time"], r["amount"]) for r in by_day["lines"]] == [
        ("Mon 2025-02-10", "2 zones", "3 (1 not billed)", "11.33"),
        ("Tue 2025-02-11", "2 zones", "3", "38.00"),
    ]
    for view in (by_zone, by_day):
        assert sum(Decimal(row["amount"]) for row in view["lines"]) == Decimal("49.33")


def test_a_summary_that_does_not_add_up_to_the_invoice_is_refused():
    with pytest.raises(ValueError, match="INV-C001-202502: 6 line.* adding up to 49.33 do not match"):
        _view(limit=5, total="49.34")


def test_under_the_limit_nothing_changes():
    result = small_invoice()
    row, lines, site = result.invoices.iloc[0], result.invoice_lines, result.site
    at_limit = invoice_view(row, lines, site, issued=ISSUED, limit=6)
    assert at_limit == invoice_view(row, lines, site, issued=ISSUED, limit=None)
    assert at_limit["summary"] is None and len(at_limit["lines"]) == 6
    assert render_invoice_html(row, lines, site, issued=ISSUED, limit=6) == render_invoice_html(
        row, lines, site, issued=ISSUED, limit=None
    )
    assert render_invoice_pdf(row, lines, site, issued=ISSUED, limit=6) == render_invoice_pdf(
        row, lines, site, issued=ISSUED, limit=None
    )
    text = _text(render_invoice_html(row, lines, site, issued=ISSUED))  # the default limit: 2,000 lines
    assert "Mon 2025-02-10 HQ-F1-Z1 18:15–18:45 30.000 30 0.300000 7.50 0.06 7.56" in text
    assert "summed by" not in text


def test_the_html_summary_names_the_lines_file():
    result = small_invoice()
    html = render_invoice_html(
        result.invoices.iloc[0], result.invoice_lines, result.site, issued=ISSUED, limit=5
    )
    text = _text(html)
    assert "Lighting outside contracted hours — 6 sessions, summed by zone and day" in text
    assert "Date Zone Sessions Minutes Billable min Energy kWh Hours charge Energy charge Amount EUR" in text
    assert "Tue 2025-02-11 HQ-F1-Z2 2 95 105 2.050000 26.25 0.41 26.66" in text
    assert "INV-C001-202502.lines.csv" in text
    assert "Total 49.33 EUR" in text and "Held for review (not in the total) 15.20 EUR" in text
    assert "18:15" not in text  # no line of its own


def _pdf_pages(pdf: bytes, tmp_path) -> list[str]:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "invoice.pdf"
    path.write_bytes(pdf)
    out = subprocess.run([tool, "-layout", str(path), "-"], capture_output=True, check=True)
    return [re.sub(r"\s+", " ", page) for page in out.stdout.decode("utf-8").split("\f")[:-1]]


def test_the_pdf_summary(tmp_path):
    pytest.importorskip("fpdf")
    result = small_invoice()
    pdf = render_invoice_pdf(
        result.invoices.iloc[0], result.invoice_lines, result.site, issued=ISSUED, limit=5
    )
    [page] = _pdf_pages(pdf, tmp_path)
    assert "Lighting outside contracted hours — 6 sessions, summed by zone and day" in page
    assert "Mon 2025-02-10 HQ-F1-Z1 2 40.5 45 0.405000 11.25 0.08 11.33" in page
    assert "Tue 2025-02-11 HQ-F1-Z2 2 95 105 2.050000 26.25 0.41 26.66" in page
    assert "INV-C001-202502.lines.csv" in page and "Total 49.33 EUR" in page


def test_a_long_invoice_prints_within_the_page_limit(tmp_path):
    """2,500 lines in 40 zones over 28 days: in full ~50 pages; summed by zone and day (1,120 rows) fewer
    than the limit's 40 pages, its rows adding up to the invoice's total."""
    pytest.importorskip("fpdf")
    result = long_result(2_500)
    row, lines, site = result.invoices.iloc[0], result.invoice_lines, result.site
    assert len(lines) > PRINTED_LINES
    view = invoice_view(row, lines, site, issued=ISSUED)
    assert view["summary"]["by"] == "zone and day" and len(view["lines"]) == 40 * 28
    assert sum(Decimal(r["amount"].replace(",", "")) for r in view["lines"]) == row["total"]
    summary = _pdf_pages(render_invoice_pdf(row, lines, site, issued=ISSUED), tmp_path)
    full = _pdf_pages(render_invoice_pdf(row, lines, site, issued=ISSUED, limit=None), tmp_path)
    assert len(summary) < PRINTED_LINES // 50 < len(full)
    assert f"Total {row['total']:,f} EUR" in summary[-1] or f"Total {row['total']:,f} EUR" in summary[-2]


# --- the files -----------------------------------------------------------------------------------


def test_the_lines_file_beside_a_summarised_invoice_holds_every_line(tmp_path):
    result = small_invoice()
    paths = start_invoice_files_of(
        result.invoices, result.invoice_lines, result.site, tmp_path, issued=ISSUED, limit=5
    )()
    folder = tmp_path / "invoices"
    assert paths == [folder / f"INV-C001-202502{suffix}" for suffix in (".html", ".pdf", ".lines.csv")]
    whole = write_csv(format_invoice_lines(result.invoice_lines, result.site), tmp_path / "whole.csv")
    assert paths[2].read_bytes() == whole.read_bytes()
    written = pd.read_csv(paths[2], dtype=str)
    assert len(written) == 6 and written["status"].tolist() == [line[8] for line in LINES]
    assert "INV-C001-202502.lines.csv" in paths[0].read_text(encoding="utf-8")


def test_invoices_under_the_limit_get_no_lines_file(tmp_path):
    result = make_result()  # two invoices of 2 and 1 lines
    paths = start_invoice_files_of(result.invoices, result.invoice_lines, result.site, tmp_path, limit=2)()
    assert [p.name for p in paths] == [
        "INV-C001-202502.html",
        "INV-C001-202502.pdf",
        "INV-C004-202503.html",
        "INV-C004-202503.pdf",
    ]


def test_invoices_are_written_in_batches(tmp_path, monkeypatch):
    """With a batch of one printed row, each invoice's views and PDFs come in a batch of their own."""
    from slem_ml.outputs import invoice_render

    monkeypatch.setattr(invoice_render, "BATCH_ROWS", 1)
    result = make_result()
    paths = start_invoice_files_of(
        result.invoices, result.invoice_lines, result.site, tmp_path, issued=ISSUED
    )()
    assert [p.name for p in paths][::2] == ["INV-C001-202502.html", "INV-C004-202503.html"]
    assert all(p.read_bytes().startswith(b"%PDF") for p in paths if p.suffix == ".pdf")
    assert "Total 22.52 EUR" in _text(paths[0].read_text(encoding="utf-8"))


@pytest.mark.parametrize("rows", [1, 2, 100_000])
def test_csv_written_a_chunk_at_a_time_is_the_csv_written_whole(tmp_path, rows):
    result = make_result()  # a zone id that a spreadsheet would run as a formula: escaped in every chunk
    lines, site = result.invoice_lines, result.site
    whole = write_csv(format_invoice_lines(lines, site), tmp_path / "whole.csv").read_bytes()
    chunked = write_csv(
        lines, tmp_path / "chunked.csv", formatter=lambda part: format_invoice_lines(part, site)
    )
    assert chunked.read_bytes() == whole and whole.count(b"\n") == len(lines) + 1
    assert b"'=HYPERLINK" in whole
    small = write_csv(
        lines, tmp_path / "small.csv", chunk_rows=rows, formatter=lambda p: format_invoice_lines(p, site)
    )
    assert small.read_bytes() == whole
    cleaning = result.cleaning_sessions
    assert (
        write_csv(
            cleaning,
            tmp_path / "c1.csv",
            chunk_rows=rows,
            formatter=lambda p: format_cleaning_sessions(p, site),
        ).read_bytes()
        == write_csv(format_cleaning_sessions(cleaning, site), tmp_path / "c2.csv").read_bytes()
    )
    empty = write_csv(
        lines.iloc[:0], tmp_path / "empty.csv", formatter=lambda p: format_invoice_lines(p, site)
    )
    assert empty.read_bytes() == whole.split(b"\n")[0] + b"\n"  # the header only


# --- storing ------------------------------------------------------------------------------------


def _sessions(count: int, minutes: int = 30) -> list[tuple[str, str, str, int, str]]:
    """``count`` sessions of C001 in February, one a zone (zones HQ-F1-Z0 …)."""
    return [("C001", f"HQ-F1-Z{i}", "2025-02-03 18:00", minutes, "0.5") for i in range(count)]


def _stored_lines(engine: Engine, revision: int) -> list[tuple[int, str, Decimal]]:
    history = {r.revision: r for r in invoice_history(engine, "INV-C001-202502")}
    with engine.connect() as connection:
        pk = connection.scalar(
            select(Invoice.id).where(Invoice.invoice_id == "INV-C001-202502", Invoice.revision == revision)
        )
        rows = connection.execute(
            select(InvoiceLine.line_no, InvoiceLine.zone_id, InvoiceLine.amount)
            .where(InvoiceLine.invoice_pk == pk)
            .order_by(InvoiceLine.line_no)
        ).all()
    assert history[revision].lines == len(rows)
    return [(int(n), str(zone), Decimal(amount)) for n, zone, amount in rows]


def test_lines_are_stored_and_compared_a_chunk_at_a_time(engine: Engine, monkeypatch):
    """Inserts of 2 lines and audit entries naming 1 line of each kind: every line stored, every change
    counted. Revision 2 drops Z0, changes Z1 and Z3 (60 minutes: 15.00 + 0.10) and adds Z7 and Z8."""
    monkeypatch.setattr(store_module, "LINES_PER_INSERT", 2)
    monkeypatch.setattr(store_module, "LISTED_LINES", 1)
    store_result(engine, test_storage.make_result(_sessions(7)))
    first = _stored_lines(engine, 1)
    assert [(n, zone) for n, zone, _ in first] == [(i + 1, f"HQ-F1-Z{i}") for i in range(7)]
    assert {amount for *_, amount in first} == {Decimal("7.60")}  # 7.50 + 0.10

    revised = _sessions(9)[1:]
    revised[0] = ("C001", "HQ-F1-Z1", "2025-02-03 18:00", 60, "0.5")
    revised[2] = ("C001", "HQ-F1-Z3", "2025-02-03 18:00", 60, "0.5")
    store_result(engine, test_storage.make_result(revised, input_sha256="b" * 64))
    second = _stored_lines(engine, 2)
    assert [zone for _, zone, _ in second] == [f"HQ-F1-Z{i}" for i in range(1, 9)]
    assert sum(amount for *_, amount in second) == 2 * Decimal("15.10") + 6 * Decimal("7.60")

    [entry] = audit_log(engine, action="invoice.revised")
    detail = entry.detail
    assert detail["line_counts"] == {"added": 2, "removed": 1, "changed": 2}
    assert detail["lines_added"] == [
        {"zone_id": "HQ-F1-Z7", "start": "2025-02-03T18:00:00+01:00", "amount": "7.60"}
    ]
    assert detail["lines_removed"] == [
        {"zone_id": "HQ-F1-Z0", "start": "2025-02-03T18:00:00+01:00", "amount": "7.60"}
    ]
    [changed] = detail["lines_changed"]
    assert changed["zone_id"] == "HQ-F1-Z1"
    assert changed["changes"]["amount"] == {"old": "7.60", "new": "15.10"}
    assert changed["changes"]["minutes"] == {"old": 30.0, "new": 60.0}
    assert (
        detail["summary"]
        == "revision 1 → 2: 2 lines added, 1 line removed, 2 lines changed; total 53.20 → 75.80 EUR"
    )
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(InvoiceLine)) == 7 + 8

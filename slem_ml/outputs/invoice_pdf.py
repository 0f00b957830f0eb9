"""PDF invoices (SPEC §3.7, §7): an invoice view (:func:`~slem_ml.outputs.invoice_content.invoice_view`) on
A4 pages.

Page 1 opens with the supplier header, the invoice facts, the client and the contract terms; later pages with
a running head naming the invoice. The line table repeats its headings on every page, the totals and the
note are never split, and every footer carries "page X of Y" and the content hash.

A month of a large client has thousands of lines. fpdf2's ``table()`` lays out each cell with its general
text engine (~5 ms a line), so the line table is written here as PDF text operators, one block per page:
fixed column widths, string widths from the core font's per-character widths (summed for a whole column at
once), right alignment computed from them, and page breaks counted in millimetres: ~20 µs a line in all
(~0.1 s for 5,000 lines). A row takes a slower path only when a cell must wrap or the line is spike-adjusted.
The rest (header, headings, totals, note, footer: a handful of calls per page) uses fpdf2's public API, which
also registers the fonts used on each page. Core fonts (Helvetica, Courier; Windows-1252) only: other letters
are reduced (``Ł`` → ``L``). The output is reproducible: the PDF's creation date is the issue date.

An invoice too long to print (:data:`~slem_ml.outputs.invoice_summary.PRINTED_LINES`) comes as a view whose
rows are its summary by zone and day, with the table's headings and a paragraph saying why: drawn the same.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from slem_ml.outputs.pdf_text import FontMetrics, clip_text, pdf_text, wrap_text

__all__ = ["render_view_pdf"]

_CONTROL = str.maketrans({**{code: " " for code in range(32)}, 127: " "})
_ESCAPE = str.maketrans({"\\": "\\\\", "(": "\\(", ")": "\\)"})  # in PDF string literals
_PLAIN = re.compile(r"[0-9A-Za-z ,.:;+\-–/]*")  # text that needs neither reducing nor escaping

_FONT, _K = "helvetica", 72 / 25.4  # [pt/mm]
_PAGE_H, _LEFT, _RIGHT, _TOP = 297.0, 12.0, 198.0, 12.0  # A4 portrait and its margins [mm]
_BOTTOM, _FOOTER_Y = 280.0, 284.0  # content ends above the footer [mm]
_INK, _GREY, _RULE = 0.067, 0.33, 0.73  # grey levels of text, labels, rules under rows

# The line table: type sizes [pt]; line pitch, padding and baseline in a row [mm]; column widths [mm].
_BODY_PT, _SMALL_PT, _HEAD_PT = 8.0, 6.8, 7.2
_LINE, _HEAD_LINE, _PAD_Y, _PAD_X, _BASELINE = 3.3, 3.0, 0.8, 1.2, 2.45
_ROW = 2 * _PAD_Y + _LINE  # a one-line row
_WIDTHS = (24.0, 24.0, 26.0, 15.0, 13.0, 27.0, 18.0, 18.0, 21.0)  # 186: from margin to margin
_SUMMARY_WIDTHS = (24.0, 30.0, 14.0, 19.0, 17.0, 24.0, 20.0, 17.0, 21.0)  # sums are wider, times gone
_NUMERIC = (False, False, False, True, True, True, True, True, True)  # right-aligned
_KEYS = (
    "when", "zone_id", "time", "minutes", "billable_minutes", "energy_kwh", "hours_charge", "energy_charge",
    "amount",
)  # fmt: skip  # the cells of a row (a line, or a summary's row), left to right
_ENERGY = 5  # the energy column carries the spike mark †
_X0 = f"{_LEFT * _K:.2f}"


def render_view_pdf(view: Mapping[str, Any]) -> bytes:
    """The invoice ``view`` as an A4 PDF."""
    pdf = _invoice_class()(view)
    pdf.add_page()
    y = _head(pdf, view)
    y = _line_table(pdf, view, y)
    y = _totals(pdf, view, y)
    _note(pdf, view, y)
    return bytes(pdf.output())


def preload() -> None:
    """Import fpdf2 now (0.26 s), e.g. on a thread while other work runs, so that the child process that
    renders the PDFs inherits it instead of importing it on the critical path."""
    _invoice_class()


@functools.cache
def _invoice_class() -> type:
    from fpdf import FPDF  # lazy: fpdf2 is needed only for PDF invoices

    class InvoicePDF(FPDF):
        """Core fonts and their widths; the running head after page 1 and the footer on every page."""

        def __init__(self, view: Mapping[str, Any]) -> None:
            super().__init__(orientation="P", unit="mm", format="A4")
            self.core_fonts_encoding = "windows-1252"
            self.set_margins(_LEFT, _TOP, 210.0 - _RIGHT)
            self.set_auto_page_break(True, margin=_PAGE_H - _BOTTOM)  # a safety net: blocks are kept whole
            self.set_creation_date(dt.datetime.fromisoformat(view["issued"]).replace(tzinfo=dt.UTC))
            label = pdf_text(f"{view['invoice_id']} · revision {view['revision']} · ")
            self.set_title(label[:-3])
            self.set_author("slem")
            self.metrics: dict[str, FontMetrics] = {}
            font: Any  # fpdf2's CoreFont: key, widths (cw) and number (i) in the document
            for family, style in (("courier", ""), (_FONT, "B"), (_FONT, "")):
                self.set_font(family, style, _BODY_PT)
                font = self.current_font
                self.metrics[family + style] = FontMetrics.of(font.fontkey, font.cw)
            self.regular_id = font.i
            self.period = pdf_text(f"{view['period_label']} · continued")
            room = _RIGHT - 4 - _width(self, self.period, 7.5) - _LEFT - _width(self, label, 7.5)
            client = pdf_text(f"{view['client_name']} (client id {view['client_id']})")
            self.running_head = label + clip_text(client, room * _K * 1000 / 7.5, self.metrics[_FONT])
            self.page_label = label + "page "
            self.hash = pdf_text(view["content_hash"])
            self.hash_x = (
                _RIGHT - _width(self, self.hash, 6.5, "courier") - _width(self, "Content hash (SHA-256) ", 7)
            )

        def header(self) -> None:
            if self.page_no() > 1:  # regular text, as in the rows: this registers the font on the page
                _put(self, _RIGHT, _TOP, self.period, 7.5, tone=_GREY, right=True)
                _put(self, _LEFT, _TOP, self.running_head, 7.5, tone=_GREY)
                _rule(self, _TOP + 5, 0.2, _RULE)
                self.set_xy(_LEFT, _TOP + 7.5)

        def footer(self) -> None:
            _rule(self, _FOOTER_Y - 0.8, 0.2, _RULE)
            # "page X of Y": fpdf2 fills in Y at the end, in room kept for three digits, in cell() but not in
            # text(); so Y is the only cell (the costlier call), and the text before it is left-aligned.
            x = _put(self, _LEFT, _FOOTER_Y, f"{self.page_label}{self.page_no()} of ", 7, tone=_GREY)
            self.set_xy(x, _FOOTER_Y)
            self.c_margin = 0
            self.cell(_width(self, "000", 7), 3.5, "{nb}")
            top = _FOOTER_Y if self.hash_x > self.get_x() + 3 else _FOOTER_Y + 3.5  # a long invoice id
            _put(self, self.hash_x, top, "Content hash (SHA-256) ", 7, tone=_GREY)
            _put(self, _RIGHT, top, self.hash, 6.5, family="courier", right=True)

    return InvoicePDF


def _width(pdf: Any, text: str, size: float, font: str = _FONT) -> float:
    """The width of ``text`` [mm] (``font``: family and style, e.g. ``helveticaB``)."""
    return float(pdf.metrics[font].width(text) * size / 1000 / _K)


def _put(pdf: Any, x: float, top: float, text: str, size: float, style: str = "", **how: Any) -> float:
    """A line of text in a box of height ``line`` (3.5 mm) from ``top``, with fpdf2's cheapest call.

    ``x`` is its left edge, or its right edge with ``right=True``; returns the other edge. Also ``tone``
    (grey level) and ``family``.
    """
    family, right = how.get("family", _FONT), how.get("right", False)
    width = _width(pdf, text, size, family + style)
    left = x - width if right else x
    pdf.set_font(family, style, size)
    pdf.set_text_color(255 * how.get("tone", _INK))
    pdf.text(left, top + how.get("line", 3.5) / 2 + 0.3 * size / _K, text)
    return left if right else left + width


def _block(
    pdf: Any, text: str, x: float, top: float, width: float, size: float, style: str = "", **how: Any
) -> float:
    """A paragraph wrapped to ``width`` [mm], ragged right; returns the y below it."""
    for row in wrap_text(pdf_text(text), width * _K * 1000 / size, pdf.metrics[_FONT + style]):
        _put(pdf, x, top, row, size, style, **how)
        top += how.get("line", 3.5)
    return top


def _rule(pdf: Any, y: float, width: float, tone: float, left: float = _LEFT) -> None:
    pdf.set_draw_color(255 * tone)
    pdf.set_line_width(width)
    pdf.line(left, y, _RIGHT, y)


def _head(pdf: Any, view: Mapping[str, Any]) -> float:
    """The supplier header, the invoice facts, the client and the terms; returns the y below them."""
    terms, cur = view["terms"], view["currency"]
    facts_x = _RIGHT - 70.0
    y = _block(pdf, view["supplier_title"], _LEFT, _TOP, facts_x - _LEFT - 6, 15, "B", line=6.5)
    for line in view.get("supplier_lines", ()):
        y = _block(pdf, line, _LEFT, y, facts_x - _LEFT - 6, 8.5, line=4.2)
    site = f"Site time zone {view['site_timezone']} · amounts in {cur}"
    left_end = _block(pdf, site, _LEFT, y, facts_x - _LEFT - 6, 8.5, tone=_GREY, line=4.2)
    facts = [
        ("Invoice", view["invoice_id"]),
        ("Revision", str(view["revision"])),
        ("Issue date", view["issued"]),
    ]
    facts += [("Period", view["period_label"]), ("Service days", view["period_days"])]
    y = max(left_end, _facts(pdf, facts, facts_x, _TOP + 0.6, 22.0)) + 2.5
    _rule(pdf, y, 0.5, _INK)
    y += 4.5
    half = (_RIGHT - _LEFT - 10) / 2
    _put(pdf, _LEFT, y, "BILL TO", 7, tone=_GREY)
    left_end = _block(pdf, view["client_name"], _LEFT, y + 4.5, half, 10, "B", line=4.8)
    left_end = _block(pdf, f"Client id {view['client_id']}", _LEFT, left_end, half, 8.5, line=4.4)
    _put(pdf, _LEFT + half + 10, y, "CONTRACT TERMS APPLIED", 7, tone=_GREY)
    rows = [("Contracted hours", terms["hours"]), ("Grace", terms["grace_text"])]
    rows += [
        ("Block rounding", f"each session rounded up to {terms['block_minutes']} min"),
        ("Hourly rate", f"{terms['hourly_rate']} {cur} per zone-hour"),
        ("Energy rate", f"{terms['energy_rate']} {cur} per kWh"),
    ]
    y = max(left_end, _facts(pdf, rows, _LEFT + half + 10, y + 4.5, 27.0)) + 5
    count = view["totals"]["lines"]
    title = f"Lighting outside contracted hours — {count:,} session{'' if count == 1 else 's'}"
    summary = view.get("summary")
    if summary:
        title += f", summed by {summary['by']}"
    y = _block(pdf, title, _LEFT, y, _RIGHT - _LEFT, 11, "B", line=5.5) + 1
    if summary:  # why a summary, and where the lines are
        y = _block(pdf, summary["text"], _LEFT, y, _RIGHT - _LEFT, 8.5, line=4.0) + 2
    return y


def _facts(pdf: Any, rows: Sequence[tuple[str, str]], x: float, y: float, label: float) -> float:
    """Label (grey) and value (bold) pairs up to the right margin; returns the y below them."""
    for name, value in rows:
        _put(pdf, x, y, name, 8.5, tone=_GREY, line=4.4)
        y = _block(pdf, value, x + label, y, _RIGHT - x - label, 8.5, "B", line=4.4)
    return y


# --- the line table ------------------------------------------------------------------------------


def _line_table(pdf: Any, view: Mapping[str, Any], y: float) -> float:
    """The lines, with the headings repeated on each page; returns the y below the table."""
    lines, regular = view["lines"], pdf.metrics[_FONT]
    texts = _cells(lines)
    widths = [regular.widths(column) for column in texts]
    edges = np.cumsum((_LEFT, *(_SUMMARY_WIDTHS if view.get("summary") else _WIDTHS))).tolist()
    starts = [edge + (_PAD_X if i else 0.0) for i, edge in enumerate(edges[:-1])]
    ends = [edge - (_PAD_X if i < len(_WIDTHS) else 0.0) for i, edge in enumerate(edges[1:], start=1)]
    mark = _width(pdf, " †", _BODY_PT) if view["has_adjusted"] else 0.0
    ends[_ENERGY] -= mark  # the numbers stay aligned, the mark goes right of them
    room = [(end - start) * _K * 1000 / _BODY_PT for start, end in zip(starts, ends, strict=True)]
    fits = np.all([w <= r for w, r in zip(widths, room, strict=True)], axis=0).tolist()
    rows = _row_ops(texts, widths, starts, ends)
    geometry = ([x * _K for x in starts], [x * _K for x in ends], room, mark * _K)  # [pt]
    heading = _heading_ops(pdf, view, starts, ends)
    page: list[str] = []  # this page's text operators (body font), then its rules
    rules: list[str] = []
    y = _heading(pdf, heading, y)
    for i, line in enumerate(lines):
        wrapped = None if fits[i] and not line["adjusted"] else _wrapped(regular, texts, i, line, geometry)
        height = _ROW if wrapped is None else 2 * _PAD_Y + _LINE * wrapped[0]
        if y + height > _BOTTOM and page:
            _emit(pdf, page, rules)
            page, rules = [], []
            pdf.add_page()
            y = _heading(pdf, heading, float(pdf.get_y()))
        top = (_PAGE_H - y - _PAD_Y - _BASELINE) * _K  # the first line's baseline [pt]
        if wrapped is None:
            page.append(f"1 0 0 1 {_X0} {top:.2f} Tm{rows[i]}")
        else:
            for x, row, text, size, tone in wrapped[1]:
                base = top - row * _LINE * _K
                page.append(f"{tone} g /F{pdf.regular_id} {size} Tf 1 0 0 1 {x:.2f} {base:.2f} Tm({text})Tj")
            page.append(f"{_INK} g /F{pdf.regular_id} {_BODY_PT} Tf")
        y += height
        rules.append(f"{_X0} {(_PAGE_H - y) * _K:.2f} m {_RIGHT * _K:.2f} {(_PAGE_H - y) * _K:.2f} l")
    _emit(pdf, page, rules)
    return y + 4


def _cells(lines: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Each column's cell texts, reduced to Windows-1252 (one check a column when nothing needs it)."""
    columns = [[line[key] for line in lines] for key in _KEYS]
    return [
        c if _PLAIN.fullmatch("".join(c)) else [pdf_text(t).translate(_CONTROL) for t in c] for c in columns
    ]


def _row_ops(
    texts: list[list[str]], widths: list[np.ndarray], starts: list[float], ends: list[float]
) -> list[str]:
    """The operators of each one-line row after its first position: ``(date)Tj 62.36 0 Td(zone)Tj …``.

    Each cell is placed by a move from the one before, so the operators do not depend on where the row lands
    and are built before the page loop, one ``str.format`` a row. Only moves into right-aligned cells vary.
    """
    xs = np.empty((len(texts[0]), len(_WIDTHS)))
    for i, numeric in enumerate(_NUMERIC):
        xs[:, i] = ends[i] * _K - widths[i] * (_BODY_PT / 1000) if numeric else starts[i] * _K
    moves = np.diff(np.round(xs, 2), axis=1)  # between positions as written: no drift along the row
    template, values = "({})Tj", [_escaped(texts[0])]
    for i in range(1, len(_WIDTHS)):
        if _NUMERIC[i] or _NUMERIC[i - 1]:
            template += " {:.2f} 0 Td({})Tj"
            values.append(moves[:, i - 1].tolist())
        else:  # between two left-aligned cells: the same move on every row
            template += f" {(starts[i] - starts[i - 1]) * _K:.2f} 0 Td({{}})Tj"
        values.append(_escaped(texts[i]))
    return [template.format(*row) for row in zip(*values, strict=True)]


def _escaped(texts: list[str]) -> list[str]:
    return texts if _PLAIN.fullmatch("".join(texts)) else [text.translate(_ESCAPE) for text in texts]


def _heading_ops(
    pdf: Any, view: Mapping[str, Any], starts: list[float], ends: list[float]
) -> tuple[float, list]:
    """The headings, bottom-aligned: their depth [mm] and each line's (x, baseline below the top, text)."""
    names = view["headings"]
    wrapped = [
        wrap_text(pdf_text(name), (end - start) * _K * 1000 / _HEAD_PT, pdf.metrics[_FONT + "B"])
        for name, start, end in zip(names, starts, ends, strict=True)
    ]
    depth = max(len(lines) for lines in wrapped)
    ops = []
    for i, lines in enumerate(wrapped):
        for row, text in enumerate(lines, start=depth - len(lines)):
            x = ends[i] - _width(pdf, text, _HEAD_PT, _FONT + "B") if _NUMERIC[i] else starts[i]
            ops.append((x, 3.2 + row * _HEAD_LINE, text))
    return 2.0 + depth * _HEAD_LINE, ops


def _heading(pdf: Any, heading: tuple[float, list], y: float) -> float:
    """The headings at ``y``, ruled below; returns the y of the rule. Bold, with fpdf2's ``text()``: this
    registers the bold font on the page (the running head and the footer register the regular one)."""
    depth, ops = heading
    pdf.set_font(_FONT, "B", _HEAD_PT)
    pdf.set_text_color(255 * _INK)
    for x, base, text in ops:
        pdf.text(x, y + base, text)
    _rule(pdf, y + depth, 0.35, _INK)
    return y + depth


def _wrapped(
    metrics: FontMetrics, texts: list[list[str]], i: int, line: Any, geometry: tuple
) -> tuple[int, list]:
    """A row of more than one line: its depth in lines, and each line's (x [pt], line, text, size, tone)."""
    starts, ends, room, mark = geometry
    parts: list[tuple[float, int, str, float, float]] = []
    depth = energy = 1
    for column, limit in enumerate(room):
        cell = wrap_text(texts[column][i], limit, metrics)
        for row, text in enumerate(cell):
            x = ends[column] - metrics.width(text) * _BODY_PT / 1000 if _NUMERIC[column] else starts[column]
            parts.append((x, row, text.translate(_ESCAPE), _BODY_PT, _INK))
        depth, energy = max(depth, len(cell)), len(cell) if column == _ENERGY else energy
    if line["adjusted"]:  # the mark right of the energy, the metered value (small, grey) under it
        parts.append((ends[_ENERGY] + mark - metrics.width("†") * _BODY_PT / 1000, 0, "†", _BODY_PT, _INK))
        metered = pdf_text(f"metered {line['original_energy_kwh']}").translate(_CONTROL)
        for row, text in enumerate(
            wrap_text(metered, room[_ENERGY] * _BODY_PT / _SMALL_PT, metrics), start=energy
        ):
            x = ends[_ENERGY] - metrics.width(text) * _SMALL_PT / 1000
            parts.append((x, row, text.translate(_ESCAPE), _SMALL_PT, _GREY))
            depth = max(depth, row + 1)
    return depth, parts


def _emit(pdf: Any, page: list[str], rules: list[str]) -> None:
    """Add a page's table body to its content stream: the text, then the rules under the rows.

    fpdf2 has no public call for raw operators; ``_out`` is the one its own drawing methods use (one call a
    page here). The font named is registered on the page by the public calls around it.
    """
    if page:
        ops = ["q", f"BT /F{pdf.regular_id} {_BODY_PT} Tf {_INK} g", *page, "ET", f"{_RULE} G 0.25 w", *rules]
        pdf._out("\n".join([*ops, "S", "Q"]).encode("cp1252"))


# --- totals and note -----------------------------------------------------------------------------


def _totals(pdf: Any, view: Mapping[str, Any], y: float) -> float:
    """The totals, right-aligned under the table and never split; returns the y below them."""
    totals, cur = view["totals"], view["currency"]
    rows = [
        ("Billable time", f"{totals['billable_minutes']} min = {totals['billable_hours']} h"),
        ("Energy outside contracted hours", f"{totals['energy_kwh']} kWh"),
        ("Hours charges", f"{totals['hours_charge']} {cur}"),
        ("Energy charges", f"{totals['energy_charge']} {cur}"),
    ]
    if view.get("has_held"):
        rows.append(("Held for review (not in the total)", f"{totals['held_total']} {cur}"))
    tax = view.get("tax")
    if tax:
        rows += [("Net", f"{tax['net']} {cur}"), (tax["label"], f"{tax['tax']} {cur}")]
    grand = ("Total due (gross)", tax["gross"]) if tax else ("Total", totals["total"])
    if y + 4.8 * len(rows) + 8.5 > _BOTTOM:
        pdf.add_page()
        y = float(pdf.get_y())
    for label, value in rows:
        _put(pdf, _RIGHT - 120, y, label, 9, line=4.8)
        _put(pdf, _RIGHT, y, pdf_text(value), 9, line=4.8, right=True)
        y += 4.8
    _rule(pdf, y + 1, 0.4, _INK, left=_RIGHT - 120)
    _put(pdf, _RIGHT - 120, y + 2, grand[0], 11, "B", line=6)
    _put(pdf, _RIGHT, y + 2, pdf_text(f"{grand[1]} {cur}"), 11, "B", line=6, right=True)
    return y + 14


def _note(pdf: Any, view: Mapping[str, Any], y: float) -> None:
    """How overtime is computed, and what the content hash is for; never split across pages."""
    closing = (
        f"The content hash in the footer is the SHA-256 of this invoice's lines: re-scoring the same "
        f"readings reproduces it, and a changed invoice is issued as a new revision. Generated by slem "
        f"{view['slem_version']}."
    )
    width, regular = _RIGHT - _LEFT, pdf.metrics[_FONT]
    height = 6.5 + 3.4 * len(wrap_text(pdf_text(closing), width * _K * 1000 / 7.5, regular))
    height += sum(
        4.0 * len(wrap_text(pdf_text(text), width * _K * 1000 / 8.5, regular)) + 1.5 for text in view["note"]
    )
    if y + height > _BOTTOM:
        pdf.add_page()
        y = float(pdf.get_y())
    _put(pdf, _LEFT, y, "HOW OVERTIME IS COMPUTED", 7, tone=_GREY)
    y += 4.5
    for text in view["note"]:
        y = _block(pdf, text, _LEFT, y, width, 8.5, line=4.0) + 1.5
    _block(pdf, closing, _LEFT, y + 2, width, 7.5, tone=_GREY, line=3.4)

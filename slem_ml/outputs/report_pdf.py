"""A periodic report (SPEC §10) as an A4 PDF, from the same template as the HTML page.

The page body of ``templates/report.html`` (rendered by :func:`~slem_ml.outputs.report_html.render_view`)
is fed to fpdf2's ``write_html`` one ``<section>`` or ``<h3>`` sub-heading at a time: the ``<head>`` and
its browser-only ``<style>`` never reach fpdf2 (it would print the CSS as text), and a chunk whose heading
and first content (a table's header and first rows, a chart, a paragraph — measured on a scratch page)
would not fit on what is left of a page starts on the next one, so no heading is left alone at a page's
foot. Table columns are sized in the PDF's fonts (:func:`column_widths`): never narrower than their
longest header word, so no header breaks mid-word. Core fonts (Helvetica; Windows-1252) only, so the text
is reduced as the invoices' is (:func:`~slem_ml.outputs.pdf_text.pdf_text`: "CO₂" → "CO2"): nothing to
ship, works on any machine. Every page's footer carries the report's title and "page X of Y"; the PDF's
creation date is the report's ``generated_at``, so the same content gives the same bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from slem_ml.outputs.pdf_text import pdf_text
from slem_ml.outputs.report_content import ReportContent
from slem_ml.outputs.report_html import render_view, report_view

__all__ = ["column_widths", "render_pdf"]

_LEFT, _TOP, _RIGHT_MARGIN, _BOTTOM = 12.0, 12.0, 12.0, 16.0  # A4 portrait margins [mm]
_BODY_PT = 8.5
_INK, _GREY, _RULE = 17, 85, 170  # grey levels of text, footer, rules [0–255]
_CHUNK = re.compile(r"(?=<section|<h3)")  # placed one by one: each section, each sub-heading
_IMAGE_HEIGHT = re.compile(r'<img [^>]*height="(\d+)"')
_ROW_END = re.compile(r"</tr>")
_BLOCK_END = re.compile(r"</p>|</li>")
_LEAD_ROWS = 2  # a table's first rows kept with its heading (after its header row)


def render_pdf(content: ReportContent, charts: Mapping[str, bytes]) -> bytes:
    """The report as A4 PDF bytes: the template's page, charts embedded, page numbers in the footer."""
    pdf = _report_class()(pdf_text(content.title))
    view = report_view(content, charts)
    for table in (view["headline"], *view["tables"].values()):
        table["widths"] = column_widths(pdf, table["headers"], table["rows"])
    html = render_view(view)
    body = html[html.index("<body>") + len("<body>") : html.rindex("</body>")]
    pdf.set_creation_date(content.generated_at)
    pdf.add_page()
    scratch = _report_class()("")  # where the start of a chunk is measured before it is placed
    for chunk in _CHUNK.split(pdf_text(body)):
        if not chunk.strip():
            continue
        at_top = pdf.get_y() <= pdf.t_margin + 1.0
        if not at_top and pdf.get_y() + _lead_height(scratch, chunk) > pdf.page_break_trigger:
            pdf.add_page()
        _write(pdf, chunk)
    return bytes(pdf.output())


def column_widths(pdf: Any, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[float]:
    """A table's column widths [% of the text width]: each at least its longest header word and its longest
    unbreakable cell text (no "Energ y" wrapped mid-word), what is left shared by how much wider each
    column's whole cells are; in the PDF's fonts (headers bold)."""
    room = pdf.epw
    pad = 2 * pdf.c_margin + 0.5  # a cell's margins and its rule [mm]
    pdf.set_font("helvetica", "B", _BODY_PT)
    least = [max((pdf.get_string_width(w) for w in pdf_text(h).split(" ")), default=0.0) for h in headers]
    whole = [pdf.get_string_width(pdf_text(h)) * 0.5 for h in headers]  # a header may wrap onto two lines
    pdf.set_font("helvetica", "", _BODY_PT)
    for row in rows:
        for index, cell in enumerate(row):
            text = pdf_text(cell)
            least[index] = max(least[index], max(pdf.get_string_width(w) for w in text.split(" ")))
            whole[index] = max(whole[index], pdf.get_string_width(text))
    minimum = [width + pad for width in least]
    wanted = [max(width + pad, low) for width, low in zip(whole, minimum, strict=True)]
    if sum(wanted) <= room:  # everything on one line: the spare room shared by width
        widths = [width * room / sum(wanted) for width in wanted]
    elif sum(minimum) < room:  # each column its minimum, the rest by how much more it would take
        spare, more = room - sum(minimum), [w - m for w, m in zip(wanted, minimum, strict=True)]
        widths = [m + spare * extra / sum(more) for m, extra in zip(minimum, more, strict=True)]
    else:  # too many columns for the page: in proportion to their minimum
        widths = minimum
    total = sum(widths) or 1.0
    return [round(100 * width / total, 3) for width in widths]


def _write(pdf: Any, html: str) -> None:
    """One chunk of the page's body through fpdf2's ``write_html``, in the report's styles."""
    pdf.set_draw_color(_RULE)  # the rules between table rows: thin and light
    pdf.set_line_width(0.15)
    pdf.write_html(
        html,
        tag_styles=_tag_styles(),
        table_line_separators=True,
        li_prefix_color=(60, 60, 60),
        ul_bullet_char="•",  # fpdf2's default for core fonts is not in Windows-1252 as it encodes
        warn_on_tags_not_matching=False,  # a chunk may open a <section> that a later one closes
        font_family="helvetica",
    )


def _lead_height(scratch: Any, chunk: str) -> float:
    """What the start of a chunk needs on a page so that its heading is not left alone [mm]: the heading
    and the text up to its first chart (and the chart), else up to its table's header and first rows, else
    its first paragraph or list item — measured by writing that much on a fresh page of ``scratch``."""
    image = _IMAGE_HEIGHT.search(chunk)
    table = chunk.find("<table")
    image_mm = 0.0
    if image and (table < 0 or image.start() < table):
        lead, image_mm = chunk[: image.start()], float(image.group(1)) / scratch.k
    elif table >= 0:
        closes = chunk.find("</table>", table) + len("</table>")
        ends = [match.end() for match in _ROW_END.finditer(chunk, table, closes)]
        # the header row and the first rows, else the whole (short) table
        lead = (
            chunk[: ends[_LEAD_ROWS]] + "</tbody></table>" if len(ends) > _LEAD_ROWS + 1 else chunk[:closes]
        )
    else:
        first = _BLOCK_END.search(chunk)
        lead = (
            chunk if first is None else chunk[: first.end()] + ("</ul>" if first.group() == "</li>" else "")
        )
    scratch.add_page()
    page, top = scratch.page, scratch.get_y()
    _write(scratch, lead)
    return (scratch.page - page) * scratch.eph + scratch.get_y() - top + image_mm


@functools.cache
def _tag_styles() -> dict[str, Any]:
    from fpdf.fonts import TextStyle  # lazy: fpdf2 is needed only for PDFs

    ink = "#111111"
    return {
        "h1": TextStyle(font_size_pt=17, font_style="B", color=ink, t_margin=0, b_margin=0.3),
        "h2": TextStyle(font_size_pt=12, font_style="B", color=ink, t_margin=4, b_margin=0.3),
        "h3": TextStyle(font_size_pt=9.5, font_style="B", color="#333333", t_margin=2.5, b_margin=0.2),
        "p": TextStyle(t_margin=1.2, b_margin=0.8),
        "li": TextStyle(l_margin=4, t_margin=1),
    }


@functools.cache
def _report_class() -> type:
    from fpdf import FPDF  # lazy: fpdf2 is needed only for PDFs

    class ReportPDF(FPDF):
        """A4, core fonts, and the footer: the report's title left, "page X of Y" right."""

        def __init__(self, title: str) -> None:
            super().__init__(orientation="P", unit="mm", format="A4")
            self.core_fonts_encoding = "windows-1252"
            self.set_margins(_LEFT, _TOP, _RIGHT_MARGIN)
            self.set_auto_page_break(True, margin=_BOTTOM)
            self.set_title(title)
            self.set_author("slem")
            self.set_creator("slem")
            self.report_title = title
            self.set_font("helvetica", "", _BODY_PT)
            self.set_text_color(_INK)

        def footer(self) -> None:
            self.set_y(-11)
            self.set_font("helvetica", "", 7)
            self.set_text_color(_GREY)
            self.set_draw_color(_RULE)
            self.set_line_width(0.2)
            self.line(_LEFT, self.get_y() - 1, self.w - _RIGHT_MARGIN, self.get_y() - 1)
            self.cell(self.epw - 30, 4, self.report_title, align="L")
            self.cell(30, 4, f"page {self.page_no()} of {{nb}}", align="R")
            self.set_text_color(_INK)
            self.set_font("helvetica", "", _BODY_PT)

    return ReportPDF

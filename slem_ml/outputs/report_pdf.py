"""A periodic report (SPEC §10) as an A4 PDF, from the same template as the HTML page.

The page body of ``templates/report.html`` (rendered by :func:`~slem_ml.outputs.report_html.render_view`)
is fed to fpdf2's ``write_html`` one ``<section>`` at a time: the ``<head>`` and its browser-only
``<style>`` never reach fpdf2 (it would print the CSS as text), and a section whose heading and first
table rows or chart would not fit on what is left of a page starts on the next one, so no heading is left
alone at a page's foot. Core fonts (Helvetica; Windows-1252) only, so the text is reduced as the invoices'
is (:func:`~slem_ml.outputs.pdf_text.pdf_text`: "CO₂" → "CO2"): nothing to ship, works on any machine.
Every page's footer carries the report's title and "page X of Y"; the PDF's creation date is the report's
``generated_at``, so the same content gives the same bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from slem_ml.outputs.pdf_text import pdf_text
from slem_ml.outputs.report_content import ReportContent
from slem_ml.outputs.report_html import render_view, report_view

__all__ = ["render_pdf"]

_LEFT, _TOP, _RIGHT_MARGIN, _BOTTOM = 12.0, 12.0, 12.0, 16.0  # A4 portrait margins [mm]
_BODY_PT = 8.5
_INK, _GREY, _RULE = 17, 85, 170  # grey levels of text, footer, rules [0–255]
_SECTION = re.compile(r"(?=<section)")
_IMAGE_HEIGHT = re.compile(r'<img [^>]*height="(\d+)"')
_HEADING_MM, _ROWS_MM = 12.0, 22.0  # kept together: a heading and its first rows [mm]


def render_pdf(content: ReportContent, charts: Mapping[str, bytes]) -> bytes:
    """The report as A4 PDF bytes: the template's page, charts embedded, page numbers in the footer."""
    html = render_view(report_view(content, charts))
    body = html[html.index("<body>") + len("<body>") : html.rindex("</body>")]
    pdf = _report_class()(pdf_text(content.title))
    pdf.set_creation_date(content.generated_at)
    pdf.add_page()
    styles = _tag_styles()
    for chunk in _SECTION.split(pdf_text(body)):
        if not chunk.strip():
            continue
        if pdf.get_y() + _room_needed(chunk, pdf.k) > pdf.page_break_trigger:
            pdf.add_page()
        pdf.set_draw_color(_RULE)  # the rules between table rows: thin and light
        pdf.set_line_width(0.15)
        pdf.write_html(
            chunk,
            tag_styles=styles,
            table_line_separators=True,
            li_prefix_color=(60, 60, 60),
            ul_bullet_char="•",  # fpdf2's default for core fonts is not in Windows-1252 as it encodes
            warn_on_tags_not_matching=False,
            font_family="helvetica",
        )
    return bytes(pdf.output())


def _room_needed(chunk: str, k: float) -> float:
    """What a section needs on this page to start here [mm]: its heading and first chart, else first rows."""
    image = _IMAGE_HEIGHT.search(chunk)
    table = chunk.find("<table")
    if image and (table < 0 or image.start() < table):
        return _HEADING_MM + float(image.group(1)) / k
    return _HEADING_MM + _ROWS_MM


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

"""Printable invoices (SPEC §3.7, §7): one self-contained HTML page per invoice, and the same as PDF.

Both renderings come from one view (:func:`~slem_ml.outputs.invoice_content.invoice_view`). The HTML is
Jinja2 with autoescaping on, so a client name or zone id with markup in it is shown, never run. It has no
external assets and prints on A4. The PDF is drawn by :mod:`~slem_ml.outputs.invoice_pdf`.

``slem score`` writes every invoice (:func:`start_invoice_files_of`), with bounded memory whatever the
number of lines: an invoice of more than :data:`PRINTED_LINES` lines prints as a summary by zone and day
and gets ``INV-….lines.csv`` beside it (every line, formatted and written a chunk at a time); the views are
made for a batch of invoices at a time (at most :data:`BATCH_ROWS` printed rows), each computed once for
both renderings, and the HTML is streamed to its file.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from slem_ml import forked
from slem_ml.config.site import SiteConfig
from slem_ml.outputs.csvsafe import write_csv
from slem_ml.outputs.formatting import format_invoice_lines
from slem_ml.outputs.invoice_content import (
    PRINTED_LINES,
    SUPPLIER_TITLE,
    invoice_file_name,
    invoice_view,
)
from slem_ml.outputs.invoice_pdf import preload as preload_pdf
from slem_ml.outputs.invoice_pdf import render_view_pdf
from slem_ml.scoring.result import ScoringResult

__all__ = [
    "BATCH_ROWS",
    "PRINTED_LINES",
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

#: Printed rows (lines, or a summary's rows) whose views are held at once while the files are written.
BATCH_ROWS = 20_000

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
    limit: int | None = PRINTED_LINES,
) -> str:
    """One invoice as a self-contained, printable HTML page (A4); ``service`` and ``limit`` (above it, a
    summary by zone and day) as :func:`invoice_view`."""
    view = invoice_view(invoice_row, lines_frame, site, issued=issued, service=service, limit=limit)
    return str(_template().render(**view, rows_html=_rows_html(view["lines"])))


def _template() -> Any:
    return _environment().get_template("invoice.html")


def _write_html(view: Mapping[str, Any], path: Path) -> None:
    """The page of ``view`` written to ``path`` as the template makes it, piece by piece."""
    with path.open("w", encoding="utf-8") as out:
        _template().stream(**view, rows_html=_rows_html(view["lines"])).dump(out)


def _rows_html(lines: list[dict[str, Any]]) -> Any:
    """The table body, one f-string per row: jinja's loop cost 30 µs a line on month-long invoices.

    Every cell goes through ``escape`` as the template would (zone ids are the user's text).
    """
    rows = []
    for line in lines:
        energy = escape(line["energy_kwh"])
        if line["adjusted"]:
            metered = escape(line["original_energy_kwh"])
            energy = Markup(f'{energy} †<span class="orig">metered {metered}</span>')
        rows.append(
            f'<tr><td class="nowrap">{escape(line["when"])}</td>'
            f'<td class="zone">{escape(line["zone_id"])}</td>'
            f'<td class="nowrap">{escape(line["time"])}</td>'
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
    limit: int | None = PRINTED_LINES,
) -> bytes:
    """One invoice as an A4 PDF with the content of the HTML page (:mod:`slem_ml.outputs.invoice_pdf`).

    Uses the PDF core fonts (Windows-1252): letters outside it are reduced to ASCII (``Ł`` → ``L``).
    The output is reproducible: the PDF's creation date is the issue date. ``limit`` as
    :func:`invoice_view`.
    """
    view = invoice_view(invoice_row, lines_frame, site, issued=issued, service=service, limit=limit)
    return render_view_pdf(view)


# --- the files of a run --------------------------------------------------------------------------


def write_invoice_files(
    result: ScoringResult, out_dir: str | Path, *, issued: dt.date | None = None
) -> list[Path]:
    """Write ``out_dir/invoices/INV-….html`` and ``.pdf`` for every invoice (and ``INV-….lines.csv`` for
    a summarised one); the folder is always made."""
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
    limit: int | None = PRINTED_LINES,
) -> Callable[[], list[Path]]:
    """:func:`start_invoice_files` for ``invoices`` and their ``lines`` (the ``invoices.csv`` and
    ``invoice_lines.csv`` frames of SPEC §7); ``service_periods`` by invoice id, ``limit`` (above it, a
    summary and ``INV-….lines.csv``) as :func:`invoice_view`.

    Per invoice the returned paths are its HTML, its PDF and, when summarised, its lines file. The views
    are made a batch of invoices at a time (:data:`BATCH_ROWS` printed rows): the first batch's PDFs start
    now, each later batch's in a child forked when it comes.
    """
    folder = Path(out_dir) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    write = _InvoiceFiles(invoices, lines, site, folder, issued, service_periods or {}, limit)
    batches = write.batches()
    first = write.views(batches[0])
    work = functools.partial(_write_pdfs, first, folder)
    pdfs = standby.run(work) if standby is not None else forked.start(work)  # on the other core

    def finish() -> list[Path]:
        paths: list[Path] = []
        views, job = first, pdfs
        try:
            for number in range(len(batches)):
                if number:
                    views = write.views(batches[number])
                    job = forked.start(functools.partial(_write_pdfs, views, folder))
                paths += write.finish(views, job)
        finally:
            job.close()
        return paths

    return finish


class _InvoiceFiles:
    """The printable files of a set of invoices, a batch of them at a time."""

    def __init__(
        self,
        invoices: pd.DataFrame,
        lines: pd.DataFrame,
        site: SiteConfig,
        folder: Path,
        issued: dt.date | None,
        periods: Mapping[str, tuple[dt.date, dt.date]],
        limit: int | None,
    ) -> None:
        self.lines, self.site, self.folder = lines, site, folder
        self.issued, self.periods, self.limit = issued, periods, limit
        self.rows = invoices.to_dict("records")
        # each invoice's line positions, no copies (a void revision has none: SPEC §8.3)
        self.positions: dict[str, np.ndarray] = {
            str(key): value for key, value in lines.groupby("invoice_id", sort=False).indices.items()
        }

    def batches(self) -> list[list[int]]:
        """The invoices (row numbers) in batches of at most :data:`BATCH_ROWS` printed rows; at least one."""
        batches: list[list[int]] = [[]]
        rows = 0
        for number, row in enumerate(self.rows):
            count = len(self.positions.get(str(row["invoice_id"]), ()))
            printed = count if self.limit is None else min(count, self.limit)
            if batches[-1] and rows + printed > BATCH_ROWS:
                batches.append([])
                rows = 0
            batches[-1].append(number)
            rows += printed
        return batches

    def frame(self, invoice_id: str) -> pd.DataFrame:
        """The lines of ``invoice_id`` (the whole frame when it holds no others)."""
        at = self.positions.get(invoice_id, np.zeros(0, dtype=np.int64))
        return self.lines if len(at) == len(self.lines) else self.lines.take(at)

    def views(self, batch: list[int]) -> list[dict[str, Any]]:
        return [
            invoice_view(
                self.rows[number],
                self.frame(str(self.rows[number]["invoice_id"])),
                self.site,
                issued=self.issued,
                service=self.periods.get(str(self.rows[number]["invoice_id"])),
                limit=self.limit,
            )  # fmt: skip
            for number in batch
        ]

    def finish(self, views: list[dict[str, Any]], pdfs: forked.ForkJob[list[Path]]) -> list[Path]:
        """Write the HTML pages and the lines files of ``views`` while their PDFs are drawn; every path."""
        html: list[Path] = []
        csv: list[Path | None] = []
        for view in views:
            invoice_id = str(view["invoice_id"])
            path = self.folder / invoice_file_name(invoice_id)
            _write_html(view, path)
            html.append(path)
            summary = view["summary"]
            if summary is None:
                csv.append(None)
                continue
            lines_path = self.folder / summary["lines_file"]  # every line, formatted a chunk at a time
            write_csv(self.frame(invoice_id), lines_path, formatter=self._format)
            csv.append(lines_path)
        pdf = pdfs.result()
        return [p for trio in zip(html, pdf, csv, strict=True) for p in trio if p is not None]

    def _format(self, lines: pd.DataFrame) -> pd.DataFrame:
        return format_invoice_lines(lines, self.site)


def _write_pdfs(views: list[dict[str, Any]], folder: Path) -> list[Path]:
    paths = []
    for view in views:
        path = folder / invoice_file_name(str(view["invoice_id"]), ".pdf")
        path.write_bytes(render_view_pdf(view))
        paths.append(path)
    return paths

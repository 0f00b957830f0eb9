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

import contextlib
import datetime as dt
import functools
import gc
import re
from collections.abc import Callable, Iterator, Mapping
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
    LINES_SUFFIX,
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
    "InvoiceJob",
    "collector_paused",
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
    """The table body, built a column at a time: every cell escaped as the template would (``escape``:
    zone ids are the user's text) but a column without ``&<>"'`` as it is and each distinct text of
    another escaped once; then the cells and the markup between them laid out as one array and joined
    once. (Jinja's loop cost 30 µs a line, one f-string a row 7 µs; this ~1.5 µs.)"""
    if not lines:
        return Markup("")
    cells = {key: _escaped([line[key] for line in lines]) for key in _HTML_KEYS}
    adjusted = np.array([bool(line["adjusted"]) for line in lines])
    if adjusted.any():
        metered = _escaped([line["original_energy_kwh"] for line in lines])
        marked = cells["energy_kwh"] + ' †<span class="orig">metered ' + metered + "</span>"
        cells["energy_kwh"] = np.where(adjusted, marked, cells["energy_kwh"])
    table = np.empty((len(lines), 2 * len(_HTML_KEYS) + 1), dtype=object)
    for column, (key, before) in enumerate(zip(_HTML_KEYS, _HTML_BEFORE, strict=True)):
        table[:, 2 * column] = before
        table[:, 2 * column + 1] = cells[key]
    table[:, -1] = "</td></tr>\n"
    return Markup("".join(table.ravel().tolist()))


_HTML_KEYS = (
    "when", "zone_id", "time", "minutes", "billable_minutes", "energy_kwh", "hours_charge", "energy_charge",
    "amount",
)  # fmt: skip
_HTML_BEFORE = (
    '<tr><td class="nowrap">',
    '</td><td class="zone">',
    '</td><td class="nowrap">',
    *['</td><td class="num">'] * 6,
)  # the markup before each cell of a row
_HTML_SPECIAL = re.compile(r"[&<>\"']")  # what ``escape`` changes


def _escaped(values: list[Any]) -> np.ndarray:
    """``escape`` of each value as text (an object array): as it is when no text has a character that
    ``escape`` changes, else each distinct text escaped once."""
    try:
        joined = "".join(values)
    except TypeError:  # not all text: one at a time
        return np.array([str(escape(value)) for value in values], dtype=object)
    text = np.empty(len(values), dtype=object)
    if not _HTML_SPECIAL.search(joined):
        text[:] = values
        return text
    codes, distinct = pd.factorize(np.array(values, dtype=object))
    text[:] = np.array([str(escape(value)) for value in distinct], dtype=object)[codes]
    return text


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
    write_lines: bool = True,
) -> InvoiceJob:
    """Start writing the printable invoices: the PDFs in a child process at once (``standby``'s, when
    given: it has fpdf2 imported already, see :func:`pdf_standby`), the HTML when the returned job is
    called (which then waits for the PDFs and returns every path written). ``write_lines`` as
    :func:`start_invoice_files_of`."""
    return start_invoice_files_of(
        result.invoices,
        result.invoice_lines,
        result.site,
        out_dir,
        issued=issued,
        service_periods=result.service_periods,
        standby=standby,
        write_lines=write_lines,
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
    write_lines: bool = True,
) -> InvoiceJob:
    """:func:`start_invoice_files` for ``invoices`` and their ``lines`` (the ``invoices.csv`` and
    ``invoice_lines.csv`` frames of SPEC §7); ``service_periods`` by invoice id, ``limit`` (above it, a
    summary and ``INV-….lines.csv``) as :func:`invoice_view`.

    Per invoice the returned paths are its HTML, its PDF and, when summarised, its lines file. The views
    are made a batch of invoices at a time (:data:`BATCH_ROWS` printed rows): the first batch's PDFs start
    now, each later batch's in a child forked one batch ahead (it imports fpdf2 meanwhile).

    ``write_lines=False``: the caller writes the lines files (:attr:`InvoiceJob.lines_files`), e.g. as
    ``parts`` of ``invoice_lines.csv`` (:func:`~slem_ml.outputs.csvsafe.write_csv`), so that each line is
    formatted once; the job still returns their paths.
    """
    folder = Path(out_dir) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    write = _InvoiceFiles(invoices, lines, site, folder, issued, service_periods or {}, limit, write_lines)
    batches = write.batches()
    first = write.views(batches[0])
    work = functools.partial(_write_pdfs, first, folder)
    pdfs = standby.run(work) if standby is not None else forked.start(work)  # on the other core
    # the next batch's child, forked now to import fpdf2 (0.25 s) while the CSVs are written
    spare = [forked.Standby(preload_pdf)] if len(batches) > 1 else []

    def finish() -> list[Path]:
        paths: list[Path] = []
        views, job = first, pdfs
        try:
            for number in range(len(batches)):
                if number:
                    views = write.views(batches[number])
                    job = spare.pop().run(functools.partial(_write_pdfs, views, folder))
                    if number + 1 < len(batches):
                        spare.append(forked.Standby(preload_pdf))
                paths += write.finish(views, job)
        finally:
            job.close()
            for child in spare:
                child.close()
        return paths

    return InvoiceJob(finish, write.lines_files())


class InvoiceJob:
    """Printable invoices being written (:func:`start_invoice_files_of`): call it to finish them."""

    def __init__(self, finish: Callable[[], list[Path]], lines_files: dict[Path, np.ndarray]) -> None:
        self._finish = finish
        #: Each summarised invoice's ``INV-….lines.csv`` and the positions of its lines in ``lines``.
        self.lines_files = lines_files

    def __call__(self) -> list[Path]:
        """Write the HTML (and lines files), wait for the PDFs; every path written."""
        return self._finish()


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
        write_lines: bool,
    ) -> None:
        self.lines, self.site, self.folder = lines, site, folder
        self.issued, self.periods, self.limit = issued, periods, limit
        self.write_lines = write_lines  # False: the caller writes the lines files (lines_files)
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

    def lines_files(self) -> dict[Path, np.ndarray]:
        """The lines file of each invoice printed as a summary, and its lines' positions (ascending)."""
        if self.limit is None:
            return {}
        out: dict[Path, np.ndarray] = {}
        for row in self.rows:
            invoice_id = str(row["invoice_id"])
            at = self.positions.get(invoice_id, np.zeros(0, dtype=np.int64))
            if len(at) > self.limit:  # as invoice_view decides it
                out[self.folder / invoice_file_name(invoice_id, LINES_SUFFIX)] = at
        return out

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
            if self.write_lines:
                write_csv(self.frame(invoice_id), lines_path, formatter=self._format)
            csv.append(lines_path)
        pdf = pdfs.result()
        return [p for trio in zip(html, pdf, csv, strict=True) for p in trio if p is not None]

    def _format(self, lines: pd.DataFrame) -> pd.DataFrame:
        return format_invoice_lines(lines, self.site)


def _write_pdfs(views: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Draw and write the PDFs of ``views``, the cycle collector paused (:func:`collector_paused`): in a
    child forked from the scoring process a collection walks the whole inherited heap, copying it page by
    page (0.3 s for two invoices after a million readings)."""
    with collector_paused():
        paths = []
        for view in views:
            path = folder / invoice_file_name(str(view["invoice_id"]), ".pdf")
            path.write_bytes(render_view_pdf(view))
            paths.append(path)
        return paths


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block (and on again after, if it was).

    Writing the outputs makes a few hundred thousand short-lived strings and no garbage cycles worth
    collecting; in a process that holds a scoring run's millions of objects, the full collections those
    allocations trigger walk all of them (0.2–0.5 s each on the legacy 1 M-row export). Reference counting
    still frees everything at once; cycles made meanwhile are collected later."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()

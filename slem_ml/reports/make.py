"""Making a report (SPEC §10): gather it from the store, render it as HTML, PDF and XLSX, and write the files.

:func:`make_report` is the one way a report is made — by ``slem report``, the schedules
(:mod:`slem_ml.reports.schedule`) and the app's Reports tab alike; :func:`write_report` writes its files,
each whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from slem_ml.atomic import atomic_path
from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError
from slem_ml.models.bundle import ModelBundle
from slem_ml.outputs.report_charts import report_charts
from slem_ml.outputs.report_content import ReportContent
from slem_ml.outputs.report_html import render_html
from slem_ml.outputs.report_pdf import render_pdf
from slem_ml.outputs.report_xlsx import render_xlsx
from slem_ml.reports.gather import gather
from slem_ml.reports.periods import parse_report_period
from slem_ml.reports.scope import parse_scope

__all__ = ["FORMATS", "MadeReport", "make_report", "parse_formats", "write_report"]

#: The formats a report is made in, in the order they are made.
FORMATS: tuple[str, ...] = ("html", "pdf", "xlsx")


@dataclass(frozen=True)
class MadeReport:
    """A report made: its content and its files (format → (file name, bytes))."""

    content: ReportContent
    files: dict[str, tuple[str, bytes]]
    #: seconds each step took: gather, charts, and each format made
    timings: dict[str, float] = field(default_factory=dict)


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"html,pdf"`` or ``["pdf"]`` → the formats in :data:`FORMATS` order; :class:`InputError` for an
    unknown one or none."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        what = f"unknown format {', '.join(unknown)}" if unknown else "no format given"
        raise InputError(f"{what}: choose from {', '.join(FORMATS)} (comma-separated)")
    return tuple(name for name in FORMATS if name in wanted)


def make_report(
    engine: Engine,
    site: SiteConfig,
    period: str,
    scope: str,
    *,
    models: ModelBundle | None,
    formats: Sequence[str] = FORMATS,
    now: dt.datetime | None = None,
) -> MadeReport:
    """The report on ``scope`` (``site``, ``building:HQ``, ``client:C001``) over ``period`` (``2025-03``,
    ``2025-W10``, ``2025-Q1``) from the store, in ``formats``.

    Raises
    ------
    InputError
        For a malformed period, scope or format, and when the store holds no reading of the scope in the
        period ("no readings of Building HQ in March 2025").
    """
    wanted = parse_formats(formats)
    when = dt.datetime.now(dt.UTC) if now is None else now
    which, where = parse_report_period(period), parse_scope(scope, site)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    content = gather(engine, site, which, where, models=models, now=when)
    timings["gather"] = time.perf_counter() - clock
    if content.empty:
        raise InputError(f"no readings of {where.label} in {which.label}")
    clock = time.perf_counter()
    charts = report_charts(content) if {"html", "pdf"} & set(wanted) else {}
    timings["charts"] = time.perf_counter() - clock
    stem = f"slem-report-{where.slug}-{which.text}"
    files: dict[str, tuple[str, bytes]] = {}
    for name in wanted:
        clock = time.perf_counter()
        if name == "html":
            data = render_html(content, charts).encode("utf-8")
        elif name == "pdf":
            data = render_pdf(content, charts)
        else:
            data = render_xlsx(content)
        files[name] = (f"{stem}.{name}", data)
        timings[name] = time.perf_counter() - clock
    return MadeReport(content=content, files=files, timings=timings)


def write_report(made: MadeReport, out_dir: Path) -> list[Path]:
    """Write the report's files into ``out_dir`` (created if needed), each whole or not at all."""
    written = []
    for name, data in made.files.values():
        target = Path(out_dir) / name
        with atomic_path(target) as staging:
            staging.write_bytes(data)
        written.append(target)
    return written

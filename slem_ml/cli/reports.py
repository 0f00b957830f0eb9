"""``slem report``: a week's, month's or quarter's report from the store (SPEC §10), or the scheduled
reports that are due (``--due``, for cron).

A thin adapter over :func:`slem_ml.reports.make.make_report` and :func:`slem_ml.reports.schedule.run_due`;
registered on :data:`slem_ml.cli.main.app` as ``report``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slem_ml.cli.models import DEFAULT_MODELS_DIR, Db, ModelsDir, TrackingUri
from slem_ml.errors import SlemError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from slem_ml.config.site import SiteConfig
    from slem_ml.models.bundle import ModelBundle
    from slem_ml.outputs.report_content import ReportContent

__all__ = ["report"]


def report(
    contracts: Annotated[Path, typer.Option(help="Site configuration (contracts.yaml).")],
    period: Annotated[
        str | None,
        typer.Option(help="The period: 2025-03 (month), 2025-W10 (ISO week) or 2025-Q1 (quarter)."),
    ] = None,
    scope: Annotated[
        str, typer.Option(help="What the report covers: site, building:<name> or client:<id>.")
    ] = "site",
    out: Annotated[Path | None, typer.Option(help="Folder for the report's files.")] = None,
    format_: Annotated[
        str, typer.Option("--format", help="Formats, comma-separated: html, pdf, xlsx.")
    ] = "html,pdf,xlsx",
    due: Annotated[
        bool, typer.Option("--due", help="Make, keep and mail the scheduled reports that are due (for cron).")
    ] = False,
    db: Db = None,
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
) -> None:
    """A report of energy, cost, overtime, cleaning, alerts, forecast and savings from the store, written to
    ``--out`` and kept in the store (the app's Reports tab lists it)."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, matplotlib or SQLAlchemy)
    from slem_ml.config.site import load_site
    from slem_ml.models.registry import find_champion
    from slem_ml.outputs.writer import check_writable
    from slem_ml.reports.make import make_report, parse_formats, write_report
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.reports import keep_report

    if not due and (period is None or out is None):
        raise SlemError("slem report needs --period and --out (or --due for the scheduled reports)")
    site = load_site(contracts)
    formats = parse_formats(format_)
    if out is not None and not due:
        check_writable(out)
    champion = find_champion(tracking_uri, models_dir, required=False)
    engine = open_database(database_url(db))
    try:
        if due:
            _due(engine, site, champion.bundle)
            return
        assert period is not None and out is not None  # checked above
        made = make_report(engine, site, period, scope, models=champion.bundle, formats=formats)
        content = made.content
        summary = _summary(content)
        kept = keep_report(
            engine,
            made.files,
            scope=content.scope,
            period=content.period,
            title=content.title,
            created_by="slem report",
            summary=summary,
        )
    finally:
        engine.dispose()
    written = write_report(made, out)
    typer.echo(f"slem report — {content.title}")
    typer.echo(f"  models: {champion.source}")
    for path in written:
        typer.echo(f"  wrote {path}")
    typer.echo(f"  kept as report {kept} (the app's Reports tab)")
    typer.echo("  " + summary)


def _due(engine: Engine, site: SiteConfig, models: ModelBundle | None) -> None:
    # lazy: schedules need APScheduler and the mail code, only here
    from slem_ml.reports.schedule import run_due

    results = run_due(engine, site, now=dt.datetime.now(dt.UTC), models=models)
    if not results:
        typer.echo("slem report --due — nothing due")
        return
    for result in results:
        typer.echo(result.line())
    if any(result.error for result in results):
        raise SlemError(f"{sum(1 for r in results if r.error)} scheduled report(s) failed (see above)")


def _summary(content: ReportContent) -> str:
    """Energy, cost and the change against the previous period, in one line."""
    headline = content.headline
    energy, cost = content.energy_kwh, content.cost
    line = f"{energy:,.1f} kWh, {cost:,.2f} {content.currency}"
    change = headline.loc[headline["Measure"] == "Energy [kWh]", "Change vs previous [%]"]
    if len(change) and change.iloc[0] is not None:
        line += f", {change.iloc[0]:+,.1f} % energy vs the previous period"
    else:
        line += ", not compared with the previous period (see the report's notes)"
    return line

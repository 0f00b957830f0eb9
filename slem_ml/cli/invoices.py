"""``slem invoices list|export``: the invoices as they stand in the readings store (SPEC §8.7).

A thin adapter over :mod:`slem_ml.storage.periods` and :func:`slem_ml.outputs.writer.write_invoice_export`;
registered on :data:`slem_ml.cli.main.app` as ``invoices``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slem_ml.cli.models import Db

__all__ = ["invoices_app"]

invoices_app = typer.Typer(
    help="The invoices as they stand in the store: list them, export a month.",
    no_args_is_help=True,
)

Period = Annotated[str, typer.Option(help="The month, YYYY-MM (site time).")]


@invoices_app.command("list")
def list_(
    period: Annotated[str | None, typer.Option(help="Only this month, YYYY-MM.")] = None,
    client: Annotated[str | None, typer.Option(help="Only this client's invoices.")] = None,
    db: Db = None,
) -> None:
    """List the latest revision of each invoice: id, period, revision, lines, total."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.periods import latest_invoices

    engine = open_database(database_url(db))
    try:
        rows = latest_invoices(engine, period=period, client_id=client)
    finally:
        engine.dispose()
    if not rows:
        typer.echo("no invoices stored" + (f" for {period}" if period else ""))
        return
    typer.echo(f"{'invoice':<20} {'period':<8} {'rev':>3} {'lines':>6} {'total':>12}  status")
    for row in rows:
        status = "void" if row.void else "issued"
        typer.echo(
            f"{row.invoice_id:<20} {row.period:<8} {row.revision:>3} {row.lines:>6} "
            f"{row.total:>12} {row.currency}  {status}"
        )


@invoices_app.command("export")
def export(
    period: Period,
    out: Annotated[Path, typer.Option(help="Folder for invoices.csv, invoice_lines.csv and invoices/.")],
    contracts: Annotated[Path, typer.Option(help="Site configuration (contracts.yaml).")],
    db: Db = None,
) -> None:
    """Write a month's invoices as they stand in the store (same files as `slem score`, SPEC §7)."""
    # lazy: see list_
    from slem_ml.config.site import load_site
    from slem_ml.outputs.writer import check_writable, write_invoice_export
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.periods import parse_period, period_invoices

    parse_period(period)
    check_writable(out)
    site = load_site(contracts)
    engine = open_database(database_url(db))
    try:
        lines, invoices = period_invoices(engine, site, period)
    finally:
        engine.dispose()
    written = write_invoice_export(invoices, lines, site, out)
    total = sum(invoices["total"]) if len(invoices) else 0
    typer.echo(
        f"{period}: {len(invoices)} invoice(s), {len(lines)} line(s), total {total} {site.site.currency} "
        f"→ {out}/ ({len(written)} files)"
    )

"""``slem invoices list|export|hold|release|waive``: invoices as they stand in the store (SPEC §8.4, §8.7).

A thin adapter over :mod:`slem_ml.storage.periods`, :mod:`slem_ml.storage.decisions` and
:func:`slem_ml.outputs.writer.write_invoice_export`; registered on :data:`slem_ml.cli.main.app` as
``invoices``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slem_ml.cli.models import Db, cli_actor

__all__ = ["invoices_app"]

invoices_app = typer.Typer(
    help="The invoices as they stand in the store: list them, export a month, hold, release or waive a line.",
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
        lines, invoices, service = period_invoices(engine, site, period)
    finally:
        engine.dispose()
    written = write_invoice_export(invoices, lines, site, out, service)
    total = sum(invoices["total"]) if len(invoices) else 0
    typer.echo(
        f"{period}: {len(invoices)} invoice(s), {len(lines)} line(s), total {total} {site.site.currency} "
        f"→ {out}/ ({len(written)} files)"
    )


def _decide(
    decision: str, invoice_id: str, zone: str, start: str, note: str, contracts: Path, db: str | None
) -> None:
    # lazy: see list_
    from slem_ml.config.site import load_site
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.decisions import decide_line

    site = load_site(contracts)
    engine = open_database(database_url(db))
    try:
        done = decide_line(engine, site, invoice_id, zone, start, decision, note, cli_actor())
    finally:
        engine.dispose()
    if not done.changed:
        typer.echo(f"{invoice_id}: the line in {zone} at {start} was already {done.status}")
        return
    typer.echo(
        f"{invoice_id} rev {done.revision}: the line in {zone} at {start} is {done.status}; "
        f"total {done.total} {site.site.currency}, held {done.held_total} {site.site.currency}"
    )


Invoice = Annotated[str, typer.Argument(help="The invoice, e.g. INV-C001-202502.")]
Zone = Annotated[str, typer.Option(help="The line's zone, e.g. HQ-F1-Z4.")]
Start = Annotated[
    str, typer.Option(help="The line's start as invoice_lines.csv gives it, e.g. 2025-02-10T18:00:00+01:00.")
]
Note = Annotated[str, typer.Option(help="Why (kept in the audit log; required).")]
Contracts = Annotated[Path, typer.Option(help="Site configuration (contracts.yaml).")]


@invoices_app.command("hold")
def hold(invoice: Invoice, zone: Zone, start: Start, note: Note, contracts: Contracts, db: Db = None) -> None:
    """Hold a line for review: it leaves the invoice's total until released or waived (new revision)."""
    _decide("hold", invoice, zone, start, note, contracts, db)


@invoices_app.command("release")
def release(
    invoice: Invoice, zone: Zone, start: Start, note: Note, contracts: Contracts, db: Db = None
) -> None:
    """Release a held line: it is billed after all (new revision)."""
    _decide("release", invoice, zone, start, note, contracts, db)


@invoices_app.command("waive")
def waive(
    invoice: Invoice, zone: Zone, start: Start, note: Note, contracts: Contracts, db: Db = None
) -> None:
    """Waive a line: it is never billed (new revision)."""
    _decide("waive", invoice, zone, start, note, contracts, db)

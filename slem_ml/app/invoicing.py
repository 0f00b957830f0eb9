"""The Billing tab's actions: invoice lines, decisions on them, revisions and printable invoices.

One function per thing a user does on the tab, by user name, as in :mod:`slem_ml.app.service`: each checks
who may see or do what and returns display-ready frames or a file. The invoices of a month that is not over
yet (site time) are drafts: live readings keep changing them (SPEC §9 "month to date";
:func:`month_state`); tables say so in a ``state`` column and printed drafts are
named ``…-draft``. Tables are for people (:func:`slem_ml.app.tables.for_people`); only the revision history
shows content hashes. :func:`invoices_zip` puts every printable invoice of a month the user may see in one
ZIP file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from pathlib import Path

import pandas as pd

from slem_ml.app.access import display, require, view_of
from slem_ml.app.tables import for_people, money_text
from slem_ml.app.views import RunView
from slem_ml.app.workspace import AppConfig
from slem_ml.atomic import atomic_path
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.outputs.csvsafe import write_csv
from slem_ml.outputs.formatting import format_invoice_lines
from slem_ml.outputs.invoice_content import LINES_SUFFIX
from slem_ml.outputs.invoice_render import invoice_file_name, render_invoice_html, render_invoice_pdf
from slem_ml.outputs.invoice_summary import PRINTED_LINES
from slem_ml.storage import invoice_history, open_database
from slem_ml.storage.decisions import decide_line
from slem_ml.storage.months import month_bounds_ms
from slem_ml.storage.service_days import stored_service_periods
from slem_ml.storage.users import role_allows

__all__ = [
    "DRAFT",
    "FINAL",
    "billing_lines",
    "decide",
    "INVOICE_SHOWN",
    "LINE_SHOWN",
    "invoice_file",
    "invoice_revisions",
    "invoices_shown",
    "invoices_zip",
    "line_choices",
    "month_state",
    "zone_choices",
]

DRAFT, FINAL = "draft", "final"  # a month's invoices before and after the month is over (SPEC §9)

#: The invoice columns the Billing tab shows (no content hash: that is in the revision history).
INVOICE_SHOWN = (
    "invoice_id", "client_id", "period", "state", "revision", "lines", "billable_hours", "energy_kwh",
    "total", "held_total",
)  # fmt: skip
#: The invoice line columns the Billing tab shows.
LINE_SHOWN = (
    "invoice_id", "client_id", "zone_id", "start", "end", "minutes", "billable_minutes", "energy_kwh",
    "hours_charge", "energy_charge", "amount", "status", "adjusted", "original_energy_kwh",
)  # fmt: skip


def month_state(period: str, timezone: str, now: dt.datetime) -> str:
    """:data:`DRAFT` while ``period`` (YYYY-MM) is not over at ``now`` (tz-aware) — before the next month's
    first midnight in the site's ``timezone`` —, then :data:`FINAL` (SPEC §9: month to date)."""
    _, end_ms = month_bounds_ms(period, timezone)
    return FINAL if now.timestamp() * 1000 >= end_ms else DRAFT


def billing_lines(
    config: AppConfig,
    username: str | None,
    invoice_id: str | None = None,
    zone_id: str | None = None,
    adjusted_only: bool = False,
    period: str | None = None,
) -> pd.DataFrame:
    """The month's invoice lines the user may see, filtered by invoice, zone and spike adjustment, as a
    table for people (:data:`LINE_SHOWN`)."""
    view = require(view_of(config, username, period))
    lines = view.lines
    keep = pd.Series(True, index=lines.index)
    if invoice_id:
        keep &= lines["invoice_id"] == invoice_id
    if zone_id:
        keep &= lines[S.ZONE_ID] == zone_id
    if adjusted_only:
        keep &= lines["adjusted"].astype(bool)
    return for_people(lines[keep], LINE_SHOWN, view.currency)


def zone_choices(
    config: AppConfig, username: str | None, invoice_id: str | None, period: str | None = None
) -> list[str]:
    """The zones of an invoice's lines, sorted (every zone the user may see without an invoice): the
    choices of the Billing tab's zone filter."""
    view = require(view_of(config, username, period))
    if not invoice_id:
        return list(view.zones)
    lines = view.lines[view.lines["invoice_id"] == invoice_id]
    return sorted({str(z) for z in lines[S.ZONE_ID]})


def line_choices(
    config: AppConfig, username: str | None, invoice_id: str | None, period: str | None = None
) -> list[tuple[str, str]]:
    """The lines of an invoice as (label, value) choices for a decision, held lines first; the value is
    ``zone_id|start`` (ISO 8601 with offset)."""
    view = require(view_of(config, username, period))
    lines = view.lines[view.lines["invoice_id"] == invoice_id] if invoice_id else view.lines.iloc[:0]
    order = sorted(range(len(lines)), key=lambda i: (lines["status"].iloc[i] != "held", i))
    choices = []
    for i in order:
        line = lines.iloc[i]
        start = line["start"].isoformat()
        when = f"{line['start']:%a %d %b %H:%M}"
        amount = money_text([line["amount"]])[0]
        label = f"{line['status']} · {line[S.ZONE_ID]} · {when} · {amount} {view.currency}"
        choices.append((label, f"{line[S.ZONE_ID]}|{start}"))
    return choices


def decide(
    config: AppConfig,
    username: str | None,
    invoice_id: str | None,
    line: str | None,
    decision: str,
    note: str,
    period: str | None = None,
) -> pd.DataFrame:
    """Hold, release or waive an invoice line with a note (managers, admins; SPEC §8.4): a new revision
    and an audit entry. Returns the invoice's lines as they are now."""
    view = require(view_of(config, username, period))
    if not role_allows(view.user, "bill"):
        raise SlemError(f"{view.user.name} ({view.user.role}) may not hold, release or waive invoice lines")
    if not invoice_id or invoice_id not in set(view.invoices["invoice_id"]):
        raise SlemError("choose one of your invoices first")
    if not line or "|" not in line:
        raise SlemError("choose a line of the invoice first")
    zone_id, start = line.split("|", 1)
    engine = open_database(config.database_url)
    try:
        decide_line(engine, view.site, invoice_id, zone_id, start, decision, note, view.user.name)
    finally:
        engine.dispose()
    return billing_lines(config, username, invoice_id, period=period)


def invoice_revisions(
    config: AppConfig, username: str | None, invoice_id: str | None, period: str | None = None
) -> pd.DataFrame:
    """Every stored revision of an invoice the user may see, oldest first."""
    view = require(view_of(config, username, period))
    if not invoice_id or invoice_id not in set(view.invoices["invoice_id"]):
        raise SlemError("choose one of your invoices first")
    engine = open_database(config.database_url)
    try:
        history = invoice_history(engine, invoice_id)
    finally:
        engine.dispose()
    rows = [
        {
            "Revision": r.revision,
            "Created (UTC)": f"{r.created_at:%Y-%m-%d %H:%M}",
            "Run": r.run_id,
            "Lines": f"{r.lines:,}",
            "Billable [h]": f"{r.billable_hours:,.2f}",
            f"Total [{r.currency}]": money_text([r.total])[0],
            "Content hash": r.content_hash[:16] + "…",  # the one view that names contents by their hash
        }
        for r in history
    ]
    return display(pd.DataFrame(rows))


def invoice_file(
    config: AppConfig,
    username: str | None,
    invoice_id: str | None,
    kind: str = "pdf",
    period: str | None = None,
) -> Path:
    """The printable invoice (``pdf`` or ``html``) as it stands in the store, if the user may see it;
    ``lines``: every line of it as CSV (``INV-….lines.csv``, what a summarised invoice's print refers to)."""
    return _printed(config, require(view_of(config, username, period)), invoice_id, kind)


def _printed(config: AppConfig, view: RunView, invoice_id: str | None, kind: str) -> Path:
    """:func:`invoice_file` of a month already read (``view``, as the user may see it)."""
    if not invoice_id or invoice_id not in set(view.invoices["invoice_id"]):
        raise SlemError("choose one of your invoices first")
    row = view.invoices[view.invoices["invoice_id"] == invoice_id].iloc[0]
    # one folder per revision and content (printed once): a draft changes as live readings come in
    # without a new revision. The file is named as the invoice, a draft's as one.
    version = f"{invoice_id}-r{int(row['revision'])}-{str(row['content_hash'])[:16]}"
    folder = config.runs_dir / "printed" / invoice_file_name(version, "")
    draft = month_state(str(row["period"]), view.site.site.timezone, dt.datetime.now(dt.UTC)) == DRAFT
    suffix = LINES_SUFFIX if kind == "lines" else f".{kind}"
    path = folder / invoice_file_name(f"{invoice_id}-draft" if draft else invoice_id, suffix)
    if not path.exists():
        engine = open_database(config.database_url)
        try:
            with engine.connect() as connection:
                service = stored_service_periods(connection, [invoice_id]).get(invoice_id)
        finally:
            engine.dispose()
        if kind == "lines":
            own = view.lines[view.lines["invoice_id"] == invoice_id]
            with atomic_path(path) as staging:
                write_csv(own, staging, formatter=lambda part: format_invoice_lines(part, view.site))
            return path
        if kind == "pdf":
            content = render_invoice_pdf(row, view.lines, view.site, service=service)
        else:
            content = render_invoice_html(row, view.lines, view.site, service=service).encode("utf-8")
        with atomic_path(path) as staging:
            staging.write_bytes(content)
    return path


def summarised(view: RunView, invoice_id: str) -> bool:
    """Whether the invoice prints as a summary by zone and day (more than
    :data:`~slem_ml.outputs.invoice_summary.PRINTED_LINES` lines): its lines then go out as CSV beside it."""
    return int((view.lines["invoice_id"] == invoice_id).sum()) > PRINTED_LINES


def invoices_shown(invoices: pd.DataFrame, timezone: str, now: dt.datetime, currency: str) -> pd.DataFrame:
    """Invoices for people (:data:`INVOICE_SHOWN`): after the month their state at ``now`` — draft while the
    month is not over in the site's ``timezone``, else final —, money in ``currency``, no content hash."""
    states = {p: month_state(p, timezone, now) for p in set(invoices["period"].astype(str))}
    shown = invoices.assign(state=[states[str(p)] for p in invoices["period"]])
    return for_people(shown, INVOICE_SHOWN, currency)


def invoices_zip(config: AppConfig, username: str | None, period: str | None = None) -> Path:
    """Every printable invoice (PDF) of the month the user may see — a user tied to a client only its
    own — in one ZIP file, each made as :func:`invoice_file` makes it (drafts named ``…-draft.pdf``).
    The file is written whole (:func:`slem_ml.atomic.atomic_path`) under the app's runs folder, one per
    month, user and set of invoice revisions."""
    view = require(view_of(config, username, period))
    if view.invoices.empty:
        raise SlemError(f"no invoices in {view.period} to download")
    # every PDF from the one read of the month above, and the lines of those printed as a summary
    ids = [str(i) for i in view.invoices["invoice_id"]]
    pdfs = [_printed(config, view, i, "pdf") for i in ids]
    pdfs += [_printed(config, view, i, "lines") for i in ids if summarised(view, i)]
    # named by what it holds: the invoices' folders name their revision and content
    key = hashlib.sha256("\n".join(p.parent.name for p in pdfs).encode()).hexdigest()[:16]
    who = view.user.client_id or "all"
    path = config.runs_dir / "printed" / "zips" / key / f"invoices-{view.period}-{who}.zip"
    if not path.exists():
        with atomic_path(path) as staging, zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as archive:
            for pdf in pdfs:
                archive.write(pdf, arcname=pdf.name)
    return path

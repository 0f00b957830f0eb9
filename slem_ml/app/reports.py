"""The Reports tab's actions (SPEC §10, issue 14 items 3–4): list the kept reports, generate one now,
download or view one — each checked against who asks, at every request.

Who may do what: everyone signed in may list, view and download the reports they may see (a user tied to a
client: only ``client:<its id>`` reports, :func:`slem_ml.storage.reports.list_reports` with its
``client_id``). Generating: managers and admins for any scope; a user tied to a client (any role) for its
own client's scope only; other roles (viewers and data scientists of the whole site) may not. The scope is
checked here on every request, not only by the choices the page offers.
"""

from __future__ import annotations

import datetime as dt
import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slem_ml.app.access import display, user_of, view_of
from slem_ml.app.views import periods as stored_months
from slem_ml.app.workspace import AppConfig
from slem_ml.errors import InputError, SlemError
from slem_ml.io import schema as S
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.registry import find_champion
from slem_ml.reports.make import make_report
from slem_ml.reports.periods import parse_report_period
from slem_ml.reports.scope import client_label
from slem_ml.storage import open_database
from slem_ml.storage.reports import keep_report, list_reports, report_file
from slem_ml.storage.users import User, role_allows

__all__ = [
    "FORMATS",
    "ReportChoices",
    "download_report",
    "generate_report",
    "may_generate",
    "report_choices",
    "report_period_choices",
    "reports_table",
    "view_report",
]

#: The formats a report is made in, in the order the page offers them.
FORMATS = ("pdf", "xlsx", "html")
#: Columns of the list, in words (``report_id`` stays first: the row a user clicks names the report).
_SHOWN = {
    "report_id": "Report",
    "created_at": "Made (UTC)",
    "period": "Period",
    "scope": "Scope",
    "title": "Title",
    "formats": "Formats",
    "created_by": "By",
    "schedule": "Schedule",
    "sent_to": "Sent to",
    "sent_at": "Sent (UTC)",
}
_RECENT_MONTHS = 12  # months offered in the period choices
_WEEK_MONTHS = 2  # the ISO weeks of this many latest months are offered too


@dataclass(frozen=True)
class ReportChoices:
    """What the Reports tab offers a user: periods and scopes as (label, value) pairs."""

    periods: list[tuple[str, str]]  # ("March 2025", "2025-03"), newest first
    scopes: list[tuple[str, str]]  # ("Whole site", "site"), ("Building HQ", "building:HQ"), ...
    may_generate: bool


def may_generate(user: User) -> bool:
    """Managers and admins for any scope, a user tied to a client for its own (see the module docstring)."""
    return user.client_id is not None or role_allows(user, "upload")


def reports_table(config: AppConfig, username: str | None) -> pd.DataFrame:
    """The reports the user may see, newest first, with titled columns (times as ``YYYY-MM-DD HH:MM``)."""
    user = user_of(config, username)
    engine = open_database(config.database_url)
    try:
        kept = list_reports(engine, client_id=user.client_id)
    finally:
        engine.dispose()
    kept = kept[list(_SHOWN)].assign(
        created_at=kept["created_at"].dt.strftime("%Y-%m-%d %H:%M"),
        sent_at=kept["sent_at"].dt.strftime("%Y-%m-%d %H:%M"),
    )
    return display(kept.rename(columns=_SHOWN)).astype(str).replace({"None": "", "nan": "", "NaT": ""})


def report_period_choices(months: list[str]) -> list[tuple[str, str]]:
    """Periods to offer from the store's months (``YYYY-MM``, newest first): each month, the quarters they
    fall in, and the ISO weeks of the latest months; newest first by start, months before weeks."""
    recent = months[:_RECENT_MONTHS]
    texts: dict[str, None] = {}
    for month in recent:
        texts[month] = None
        year, number = (int(part) for part in month.split("-"))
        texts[f"{year}-Q{(number - 1) // 3 + 1}"] = None
    for month in recent[:_WEEK_MONTHS]:
        first = parse_report_period(month)
        day = first.start
        while day < first.end:
            year, week, _ = day.isocalendar()
            texts[f"{year}-W{week:02d}"] = None
            day += dt.timedelta(days=7 - day.weekday())
    parsed = [parse_report_period(text) for text in texts]
    order = {"month": 0, "quarter": 1, "week": 2}
    parsed.sort(key=lambda p: (order[p.kind], -p.start.toordinal()))
    return [(p.label, p.text) for p in parsed]


def report_choices(config: AppConfig, username: str | None) -> ReportChoices:
    """The periods (from the store's months) and the scopes the user may choose."""
    view = view_of(config, username)
    if view is None:
        user = user_of(config, username)
        return ReportChoices([], [], may_generate(user))
    site = view.site
    if view.user.client_id is not None:
        scopes = [(client_label(site, view.user.client_id), f"client:{view.user.client_id}")]
    else:
        buildings = sorted({str(b) for b in view.energy[S.BUILDING].unique()})
        scopes = [
            ("Whole site", "site"),
            *((f"Building {b}", f"building:{b}") for b in buildings),
            *((client_label(site, c), f"client:{c}") for c in sorted(site.clients)),
        ]
    return ReportChoices(report_period_choices(stored_months(config)), scopes, may_generate(view.user))


def generate_report(
    config: AppConfig,
    username: str | None,
    period: str | None,
    scope: str | None,
    *,
    now: dt.datetime | None = None,
) -> tuple[int, str]:
    """Make the report of ``period`` and ``scope`` now (HTML, PDF and XLSX), keep it; returns its id and
    one line saying what was made.

    Raises :class:`SlemError` when the user may not generate reports or not for that scope (a user tied
    to a client: only ``client:<its id>``), or the period or scope is not understood."""
    view = view_of(config, username)
    user = view.user if view is not None else user_of(config, username)
    if not may_generate(user):
        raise SlemError(f"{user.name} ({user.role}) may not generate reports; ask a manager")
    if not period:
        raise InputError("choose a period first")
    if not scope:
        raise InputError("choose a scope first")
    if user.client_id is not None and scope.strip() != f"client:{user.client_id}":
        raise SlemError(f"{user.name} may generate reports of client {user.client_id} only")
    if view is None:
        raise SlemError("nothing stored yet: upload readings on the Upload tab first")
    engine = open_database(config.database_url)
    try:
        made = make_report(engine, view.site, period, scope, models=_models(config), now=now)
        report_id = keep_report(
            engine,
            made.files,
            scope=made.content.scope,
            period=made.content.period,
            title=made.content.title,
            created_by=user.name,
            now=now,
        )
    finally:
        engine.dispose()
    names = ", ".join(name for name, _ in made.files.values())
    return report_id, f"Report {report_id} made: {made.content.title} ({names})."


def download_report(config: AppConfig, username: str | None, report_id: int | str | None, fmt: str) -> Path:
    """The report's file in ``fmt`` written to a fresh temporary folder of this request (the page serves
    it from there); ``InputError("no such report")`` for a report the user may not see."""
    user = user_of(config, username)
    name, content = _file(config, user, report_id, fmt)
    folder = Path(tempfile.mkdtemp(prefix="slem-report-"))
    path = folder / Path(name).name
    path.write_bytes(content)
    return path


def view_report(config: AppConfig, username: str | None, report_id: int | str | None) -> str:
    """The report's HTML page, to show inside the app (an ``<iframe srcdoc>``: its styles stay its own)."""
    user = user_of(config, username)
    _, content = _file(config, user, report_id, "html")
    page = html.escape(content.decode("utf-8"), quote=True)
    return (
        f'<iframe title="Report {int(str(report_id))}" srcdoc="{page}" '
        'style="width:100%;height:80vh;border:1px solid #ccc;background:#fff"></iframe>'
    )


def _file(config: AppConfig, user: User, report_id: int | str | None, fmt: str) -> tuple[str, bytes]:
    if report_id is None or str(report_id).strip() == "":
        raise InputError("choose a report first (click its row)")
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    try:
        number = int(str(report_id).strip())
    except ValueError:
        raise InputError("no such report") from None
    engine = open_database(config.database_url)
    try:
        return report_file(engine, number, fmt, client_id=user.client_id)
    finally:
        engine.dispose()


def _models(config: AppConfig) -> ModelBundle | None:
    return find_champion(config.tracking_uri, config.models_dir, required=False).bundle

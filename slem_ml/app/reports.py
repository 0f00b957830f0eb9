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
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine

from slem_ml.app.access import user_of, view_of
from slem_ml.app.live import site_config
from slem_ml.app.tables import NONE, scope_words
from slem_ml.app.views import periods as stored_months
from slem_ml.app.workspace import AppConfig, champion_bundle
from slem_ml.atomic import atomic_path
from slem_ml.config.site import SiteConfig
from slem_ml.errors import InputError, SlemError
from slem_ml.io import schema as S
from slem_ml.reports.make import make_report
from slem_ml.reports.periods import ReportPeriod, parse_report_period
from slem_ml.reports.scope import client_label, parse_scope
from slem_ml.storage import open_database
from slem_ml.storage.reports import keep_report, list_reports, report_file
from slem_ml.storage.users import User, role_allows

__all__ = [
    "FORMATS",
    "ReportChoices",
    "download_report",
    "generate_report",
    "may_generate",
    "default_period",
    "period_label",
    "report_choices",
    "report_period_choices",
    "reports_table",
    "scope_label",
    "view_report",
]

#: The formats a report is made in, in the order the page offers them.
FORMATS = ("pdf", "xlsx", "html")
#: Columns of the list, in words, those that matter first (``Report`` stays first: the row a user clicks
#: names the report); the title repeats period and scope, a missing format is said when it is asked for.
LIST_COLUMNS = ("Report", "Period", "Scope", "Made (UTC)", "By", "Mailed")
_RECENT_MONTHS = 12  # months offered in the period choices
_WEEK_MONTHS = 3  # the ISO weeks of this many latest months are offered too
_TO_DATE = " (to date)"  # a period not over yet: its report covers the days so far
_FORMAT_WORDS = {"pdf": "PDF", "xlsx": "XLSX", "html": "HTML"}


@dataclass(frozen=True)
class ReportChoices:
    """What the Reports tab offers a user: periods and scopes as (label, value) pairs."""

    periods: list[tuple[str, str]]  # ("March 2025", "2025-03"), newest first
    scopes: list[tuple[str, str]]  # ("Whole site", "site"), ("Building HQ", "building:HQ"), ...
    may_generate: bool
    default_period: str | None = None  # the latest complete month with data (else the newest offered)


def may_generate(user: User) -> bool:
    """Managers and admins for any scope, a user tied to a client for its own (see the module docstring)."""
    return user.client_id is not None or role_allows(user, "upload")


def reports_table(config: AppConfig, username: str | None) -> pd.DataFrame:
    """The reports the user may see, newest first, in words (:data:`LIST_COLUMNS`): the period's label,
    the scope's ("Building HQ", "Acme Logistics GmbH (C001)"), made when (UTC, ``YYYY-MM-DD HH:MM``) and by
    whom (a person, or ``schedule <name>``), and where it was mailed — or, when the mail failed, why."""
    user = user_of(config, username)
    engine = open_database(config.database_url)
    try:
        kept = list_reports(engine, client_id=user.client_id)
        site = _site_or_none(config, engine)
    finally:
        engine.dispose()
    sent = kept["sent_at"].dt.strftime("%Y-%m-%d %H:%M")
    rows = zip(kept["schedule"], kept["created_by"], kept["sent_to"], sent, kept["send_error"], strict=True)
    by, mailed = [], []
    for schedule, creator, sent_to, sent_at, error in rows:
        by.append(f"schedule {schedule}" if _text(schedule) else _text(creator) or NONE)
        mailed.append(_mailed(sent_to, sent_at, error))
    frame = pd.DataFrame(
        {
            "Report": kept["report_id"].astype(str).to_numpy(),
            "Period": [period_label(p) for p in kept["period"]],
            "Scope": [scope_label(s, site) for s in kept["scope"]],
            "Made (UTC)": kept["created_at"].dt.strftime("%Y-%m-%d %H:%M").fillna("").to_numpy(),
            "By": by,
            "Mailed": mailed,
        },
        columns=list(LIST_COLUMNS),
    )
    return frame.astype(str)


def period_label(text: str) -> str:
    """A kept report's period in words ("March 2025"); the text itself when it is not a period."""
    try:
        return parse_report_period(text).label
    except SlemError:
        return text


def scope_label(text: str, site: SiteConfig | None) -> str:
    """A scope in words: "Whole site", "Building HQ", "Acme Logistics GmbH (C001)" (the client's name from
    ``site``'s contracts; "Client C001" without them or for a client they no longer name)."""
    if site is not None:
        try:
            return parse_scope(text, site).label
        except SlemError:
            pass
    return "Whole site" if text == "site" else scope_words(text)


def report_period_choices(months: list[str], today: dt.date) -> list[tuple[str, str]]:
    """Periods to offer from the store's months (``YYYY-MM``, newest first) on the site's local date
    ``today``: each of the latest months, the quarters they fall in and the ISO weeks of the
    :data:`_WEEK_MONTHS` latest; never a period that has not started, and one not over yet labelled
    "(to date)". Months first, then quarters, then weeks, each newest first."""
    recent = [m for m in months[:_RECENT_MONTHS] if parse_report_period(m).start <= today]
    texts: dict[str, None] = {}
    for month in recent:
        texts[month] = None
        year, number = (int(part) for part in month.split("-"))
        texts[f"{year}-Q{(number - 1) // 3 + 1}"] = None
    for month in recent[:_WEEK_MONTHS]:
        first = parse_report_period(month)
        day = first.start
        while day < first.end and day <= today:
            year, week, _ = day.isocalendar()
            texts[f"{year}-W{week:02d}"] = None
            day += dt.timedelta(days=7 - day.weekday())
    parsed = [parse_report_period(text) for text in texts]
    order = {"month": 0, "quarter": 1, "week": 2}
    parsed.sort(key=lambda p: (order[p.kind], -p.start.toordinal()))
    return [(_offered_label(p, today), p.text) for p in parsed]


def default_period(months: list[str], today: dt.date) -> str | None:
    """The period the Reports tab proposes: the latest month with data that is over on ``today`` (the
    site's local date); the newest month that has started when none is over yet; None without data."""
    started = [m for m in months if parse_report_period(m).start <= today]
    complete = [m for m in started if parse_report_period(m).end <= today]
    chosen = complete or started
    return chosen[0] if chosen else None


def report_choices(config: AppConfig, username: str | None, *, today: dt.date | None = None) -> ReportChoices:
    """The periods (from the store's months, on ``today``: the site's local date by default) and the
    scopes the user may choose."""
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
    today = today or dt.datetime.now(ZoneInfo(site.site.timezone)).date()
    months = stored_months(config)
    return ReportChoices(
        report_period_choices(months, today), scopes, may_generate(view.user), default_period(months, today)
    )


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
        made = make_report(engine, view.site, period, scope, models=champion_bundle(config), now=now)
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
    """The report's file in ``fmt``, written once under the app's runs folder (a kept report never changes)
    for the page to offer; ``InputError("no such report")`` for a report the user may not see."""
    user = user_of(config, username)
    name, content = _file(config, user, report_id, fmt)
    path = config.runs_dir / "printed" / "reports" / str(int(str(report_id))) / Path(name).name
    if not path.exists():
        with atomic_path(path) as staging:
            staging.write_bytes(content)
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
    """The report's file in ``fmt``; for a report the user may see that was kept without that format (a
    schedule's made before schedules kept HTML too), a sentence naming the formats it has."""
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
        try:
            return report_file(engine, number, fmt, client_id=user.client_id)
        except InputError:
            kept = list_reports(engine, client_id=user.client_id)
            found = kept.loc[kept["report_id"] == number, "formats"]
            if found.empty or not str(found.iloc[0]).strip():
                raise
            has = [f.strip() for f in str(found.iloc[0]).split(",") if f.strip()]
            words = _and([_FORMAT_WORDS.get(f, f.upper()) for f in has])
            then = "download it" if fmt == "html" else "choose that format"
            raise InputError(f"Report {number} was kept as {words} only: {then}") from None
    finally:
        engine.dispose()


def _and(words: list[str]) -> str:
    """``["PDF", "XLSX"]`` → ``"PDF and XLSX"``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _offered_label(period: ReportPeriod, today: dt.date) -> str:
    return period.label + (_TO_DATE if period.end > today else "")


def _text(value: object) -> str:
    """A cell of :func:`list_reports` as text, ``""`` for none (None or NaN: pandas' missing text)."""
    return value.strip() if isinstance(value, str) else ""


def _mailed(sent_to: object, sent_at: object, error: object) -> str:
    """Where a report was mailed and when (UTC) (and which addresses the server refused), or why the mail
    failed; ``""`` when it is not mailed."""
    problem = _text(error)
    if _text(sent_to):
        when = f" ({sent_at})" if _text(sent_at) else ""
        return f"{_text(sent_to)}{when}" + (f"; ⚠️ {problem}" if problem else "")  # some addresses refused
    return f"⚠️ not sent: {problem}" if problem else ""


def _site_or_none(config: AppConfig, engine: Engine) -> SiteConfig | None:
    """The site's contracts, for clients' names; None when there are none yet (ids are shown instead)."""
    try:
        return site_config(config, engine)
    except SlemError:
        return None

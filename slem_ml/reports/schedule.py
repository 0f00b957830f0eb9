"""Reports on a schedule (SPEC §10): ``reports:`` in contracts.yaml, run by ``slem serve`` and by
``slem report --due`` (cron).

:func:`run_due` decides what is due from the clock alone, so a missed run, a restart or a second runner
changes nothing: for each schedule, the latest run time (site time) at or before ``now`` names one period —
the last complete one before it —, and that period's report is made unless it is kept already (only the
latest: no backfill). It is made, kept (:func:`slem_ml.storage.reports.keep_report`; the database's
unique key lets one of two runners keep it, the other takes it as made) and mailed; a failed mail is
recorded on the report in words and tried again by the next :func:`run_due`. A schedule's report is always
kept as HTML too (what the app's Reports tab shows), and mailed in the schedule's ``formats`` only, under
the report's title.

:class:`ReportScheduler` runs :func:`run_due` in ``slem serve`` with APScheduler 3: a ``CronTrigger`` per
schedule at its local time in the site's timezone (DST-correct: 07:00 is 07:00 local in winter and summer),
one catch-up run at start and every :data:`CATCH_UP_MINUTES` (retries of failed mails, a fire missed
while the machine slept).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from slem_ml.config.reporting import ReportSchedule
from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.outputs.report_content import ReportContent
from slem_ml.reports.deliver import DeliveryError, send_report
from slem_ml.reports.periods import PeriodKind, last_complete
from slem_ml.storage.reports import (
    KeptReportInfo,
    ReportExists,
    claim_send,
    keep_report,
    kept_report,
    record_send,
    report_files,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from slem_ml.models.bundle import ModelBundle

__all__ = [
    "CATCH_UP_MINUTES",
    "DueResult",
    "ReportScheduler",
    "cron_trigger",
    "due_period",
    "kept_formats",
    "last_run_at",
    "run_due",
    "summary_text",
]

#: How often ``slem serve`` runs :func:`run_due` besides the schedules' own times [min].
CATCH_UP_MINUTES = 15
#: A schedule's fire may start this late (the machine was asleep, the scheduler busy) [s].
MISFIRE_GRACE_S = 6 * 3600
CREATED_BY = "schedule"


class _Made(Protocol):
    """What making a report gives (``slem_ml.reports.make.MadeReport``)."""

    @property
    def content(self) -> ReportContent: ...
    @property
    def files(self) -> dict[str, tuple[str, bytes]]: ...


#: ``make_report``'s signature: (engine, site, period, scope, *, models, formats, now) → a made report.
MakeReport = Callable[..., _Made]


@dataclass(frozen=True)
class DueResult:
    """What :func:`run_due` did for one schedule."""

    schedule: str
    period: str
    scope: str
    report_id: int | None  # None: it could not be made
    sent_to: tuple[str, ...]  # the addresses it was mailed to now (empty: not mailed now)
    error: str | None  # why it was not made or not mailed, in words
    made: bool = True  # False: made before, mailed again now

    def line(self) -> str:
        """One log line, e.g. ``reports: made 'monthly site' 2025-03 (site) as report 4, sent to a@x.com``."""
        what = f"{self.schedule!r} {self.period} ({self.scope})"
        if self.report_id is None:
            return f"reports: failed {what}: {self.error}"
        head = (
            f"reports: made {what} as report {self.report_id}"
            if self.made
            else (f"reports: report {self.report_id}, {what}")
        )
        if self.sent_to:
            tail = f", sent to {', '.join(self.sent_to)}"
            return f"{head}{tail}" + (f" ({self.error})" if self.error else "")
        if self.error is not None:
            return f"{head}, not sent: {self.error}"
        return f"{head}, kept"


# --- when -------------------------------------------------------------------------------------------


def last_run_at(schedule: ReportSchedule, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The schedule's latest run time at or before ``now`` (UTC), its local time read in ``tz``.

    A local time that does not exist (02:30 on the day clocks go forward) is read with the offset before
    the change, as APScheduler does (03:30 summer time); one that exists twice, at its first occurrence."""
    local_day = now.astimezone(tz).date()
    for run_day in _run_days(schedule, local_day):
        at = dt.datetime.combine(run_day, schedule.at, tzinfo=tz).astimezone(dt.UTC)
        if at <= now:
            return at
    raise AssertionError("unreachable: the run day before the current one is always in the past")


def due_period(schedule: ReportSchedule, tz: ZoneInfo, now: dt.datetime) -> str:
    """The period the schedule's latest run at or before ``now`` reports on: the last complete period
    before that run's local date (``2025-W10``, ``2025-03``, ``2025-Q1``)."""
    run_day = last_run_at(schedule, tz, now).astimezone(tz).date()
    return last_complete(cast(PeriodKind, schedule.every), run_day).text


def _run_days(schedule: ReportSchedule, day: dt.date) -> tuple[dt.date, dt.date]:
    """The schedule's run day in the period of ``day`` (week, month or quarter) and the one before."""
    if schedule.every == "week":
        this = day - dt.timedelta(days=(day.weekday() - schedule.on) % 7)
        return this, this - dt.timedelta(days=7)
    months = 1 if schedule.every == "month" else 3
    first = _period_start(schedule.every, day)
    before = _add_months(first, -months)
    return first.replace(day=schedule.on), before.replace(day=schedule.on)


def _period_start(every: str, day: dt.date) -> dt.date:
    if every == "week":
        return day - dt.timedelta(days=day.weekday())
    if every == "month":
        return day.replace(day=1)
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def cron_trigger(schedule: ReportSchedule, tz: ZoneInfo) -> CronTrigger:
    """APScheduler's trigger for the schedule: its local time on its day, in the site's timezone."""
    if schedule.every == "week":
        return CronTrigger(
            day_of_week=schedule.on, hour=schedule.at.hour, minute=schedule.at.minute, timezone=tz
        )
    months = "*" if schedule.every == "month" else "1,4,7,10"
    return CronTrigger(
        month=months, day=schedule.on, hour=schedule.at.hour, minute=schedule.at.minute, timezone=tz
    )


# --- making, keeping, mailing ---------------------------------------------------------------------------


def run_due(
    engine: Engine,
    site: SiteConfig,
    *,
    now: dt.datetime,
    models: ModelBundle | None,
    smtp_password: str | None = None,
    make: MakeReport | None = None,
) -> list[DueResult]:
    """Make, keep and mail every scheduled report whose time has come and that is not kept yet; mail again
    the latest kept one whose mail failed. Idempotent: run it as often as you like, from several processes.

    ``smtp_password`` overrides the environment variable ``site.smtp.password_env`` names; ``make``
    replaces :func:`slem_ml.reports.make.make_report` (tests). One failing schedule never stops the others:
    its :class:`DueResult` carries the error in words.
    """
    if make is None:
        from slem_ml.reports.make import make_report  # lazy: rendering imports matplotlib and fpdf2

        make = make_report
    tz = site.site.tz
    results: list[DueResult] = []
    for schedule in site.reports:
        period = due_period(schedule, tz, now)
        kept = kept_report(engine, schedule.name, period, schedule.scope)
        made = False
        if kept is None:
            try:
                report = make(
                    engine,
                    site,
                    period,
                    schedule.scope,
                    models=models,
                    formats=kept_formats(schedule),
                    now=now,
                )
            except Exception as exc:  # one broken report must not stop the others, nor the scheduler
                words = str(exc) if isinstance(exc, SlemError) else f"{type(exc).__name__}: {exc}"
                results.append(
                    DueResult(schedule.name, period, schedule.scope, None, (), f"not made: {words}")
                )
                continue
            try:
                keep_report(
                    engine, report.files, scope=schedule.scope, period=period, title=report.content.title,
                    created_by=CREATED_BY, schedule=schedule.name, summary=summary_text(report.content),
                    mail_to=schedule.to if site.smtp is not None else (),
                )  # fmt: skip
            except ReportExists:
                continue  # another runner kept it first: it mails it
            kept = kept_report(engine, schedule.name, period, schedule.scope)
            made = True
        if kept is None:
            continue
        if kept.mail_to and kept.sent_at is None and site.smtp is not None:
            results.append(_mail(engine, site, schedule, period, kept, smtp_password, made=made))
        elif made:
            results.append(DueResult(schedule.name, period, schedule.scope, kept.report_id, (), None))
    return results


def _mail(
    engine: Engine,
    site: SiteConfig,
    schedule: ReportSchedule,
    period: str,
    kept: KeptReportInfo,
    password: str | None,
    *,
    made: bool,
) -> DueResult:
    settings = site.smtp
    assert settings is not None
    result = DueResult(schedule.name, period, schedule.scope, kept.report_id, (), None, made)
    if not claim_send(engine, kept.report_id, now=dt.datetime.now(dt.UTC)):
        return result  # another runner is mailing it
    if password is None and settings.password_env is not None:
        password = os.environ.get(settings.password_env)
    error: str | None = None
    sent: Sequence[str] = ()
    try:
        files = report_files(engine, kept.report_id)
        asked = {fmt: files[fmt] for fmt in schedule.formats if fmt in files}
        refused = send_report(
            settings, kept.mail_to, kept.title, kept.summary, asked or files, password
        )  # the formats asked (all kept ones if the schedule's formats changed since)
        sent = [a for a in kept.mail_to if a not in refused]
        if refused:
            error = f"the mail server refused {', '.join(refused)}"
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:  # recorded on the report, tried again next time; never lost
        error = f"{type(exc).__name__}: {exc}"
    record_send(engine, kept.report_id, at=dt.datetime.now(dt.UTC), sent=bool(sent), error=error)
    return DueResult(schedule.name, period, schedule.scope, kept.report_id, tuple(sent), error, made)


def kept_formats(schedule: ReportSchedule) -> tuple[str, ...]:
    """The formats a schedule's report is made and kept in: the HTML always (the app's Reports tab shows
    it: "View here"), then those the schedule mails (``formats:``), in the order they are given."""
    return ("html", *(fmt for fmt in schedule.formats if fmt != "html"))


def summary_text(content: ReportContent) -> str:
    """The mail's text: what the report covers and its headline figures, in a few lines."""
    lines = [content.title, "", f"{content.scope_label} — {content.period_label}"]
    if content.empty:
        lines.append("The store holds no readings of this scope in the period.")
    else:
        lines.append(f"Energy: {content.energy_kwh:,.1f} kWh; cost: {content.cost:,.2f} {content.currency}.")
    lines.extend(content.notes)
    lines += ["", "The report is attached; slem keeps it in the app's Reports tab too."]
    return "\n".join(lines) + "\n"


# --- in slem serve ----------------------------------------------------------------------------------


class ReportScheduler:
    """The site's report schedules on an APScheduler ``BackgroundScheduler`` in the site's timezone."""

    def __init__(
        self,
        engine: Engine,
        site: SiteConfig,
        *,
        models: ModelBundle | None,
        log: Callable[[str], Any] = print,
        make: MakeReport | None = None,
    ) -> None:
        self.engine, self.site, self.models, self.log, self.make = engine, site, models, log, make
        self._lock = threading.Lock()  # one run_due at a time in this process
        self._told: set[str] = set()  # failures logged already: a report that keeps failing is told once
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        """Schedule each report at its local time, a catch-up run now and every few minutes; log them."""
        tz = self.site.site.tz
        scheduler = BackgroundScheduler(
            timezone=tz,
            job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S, "max_instances": 1},
        )
        for schedule in self.site.reports:
            scheduler.add_job(
                self.run, cron_trigger(schedule, tz), id=f"report:{schedule.name}", name=schedule.name
            )
        scheduler.add_job(
            self.run,
            IntervalTrigger(minutes=CATCH_UP_MINUTES, timezone=tz),
            id="reports:catch-up",
            next_run_time=dt.datetime.now(tz),  # at start: what was missed while slem was not running
        )
        scheduler.start()
        self._scheduler = scheduler
        names = "; ".join(
            f"{s.name!r} {s.when_text()} ({self.site.site.timezone})" for s in self.site.reports
        )
        self.log(f"reports: scheduled {len(self.site.reports)} report(s): {names}")

    def run(self) -> list[DueResult]:
        """:func:`run_due` now, each report made, sent or failed logged in one line."""
        with self._lock:
            try:
                results = run_due(
                    self.engine, self.site, now=dt.datetime.now(dt.UTC), models=self.models, make=self.make
                )
            except Exception as exc:  # the database away for a moment: logged, tried again next time
                self.log(f"reports: cannot run the schedules now ({type(exc).__name__}: {exc})")
                return []
        for result in results:
            line = result.line()
            if result.error is not None and line in self._told:
                continue
            if result.error is not None:
                self._told.add(line)
            self.log(line)
        return results

    def shutdown(self) -> None:
        """Stop the scheduler (a report being made is not waited for: the next start catches it up)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

"""The live detectors' work that follows the clock rather than the readings (SPEC §9), on a thread of its own.

* every ``clock_every_s``: :meth:`~slem_ml.live.watch.LiveWatch.on_clock` — dropouts by the clock and the end
  of spike episodes;
* every ``daily_every_s``: whether today's bands are stored (else forecast them and run drift:
  :meth:`~slem_ml.live.watch.LiveWatch.plan_daily` reads and computes without the write lock,
  :meth:`~slem_ml.live.watch.LiveWatch.store_daily` writes in a short transaction), and once a local day the
  invoices of the month before stored as final (:func:`~slem_ml.storage.closing.close_month`).

``slem ingest`` runs it beside its worker, and ``slem serve`` beside HTTP ingest, so a site that sends its
readings over HTTP alone gets the same. Two of them on one database do no harm: a dropout is raised once
(its ``alert_id``), bands are written where none are, and closing a month again stores nothing new. Every
job is one transaction; a failure is logged and tried again next time.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from slem_ml.live.watch import LiveWatch
from slem_ml.storage.closing import close_month, previous_month
from slem_ml.storage.database import write_session

__all__ = ["Housekeeping"]


class Housekeeping:
    """The clock's and the day's jobs of ``watch`` on ``engine``; ``publish`` gets the alerts they raise or
    resolve, once committed."""

    def __init__(
        self,
        engine: Engine,
        watch: LiveWatch,
        *,
        publish: Callable[[list[dict]], None] = lambda alerts: None,
        log: Callable[[str], None] = print,
        clock_every_s: float = 10.0,
        daily_every_s: float = 300.0,
        name: str = "ingest",
    ) -> None:
        self.engine, self.watch, self.publish, self.log, self.name = engine, watch, publish, log, name
        self.clock_every_s, self.daily_every_s = clock_every_s, daily_every_s
        self._closed_on: dt.date | None = None

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run until ``stop`` is set, on a daemon thread."""
        thread = threading.Thread(target=self.run, args=(stop,), name="slem-live-housekeeping", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        next_daily = 0.0
        waited = 0.0
        while not stop.is_set():
            self.tick()
            if waited >= next_daily:
                self.daily()
                next_daily = waited + self.daily_every_s
            if stop.wait(self.clock_every_s):
                return
            waited += self.clock_every_s

    def tick(self) -> None:
        """The clock's detectors."""
        self._guarded("the clock's detectors", self.watch.on_clock)

    def daily(self) -> None:
        """Close the month before (once a local day), then today's bands and drift (when not stored yet)."""
        now = dt.datetime.now(dt.UTC)
        today = now.astimezone(self.watch.site.site.tz).date()
        if today != self._closed_on:
            try:
                with write_session(self.engine) as session:
                    month = previous_month(self.watch.site, now)
                    revised = close_month(session, self.watch.site, month, now, self.name)
                self._closed_on = today
                if revised:
                    self.log(f"{self.name}: {month} is over: {len(revised):,} invoices stored as final")
            except Exception as exc:
                self.log(f"{self.name}: closing last month's invoices failed ({type(exc).__name__}: {exc})")
        try:
            with self.engine.connect() as connection:
                plan = self.watch.plan_daily(connection, now)
        except Exception as exc:
            self.log(f"{self.name}: the daily bands and drift failed ({type(exc).__name__}: {exc})")
            return
        if plan is not None:
            self._guarded(
                "storing the daily bands", lambda connection, at: self.watch.store_daily(connection, plan, at)
            )

    def _guarded(self, what: str, job: Callable[[Any, dt.datetime], list[dict] | None]) -> None:
        try:
            with write_session(self.engine) as session:
                alerts = job(session.connection(), dt.datetime.now(dt.UTC))
        except Exception as exc:
            self.log(f"{self.name}: {what} failed ({type(exc).__name__}: {exc}); trying again later")
            return
        if alerts:
            self.publish(alerts)

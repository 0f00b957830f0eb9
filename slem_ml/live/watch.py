"""The live detectors on the stream (SPEC §9): what the ingest worker calls, and when.

* :meth:`LiveWatch.after_batch`, in each batch's transaction: moves the zones' live state by the batch's
  readings (:func:`~slem_ml.live.detectors.advance`), adds the buildings' energy, and raises, updates or
  resolves ``stuck_on``, ``spike`` and ending ``dropout`` alerts — committed with the readings, so an alert
  is never raised for readings that were not stored, nor lost for readings that were.
* :meth:`LiveWatch.on_clock`, every few seconds: ``dropout`` by the clock and the end of spike episodes.
* :meth:`LiveWatch.plan_daily` (reading) and :meth:`LiveWatch.store_daily` (writing), once a local day:
  the champion's expected band of every zone for the day (the spike detector's reference, the Live tab's
  building band) and ``drift`` on the completed days.

Without a champion model (:attr:`LiveWatch.off`) the rules (stuck_on, dropout) run and spike and drift are
off. Each method returns the alerts it raised or resolved
(:data:`~slem_ml.storage.live_state.PUBLISHED_FIELDS` dicts), which the worker publishes on
``slem/alerts/<zone_id>`` once they are committed.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from slem_ml.billing.coverage import classified_readings, compute_coverage
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, wall_to_utc
from slem_ml.live.detectors import (
    BATCH_COLUMNS,
    HOUR_MS,
    Bands,
    advance,
    closed_spikes,
    silences,
)
from slem_ml.models.alerts import DROPOUT_HOURS, alert_ids, render_alerts
from slem_ml.models.features import add_features, future_hours, zone_hours
from slem_ml.storage.live_state import (
    add_power,
    apply_alerts,
    end_alerts,
    forget_spikes,
    load_states,
    read_bands,
    save_states,
    site_hours,
    stored_alert_ids,
    stored_history,
    write_bands,
    zone_ids,
)
from slem_ml.storage.store_keys import zone_keys

__all__ = ["HISTORY_DAYS", "Daily", "LiveWatch", "expected_bands", "run_detectors"]

HISTORY_DAYS = 28  # days of stored readings the daily bands and drift look back on
_BANDS_FRESH_S = 300.0  # the bands in memory are read again after this [s]
_DRIFT_RECENT_MS = 2 * 86_400_000  # drift alerts detected this recently are applied (older: a run's job)
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Daily:
    """The daily job's results: bands (``zone_key``, ``hour_ms``, ``expected_w``, ``lower_w``, ``upper_w``)
    of the local day starting at ``start_ms`` [UTC ms], and drift alerts."""

    start_ms: int
    bands: pd.DataFrame
    drift: pd.DataFrame


class LiveWatch:
    """The live detectors of one worker for ``site``; ``bundle`` is the champion
    (:class:`~slem_ml.models.bundle.ModelBundle`) or None; ``actor`` names the worker in the audit log."""

    def __init__(self, site: SiteConfig, bundle: Any | None, *, actor: str = "ingest") -> None:
        self.site, self.bundle, self.actor = site, bundle, actor
        self._bands: Bands | None = None
        self._bands_read = -float("inf")  # time.monotonic() of the last read

    @property
    def off(self) -> tuple[str, ...]:
        """The detectors that cannot run: without a champion, the learnt ones."""
        return () if self.bundle is not None else ("spike", "drift")

    def after_batch(self, connection: Connection, frames: list[pd.DataFrame], now: dt.datetime) -> list[dict]:
        """Move the live state by the stored batch's validated readings; the alerts to publish."""
        batch = _batch(connection, frames)
        if batch.empty:
            return []
        prior = load_states(connection, sorted(set(batch["zone_key"].tolist())))
        moved = advance(prior, batch, self.site, self._bands_now(connection, _ms(now)))
        save_states(connection, moved.states, now)
        add_power(connection, moved.power)
        tz = self.site.site.timezone
        if "dropout" in moved.episodes:  # a silence the whole site shared is missing data, not a fault
            moved.episodes["dropout"] = _site_reported(connection, moved.episodes["dropout"])
        alerts = [
            render_alerts(kind, episodes, tz) for kind, episodes in moved.episodes.items() if len(episodes)
        ]
        changed = (
            apply_alerts(connection, pd.concat(alerts, ignore_index=True), now, self.actor) if alerts else []
        )
        if len(moved.ended_spikes):
            ended = moved.ended_spikes
            names = alert_ids("spike", ended[S.ZONE_ID].to_numpy(), ended["first_ms"].to_numpy(np.int64))
            changed += end_alerts(connection, [str(n) for n in names], now, self.actor)
        return changed + self._end_clock_dropouts(connection, prior, moved.states, batch, now)

    def _end_clock_dropouts(
        self,
        connection: Connection,
        prior: pd.DataFrame,
        moved: pd.DataFrame,
        batch: pd.DataFrame,
        now: dt.datetime,
    ) -> list[dict]:
        """Resolve the dropouts the clock may have raised for zones that report again, however short their
        silence turned out in the readings (a worker catching up on a backlog is one way)."""
        before = prior["last_ms"].reindex(moved.index)
        back = before.notna() & (_ms(now) - before.fillna(_ms(now)) > DROPOUT_HOURS * HOUR_MS)
        if not back.any():
            return []
        names = batch.drop_duplicates("zone_key").set_index("zone_key")[
            "zone_id"
        ]  # the batch names its zones
        ids = alert_ids(
            "dropout",
            names.reindex(moved.index[back]).astype(str).to_numpy(),
            before[back].to_numpy(np.int64),
        )
        return end_alerts(connection, [str(i) for i in ids], now, self.actor)

    def on_clock(self, connection: Connection, now: dt.datetime) -> list[dict]:
        """Dropouts by the clock; spike episodes an hour without a spike has ended. The alerts to publish."""
        states = load_states(connection)
        if states.empty:
            return []
        ids, now_ms = zone_ids(connection), _ms(now)
        silent = silences(states, ids, now_ms)
        if len(silent):  # raised once: a silence whose alert is stored already is not judged again every tick
            keys = alert_ids("dropout", silent[S.ZONE_ID].to_numpy(), silent["first_ms"].to_numpy(np.int64))
            known = stored_alert_ids(connection, [str(k) for k in keys])
            silent = silent[~pd.Series(keys).astype(str).isin(known).to_numpy()]
        dropouts = render_alerts("dropout", _site_reported(connection, silent), self.site.site.timezone)
        changed = apply_alerts(connection, dropouts, now, self.actor)
        closed = closed_spikes(states, ids, now_ms)
        if len(closed):
            names = alert_ids("spike", closed[S.ZONE_ID].to_numpy(), closed["first_ms"].to_numpy())
            changed += end_alerts(connection, [str(n) for n in names], now, self.actor)
            forget_spikes(connection, [int(k) for k in closed["zone_key"]])
        return changed

    def plan_daily(self, connection: Connection, now: dt.datetime) -> Daily | None:
        """Today's bands and the drift alerts of the completed days, computed from the stored readings
        (reads only: run it outside the write lock); None when today's bands are stored already, there is no
        champion, or nothing is stored to forecast from."""
        if self.bundle is None:
            return None
        tz = self.site.site.timezone
        today = local_day_numbers(np.array([_ms(now)], np.int64), tz)
        start, end = (
            int(x) for x in wall_to_utc(np.repeat(today, 2), np.array([0, 1440]), tz).view(np.int64)
        )
        if len(read_bands(connection, start, start + HOUR_MS)):
            return None
        history = stored_history(connection, start - HISTORY_DAYS * _MS_PER_DAY, start)
        if history.empty:
            return None
        bands = expected_bands(history, self.site, self.bundle.forecaster, start, (end - start) // HOUR_MS)
        bands["zone_key"] = bands[S.ZONE_ID].map(_key_of(connection)).astype("int64")
        scored = classified_readings(history, compute_coverage(history, self.site))
        return Daily(start, bands, self.bundle.drift.detect(scored, self.site))

    def store_daily(self, connection: Connection, daily: Daily, now: dt.datetime) -> list[dict]:
        """Store :meth:`plan_daily`'s bands (keeping yesterday's) and apply its drift alerts; those to
        publish."""
        write_bands(connection, daily.bands, keep_after_ms=daily.start_ms - _MS_PER_DAY)
        self._bands_read = -float("inf")
        drift = daily.drift
        since = pd.Timestamp(daily.start_ms - _DRIFT_RECENT_MS, unit="ms", tz="UTC")
        # new alerts detected lately (an older one is a scoring run's to find), and the stored ones' updates
        stored = stored_alert_ids(connection, drift["alert_id"].astype(str).tolist())
        keep = (pd.to_datetime(drift["detected_at"], utc=True) >= since) | drift["alert_id"].isin(stored)
        return apply_alerts(connection, drift[keep], now, self.actor)

    def _bands_now(self, connection: Connection, now_ms: int) -> Bands | None:
        """The champion's bands of the day around ``now_ms`` (read again every few minutes); None without a
        champion."""
        if self.bundle is None:
            return None
        if self._bands is None or time.monotonic() - self._bands_read > _BANDS_FRESH_S:
            stored = read_bands(connection, now_ms - 26 * HOUR_MS, now_ms + 2 * HOUR_MS)
            key = stored["zone_key"].to_numpy() * S.GROUP_SPAN_MS + stored["hour_ms"].to_numpy()
            level = getattr(self.bundle.spike, "on_level_w_", pd.Series(dtype=float))
            self._bands = Bands(
                key, stored["upper_w"].to_numpy(), stored["expected_w"].to_numpy(), level.to_dict()
            )
            self._bands_read = time.monotonic()
        return self._bands


def run_detectors(
    watch: LiveWatch, connection: Connection, frames: list[pd.DataFrame], log: Callable[[str], None]
) -> list[dict]:
    """:meth:`LiveWatch.after_batch` in a savepoint of the batch's transaction: should the detectors fail
    on some input, the batch's readings are still stored (the failure is logged); only the database being
    away fails the batch (its caller retries it)."""
    try:
        with connection.begin_nested():
            return watch.after_batch(connection, frames, dt.datetime.now(dt.UTC))
    except OperationalError:
        raise
    except Exception as exc:
        log(f"live detectors failed on a batch ({type(exc).__name__}: {exc}); its readings are stored")
        return []


def expected_bands(
    history: pd.DataFrame, site: SiteConfig, forecaster: Any, start_ms: int, hours: int
) -> pd.DataFrame:
    """Every zone's forecast for ``hours`` UTC hours from ``start_ms``, from its stored ``history`` (as
    :func:`slem_ml.models.forecast.forecast` does it): ``zone_id``, ``hour_ms``, ``expected_w``, ``lower_w``,
    ``upper_w`` [W]."""
    coverage = compute_coverage(history, site)
    past = zone_hours(history, coverage.is_on)
    rows = add_features(future_hours(past, start_ms, hours), site, history=past)
    predicted = forecaster.predict(rows)
    return pd.DataFrame(
        {
            S.ZONE_ID: rows[S.ZONE_ID].astype(str).to_numpy(),
            "hour_ms": rows["hour_ms"].to_numpy(dtype=np.int64),
            "expected_w": predicted[S.EXPECTED_POWER_W].to_numpy(dtype=float),
            "lower_w": predicted["lower_w"].to_numpy(dtype=float),
            "upper_w": predicted["upper_w"].to_numpy(dtype=float),
        }
    )


def _site_reported(connection: Connection, episodes: pd.DataFrame) -> pd.DataFrame:
    """The dropout episodes through which the site went on reporting: readings in at least 23 of the whole
    hours of the silence (the batch rule's test, :func:`~slem_ml.models.alerts.dropout_episodes`)."""
    if episodes.empty:
        return episodes
    first = episodes["first_ms"].to_numpy(np.int64) // HOUR_MS + 1
    until = episodes["last_ms"].to_numpy(np.int64) // HOUR_MS
    hours = site_hours(connection, int(first.min()) * HOUR_MS, int(until.max()) * HOUR_MS)
    seen = np.searchsorted(hours, until) - np.searchsorted(hours, first)
    return episodes[seen >= max(1, int(np.ceil(DROPOUT_HOURS)) - 1)]


def _key_of(connection: Connection) -> dict[str, int]:
    ids = zone_ids(connection)
    return dict(zip(ids.to_numpy().tolist(), ids.index.tolist(), strict=True))


def _batch(connection: Connection, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The validated frames of a stored batch as one :data:`BATCH_COLUMNS` frame."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(BATCH_COLUMNS))
    parts = []
    places: dict[str, tuple[str, str]] = {}
    for frame in frames:
        zone = frame[S.ZONE_ID].astype(str).to_numpy(dtype=object)
        building = frame[S.BUILDING].astype(str).to_numpy(dtype=object)
        floor = frame[S.FLOOR].astype(str).to_numpy(dtype=object)
        first, at = np.unique(zone, return_index=True)
        places.update(
            zip(first.tolist(), zip(building[at].tolist(), floor[at].tolist(), strict=True), strict=True)
        )
        parts.append(
            pd.DataFrame(
                {
                    "zone_id": zone,
                    "building": building,
                    "t_ms": frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64),
                    "power_w": frame[S.POWER_W].to_numpy(dtype=float),
                    "client_id": frame[S.CLIENT_ID].astype(str).to_numpy(dtype=object),
                    "cleaning": frame[S.CLEANING_STAFF].to_numpy(dtype=bool),
                }
            )
        )
    batch = pd.concat(parts, ignore_index=True)
    keys = zone_keys(connection, places)  # stored by ingest already: a lookup
    batch["zone_key"] = batch["zone_id"].map(keys).astype(np.int64)
    return batch[list(BATCH_COLUMNS)]


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)

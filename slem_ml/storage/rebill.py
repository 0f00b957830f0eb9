"""Billing from the readings store (SPEC §8.2): recompute only what an upload touched.

Overtime sessions never cross local midnight (SPEC §3.3–3.4), so the sessions of a (zone, local date) depend
only on that zone's readings from ``max_gap`` before the date to ``max_gap`` after it. A changed reading at
``t`` changes coverage in ``[t, t + max_gap)`` only (its own, and its predecessor's that now ends at ``t``),
so the touched dates are the local dates of ``t`` and ``t + max_gap``. :func:`rebill` recomputes the
sessions of exactly those (zone, date)s from the store and replaces their rows in ``billing_sessions``;
:func:`~slem_ml.storage.stored_invoices.current_invoices` builds invoices from those rows — the same
functions as one upload of everything (:func:`slem_ml.billing.invoices.overtime_sessions`,
:func:`~slem_ml.billing.invoices.lines_from_sessions`, :func:`~slem_ml.billing.invoices.build_invoices`),
hence the same invoices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table, delete, select, tuple_

from slem_ml.billing.cleaning import cleaning_sessions
from slem_ml.billing.coverage import classified_readings, compute_coverage
from slem_ml.billing.invoices import (
    SESSION_COLUMNS,
    billed_power_mw,
    empty_sessions,
    invoice_id_for,
    overtime_sessions,
)
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import day_to_date, local_day_numbers, wall_to_utc
from slem_ml.models.alerts import empty_alerts, stuck_on_alerts
from slem_ml.storage.blocks import MS_PER_DAY, ReadingArrays, decode, fetch, is_cleaning, power_before
from slem_ml.storage.bulk import insert_columns, stored_dates
from slem_ml.storage.cleaning_store import CLEANING_CONTEXT_MS, replace_cleaning
from slem_ml.storage.tables import (
    BillingSession,
    StoreClient,
    StoreZone,
)

__all__ = [
    "Rebilled",
    "bill_fresh",
    "client_names",
    "readings_frame",
    "rebill",
    "rebill_days",
    "reusable_zones",
    "touched_days",
    "zone_names",
]

#: Zone-days recomputed at once: bounds memory (about 1,440 readings a zone-day at one a minute).
ZONE_DAYS_PER_CHUNK = 2_000
#: Billing sessions inserted (and read back) at once: bounds memory whatever the number of sessions.
ROWS_PER_INSERT = 50_000


@dataclass(frozen=True)
class Rebilled:
    """What :func:`rebill` did."""

    invoice_ids: frozenset[str]  # invoices whose lines may have changed (a superset)
    zone_days: int  # (zone, local date)s recomputed
    left_out: int  # stored readings of clients no longer in the contracts, not billed
    #: with ``stuck_on=True``: the stuck_on alerts of the recomputed zones on the store's timeline
    #: (``alert_columns``), and those zones
    stuck_on: pd.DataFrame | None = None
    zones: tuple[str, ...] = ()


def rebill(
    connection: Connection,
    site: SiteConfig,
    zone_key: np.ndarray,
    t_ms: np.ndarray,
    *,
    cleaning_inferred: bool = False,
    stuck_on: bool = False,
) -> Rebilled:
    """Recompute the billing sessions of every (zone, local date) that readings at (``zone_key``,
    ``t_ms`` [UTC ms]) touch, and the cleaning sessions that overlap those dates
    (:mod:`~slem_ml.storage.cleaning_store`; ``cleaning_inferred``: their flags came from the session
    classifier), in the caller's transaction. ``stuck_on``: also run the stuck_on rule on the same readings
    (SPEC §8.5: an episode is the same whatever the uploads that show it); an episode that began more than
    :data:`~slem_ml.storage.cleaning_store.CLEANING_CONTEXT_MS` before the recomputed dates is seen cut."""
    if not len(t_ms):
        return Rebilled(frozenset(), 0, 0)
    pairs = touched_days(site, zone_key, t_ms)
    return rebill_days(connection, site, pairs, cleaning_inferred=cleaning_inferred, stuck_on=stuck_on)


def touched_days(site: SiteConfig, zone_key: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """The (zone key, local day number) pairs whose billing readings at (``zone_key``, ``t_ms`` [UTC ms],
    in (zone, time) order) can change, sorted, as an (n, 2) array (module docstring)."""
    gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    return _zone_days(zone_key, local_day_numbers(np.r_[t_ms, t_ms + gap - 1], site.site.timezone))


def rebill_days(
    connection: Connection,
    site: SiteConfig,
    pairs: np.ndarray,
    *,
    cleaning_inferred: bool = False,
    stuck_on: bool = False,
) -> Rebilled:
    """:func:`rebill` for the (zone key, local day number) ``pairs`` (sorted, distinct, (n, 2))."""
    if not len(pairs):
        return Rebilled(frozenset(), 0, 0)
    gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    rows = connection.execute(select(StoreZone.id, StoreZone.zone_id, StoreZone.building, StoreZone.floor))
    zones, places = {}, {}
    for key, zone_id, building, floor in rows:  # one read of the zones for names and places
        zones[key], places[key] = zone_id, (building, floor)
    clients = client_names(connection)
    invoice_ids: set[str] = set()
    left_out = 0
    alerts: list[pd.DataFrame] = []
    for chunk in _chunks(pairs):
        ids, dropped, stuck = _rebill_chunk(
            connection, site, chunk, (zones, clients, places), gap, cleaning_inferred, stuck_on
        )
        invoice_ids |= ids
        left_out += dropped
        alerts += [stuck] if stuck is not None and len(stuck) else []
    if not stuck_on:
        return Rebilled(frozenset(invoice_ids), len(pairs), left_out)
    found = pd.concat(alerts, ignore_index=True) if alerts else empty_alerts()
    looked = tuple(sorted({zones[int(k)] for k in np.unique(pairs[:, 0])}))
    return Rebilled(frozenset(invoice_ids), len(pairs), left_out, found, looked)


def bill_fresh(connection: Connection, sessions: pd.DataFrame) -> Rebilled:
    """Store ``sessions`` (:func:`~slem_ml.billing.invoices.overtime_sessions` of an upload) as the billing
    of its zones' days, when nothing was stored around them before (``IngestReport.fresh``): then the
    store's readings of those days are the upload's, and so are their sessions — no need to compute them
    again."""
    return Rebilled(frozenset(_insert_sessions(connection, sessions)), 0, 0)


def reusable_zones(site: SiteConfig, after: dict[int, tuple[int, int | None, float]]) -> set[int]:
    """The zones of an upload that appended to the store (``IngestReport.after``) whose billing and
    cleaning sessions are the upload's own, so need no recomputing from the store.

    Nothing is stored after such a zone's first new reading, so its sessions could differ from the
    upload's only through coverage reaching into its first local date from before. That needs the last
    stored reading before the date to be lit and to cover past midnight (it cannot be on the date: then
    the store has more of that date than the upload). Without such a reading the upload's sessions of its
    dates are the store's (``tests/test_readings_store.py`` checks uploads in parts against the reference).
    """
    if not after:
        return set()
    never = np.iinfo(np.int64).min  # no stored reading before
    keys = np.array(list(after), np.int64)
    first = np.array([after[k][0] for k in keys.tolist()], np.int64)
    prev = np.array([never if after[k][1] is None else after[k][1] for k in keys.tolist()], np.int64)
    power = np.array([after[k][2] for k in keys.tolist()], float)
    tz = site.site.timezone
    day = local_day_numbers(first, tz)
    start = wall_to_utc(day, np.zeros(len(day)), tz).astype(np.int64)
    gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    none = prev == never
    dark = ~(power >= site.sampling.on_threshold_w)  # NaN (no reading) counts as dark
    ok = none | ((prev < start) & ((prev <= start - gap) | dark))
    return set(keys[ok].tolist())


def _zone_days(zone_key: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The distinct (zone key, day) pairs, sorted, as an (n, 2) array; ``days`` holds two days per reading
    (first the readings' own, then those ``max_gap`` later), each half in (zone, time) order."""
    keys = np.r_[zone_key, zone_key].astype(np.int64) << 32 | (days.astype(np.int64) + (1 << 31))
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # runs of one zone-day: cheap before the sort
    keys = np.unique(keys)
    return np.c_[keys >> 32, (keys & 0xFFFFFFFF) - (1 << 31)]


def _chunks(pairs: np.ndarray) -> list[np.ndarray]:
    """Split (zone, day) pairs, sorted by zone, into whole zones of about :data:`ZONE_DAYS_PER_CHUNK`."""
    chunks, start = [], 0
    zone_starts = np.r_[np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]), len(pairs)]
    for i in range(1, len(zone_starts)):
        end = zone_starts[i]
        if end - start >= ZONE_DAYS_PER_CHUNK or i == len(zone_starts) - 1:
            chunks.append(pairs[start:end])
            start = end
    return chunks


def _rebill_chunk(
    connection: Connection,
    site: SiteConfig,
    pairs: np.ndarray,
    names: tuple[dict[int, str], dict[int, str], dict[int, tuple[str, str]]],
    gap: int,
    cleaning_inferred: bool,
    with_stuck_on: bool,
) -> tuple[set[str], int, pd.DataFrame | None]:
    zones, clients, places = names
    tz = site.site.timezone
    # pairs are sorted by (zone, day): each zone's first and last day bound its run
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    ends = np.r_[starts[1:], len(pairs)] - 1
    keys, first, last = pairs[starts, 0], pairs[starts, 1], pairs[ends, 1]
    # the dates' span per zone; the readings whose coverage can reach into it start max_gap before it,
    # and a cleaning session overlapping it may begin or end hours outside it (CLEANING_CONTEXT_MS)
    start = wall_to_utc(first, np.zeros(len(first)), tz).astype(np.int64)
    end = wall_to_utc(last + 1, np.zeros(len(last)), tz).astype(np.int64)
    margin = max(gap, CLEANING_CONTEXT_MS)
    lo, hi = start - margin, end + margin
    ranges = list(
        zip(keys.tolist(), (lo // MS_PER_DAY).tolist(), ((hi - 1) // MS_PER_DAY).tolist(), strict=True)
    )
    blocks = fetch(connection, ranges)
    lo = np.where(_lit_before(blocks, keys, start, gap, site.sampling.on_threshold_w), lo, start - gap)
    readings = decode(
        blocks, dict(zip(keys.tolist(), zip(lo.tolist(), hi.tolist(), strict=True), strict=True))
    )
    known = np.array([clients.get(int(k)) in site.clients for k in np.unique(readings.client_key)], bool)
    billable = np.isin(readings.client_key, np.unique(readings.client_key)[known])
    left_out = int((~billable).sum())
    readings = readings.take(billable)

    sessions, cleaning, stuck = _sessions(
        readings, site, (zones, clients, places), cleaning_inferred, with_stuck_on
    )
    wanted = pd.MultiIndex.from_arrays([[zones[int(z)] for z in pairs[:, 0]], pairs[:, 1]])
    found = pd.MultiIndex.from_arrays([sessions["zone_id"], sessions["day"]])
    sessions = sessions[found.isin(wanted)]
    spans = {zones[int(k)]: (int(a), int(b)) for k, a, b in zip(keys, start, end, strict=True)}
    replace_cleaning(connection, cleaning, spans)

    table = cast(Table, BillingSession.__table__)
    zone_list = [zones[int(z)] for z in keys]
    dates = day_to_date(pairs[:, 1])
    before = set(
        connection.execute(
            select(table.c.invoice_id)
            .where(table.c.zone_id.in_(zone_list))
            .where(table.c.date >= min(dates), table.c.date <= max(dates))
            .distinct()
        ).scalars()
    )
    targets = list(zip((zones[int(z)] for z in pairs[:, 0]), dates, strict=True))
    for at in range(0, len(targets), 400):
        chunk = targets[at : at + 400]
        connection.execute(delete(table).where(tuple_(table.c.zone_id, table.c.date).in_(chunk)))
    return before | _insert_sessions(connection, sessions), left_out, stuck


def _lit_before(
    rows: dict[tuple[int, int], Any], keys: np.ndarray, start: np.ndarray, gap: int, on_w: float
) -> np.ndarray:
    """Per zone: whether its last stored reading within ``gap`` before ``start`` [UTC ms] is lit.

    Only then can a cleaning session or a stuck-on run (lit readings whose coverage touches) reach into the
    recomputed dates from before them, and need the :data:`CLEANING_CONTEXT_MS` of context; otherwise
    billing's own ``max_gap`` is all the context there is."""
    lit = []
    for zone, at in zip(keys.tolist(), start.tolist(), strict=True):
        power = power_before(rows, zone, at, at - gap)
        lit.append(power is not None and power >= on_w)
    return np.array(lit, bool)


def _sessions(
    readings: ReadingArrays,
    site: SiteConfig,
    names: tuple[dict[int, str], dict[int, str], dict[int, tuple[str, str]]],
    cleaning_inferred: bool,
    with_stuck_on: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """:func:`~slem_ml.billing.invoices.overtime_sessions`,
    :func:`~slem_ml.billing.cleaning.cleaning_sessions` and (``with_stuck_on``) the stuck_on alerts of
    stored readings, from one coverage."""
    if not len(readings):
        empty_cleaning = pd.DataFrame(columns=[*S.CLEANING_COLUMNS, S.CLIENT_ID])
        return empty_sessions(), empty_cleaning, empty_alerts() if with_stuck_on else None
    frame = readings_frame(readings, *names)
    coverage = compute_coverage(frame, site)
    billed = billed_power_mw(readings.power_w, readings.billed_w)
    overtime = overtime_sessions(frame, coverage, site, billed_power_mw=billed)
    cleaning = cleaning_sessions(frame, coverage, site, inferred=cleaning_inferred)
    stuck = stuck_on_alerts(classified_readings(frame, coverage), site) if with_stuck_on else None
    return overtime, cleaning, stuck


def readings_frame(
    readings: ReadingArrays,
    zones: dict[int, str],
    clients: dict[int, str],
    places: dict[int, tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Stored readings as a validated-readings frame (``timestamp`` UTC, categorical ``zone_id`` and
    ``client_id``, ``power_w``, ``cleaning_staff``; ``building`` and ``floor`` from ``places``, a zone
    key's (building, floor), when given), in their (zone, time) order."""
    zone_keys, zone_codes = np.unique(readings.zone_key, return_inverse=True)
    client_keys, client_codes = np.unique(readings.client_key, return_inverse=True)
    extra = {}
    if places is not None:  # per zone, as codes: never a string per reading
        for i, column in enumerate((S.BUILDING, S.FLOOR)):
            labels, codes = np.unique([places[int(k)][i] for k in zone_keys], return_inverse=True)
            extra[column] = pd.Categorical.from_codes(
                codes[zone_codes] if len(zone_keys) else np.empty(0, np.int64), labels.astype(object)
            )
    return pd.DataFrame(
        {
            **extra,
            S.TIMESTAMP: pd.DatetimeIndex(readings.t_ms.astype("datetime64[ms]")).tz_localize("UTC"),
            S.ZONE_ID: pd.Categorical.from_codes(zone_codes, [zones[int(k)] for k in zone_keys]),
            S.CLIENT_ID: pd.Categorical.from_codes(client_codes, [clients[int(k)] for k in client_keys]),
            S.POWER_W: readings.power_w,
            S.CLEANING_STAFF: is_cleaning(readings.cleaning),
        }
    )


def _insert_sessions(connection: Connection, sessions: pd.DataFrame) -> set[str]:
    """Insert ``sessions`` into ``billing_sessions``, :data:`ROWS_PER_INSERT` rows at a time (bounded
    memory: a month of a large site has a million sessions), in bulk
    (:func:`~slem_ml.storage.bulk.insert_columns`); returns their invoice ids."""
    table = cast(Table, BillingSession.__table__)
    invoice_ids: set[str] = set()
    for start in range(0, len(sessions), ROWS_PER_INSERT):
        columns, ids = _session_columns(sessions.iloc[start : start + ROWS_PER_INSERT])
        insert_columns(connection, table, columns)
        invoice_ids |= ids
    return invoice_ids


def _session_columns(sessions: pd.DataFrame) -> tuple[dict[str, list[Any]], set[str]]:
    """``sessions`` as stored columns of ``billing_sessions`` (dates as ``YYYY-MM-DD``) and their invoices."""
    days = sessions["day"].to_numpy(dtype=np.int64)
    clients = sessions["client_id"].astype(str).to_numpy(dtype=object)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)  # since 1970-01
    # an invoice id per (client, month), not a string built for every session
    codes, pairs = pd.factorize(pd.MultiIndex.from_arrays([clients, months]))
    names = [invoice_id_for(c, dt.date(1970 + m // 12, m % 12 + 1, 1)) for c, m in pairs]
    integer = [c for c in SESSION_COLUMNS if c not in ("client_id", "zone_id", "day")]
    columns: dict[str, list[Any]] = {
        "client_id": clients.tolist(),
        "zone_id": sessions["zone_id"].astype(str).tolist(),
        **{column: sessions[column].to_numpy(dtype=np.int64).tolist() for column in integer},
        "invoice_id": np.array(names, dtype=object)[codes].tolist(),
        "date": stored_dates(days),
    }
    return columns, set(names)


def zone_names(connection: Connection) -> dict[int, str]:
    """Every stored zone's id by its store key."""
    return dict(connection.execute(select(StoreZone.id, StoreZone.zone_id)).all())


def client_names(connection: Connection) -> dict[int, str]:
    """Every stored client's id by its store key."""
    return dict(connection.execute(select(StoreClient.id, StoreClient.client_id)).all())

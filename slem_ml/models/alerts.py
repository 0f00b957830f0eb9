"""Maintenance alerts (SPEC §5): the readings zone by zone, and the two rules.

The rules are plain functions, :func:`stuck_on_alerts` and :func:`dropout_alerts`; the learnt detectors
(spikes, drift) are in :mod:`~slem_ml.models.spikes` and :mod:`~slem_ml.models.drift`, and
:func:`slem_ml.models.anomaly.maintenance_alerts` runs them all. The alerts table they make — ids, status,
severity, words — is :mod:`slem_ml.models.alert_table`, whose names are re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.models.alert_table import (
    ALERT_KINDS,
    EVIDENCE,
    KIND_WORDS,
    SEVERITIES,
    STATUS,
    STUCK_ON_HIGH_KWH,
    alert_columns,
    alert_ids,
    empty_alerts,
    kind_words,
    render_alerts,
    severity_rank,
)

__all__ = [
    "KIND_WORDS",
    "kind_words",
    "ALERT_ORDER",
    "ALERT_KINDS",
    "DROPOUT_HOURS",
    "EVIDENCE",
    "REGULAR_HOURS",
    "SEVERITIES",
    "STATUS",
    "STUCK_ON_HIGH_KWH",
    "STUCK_ON_HOURS",
    "ZonedReadings",
    "alert_columns",
    "alert_ids",
    "active_hours",
    "dropout_alerts",
    "dropout_episodes",
    "empty_alerts",
    "render_alerts",
    "severity_rank",
    "stuck_on_alerts",
    "stuck_on_episodes",
    "zoned_readings",
]

#: The order of alerts (stable sort keys): when detected, then kind and zone.
ALERT_ORDER = ["detected_at", "kind", "zone_id"]
STUCK_ON_HOURS = 12.0  # SPEC §5: lights on for more than 12 h in a row outside contracted hours
DROPOUT_HOURS = 24.0  # SPEC §5: a zone that reports regularly is silent for more than 24 h
REGULAR_HOURS = 6.0  # a zone reports regularly when its median interval is at most this
_HOUR_MS = 3_600_000
_MS_PER_KWH = 3_600_000_000.0  # W·ms in a kWh


# --- the readings, zone by zone -------------------------------------------------------------------


@dataclass(frozen=True)
class ZonedReadings:
    """A scored frame's rows in (zone, time) order, as arrays; ``order[i]`` is the frame row at position i."""

    frame: pd.DataFrame
    order: np.ndarray
    zone: np.ndarray  # int64 code into names
    names: np.ndarray  # zone ids (str objects)
    t: np.ndarray  # int64 UTC [ms]
    power: np.ndarray  # [W]
    on: np.ndarray  # bool
    first: np.ndarray  # position of the zone's first reading
    same_next: np.ndarray  # the next position is a reading of the same zone

    def col(self, name: str, dtype: Any) -> np.ndarray:
        """Another column of the frame, in (zone, time) order."""
        return self.frame[name].to_numpy(dtype=dtype)[self.order]

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """Values in (zone, time) order back in frame-row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out


def zoned_readings(frame: pd.DataFrame, *extra: str) -> ZonedReadings:
    """The scored readings as :class:`ZonedReadings`; raises :class:`SlemError` naming missing columns."""
    missing = [c for c in (S.TIMESTAMP, S.ZONE_ID, S.POWER_W, S.IS_ON, *extra) if c not in frame.columns]
    if missing:
        raise SlemError(f"the scored readings lack the column(s) {', '.join(missing)}")
    zone_col = frame[S.ZONE_ID]
    if not isinstance(zone_col.dtype, pd.CategoricalDtype):
        zone_col = zone_col.astype("category")
    codes = zone_col.cat.codes.to_numpy().astype(np.int64)
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    key = codes * S.GROUP_SPAN_MS + t
    n = len(key)
    order = np.arange(n) if bool(np.all(key[1:] >= key[:-1])) else np.argsort(key, kind="stable")
    zone = codes[order]
    new_zone = np.ones(n, dtype=bool)
    new_zone[1:] = zone[1:] != zone[:-1]
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = ~new_zone[1:]
    return ZonedReadings(
        frame=frame,
        order=order,
        zone=zone,
        names=np.asarray(zone_col.cat.categories.astype(str), dtype=object),
        t=t[order],
        power=frame[S.POWER_W].to_numpy(dtype=float)[order],
        on=frame[S.IS_ON].to_numpy(dtype=bool)[order],
        first=np.flatnonzero(new_zone)[np.cumsum(new_zone) - 1],
        same_next=same_next,
    )


# --- the rules ------------------------------------------------------------------------------------


def stuck_on_alerts(
    frame: pd.DataFrame, site: SiteConfig, *, min_hours: float = STUCK_ON_HOURS
) -> pd.DataFrame:
    """Alerts for lights on for more than ``min_hours`` in a row outside contracted hours (SPEC §5).

    A run is a zone's consecutive lit readings outside the contract window whose coverage touches (no gap
    longer than ``sampling.max_gap_minutes``). It is detected at its first reading more than ``min_hours``
    after its first one, and stays open while the zone's last reading still belongs to it.
    """
    z = zoned_readings(frame, S.IN_CONTRACT)
    return render_alerts("stuck_on", stuck_on_episodes(z, site, min_hours), site.site.timezone)


def dropout_alerts(
    frame: pd.DataFrame,
    site: SiteConfig,
    *,
    silence_hours: float = DROPOUT_HOURS,
    regular_hours: float = REGULAR_HOURS,
) -> pd.DataFrame:
    """Alerts for a zone that reports regularly and is silent for more than ``silence_hours`` (SPEC §5).

    A zone reports regularly when the median time between its readings is at most ``regular_hours``. A
    silence starts at the last reading before it (``first_seen``), is detected ``silence_hours`` later and
    lasts until the zone's next reading; with none, it is still open at the last reading of the frame.
    """
    z = zoned_readings(frame)
    return render_alerts("dropout", dropout_episodes(z, silence_hours, regular_hours), site.site.timezone)


def stuck_on_episodes(z: ZonedReadings, site: SiteConfig, min_hours: float) -> pd.DataFrame:
    """Episodes behind :func:`stuck_on_alerts` (frame needs ``in_contract``)."""
    outside = z.on & ~z.col(S.IN_CONTRACT, bool)
    max_gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    gap = np.append(np.diff(z.t), max_gap)
    covered = np.where(z.same_next, np.minimum(gap, max_gap), max_gap)  # SPEC §3.1
    new = np.ones(len(z.t), dtype=bool)
    new[1:] = ~z.same_next[:-1] | ~outside[:-1] | (gap[:-1] > max_gap)
    rows = np.flatnonzero(outside)
    firsts = np.flatnonzero(new[rows])
    run = np.cumsum(new[rows]) - 1
    start = z.t[rows][firsts]
    late = np.flatnonzero(z.t[rows] - start[run] > min_hours * _HOUR_MS)
    stuck, at = np.unique(run[late], return_index=True)  # each run's first reading past min_hours
    if len(stuck) == 0:
        return pd.DataFrame()
    last = rows[np.append(firsts[1:], len(rows))[stuck] - 1]
    energy_kwh = np.add.reduceat(z.power[rows] * covered[rows], firsts)[stuck] / _MS_PER_KWH
    lit_ms = z.t[last] + covered[last] - start[stuck]
    return pd.DataFrame(
        {
            S.ZONE_ID: z.names[z.zone[last]],
            "first_ms": start[stuck],
            "detected_ms": z.t[rows[late[at]]],
            "last_ms": z.t[last],
            "open": ~z.same_next[last],  # the zone's last reading is still lit outside the contract
            "score": lit_ms / _HOUR_MS,
            "hours": lit_ms / _HOUR_MS,
            "energy_kwh": energy_kwh,
            "mean_w": energy_kwh * _MS_PER_KWH / lit_ms,
        }
    )


def active_hours(t_ms: np.ndarray) -> np.ndarray:
    """The UTC hours [hours since the epoch, sorted, distinct] in which any reading was taken."""
    return np.unique(np.asarray(t_ms, dtype=np.int64) // _HOUR_MS)


def dropout_episodes(
    z: ZonedReadings,
    silence_hours: float,
    regular_hours: float,
    end_ms: int | None = None,
    site_hours: np.ndarray | None = None,
) -> pd.DataFrame:
    """Episodes behind :func:`dropout_alerts`; silence runs until ``end_ms`` [UTC ms], the end of the
    readings (default: the last reading in ``z``; a batch of zones passes the whole input's end).

    A zone's silence is a dropout only where the site went on reporting through it: other zones reported
    in at least ``silence_hours − 1`` of the whole hours of the silence (``site_hours``: :func:`active_hours`
    of the whole input; default those of ``z``). A gap that every zone shares — two exports a week apart in
    one file — is missing data, not a fault (SPEC §8.5). The dropout is detected at the later of the
    silence threshold and the end of the last of those hours it needed. Readings of a single zone have no
    site to compare with: there every silence longer than ``silence_hours`` counts."""
    inner = np.flatnonzero(z.same_next)
    if len(inner) == 0:
        return pd.DataFrame()
    gap = np.append(np.diff(z.t), 0)
    typical = pd.Series(gap[inner]).groupby(z.zone[inner]).median()
    interval = np.full(len(z.names), np.nan)
    interval[typical.index.to_numpy()] = typical.to_numpy()
    regular = interval <= regular_hours * _HOUR_MS  # a zone with one reading (NaN) is not regular
    silence = int(silence_hours * _HOUR_MS)
    end_ms = int(z.t.max()) if end_ms is None else end_ms
    if site_hours is None and len(np.unique(z.zone)) < 2:
        hours = None  # one zone: no site to compare its silence with, every long silence counts
    else:
        hours = active_hours(z.t) if site_hours is None else site_hours
    lasts = np.flatnonzero(~z.same_next)
    inside = inner[(gap[inner] > silence) & regular[z.zone[inner]]]
    trailing = lasts[(end_ms - z.t[lasts] > silence) & regular[z.zone[lasts]]]
    pos = np.concatenate([inside, trailing])
    until = np.concatenate([z.t[inside + 1], np.full(len(trailing), end_ms)])
    # the first hour, after the silence threshold and before the zone's next reading (or the end of the
    # data, whose hour counts), in which the site reported
    detected = z.t[pos] + silence
    n_inside = len(inside)
    if hours is not None:
        # hours of the silence in which the site reported: after the zone's last reading's hour, before
        # its next reading's (a silence open at the end of the data: up to and with the last hour)
        after = z.t[pos] // _HOUR_MS + 1
        before = np.where(np.arange(len(pos)) < len(inside), until // _HOUR_MS, until // _HOUR_MS + 1)
        lo, hi = np.searchsorted(hours, after), np.searchsorted(hours, before)
        need = max(1, math.ceil(silence_hours) - 1)
        seen = hi - lo >= need
        pos, until, n_inside = pos[seen], until[seen], int(seen[: len(inside)].sum())
        reached = (hours[lo[seen] + need - 1] + 1) * _HOUR_MS  # the end of the site's need-th hour
        detected = np.maximum(detected[seen], reached)
    if len(pos) == 0:
        return pd.DataFrame()
    hours = (until - z.t[pos]) / _HOUR_MS
    return pd.DataFrame(
        {
            S.ZONE_ID: z.names[z.zone[pos]],
            "first_ms": z.t[pos],
            "detected_ms": detected,
            "last_ms": until,
            "open": np.arange(len(pos)) >= n_inside,
            "score": hours,
            "hours": hours,
            "interval_minutes": interval[z.zone[pos]] / S.MS_PER_MINUTE,
        }
    )

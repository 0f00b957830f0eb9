"""Maintenance alerts (SPEC §5, §7 ``alerts.csv``): the two rules, and alerts as rows a manager can read.

The rules are plain functions, :func:`stuck_on_alerts` and :func:`dropout_alerts`; the learnt detectors
(spikes, drift) are in :mod:`~slem_ml.models.anomaly`. Every finder first builds *episodes* (one per fault,
whatever its length) and :func:`render_alerts` turns them into the alerts table:
:data:`~slem_ml.io.schema.ALERT_COLUMNS` plus ``status`` (:func:`alert_columns`).

``alert_id``
    ``f"{kind}:{zone_id}:{first_seen:%Y%m%dT%H%MZ}"`` (``first_seen`` in UTC). ``first_seen`` is fixed once
    the alert is raised, so scoring the same readings again, or with later readings appended, gives the
    same id: a store can upsert on it, and an alert is raised once (no repeats while it is open).
``status``
    ``"open"`` while the condition still holds at the end of the readings, else ``"resolved"``. SPEC §5 also
    names ``ongoing``: an open alert seen again by a later scoring run, which only the store (comparing runs
    by ``alert_id``) can tell; one run of the detectors says ``open`` or ``resolved``.
``severity`` (``low`` / ``medium`` / ``high``) follows the consequence — energy and money wasted or at
risk, safety, billing —, so that kinds compare (:func:`severity_rank` orders them, most severe first):
    * ``stuck_on`` wastes energy every hour it lasts, outside contracted hours, where a client may be billed
      for it as overtime: always at least medium; high from 24 h lit or from
      :data:`STUCK_ON_HIGH_KWH` wasted (13 h at 400 W, 5.2 kWh: medium; 13 h at 1 kW, 13 kWh: high);
    * ``spike``: a reading far above its reference (the lit readings beside it) is a failing driver or
      ballast — a safety matter — and a bill inflated: ≥ 4× high, ≥ 3× medium, else low;
    * ``drift``: extra energy on every lit hour from here on: a rise of the zone's full-brightness power
      above its normal ≥ 20 % high, ≥ 10 % medium, else low;
    * ``dropout``: missing readings waste nothing; they hide what the zone does (overtime may go unbilled,
      faults unseen): low, medium from 72 h, never high. A silence the whole site shares is missing data,
      not a dropout (:func:`dropout_episodes`).
    The live detectors (:mod:`slem_ml.live.detectors`) emit the same episode frames and so get the same
    severities through :func:`render_alerts`.
``score`` (higher = worse; compare within a kind only)
    spike: the anomaly score of its largest reading; drift: the rise as a fraction (0.09 = 9 %); stuck_on:
    hours lit; dropout: hours silent.

An episode frame has one row per episode: ``zone_id`` (str), ``first_ms``, ``detected_ms``, ``last_ms``
(int64 UTC [ms]), ``open`` (bool), ``score`` (float), then the kind's :data:`EVIDENCE` columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local, ms_to_utc

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

ALERT_KINDS: tuple[str, ...] = ("spike", "drift", "stuck_on", "dropout")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
#: Alert kinds in words, as managers read them (the app's tables, the reports).
KIND_WORDS: dict[str, str] = {
    "stuck_on": "Lights stuck on",
    "spike": "Power spike",
    "drift": "Drift",
    "dropout": "No readings",
}
STATUS = "status"
STUCK_ON_HOURS = 12.0  # SPEC §5: lights on for more than 12 h in a row outside contracted hours
DROPOUT_HOURS = 24.0  # SPEC §5: a zone that reports regularly is silent for more than 24 h
REGULAR_HOURS = 6.0  # a zone reports regularly when its median interval is at most this

#: Evidence columns of each kind's episode frame (units in the names).
EVIDENCE: dict[str, tuple[str, ...]] = {
    "spike": ("spikes", "power_w", "reference_w", "both_sides", "expected_w"),
    "drift": ("normal_w", "now_w", "rise", "rate_per_day", "own_baseline"),
    "stuck_on": ("hours", "energy_kwh", "mean_w"),
    "dropout": ("hours", "interval_minutes"),
}
#: A stuck-on episode that wasted this much energy [kWh] is high whatever its length (module docstring).
STUCK_ON_HIGH_KWH = 10.0
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


# --- the table ------------------------------------------------------------------------------------


def alert_columns() -> tuple[str, ...]:
    """Columns of the alerts table: SPEC §7's ``alerts.csv`` columns, then ``status``."""
    return (*S.ALERT_COLUMNS, STATUS)


def empty_alerts() -> pd.DataFrame:
    """An alerts table without rows, with the dtypes of a full one."""
    nothing = np.zeros(0, dtype=object)
    no_time = np.zeros(0, dtype=np.int64)
    return _table(nothing, nothing, "", nothing, (no_time, no_time, no_time), np.zeros(0), nothing, nothing)


def alert_ids(kind: str, zone_ids: np.ndarray, first_ms: np.ndarray) -> np.ndarray:
    """The ``alert_id`` of each episode of ``kind`` (module docstring), from its zone and first instant."""
    stamp = pd.DatetimeIndex(np.asarray(first_ms, dtype=np.int64).astype("datetime64[ms]")).strftime(
        "%Y%m%dT%H%MZ"
    )
    return np.array([f"{kind}:{z}:{s}" for z, s in zip(zone_ids, stamp, strict=True)], dtype=object)


def render_alerts(kind: str, episodes: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The alerts of ``kind``'s episodes (:func:`alert_columns`); ``detail`` tells site (local) time."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {', '.join(ALERT_KINDS)}")
    if len(episodes) == 0:
        return empty_alerts()
    first = episodes["first_ms"].to_numpy(dtype=np.int64)
    zone = episodes[S.ZONE_ID].astype(str).to_numpy(dtype=object)
    ids = alert_ids(kind, zone, first)
    severity = np.asarray(SEVERITIES, dtype=object)[_SEVERITY[kind](episodes)]
    words = _DETAIL[kind]
    detail = np.array([words(row, timezone) for row in episodes.to_dict("records")], dtype=object)
    status = np.where(episodes["open"].to_numpy(dtype=bool), "open", "resolved").astype(object)
    times = tuple(episodes[c].to_numpy(dtype=np.int64) for c in ("detected_ms", "first_ms", "last_ms"))
    score = episodes["score"].to_numpy(dtype=float)
    return _table(ids, zone, kind, severity, times, score, detail, status)


def _table(
    ids: np.ndarray,
    zone: np.ndarray,
    kind: str,
    severity: np.ndarray,
    times: tuple[np.ndarray, ...],
    score: np.ndarray,
    detail: np.ndarray,
    status: np.ndarray,
) -> pd.DataFrame:
    def text(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
        return pd.array(values, dtype="str")

    detected, first, last = times
    columns = (
        text(ids), text(zone), text(np.full(len(ids), kind, dtype=object)), text(severity),
        ms_to_utc(detected), ms_to_utc(first), ms_to_utc(last),
        score.astype(float), text(detail), text(status),
    )  # fmt: skip
    return pd.DataFrame(dict(zip(alert_columns(), columns, strict=True)))


# --- severity and words ---------------------------------------------------------------------------

_LOW, _MEDIUM, _HIGH = range(3)  # positions in SEVERITIES


def kind_words(kinds: pd.Series) -> pd.Series:
    """Alert kinds (codes) in words (:data:`KIND_WORDS`); an unknown kind keeps its code."""
    return kinds.map(KIND_WORDS).fillna(kinds)


def severity_rank(severity: pd.Series) -> pd.Series:
    """How severe each alert is: 2 high, 1 medium, 0 low, −1 unknown (sort descending: most severe first)."""
    return severity.map({s: i for i, s in enumerate(SEVERITIES)}).fillna(-1).astype(int)


def _steps(measure: np.ndarray, medium: float, high: float) -> np.ndarray:
    return np.where(measure >= high, _HIGH, np.where(measure >= medium, _MEDIUM, _LOW))


def _stuck_on_severity(ep: pd.DataFrame) -> np.ndarray:
    hours = ep["hours"].to_numpy(dtype=float)
    wasted = ep["energy_kwh"].to_numpy(dtype=float)
    return np.where((hours >= 24.0) | (wasted >= STUCK_ON_HIGH_KWH), _HIGH, _MEDIUM)


#: Each kind's severity (positions in SEVERITIES) from its episodes: the rule of the module docstring.
_SEVERITY: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "spike": lambda ep: _steps(
        ep["power_w"].to_numpy(dtype=float) / ep["reference_w"].to_numpy(dtype=float), 3.0, 4.0
    ),
    "drift": lambda ep: _steps(ep["rise"].to_numpy(dtype=float), 0.10, 0.20),
    "stuck_on": _stuck_on_severity,
    "dropout": lambda ep: _steps(ep["hours"].to_numpy(dtype=float), 72.0, np.inf),
}


def _local(ms: int, timezone: str) -> pd.Timestamp:
    return ms_to_local(np.array([ms], dtype=np.int64), timezone)[0]


def _day_time(ms: int, timezone: str) -> str:
    """``Tue 4 Mar 21:15`` in site time."""
    t = _local(ms, timezone)
    return f"{t:%a} {t.day} {t:%b %H:%M}"


def _watts(value: float) -> str:
    return f"{value:,.0f} W"


def _spike_detail(row: dict[str, Any], timezone: str) -> str:
    # SPEC §5: the expected value beside the observed one, and what drove the score
    if row.get("band"):  # the live detector: against the expected band (slem_ml.live.detectors)
        where = "it should draw at most in that hour (the top of its expected band, or its typical lit power)"
    else:
        where = "it drew when lit " + ("just before and after" if row["both_sides"] else "just before")
    text = (
        f"Zone {row[S.ZONE_ID]} drew {_watts(row['power_w'])} on {_day_time(row['first_ms'], timezone)}"
        f" (local), about {row['power_w'] / row['reference_w']:.1f}× the {_watts(row['reference_w'])}"
        f" {where}"
    )
    if np.isfinite(row["expected_w"]):
        text += f"; the hourly forecast expected {_watts(row['expected_w'])}"
    if row["spikes"] > 1:
        text += f" ({row['spikes']} spikes within the hour; the largest is shown)"
    return text + "."


def _drift_detail(row: dict[str, Any], timezone: str) -> str:
    since = _local(row["first_ms"], timezone)
    text = (
        f"On-power has risen about {100 * row['rise']:.0f} % since {since.day} {since:%b}"
        f" (about {100 * row['rate_per_day']:.1f} %/day): lit at full brightness the zone now draws"
        f" {_watts(row['now_w'])} against a normal {_watts(row['normal_w'])}; typical of ageing drivers or a"
        " failed dimmer."
    )
    if row["own_baseline"]:
        text += " The zone was not in the training data: its normal is estimated from its first days here."
    return text


def _stuck_on_detail(row: dict[str, Any], timezone: str) -> str:
    since = _day_time(row["first_ms"], timezone)
    energy = f"about {row['energy_kwh']:,.1f} kWh at {_watts(row['mean_w'])}"
    if row["open"]:
        return (
            f"Lights on for {row['hours']:.1f} h outside contracted hours (since {since}) and still on at"
            f" the end of the readings; {energy} so far."
        )
    return f"Lights on for {row['hours']:.1f} h outside contracted hours (since {since}); {energy}."


def _dropout_detail(row: dict[str, Any], timezone: str) -> str:
    minutes = row["interval_minutes"]
    usual = f"every {minutes:.0f} min" if minutes < 90 else f"every {minutes / 60:.1f} h"
    since = _day_time(row["first_ms"], timezone)
    if row["open"]:
        return (
            f"No readings since {since} ({row['hours']:.0f} h by the end of the readings); the zone"
            f" normally reports {usual}."
        )
    return f"No readings for {row['hours']:.0f} h since {since}; the zone normally reports {usual}."


_DETAIL: dict[str, Callable[[dict[str, Any], str], str]] = {
    "spike": _spike_detail,
    "drift": _drift_detail,
    "stuck_on": _stuck_on_detail,
    "dropout": _dropout_detail,
}

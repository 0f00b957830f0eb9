"""The alerts table (SPEC §5, §7 ``alerts.csv``): episodes of every kind as rows a manager can read.

Every finder (the rules of :mod:`slem_ml.models.alerts`, the spike and drift detectors, the live detectors)
first builds *episodes* (one per fault, whatever its length) and :func:`render_alerts` turns them into the
alerts table: :data:`~slem_ml.io.schema.ALERT_COLUMNS` plus ``status`` (:func:`alert_columns`).

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
    * ``spike``: a reading far above what the zone draws (its reference: the top of its usual lit level in
      that contract state) is a failing driver, ballast or meter — a safety matter — and a bill inflated:
      ≥ 4× high, ≥ 3× medium, else low;
    * ``drift``: extra energy on every lit hour from here on: a rise of the zone's full-brightness power
      above its normal ≥ 20 % high, ≥ 10 % medium, else low;
    * ``dropout``: missing readings waste nothing; they hide what the zone does (overtime may go unbilled,
      faults unseen): low, medium from 72 h, never high. A silence the whole site shares is missing data,
      not a dropout (:func:`~slem_ml.models.alerts.dropout_episodes`).
    The live detectors (:mod:`slem_ml.live.detectors`) emit the same episode frames and so get the same
    severities through :func:`render_alerts`.
``score`` (higher = worse; compare within a kind only)
    spike: the forest's anomaly score of its most anomalous reading; drift: the rise as a fraction (0.09 =
    9 %); stuck_on: hours lit; dropout: hours silent.

An episode frame has one row per episode: ``zone_id`` (str), ``first_ms``, ``detected_ms``, ``last_ms``
(int64 UTC [ms]), ``open`` (bool), ``score`` (float), then the kind's :data:`EVIDENCE` columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local, ms_to_utc

__all__ = [
    "ALERT_KINDS",
    "EVIDENCE",
    "KIND_WORDS",
    "SEVERITIES",
    "STATUS",
    "STUCK_ON_HIGH_KWH",
    "alert_columns",
    "alert_ids",
    "empty_alerts",
    "kind_words",
    "render_alerts",
    "severity_rank",
]

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
#: Evidence columns of each kind's episode frame (units in the names).
EVIDENCE: dict[str, tuple[str, ...]] = {
    "spike": ("spikes", "peak_ms", "power_w", "reference_w", "prev_w", "next_w", "in_contract", "expected_w"),
    "drift": ("normal_w", "now_w", "rise", "rate_per_day", "own_baseline"),
    "stuck_on": ("hours", "energy_kwh", "mean_w"),
    "dropout": ("hours", "interval_minutes"),
}
#: A stuck-on episode that wasted this much energy [kWh] is high whatever its length (module docstring).
STUCK_ON_HIGH_KWH = 10.0


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
    ratio = row["power_w"] / row["reference_w"]
    if row.get("band"):  # the live detector: against the expected band (slem_ml.live.detectors)
        where = (
            f"about {ratio:.1f}× the {_watts(row['reference_w'])} it should draw at most in that hour (the"
            " top of its expected band, or its typical lit power)"
        )
    else:
        state = "in contracted hours" if row.get("in_contract") else "outside contracted hours"
        where = f"{ratio:.1f}× the most it usually draws when lit {state} ({_watts(row['reference_w'])})"
    when = _day_time(row.get("peak_ms", row["first_ms"]), timezone)
    text = f"Zone {row[S.ZONE_ID]} drew {_watts(row['power_w'])} on {when} (local), {where}"
    if "next_w" in row:  # the batch detector: the readings around it
        before = row["prev_w"]
        after = f"{_watts(row['next_w'])} after" if np.isfinite(row["next_w"]) else "dark after"
        text += f"; {_watts(before)} before and {after}" if np.isfinite(before) else f"; {after}"
    if np.isfinite(row["expected_w"]):
        text += f"; the hourly forecast expected {_watts(row['expected_w'])}"
    if row["spikes"] > 1:
        text += f" ({row['spikes']} spikes until {_day_time(row['last_ms'], timezone)}; the largest is shown)"
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

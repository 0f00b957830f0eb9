"""After-hours segments and their features (SPEC §4): what the session classifier decides on.

A *segment* is a maximal run of consecutive lit readings of one zone outside its client's contract window,
cut where the power level steps (a tenant working late at their own level, then a crew at full light, in one
unbroken run). Power is cleared of single-reading spikes before looking for steps, so a spike does not cut a
session. Each segment gets features that tell a crew from a tenant (:data:`FEATURES`): its brightness
against the zone's contract-hours light and the light around it, when it starts and ends against the
contract, and what the building's other zones do around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import compute_coverage, contract_windows, holiday_mask
from slem_ml.billing.sessions import labels_at
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.io.localtime import local_day_numbers, ms_to_local

__all__ = ["FEATURES", "Segments", "after_hours_segments"]

#: Segment features, in model column order. Levels are shares of the zone's contract-hours light around
#: that date (see ``_reference``; NaN for a zone never lit in its contract window); times are hours.
FEATURES: tuple[str, ...] = (
    "level",  # mean (spike-free) power / zone reference
    "level_before",  # power of the lit reading the segment carries on from / zone reference (NaN: none)
    "level_after",  # the same for the lit reading that carries on from the segment
    "before_kind",  # 0 dark or no reading, 1 lit in the contract window, 2 lit after hours (another segment)
    "after_kind",
    "duration_h",  # from the first reading to the end of the last one's coverage [h]
    "since_close_h",  # from the client's last closing to the segment's start [h]
    "until_open_h",  # from the segment's end to the client's next opening [h]
    "start_hour",  # local time of day at the start [h]
    "weekday",  # local weekday at the start, Monday = 0
    "open_day",  # the client has contracted hours on the local date of the start
    "handover_before_h",  # start − nearest end of an after-hours segment of another zone, same building [h]
    "handover_after_h",  # nearest start of an after-hours segment of another zone, same building − end [h]
    "lit_at_start",  # other zones of the building lit after hours at the start
    "started_together",  # other zones of the building whose after-hours segment starts within ±20 min
)
_HOUR_MS = 3_600_000
_TOGETHER_MS = 20 * S.MS_PER_MINUTE
_REFERENCE_DAYS = 3  # the zone's reference light is the brightest day within this many days
_SPIKE = 1.8  # a reading this many times brighter than both neighbours is a spike, not light
_NEIGHBOURS = 3  # candidates looked at on each side for the nearest segment of another zone


@dataclass(frozen=True)
class Segments:
    """After-hours lit readings of a frame and the segments they form.

    ``rows`` are positions in the frame of every lit reading outside its contract window, in frame order;
    ``segment`` numbers their segments (0, 1, … in order). ``table`` has one row per segment: ``zone_id``,
    ``start`` and ``end`` (site time), ``readings``, then the :data:`FEATURES`.
    """

    rows: np.ndarray  # int64
    segment: np.ndarray  # int64, one per entry of rows
    table: pd.DataFrame


def after_hours_segments(
    frame: pd.DataFrame, site: SiteConfig, *, step_log_ratio: float = 0.1, join_gap_minutes: int = 180
) -> Segments:
    """Segments of a validated readings frame (sorted by zone and time) and their features.

    Consecutive lit readings of a zone belong together when at most ``join_gap_minutes`` lie between them:
    a sparse export (1–3 readings an hour) leaves holes in the coverage of a lit zone that are not darkness.
    A segment ends where the zone goes dark, enters its contract window, falls silent for longer, changes
    client, or where the (spike-free) power steps by more than ``step_log_ratio`` in natural log
    (0.1 ≈ 10 %).
    """
    coverage = compute_coverage(frame, site)
    t = frame[S.TIMESTAMP].to_numpy(dtype="datetime64[ms]").view(np.int64)
    zone = frame[S.ZONE_ID].cat.codes.to_numpy().astype(np.int64)
    client = frame[S.CLIENT_ID].cat.codes.to_numpy().astype(np.int64)
    power = frame[S.POWER_W].to_numpy(dtype=float)
    is_on, lit_in = coverage.is_on, coverage.is_on & coverage.in_contract
    # joined[i]: row i carries on the light of row i - 1
    joined = np.zeros(len(t), dtype=bool)
    joined[1:] = (
        (zone[1:] == zone[:-1])
        & (client[1:] == client[:-1])
        & is_on[1:]
        & is_on[:-1]
        & (t[1:] - t[:-1] <= join_gap_minutes * S.MS_PER_MINUTE)
    )
    smooth = _despike(power, joined[1:])
    rows = np.flatnonzero(is_on & ~coverage.in_contract)
    ratio = np.abs(np.log(np.maximum(smooth[rows], 1e-9) / np.maximum(smooth[np.maximum(rows - 1, 0)], 1e-9)))
    new = ~joined[rows] | lit_in[np.maximum(rows - 1, 0)] | (ratio > step_log_ratio)
    first = np.flatnonzero(new)
    ends = np.ones(len(rows), dtype=bool)
    ends[:-1] = new[1:]
    last = np.flatnonzero(ends)
    readings = last - first + 1
    start = t[rows[first]]
    stop = t[rows[last]] + coverage.covered_ms[rows[last]]
    seg_zone = zone[rows[first]]

    tz = site.site.timezone
    lit = pd.DataFrame(
        {
            "zone": zone[lit_in],
            "day": local_day_numbers(t[lit_in].view("datetime64[ms]"), tz),
            "power": smooth[lit_in],
        }
    )
    wanted = pd.DataFrame({"zone": seg_zone, "day": local_day_numbers(start.view("datetime64[ms]"), tz)})
    ref = _reference(lit, wanted)
    level = np.add.reduceat(smooth[rows], first) / readings / ref if len(first) else ref
    before, after = rows[first] - 1, np.minimum(rows[last] + 1, len(t) - 1)
    before_kind = np.where(joined[rows[first]], np.where(lit_in[np.maximum(before, 0)], 1, 2), 0)
    carries_on = (rows[last] + 1 < len(t)) & joined[after]
    after_kind = np.where(carries_on, np.where(lit_in[after], 1, 2), 0)

    local = ms_to_local(start, tz)
    since_close, until_open, open_day = _contract_context(frame[S.CLIENT_ID], rows[first], start, stop, site)
    building = frame[S.BUILDING].cat.codes.to_numpy().astype(np.int64)[rows[first]]
    table = pd.DataFrame(
        {
            S.ZONE_ID: labels_at(frame[S.ZONE_ID], rows[first]),
            "start": local,
            "end": ms_to_local(stop, tz),
            "readings": readings,
            "level": level,
            "level_before": np.where(before_kind > 0, smooth[np.maximum(before, 0)] / ref, np.nan),
            "level_after": np.where(after_kind > 0, smooth[after] / ref, np.nan),
            "before_kind": before_kind,
            "after_kind": after_kind,
            "duration_h": (stop - start) / _HOUR_MS,
            "since_close_h": since_close / _HOUR_MS,
            "until_open_h": until_open / _HOUR_MS,
            "start_hour": local.hour + local.minute / 60.0,
            "weekday": local.day_of_week,
            "open_day": open_day,
            "handover_before_h": _nearest_other(building, seg_zone, start, stop) / _HOUR_MS,
            "handover_after_h": -_nearest_other(building, seg_zone, stop, start) / _HOUR_MS,
            "lit_at_start": _lit_at(building, start, stop),
            "started_together": _within(building, start, _TOGETHER_MS),
        }
    )
    return Segments(rows=rows, segment=np.cumsum(new) - 1, table=table)


def _despike(p: np.ndarray, touch: np.ndarray) -> np.ndarray:
    """``p`` with single readings far above both neighbours (``_SPIKE`` times the brighter one) cut down to
    that neighbour. ``touch[i]`` says whether values i and i + 1 are neighbours. A plain median filter would
    also erase a short dimmer run between two brighter ones, such as one reading of a tenant's overtime
    between the working day and a crew."""
    prev, nxt = p.copy(), p.copy()
    prev[1:] = np.where(touch, p[:-1], p[1:])
    nxt[:-1] = np.where(touch, p[1:], p[:-1])
    brighter = np.maximum(prev, nxt)
    return np.where(p > _SPIKE * brighter, brighter, p)


def _reference(lit: pd.DataFrame, wanted: pd.DataFrame) -> np.ndarray:
    """The zone's contract-hours light [W] around a local date, per (``zone``, ``day``) row of ``wanted``.

    ``lit`` holds the (spike-filtered) ``power`` of lit readings in the contract window with their ``zone``
    and local ``day``. Per zone and day, the 90th percentile; then the highest of those within
    ``_REFERENCE_DAYS`` either side, so one dim working day does not lower it and a slow drift of the
    fixtures' power moves it along. Where a zone has no such day nearby: its 90th percentile over the whole
    frame; NaN for a zone never lit in its contract window (its levels are then unknown, and the model
    decides from the other features).
    """
    daily = lit.groupby(["zone", "day"], as_index=False)["power"].quantile(0.9)
    shifted = [daily.assign(day=daily["day"] + k) for k in range(-_REFERENCE_DAYS, _REFERENCE_DAYS + 1)]
    nearby = pd.concat(shifted).groupby(["zone", "day"], as_index=False)["power"].max()
    found = wanted.merge(nearby, on=["zone", "day"], how="left")["power"]
    whole = lit.groupby("zone")["power"].quantile(0.9)
    return found.fillna(wanted["zone"].map(whole)).to_numpy(dtype=float)


def _contract_context(
    client: pd.Series, rows: np.ndarray, start: np.ndarray, stop: np.ndarray, site: SiteConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment: ms since its client's last closing, ms until the next opening (NaN where there is none
    within the week around the data) and whether the client is open on the local date of the start."""
    since = np.full(len(rows), np.nan)
    until = np.full(len(rows), np.nan)
    open_day = np.zeros(len(rows), dtype=bool)
    if len(rows) == 0:
        return since, until, open_day
    tz = site.site.timezone
    start_day = local_day_numbers(start.view("datetime64[ms]"), tz)
    days = np.arange(start_day.min() - 8, start_day.max() + 9, dtype=np.int64)
    holiday = holiday_mask(site, days)
    labels = np.asarray(client.cat.categories.astype(str), dtype=object)[client.cat.codes.to_numpy()[rows]]
    for cid, contract in site.clients.items():
        mine = labels == cid
        if not mine.any() or contract.always_open:
            continue
        opens, closes, working = contract_windows(contract, days, holiday, tz)
        i = np.searchsorted(closes, start[mine], side="right") - 1
        since[mine] = np.where(i >= 0, start[mine] - closes[np.maximum(i, 0)], np.nan)
        j = np.searchsorted(opens, stop[mine], side="left")
        until[mine] = np.where(j < len(opens), opens[np.minimum(j, len(opens) - 1)] - stop[mine], np.nan)
        open_day[mine] = np.isin(start_day[mine], days[working])
    return since, until, open_day


def _nearest_other(group: np.ndarray, zone: np.ndarray, at: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per segment, ``at − other[j]`` for the segment j of another zone in the same group whose ``other``
    instant is nearest to ``at`` [ms]; NaN when the group has no other zone's segment."""
    if len(at) == 0:
        return np.zeros(0)
    base = min(int(at.min()), int(other.min()))
    order = np.lexsort((other, group))
    keys = group[order] * S.GROUP_SPAN_MS + (other[order] - base)
    pos = np.searchsorted(keys, group * S.GROUP_SPAN_MS + (at - base))
    best = np.full(len(at), np.nan)
    for offset in range(-_NEIGHBOURS, _NEIGHBOURS):
        j = order[np.clip(pos + offset, 0, len(keys) - 1)]
        inside = (pos + offset >= 0) & (pos + offset < len(keys))
        valid = inside & (group[j] == group) & (zone[j] != zone)
        gap = (at - other[j]).astype(float)
        closer = valid & ~(np.abs(gap) >= np.abs(best))  # NaN best: any valid gap is closer
        best = np.where(closer, gap, best)
    return best


def _lit_at(group: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Per segment, how many other segments of its group are lit at its start."""
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64)
    base = int(start.min())
    starts = np.sort(group * S.GROUP_SPAN_MS + (start - base))
    stops = np.sort(group * S.GROUP_SPAN_MS + (stop - base))
    key = group * S.GROUP_SPAN_MS + (start - base)
    return np.searchsorted(starts, key, side="right") - np.searchsorted(stops, key, side="right") - 1


def _within(group: np.ndarray, start: np.ndarray, radius_ms: int) -> np.ndarray:
    """Per segment, how many other segments of its group start within ``radius_ms`` of its start."""
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64)
    base = int(start.min()) - radius_ms
    keys = np.sort(group * S.GROUP_SPAN_MS + (start - base))
    key = group * S.GROUP_SPAN_MS + (start - base)
    return np.searchsorted(keys, key + radius_ms, side="right") - np.searchsorted(keys, key - radius_ms) - 1

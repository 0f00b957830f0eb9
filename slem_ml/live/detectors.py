"""The live detectors' arithmetic (SPEC §9): how a batch of new readings moves each zone's live state, and
the alert episodes it starts, continues or ends. Pure NumPy; the database side is
:mod:`slem_ml.storage.live_state`, the orchestration :mod:`slem_ml.live.watch`.

The rules are SPEC §5's, applied as readings arrive (episode frames as :mod:`slem_ml.models.alerts`
describes them, so alerts read and are keyed as those of a scoring run):

``stuck_on``
    A run of a zone's lit readings outside its client's (widened) contract window, with no gap longer than
    ``sampling.max_gap_minutes``, as in :func:`~slem_ml.models.alerts.stuck_on_episodes`. Raised at the
    first reading more than 12 h after the run's first; open while the run goes on, resolved at the reading
    that ends it.
``spike``
    A lit reading above ``min_ratio`` × its *reference*: the top of the zone's expected band for that hour
    (the champion forecaster's interval, :class:`Bands`) or the zone's typical lit power, whichever is
    higher — so a zone lit in an hour it is normally dark is not a spike. Spikes of a zone under an hour
    apart are one alert; it stays open until an hour passes without one — a later reading shows it, else
    the clock (:func:`closed_spikes`). A zone the model never saw (no typical lit power) is not judged.
    Needs a champion model: without one there are no bands.
``dropout``
    Raised by the clock (:func:`silences`), resolved by the zone's next reading (:func:`advance`).

Only readings later than the zone's latest move its state; a late or repeated reading is stored and
re-billed but changes no live state and raises nothing (a scoring run over the stored readings judges it).
Times are UTC [ms]; power [W]; energy [Wh].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slem_ml.billing.coverage import in_contract_at
from slem_ml.config.site import SiteConfig
from slem_ml.io import schema as S
from slem_ml.models.alerts import DROPOUT_HOURS, REGULAR_HOURS, STUCK_ON_HOURS

__all__ = [
    "BATCH_COLUMNS",
    "STATE_COLUMNS",
    "Advanced",
    "Bands",
    "advance",
    "closed_spikes",
    "silences",
]

HOUR_MS = 3_600_000
SPIKE_MERGE_MS = HOUR_MS  # spikes of a zone closer than this are one alert
MIN_RATIO = 2.0  # a spike is at least this many times its reference [×]
QUARTER_MS = 15 * 60_000  # live_power's buckets
_WH = 3_600_000.0  # W·ms in a Wh

#: A batch of readings: one row each, any order; ``t_ms`` UTC [ms], ``power_w`` [W].
BATCH_COLUMNS = ("zone_key", "zone_id", "building", "t_ms", "power_w", "client_id", "cleaning")
#: A zone's live state (``live_zones``), indexed by zone key.
STATE_COLUMNS = (
    "last_ms", "power_w", "client_id", "lit", "in_contract", "cleaning", "interval_ms", "run_start_ms",
    "run_energy_wh", "spike_first_ms", "spike_last_ms",
)  # fmt: skip
_NONE = -1  # a missing instant in the int64 arrays below (NULL in the table)


@dataclass(frozen=True)
class Bands:
    """Expected power per zone and UTC hour from the champion forecaster, and each zone's typical lit power.

    ``key`` is ``zone_key × GROUP_SPAN_MS + hour_ms``, sorted; ``upper_w``/``expected_w`` [W] follow it.
    ``level_w`` maps a zone id to its median lit power [W] (the spike model's ``on_level_w_``).
    """

    key: np.ndarray
    upper_w: np.ndarray
    expected_w: np.ndarray
    level_w: dict[str, float]

    def at(self, zone_key: np.ndarray, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(upper, expected) [W] of each reading's zone-hour; NaN where no band is known."""
        want = zone_key.astype(np.int64) * S.GROUP_SPAN_MS + (t_ms - t_ms % HOUR_MS)
        pos = np.clip(np.searchsorted(self.key, want), 0, max(len(self.key) - 1, 0))
        found = (self.key[pos] == want) if len(self.key) else np.zeros(len(want), bool)
        upper = np.where(found, self.upper_w[pos] if len(self.key) else np.nan, np.nan)
        expected = np.where(found, self.expected_w[pos] if len(self.key) else np.nan, np.nan)
        return upper, expected


@dataclass(frozen=True)
class Advanced:
    """What a batch did: the new state of each zone it moved (``STATE_COLUMNS`` indexed by zone key), each
    building's added energy per quarter hour (``building``, ``bucket_ms``, ``energy_wh``), and episode
    frames by alert kind (:mod:`slem_ml.models.alerts`)."""

    states: pd.DataFrame
    power: pd.DataFrame
    episodes: dict[str, pd.DataFrame]
    readings: int  # readings that moved a zone's state (later than its latest)
    #: spike episodes that ended (``zone_id``, ``first_ms``): a new one began, or an hour passed without one
    ended_spikes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({S.ZONE_ID: [], "first_ms": []}))


def advance(prior: pd.DataFrame, batch: pd.DataFrame, site: SiteConfig, bands: Bands | None) -> Advanced:
    """Move the live state ``prior`` (``STATE_COLUMNS`` by zone key, NaN for a missing instant; zones never
    seen are absent) by the readings of ``batch`` (``BATCH_COLUMNS``). The states returned have the same
    form: ``prior`` updated by them is the state after the batch."""
    b = _new_readings(prior, batch)
    n = len(b)
    if n == 0:
        return Advanced(pd.DataFrame(columns=list(STATE_COLUMNS)), _power(b, np.zeros(0)), {}, 0)
    zone, t, power = b["zone_key"].to_numpy(), b["t_ms"].to_numpy(), b["power_w"].to_numpy(dtype=float)
    first = np.ones(n, bool)
    first[1:] = zone[1:] != zone[:-1]
    last = np.append(first[1:], True)
    p = prior.reindex(zone)  # the zone's state before the batch, per row
    had = first & p["last_ms"].notna().to_numpy()
    prior_last = p["last_ms"].fillna(_NONE).to_numpy(np.int64)
    prev_t = np.where(first, prior_last, np.roll(t, 1))
    has_prev = ~first | had
    gap = np.where(has_prev, t - prev_t, 0)
    max_gap = site.sampling.max_gap_minutes * S.MS_PER_MINUTE
    lit = power >= site.sampling.on_threshold_w
    clients = b["client_id"].astype("category")
    in_contract = in_contract_at(t, clients, site)
    outside = lit & ~in_contract

    prior_run = p["run_start_ms"].fillna(_NONE).to_numpy(np.int64)
    prev_outside = np.where(first, prior_run != _NONE, np.roll(outside, 1))
    cont = outside & prev_outside & has_prev & (gap <= max_gap)
    anchor = (outside & ~cont) | (first & cont)
    idx = np.maximum.accumulate(np.where(anchor, np.arange(n), 0))
    start_val = np.where(first & cont, prior_run, t)
    run_start = np.where(outside, start_val[idx], _NONE)
    prev_power = np.where(first, p["power_w"].fillna(0.0).to_numpy(float), np.roll(power, 1))
    step_wh = np.where(cont, prev_power * np.minimum(gap, max_gap) / _WH, 0.0)
    base = np.where(first & cont, p["run_energy_wh"].fillna(0.0).to_numpy(float), 0.0)
    cs = np.cumsum(step_wh)
    run_energy = np.where(outside, base[idx] + cs - (cs[idx] - step_wh[idx]), 0.0)

    episodes = {
        "stuck_on": _stuck_on(b, p, first, last, outside, cont, idx, run_start, run_energy, max_gap),
        "dropout": _dropouts(b, p, had, gap),
    }
    spike_first, spike_last, spikes, ended = _spikes(b, p, first, last, lit, bands)
    if len(spikes):
        episodes["spike"] = spikes
    ends = np.flatnonzero(last)
    states = pd.DataFrame(
        {
            "last_ms": t[ends],
            "power_w": power[ends],
            "client_id": b["client_id"].to_numpy(dtype=object)[ends],
            "lit": lit[ends],
            "in_contract": in_contract[ends],
            "cleaning": b["cleaning"].to_numpy(dtype=bool)[ends],
            "interval_ms": gap[ends],
            "run_start_ms": _nan_for_none(run_start[ends]),
            "run_energy_wh": run_energy[ends],
            "spike_first_ms": _nan_for_none(spike_first[ends]),
            "spike_last_ms": _nan_for_none(spike_last[ends]),
        },
        index=pd.Index(zone[ends], name="zone_key"),
    )
    return Advanced(states, _power(b, np.minimum(gap, max_gap) * power / _WH), episodes, n, ended)


def _nan_for_none(ms: np.ndarray) -> np.ndarray:
    """Instants [ms] as floats, NaN where there is none (as :func:`~slem_ml.storage.live_state.load_states`
    gives them back)."""
    return np.where(ms == _NONE, np.nan, ms.astype(np.float64))


def _new_readings(prior: pd.DataFrame, batch: pd.DataFrame) -> pd.DataFrame:
    """The batch's readings later than their zone's latest, in (zone, time) order, one per instant."""
    b = batch.sort_values(["zone_key", "t_ms"], kind="stable")
    b = b[~b.duplicated(["zone_key", "t_ms"], keep="last")]
    latest = prior["last_ms"].reindex(b["zone_key"].to_numpy()).fillna(_NONE).to_numpy(np.int64)
    return b[b["t_ms"].to_numpy() > latest].reset_index(drop=True)


def _power(b: pd.DataFrame, energy_wh: np.ndarray) -> pd.DataFrame:
    if len(b) == 0:
        return pd.DataFrame({"building": [], "bucket_ms": [], "energy_wh": []})
    t = b["t_ms"].to_numpy()
    frame = pd.DataFrame(
        {
            "building": b["building"].astype(str).to_numpy(),
            "bucket_ms": t - t % QUARTER_MS,
            "energy_wh": energy_wh,
        }
    )
    return frame.groupby(["building", "bucket_ms"], as_index=False, sort=True)["energy_wh"].sum()


def _stuck_on(
    b: pd.DataFrame,
    p: pd.DataFrame,
    first: np.ndarray,
    last: np.ndarray,
    outside: np.ndarray,
    cont: np.ndarray,
    idx: np.ndarray,
    run_start: np.ndarray,
    run_energy: np.ndarray,
    max_gap: int,
) -> pd.DataFrame:
    """Stuck-on episodes the batch raises, continues or ends (columns of ``stuck_on_episodes``)."""
    t, power = b["t_ms"].to_numpy(), b["power_w"].to_numpy(dtype=float)
    zone_ids = b["zone_id"].astype(str).to_numpy(dtype=object)
    limit = int(STUCK_ON_HOURS * HOUR_MS)
    rows: list[dict[str, object]] = []
    # runs with readings in the batch: the outside rows behind one anchor, contiguous
    out = np.flatnonzero(outside)
    rid = idx[out]
    ends = out[np.flatnonzero(np.append(rid[1:] != rid[:-1], True))] if len(out) else out
    over = t[out] - run_start[out] > limit
    crossed_rid, at = np.unique(rid[over], return_index=True)
    crossing = dict(zip(crossed_rid.tolist(), out[over][at].tolist(), strict=True))
    for end in ends[t[ends] - run_start[ends] > limit].tolist():
        start = int(run_start[end])
        going = bool(last[end])  # still running at the zone's latest reading
        until = int(t[end]) if going else int(min(t[end + 1], t[end] + max_gap))
        energy = run_energy[end] + (0.0 if going else power[end] * (until - t[end]) / _WH)
        detected = int(t[crossing[int(idx[end])]])
        rows.append(_stuck_row(zone_ids[end], start, detected, int(t[end]), until, going, energy))
    # runs begun before the batch and ended by its first reading of the zone
    prior_run = p["run_start_ms"].fillna(_NONE).to_numpy(np.int64)
    for i in np.flatnonzero(first & (prior_run != _NONE) & ~cont).tolist():
        start, before = int(prior_run[i]), int(p["last_ms"].iloc[i])
        if before - start <= limit:
            continue
        until = min(int(t[i]), before + max_gap)
        energy = float(p["run_energy_wh"].iloc[i]) + float(p["power_w"].iloc[i]) * (until - before) / _WH
        rows.append(_stuck_row(zone_ids[i], start, start + limit, before, until, False, energy))
    return pd.DataFrame(rows)


def _stuck_row(
    zone_id: str, start: int, detected: int, last: int, until: int, going: bool, energy_wh: float
) -> dict:
    """An episode: lit from ``start`` to ``until`` (its last reading at ``last``, covering until then)."""
    hours = (until - start) / HOUR_MS
    return {
        S.ZONE_ID: zone_id,
        "first_ms": start,
        "detected_ms": detected,
        "last_ms": last,
        "open": going,
        "score": hours,
        "hours": hours,
        "energy_kwh": energy_wh / 1000.0,
        "mean_w": energy_wh / hours if hours > 0 else 0.0,
    }


def _dropouts(b: pd.DataFrame, p: pd.DataFrame, had: np.ndarray, gap: np.ndarray) -> pd.DataFrame:
    """Dropouts the batch ends: a regular zone's first reading after more than 24 h of silence."""
    interval = p["interval_ms"].fillna(0).to_numpy(np.int64)
    ends = had & (gap > DROPOUT_HOURS * HOUR_MS) & (interval > 0) & (interval <= REGULAR_HOURS * HOUR_MS)
    if not ends.any():
        return pd.DataFrame()
    t = b["t_ms"].to_numpy()[ends]
    before = p["last_ms"].to_numpy(np.int64)[ends]
    return silence_episodes(
        b["zone_id"].astype(str).to_numpy(dtype=object)[ends], before, interval[ends], t, False
    )


def silence_episodes(
    zone_ids: np.ndarray, last_ms: np.ndarray, interval_ms: np.ndarray, until_ms: np.ndarray, open_: bool
) -> pd.DataFrame:
    """Dropout episodes (columns of ``dropout_episodes``): silent from ``last_ms`` to ``until_ms``."""
    hours = (until_ms - last_ms) / HOUR_MS
    return pd.DataFrame(
        {
            S.ZONE_ID: zone_ids,
            "first_ms": last_ms,
            "detected_ms": last_ms + int(DROPOUT_HOURS * HOUR_MS),
            "last_ms": until_ms,
            "open": open_,
            "score": hours,
            "hours": hours,
            "interval_minutes": interval_ms / S.MS_PER_MINUTE,
        }
    )


def silences(states: pd.DataFrame, zone_ids: pd.Series, now_ms: int) -> pd.DataFrame:
    """Dropouts by the clock: regular zones (latest interval at most 6 h) silent for more than 24 h at
    ``now_ms`` while the site still reports (some zone has a reading within the last hour: a feed that
    stopped altogether is not every zone's fault). ``zone_ids`` maps zone keys to ids."""
    if states.empty or int(states["last_ms"].max()) < now_ms - HOUR_MS:
        return pd.DataFrame()
    interval = states["interval_ms"].to_numpy(np.int64)
    last = states["last_ms"].to_numpy(np.int64)
    silent = (
        (now_ms - last > DROPOUT_HOURS * HOUR_MS) & (interval > 0) & (interval <= REGULAR_HOURS * HOUR_MS)
    )
    if not silent.any():
        return pd.DataFrame()
    ids = zone_ids.reindex(states.index[silent]).astype(str).to_numpy(dtype=object)
    return silence_episodes(ids, last[silent], interval[silent], np.full(int(silent.sum()), now_ms), True)


def _spikes(
    b: pd.DataFrame,
    p: pd.DataFrame,
    first: np.ndarray,
    last: np.ndarray,
    lit: np.ndarray,
    bands: Bands | None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Each zone's spike episode after the batch, at its last row (first and latest spike [ms]; ``_NONE``:
    none); the batch's spike episodes; and the episodes that ended (``zone_id``, ``first_ms``): replaced by
    a new one, or followed by a reading an hour or more after their last spike."""
    spike_first = _carry(first, np.where(first, p["spike_first_ms"].fillna(_NONE).to_numpy(np.int64), _NONE))
    spike_last = _carry(first, np.where(first, p["spike_last_ms"].fillna(_NONE).to_numpy(np.int64), _NONE))
    nothing = pd.DataFrame({S.ZONE_ID: [], "first_ms": []})
    if bands is None:
        return spike_first, spike_last, pd.DataFrame(), nothing
    zone, t = b["zone_key"].to_numpy(), b["t_ms"].to_numpy()
    power = b["power_w"].to_numpy(dtype=float)
    zone_ids = b["zone_id"].astype(str).to_numpy(dtype=object)
    upper, expected = bands.at(zone, t)
    level = pd.Series(zone_ids).map(bands.level_w).to_numpy(dtype=float)
    # a zone the model never saw has no typical lit power: its band alone (near 0 W at night) judges nothing
    reference = np.where(np.isfinite(level), np.fmax(upper, level), np.nan)
    is_spike = lit & (power > MIN_RATIO * reference)
    end_of = dict(zip(zone[last].tolist(), np.flatnonzero(last).tolist(), strict=True))
    rows: list[dict[str, object]] = []
    ended: list[tuple[str, int]] = []
    for i in np.flatnonzero(is_spike).tolist():  # spikes are few: a loop over them alone
        end = end_of[int(zone[i])]
        if spike_last[end] == _NONE or t[i] - spike_last[end] >= SPIKE_MERGE_MS:
            if spike_last[end] != _NONE:
                ended.append((str(zone_ids[i]), int(spike_first[end])))
            spike_first[end] = t[i]
        spike_last[end] = t[i]
        rows.append(
            {
                S.ZONE_ID: zone_ids[i],
                "first_ms": int(spike_first[end]),
                "detected_ms": int(t[i]),
                "last_ms": int(t[i]),
                "open": True,
                "score": float(power[i] / reference[i]),
                "spikes": 1,
                "power_w": float(power[i]),
                "reference_w": float(reference[i]),
                "both_sides": False,
                "expected_w": float(expected[i]),
                "band": True,
            }  # fmt: skip
        )
    ends = np.flatnonzero(last)
    quiet = ends[(spike_last[ends] != _NONE) & (t[ends] - spike_last[ends] >= SPIKE_MERGE_MS)]
    ended += [(str(zone_ids[e]), int(spike_first[e])) for e in quiet.tolist()]
    spike_first[quiet] = spike_last[quiet] = _NONE
    episodes = pd.DataFrame(rows)
    if len(episodes):  # one row per episode: the largest spike's evidence, the first detection, the count
        grouped = episodes.groupby([S.ZONE_ID, "first_ms"], sort=False)
        largest = episodes.loc[grouped["score"].idxmax()].set_index([S.ZONE_ID, "first_ms"])
        largest["spikes"] = grouped.size()
        largest["detected_ms"] = grouped["detected_ms"].min()
        largest["last_ms"] = grouped["last_ms"].max()
        episodes = largest.reset_index()
        closed = set(ended)
        episodes["open"] = [
            (z, f) not in closed for z, f in zip(episodes[S.ZONE_ID], episodes["first_ms"], strict=True)
        ]
    return (
        spike_first,
        spike_last,
        episodes,
        pd.DataFrame(ended, columns=[S.ZONE_ID, "first_ms"]) if ended else nothing,
    )


def _carry(first: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each zone's value at its first row, carried to its other rows."""
    idx = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
    return values[idx]


def closed_spikes(states: pd.DataFrame, zone_ids: pd.Series, now_ms: int) -> pd.DataFrame:
    """Spike episodes an hour without spikes has ended at ``now_ms`` (episode rows, ``open`` False; the
    evidence columns are NaN: the stored alert keeps its words)."""
    last = states["spike_last_ms"]
    done = last.notna() & (now_ms - last.fillna(now_ms) >= SPIKE_MERGE_MS)
    if not done.any():
        return pd.DataFrame()
    keys = states.index[done]
    return pd.DataFrame(
        {
            S.ZONE_ID: zone_ids.reindex(keys).astype(str).to_numpy(dtype=object),
            "first_ms": states.loc[done, "spike_first_ms"].to_numpy(np.int64),
            "last_ms": states.loc[done, "spike_last_ms"].to_numpy(np.int64),
            "zone_key": keys.to_numpy(),
        }
    )

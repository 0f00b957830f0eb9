"""Who lights a zone and when: tenants and cleaning crews, as intervals before any reading exists.

* tenants light their zones during their contracted hours on working days (arriving late, leaving early,
  a lunch break, some days not at all, partial lighting), sometimes stay 30 min – 3 h after closing or
  come 30 min – 2 h before opening, and now and then work on a closed day (weekend or public holiday);
* a 24/7 client's zones are always lit (dimmer at night);
* after closing, cleaning crews walk their zones (floors in order) and clean zone after zone, mostly
  30–60 minutes each, and now and then leave the lights on for over 3 hours (SPEC §4).
"""

from __future__ import annotations

import numpy as np

from slem_ml.generator._calendar import Calendar, contract_times
from slem_ml.generator._events import BIG, CLEANING, OCCUPANCY, OVERTIME, Events
from slem_ml.generator._layout import Layout

# Behaviour of tenants and crews (probabilities per zone-day, durations in minutes).
_P_DARK_DAY = 0.05  # a zone stays dark on a working day (nobody in)
_P_LUNCH_BREAK = 0.3
_P_AFTER_CLOSING = 0.12  # times the zone's overtime propensity
_P_BEFORE_OPENING = 0.04
_P_CLOSED_DAY_WORK = 0.03
_P_DEEP_CLEAN = 0.07  # 60–150 min instead of 30–60
_P_LIGHTS_LEFT_ON = 0.015  # the crew leaves, the lights stay on for 3–5.5 h


def tenant_events(
    cal: Calendar, lay: Layout, rng: np.random.Generator
) -> tuple[Events, np.ndarray, np.ndarray]:
    """Occupancy in contracted hours plus tenant overtime; and per (zone, day) when the tenant has left and
    when the contract opens [min since t0; -1 on days the zone's contract is closed]."""
    Z, D = lay.n, cal.days
    shape = (Z, D)
    k_open, k_close, k_working = contract_times(cal, lay)
    opens, closes, working = k_open[lay.client], k_close[lay.client], k_working[lay.client]  # (Z, D)
    closed = ~working & ~lay.always_open[:, None]

    dark = working & (rng.random(shape) < _P_DARK_DAY)
    late = np.minimum(rng.exponential(20.0, shape), 90.0).round().astype(np.int64)
    early_leave = np.minimum(rng.exponential(25.0, shape), 120.0).round().astype(np.int64)
    p = lay.propensity[:, None]
    after = working & ~dark & (rng.random(shape) < np.minimum(_P_AFTER_CLOSING * p, 0.6))
    after_min = rng.integers(30, 181, shape)
    before = working & ~dark & (rng.random(shape) < np.minimum(_P_BEFORE_OPENING * p, 0.3))
    before_min = rng.integers(30, 121, shape)
    lunch = working & (rng.random(shape) < _P_LUNCH_BREAK)
    lunch_start = cal.at(720)[None, :] + rng.integers(0, 91, shape)
    lunch_min = rng.integers(30, 76, shape)
    day_level = rng.uniform(0.6, 1.0, shape)
    extra_level = rng.uniform(0.3, 0.8, shape)
    weekend = closed & (rng.random(shape) < np.minimum(_P_CLOSED_DAY_WORK * p, 0.3))
    weekend_start = cal.at(540)[None, :] + rng.integers(0, 301, shape)
    weekend_min = rng.integers(60, 361, shape)
    night_level = rng.uniform(0.4, 0.6, shape)

    arrive = np.where(before, opens, opens + late)
    leave = np.where(after, closes, closes - early_leave)
    squeezed = arrive >= leave  # short windows: present the whole window
    arrive, leave = np.where(squeezed, opens, arrive), np.where(squeezed, closes, leave)
    lunch &= (lunch_start > arrive) & (lunch_start + lunch_min < leave)
    lunch_end = np.where(lunch, lunch_start + lunch_min, arrive)
    lunch_start = np.where(lunch, lunch_start, arrive)
    rated = lay.rated_w[:, None]

    def ev(mask, start, end, kind=OCCUPANCY, level=day_level, cause=0) -> Events:
        z, d = np.nonzero(mask)
        lv = level[z, d] if np.ndim(level) == 2 else np.full(z.size, level)
        pick = (z, d)
        return Events.of(
            z, _at(start, pick), _at(end, pick), kind, level=lv, cause=cause,
            magnitude=rated[z, 0] * lv if kind == OVERTIME else np.nan,
        )  # fmt: skip

    present = working & ~dark
    mid = cal.at(0)
    next_mid = np.append(mid[1:], cal.total_minutes)
    six, ten = cal.at(360), cal.at(1320)
    full = np.broadcast_to(lay.always_open[:, None], shape)

    def daily(t: np.ndarray) -> np.ndarray:
        return np.broadcast_to(t, shape)

    parts = [
        ev(present, arrive, lunch_start),
        ev(present, lunch_end, leave),
        ev(before, opens - before_min, opens, OVERTIME, extra_level, 2),
        ev(after, closes, closes + after_min, OVERTIME, extra_level, 1),
        ev(weekend, weekend_start, weekend_start + weekend_min, OVERTIME, extra_level, 3),
        ev(full, daily(mid), daily(six), level=night_level),
        ev(full, daily(six), daily(ten)),
        ev(full, daily(ten), daily(next_mid), level=night_level),
    ]
    busy_until = np.where(after, closes + after_min, closes)
    busy_until = np.where(working, busy_until, -1)
    return Events.concat(parts).sorted_disjoint(), busy_until, np.where(working, opens, -1)


def _at(values: np.ndarray, pick: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.asarray(values)[pick].astype(np.int64)


def cleaning_events(
    cal: Calendar,
    lay: Layout,
    tenant: Events,
    busy_until: np.ndarray,
    opens: np.ndarray,
    rng: np.random.Generator,
) -> Events:
    """Each crew walks its zones in order after closing on the zones' working days (SPEC §4)."""
    C, K = lay.crews.shape
    D = cal.days
    if C == 0:
        return Events.of(np.zeros(0), np.zeros(0), np.zeros(0), CLEANING)
    walk = np.where(lay.crews >= 0, lay.crews, 0)  # (C, K)
    active = (lay.crews >= 0)[:, :, None] & (busy_until[walk] >= 0)  # (C, K, D)
    first_close = np.where(active, busy_until[walk], BIG).min(axis=1)  # (C, D)
    cursor = first_close + rng.integers(10, 41, (C, D))
    parts = []
    for k in range(K):
        act = active[:, k]
        z = np.broadcast_to(walk[:, k : k + 1], (C, D))
        start = np.maximum(cursor, busy_until[walk[:, k]])
        deep = rng.random((C, D)) < _P_DEEP_CLEAN
        work = np.where(deep, rng.integers(60, 151, (C, D)), rng.integers(30, 61, (C, D)))
        left_on = rng.random((C, D)) < _P_LIGHTS_LEFT_ON
        lit = np.where(left_on, rng.integers(185, 331, (C, D)), work)
        level = rng.uniform(0.9, 1.0, (C, D))
        c = np.broadcast_to(np.arange(C)[:, None], (C, D))
        for cause, mask in ((4, act & ~left_on), (5, act & left_on)):
            parts.append(
                Events.of(
                    z[mask],
                    start[mask],
                    start[mask] + lit[mask],
                    CLEANING,
                    level=level[mask],
                    cause=cause,
                    magnitude=lay.rated_w[z[mask]] * level[mask],
                    aux=c[mask],
                )  # fmt: skip
            )
        cursor = np.where(act, start + work + rng.integers(2, 9, (C, D)), cursor)
    ev = Events.concat(parts)
    # lights left on go off at the latest when the contract opens or the tenant comes back
    z_open, d_open = np.nonzero(opens >= 0)
    bound = np.minimum(
        _next_start(tenant.zone, tenant.start, ev), _next_start(z_open, opens[z_open, d_open], ev)
    )
    ev = ev.replace(end=np.minimum(ev.end, bound))
    return ev.take(ev.start < ev.end).sorted_disjoint()


def _next_start(zone: np.ndarray, start: np.ndarray, ev: Events) -> np.ndarray:
    """Per interval of ``ev``, the first of the times ``start`` (sorted by zone, then time) in its zone after
    its start; int64 max where there is none."""
    key = zone.astype(np.int64) * BIG + start
    nxt = np.searchsorted(key, ev.zone * BIG + ev.start, side="right")
    j = np.minimum(nxt, len(key) - 1)
    found = (nxt < len(key)) & (zone[j] == ev.zone) if len(key) else np.zeros(len(ev), dtype=bool)
    return np.where(found, start[j] if len(key) else 0, np.iinfo(np.int64).max)

"""The live detectors (SPEC §9): batch by batch they find what the batch rules find on all the readings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slem_ml.billing.coverage import classified_readings, compute_coverage
from slem_ml.config.site import parse_site
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.live.detectors import (
    BATCH_COLUMNS,
    STATE_COLUMNS,
    Bands,
    advance,
    closed_spikes,
    silences,
)
from slem_ml.models.alerts import render_alerts, stuck_on_alerts

SITE = parse_site(
    {
        "site": {"timezone": "Europe/Berlin", "currency": "EUR"},
        "sampling": {"max_gap_minutes": 60},
        "clients": {"C001": {"hours": {"mon-fri": "08:00-18:00"}}},
    }
)
H = 3_600_000
ZONE_KEYS = {"HQ-F1-Z1": 1, "HQ-F1-Z2": 2, "HQ-F2-Z1": 3}
MONDAY = int(pd.Timestamp("2026-11-30T00:00:00Z").value // 1_000_000)  # a Monday, UTC midnight [ms]


def batch(zone: list[str], t_ms: list[int] | np.ndarray, power: list[float] | np.ndarray) -> pd.DataFrame:
    zone_arr = np.asarray(zone, dtype=object)
    return pd.DataFrame(
        {
            "zone_key": [ZONE_KEYS[z] for z in zone_arr],
            "zone_id": zone_arr,
            "building": [z.split("-")[0] for z in zone_arr],
            "t_ms": np.asarray(t_ms, dtype=np.int64),
            "power_w": np.asarray(power, dtype=float),
            "client_id": "C001",
            "cleaning": False,
        }
    )[list(BATCH_COLUMNS)]


def empty_state() -> pd.DataFrame:
    return pd.DataFrame(columns=list(STATE_COLUMNS), index=pd.Index([], name="zone_key"), dtype=float)


def stream(frame: pd.DataFrame, cuts: list[int], bands: Bands | None = None) -> tuple[pd.DataFrame, dict]:
    """Feed ``frame`` in batches cut at ``cuts``; the final state and each alert as last seen (the first
    detection kept, as the store keeps it)."""
    state = empty_state()
    seen: dict[str, dict] = {}
    for a, b in zip([0, *cuts], [*cuts, len(frame)], strict=True):
        part = frame.iloc[a:b]
        moved = advance(state, part, SITE, bands)
        state = pd.concat([state.drop(moved.states.index, errors="ignore"), moved.states])
        for kind, episodes in moved.episodes.items():
            for row in render_alerts(kind, episodes, SITE.site.timezone).to_dict("records"):
                first = seen.get(row["alert_id"])
                if first is not None and kind == "spike" and first["score"] >= row["score"]:
                    continue  # a spike alert keeps the words of its largest spike
                seen[row["alert_id"]] = {**row, "detected_at": (first or row)["detected_at"]}
    return state, seen


def night_stream(seed: int) -> pd.DataFrame:
    """Three zones over four days from a Friday at 15 min, lit in random stretches day and night (some
    over 12 h at the weekend)."""
    rng = np.random.default_rng(seed)
    rows = []
    for z in ("HQ-F1-Z1", "HQ-F1-Z2", "HQ-F2-Z1"):
        t = MONDAY - 3 * 24 * H + np.arange(0, 4 * 24 * H, 15 * 60_000)
        t = t[rng.random(len(t)) > 0.03]  # a few readings missing
        t = np.sort(np.concatenate([t[t < MONDAY - 30 * H], t[t >= MONDAY - 28 * H]]))  # a 2 h gap
        lit = np.repeat(rng.random(len(t) // 30 + 2) < 0.7, 30)[rng.integers(0, 30) :][: len(t)]
        if z == "HQ-F1-Z1":  # lit all Saturday morning, at least: a stuck-on run in every stream
            lit |= (t >= MONDAY - 2 * 24 * H) & (t < MONDAY - 2 * 24 * H + 14 * H)
        rows.append(batch([z] * len(t), t, np.where(lit, rng.uniform(50, 200, len(t)), 0.0)))
    return pd.concat(rows).sort_values("t_ms", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
def test_stuck_on_in_batches_is_the_batch_rule_on_all_readings(seed: int) -> None:
    frame = night_stream(seed)
    cuts = sorted(np.random.default_rng(seed).choice(np.arange(1, len(frame)), 12, replace=False).tolist())
    _, seen = stream(frame, cuts)
    live = {k: v for k, v in seen.items() if v["kind"] == "stuck_on"}
    canonical = frame.rename(columns={"t_ms": S.TIMESTAMP}).assign(
        **{S.TIMESTAMP: pd.to_datetime(frame["t_ms"], unit="ms", utc=True), S.CLEANING_STAFF: False}
    )[[S.TIMESTAMP, S.ZONE_ID, S.CLIENT_ID, S.POWER_W, S.CLEANING_STAFF]]
    readings = validate_frame(canonical, SITE).frame
    expected = stuck_on_alerts(classified_readings(readings, compute_coverage(readings, SITE)), SITE)
    assert len(expected) > 0  # the stream has stuck-on runs to find
    assert set(live) == set(expected["alert_id"])
    for row in expected.to_dict("records"):
        got = live[row["alert_id"]]
        assert got["status"] == row["status"]
        assert got["first_seen"] == row["first_seen"]
        assert got["detected_at"] == row["detected_at"]
        if row["status"] == "resolved":  # an open run's end is the last reading (live) or its cover (batch)
            assert got["last_seen"] == row["last_seen"]
            assert got["detail"] == row["detail"]  # hours and energy, in words


def test_a_late_or_repeated_reading_moves_nothing() -> None:
    first = advance(
        empty_state(), batch(["HQ-F1-Z1"] * 2, [MONDAY + 20 * H, MONDAY + 21 * H], [80, 90]), SITE, None
    )
    late = advance(
        first.states, batch(["HQ-F1-Z1"] * 2, [MONDAY + 19 * H, MONDAY + 21 * H], [500, 90]), SITE, None
    )
    assert late.readings == 0 and late.states.empty and late.power.empty and not late.episodes


def test_a_zone_back_after_a_day_and_a_half_ends_its_dropout() -> None:
    t = MONDAY + np.arange(0, 6 * H, 5 * 60_000)
    before = advance(empty_state(), batch(["HQ-F1-Z1"] * len(t), t, np.full(len(t), 20.0)), SITE, None)
    assert before.states.loc[1, "interval_ms"] == 5 * 60_000
    back = MONDAY + 6 * H + 30 * H
    after = advance(before.states, batch(["HQ-F1-Z1"], [back], [20.0]), SITE, None)
    alert = render_alerts("dropout", after.episodes["dropout"], "UTC").iloc[0]
    assert alert["status"] == "resolved"
    assert alert["first_seen"] == pd.Timestamp(int(t[-1]), unit="ms", tz="UTC")
    assert alert["last_seen"] == pd.Timestamp(back, unit="ms", tz="UTC")
    assert "No readings for 30 h" in alert["detail"] and "every 5 min" in alert["detail"]


def test_the_clock_raises_a_dropout_only_while_the_site_reports() -> None:
    t = MONDAY + np.arange(0, 6 * H, 10 * 60_000)
    zones = ["HQ-F1-Z1"] * len(t) + ["HQ-F1-Z2"] * len(t)
    state = advance(
        empty_state(), batch(zones, np.concatenate([t, t]), np.full(2 * len(t), 20.0)), SITE, None
    ).states
    ids = pd.Series({1: "HQ-F1-Z1", 2: "HQ-F1-Z2"})
    now = int(t[-1]) + 25 * H
    assert silences(state, ids, now).empty  # the whole feed is silent: no zone's fault
    state.loc[2, "last_ms"] = now - 60_000  # Z2 reported a minute ago
    found = silences(state, ids, now)
    assert found[S.ZONE_ID].tolist() == ["HQ-F1-Z1"]
    alert = render_alerts("dropout", found, "UTC").iloc[0]
    assert alert["status"] == "open" and alert["detected_at"] == pd.Timestamp(
        int(t[-1]) + 24 * H, unit="ms", tz="UTC"
    )


def bands_for(zone_key: int, t0: int, hours: int, upper: float) -> Bands:
    hour = t0 - t0 % H + H * np.arange(hours)
    return Bands(
        zone_key * S.GROUP_SPAN_MS + hour,
        np.full(hours, upper),
        np.full(hours, upper * 0.8),
        {"HQ-F1-Z1": 100.0},
    )


def test_a_spike_is_judged_against_the_band_and_merged_for_an_hour() -> None:
    t0 = MONDAY + 9 * H  # in contract
    t = t0 + np.arange(0, 4 * H, 10 * 60_000)
    power = np.full(len(t), 120.0)
    power[[3, 5]] = [450.0, 300.0]  # twice above 2 × 140 W within the hour: one alert
    power[20] = 290.0  # 2 h 30 min later: another
    power[10] = 270.0  # below 2 × 140 W: no spike
    bands = bands_for(1, t0, 5, 140.0)
    state, seen = stream(batch(["HQ-F1-Z1"] * len(t), t, power), [4, 11, 21], bands)
    spikes = sorted(seen.values(), key=lambda a: a["first_seen"])
    assert [a["first_seen"] for a in spikes] == [
        pd.Timestamp(int(t[i]), unit="ms", tz="UTC") for i in (3, 20)
    ]
    assert spikes[0]["severity"] == "medium" and "450 W" in spikes[0]["detail"]  # 450 / 140 = 3.2×
    assert "expected band" in spikes[0]["detail"]
    assert state.loc[1, "spike_first_ms"] == t[20]
    ended = closed_spikes(state, pd.Series({1: "HQ-F1-Z1"}), int(t[20]) + H)
    assert ended["first_ms"].tolist() == [t[20]]


def test_without_a_band_a_zone_lit_at_night_is_judged_by_its_typical_lit_power() -> None:
    t = MONDAY + 22 * H + np.arange(0, 2 * H, 10 * 60_000)
    power = np.full(len(t), 90.0)
    power[6] = 260.0  # over 2 × 100 W (the zone's typical lit power); no band for the night
    empty = Bands(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), {"HQ-F1-Z1": 100.0})
    moved = advance(empty_state(), batch(["HQ-F1-Z1"] * len(t), t, power), SITE, empty)
    assert moved.episodes["spike"]["first_ms"].tolist() == [t[6]]
    assert not advance(empty_state(), batch(["HQ-F1-Z1"] * len(t), t, power), SITE, None).episodes.get(
        "spike"
    )


def test_building_energy_adds_each_reading_over_its_interval() -> None:
    t = MONDAY + np.arange(0, 2 * H, 5 * 60_000)
    moved = advance(empty_state(), batch(["HQ-F1-Z1"] * len(t), t, np.full(len(t), 120.0)), SITE, None)
    # the first reading has no interval yet; every later one adds 120 W × 5 min = 10 Wh
    assert moved.power["energy_wh"].sum() == pytest.approx(10.0 * (len(t) - 1))
    assert moved.power["bucket_ms"].tolist() == (MONDAY + np.arange(0, 2 * H, 15 * 60_000)).tolist()


def test_a_zone_the_model_never_saw_is_not_judged_and_an_episode_ends_with_a_quiet_hour() -> None:
    t = MONDAY + 1 * H + np.arange(0, 3 * H, 10 * 60_000)  # at night: the band's top is 5 W
    power = np.full(len(t), 40.0)
    power[2] = 300.0
    night = Bands(
        2 * S.GROUP_SPAN_MS + (t - t % H), np.full(len(t), 5.0), np.full(len(t), 2.0), {"HQ-F1-Z1": 100.0}
    )
    unseen = advance(empty_state(), batch(["HQ-F1-Z2"] * len(t), t, power), SITE, night)
    assert "spike" not in unseen.episodes  # 40 W is 8 times 5 W, but HQ-F1-Z2 has no typical lit power
    known = Bands(
        1 * S.GROUP_SPAN_MS + (t - t % H), np.full(len(t), 5.0), np.full(len(t), 2.0), {"HQ-F1-Z1": 100.0}
    )
    first = advance(empty_state(), batch(["HQ-F1-Z1"] * 3, t[:3], power[:3]), SITE, known)
    assert first.episodes["spike"]["open"].tolist() == [True] and first.ended_spikes.empty
    later = advance(first.states, batch(["HQ-F1-Z1"] * (len(t) - 3), t[3:], power[3:]), SITE, known)
    # the readings go on for over an hour without a spike: the episode ends without waiting for the clock
    assert later.ended_spikes["first_ms"].tolist() == [t[2]] and np.isnan(
        later.states.loc[1, "spike_first_ms"]
    )

"""Tests of the synthetic readings generator (slem_ml/generator/generate.py).

The strongest checks compare the readings against the labels with an independent, obviously-correct
reference: which readings are lit outside their client's contracted hours (SPEC §3) must be exactly the
readings of the overtime and stuck-on labels, cleaning-staff readings exactly those of the cleaning labels,
and a faults-off twin (same seed) must equal the readings everywhere except where a fault label says.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.generator.generate import (
    LABEL_COLUMNS,
    LEGACY_COLUMNS,
    READING_COLUMNS,
    GeneratedData,
    GeneratorConfig,
    default_site,
    generate,
    write_generated,
)
from slem_ml.io import schema as S

LEGACY_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "legacy_sample.csv"
LEGACY_HEADER = "Timestamp,Room_ID,Client_ID,Power_Usage_W,Cleaning_Staff,Building,Floor,Zone"
ON_W = 5.0  # sampling.on_threshold_w of the shipped contracts
# three weeks across the spring-forward change (2025-03-30), faults only in the last 60 %
PERIODIC = GeneratorConfig(start=dt.date(2025, 3, 24), days=21, zones=30, seed=11, faults_after=0.4)
LEGACY = GeneratorConfig(start=dt.date(2025, 1, 13), days=7, zones=20, seed=3, fmt="legacy")


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return default_site()


@pytest.fixture(scope="module")
def periodic() -> GeneratedData:
    return generate(PERIODIC)


@pytest.fixture(scope="module")
def twin() -> GeneratedData:
    """The same configuration without faults."""
    return generate(dataclasses.replace(PERIODIC, faults=False))


@pytest.fixture(scope="module")
def legacy() -> GeneratedData:
    return generate(LEGACY)


# --- reference helpers (slow and plain on purpose) ---------------------------------------------------


def in_contract(local: pd.Series, clients: pd.Series, site: SiteConfig) -> np.ndarray:
    """Per reading: does its local time lie in its client's contracted hours (SPEC §2, grace 0)?"""
    minute = (local.dt.hour * 60 + local.dt.minute).to_numpy()
    weekday = local.dt.day_of_week.to_numpy()
    day = (local.dt.tz_localize(None) if local.dt.tz is not None else local).dt.normalize()
    holidays = site.site.holidays_between(day.min().date(), day.max().date())
    holiday = day.isin([pd.Timestamp(d) for d in holidays]).to_numpy()
    inside = np.zeros(len(local), dtype=bool)
    for cid, contract in site.clients.items():
        mine = (clients == cid).to_numpy()
        if contract.always_open:
            inside |= mine
            continue
        for wd, window in enumerate(contract.week):
            if window is None:
                continue
            inside |= (
                mine
                & (weekday == wd)
                & (~holiday | contract.work_on_holidays)
                & (minute >= window.open_minute)
                & (minute < window.close_minute)
            )
    return inside


def in_labels(readings: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """Per reading: does it lie in ``[start, end)`` of one of ``labels`` in its zone? (Counts the labels
    started minus the labels ended at each reading, so overlapping labels are fine.)"""
    zones = {
        z: i for i, z in enumerate(sorted(set(readings[S.ZONE_ID].astype(str)) | set(labels[S.ZONE_ID])))
    }

    def key(zone: pd.Series, ts: pd.Series) -> np.ndarray:
        minutes = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=1)
        return zone.astype(str).map(zones).to_numpy(dtype=np.int64) * 2**40 + minutes.to_numpy(dtype=np.int64)

    at = key(readings[S.ZONE_ID], readings[S.TIMESTAMP])
    started = np.searchsorted(np.sort(key(labels[S.ZONE_ID], labels["start"])), at, side="right")
    ended = np.searchsorted(np.sort(key(labels[S.ZONE_ID], labels["end"])), at, side="right")
    return started > ended


def rows_of(readings: pd.DataFrame, label) -> pd.DataFrame:
    r = readings
    return r[(r[S.ZONE_ID] == label.zone_id) & (r[S.TIMESTAMP] >= label.start) & (r[S.TIMESTAMP] < label.end)]


# --- determinism -------------------------------------------------------------------------------------


def test_same_seed_gives_identical_frames() -> None:
    config = GeneratorConfig(days=5, zones=8, seed=42)
    a, b = generate(config), generate(config)
    pd.testing.assert_frame_equal(a.readings, b.readings)
    pd.testing.assert_frame_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.zones, b.zones)


def test_different_seed_gives_different_frames() -> None:
    a = generate(GeneratorConfig(days=5, zones=8, seed=1))
    b = generate(GeneratorConfig(days=5, zones=8, seed=2))
    assert len(a.readings) != len(b.readings) or not a.readings[S.POWER_W].equals(b.readings[S.POWER_W])
    assert not a.labels.equals(b.labels)


# --- shape and structure -----------------------------------------------------------------------------


def test_periodic_columns_dtypes_and_order(periodic: GeneratedData, site: SiteConfig) -> None:
    r = periodic.readings
    assert tuple(r.columns) == READING_COLUMNS
    assert str(r[S.TIMESTAMP].dt.tz) == site.site.timezone
    assert r[S.TIMESTAMP].dt.unit == "ms"
    for col in (S.ZONE_ID, S.CLIENT_ID, S.BUILDING):
        assert isinstance(r[col].dtype, pd.CategoricalDtype)
    assert r[S.POWER_W].dtype == np.float64 and r[S.CLEANING_STAFF].dtype == bool
    assert (r[S.POWER_W] >= 0).all()
    tenths = r[S.POWER_W].to_numpy() * 10
    np.testing.assert_allclose(tenths, np.round(tenths), atol=1e-6)  # rounded to 0.1 W
    keys = pd.DataFrame({"t": r[S.TIMESTAMP], "z": r[S.ZONE_ID].cat.codes})
    assert keys.equals(keys.sort_values(["t", "z"]))  # by time, then zone
    assert not keys.duplicated().any()
    assert tuple(periodic.labels.columns) == LABEL_COLUMNS


def test_rows_are_zones_times_steps_minus_dropouts(periodic: GeneratedData) -> None:
    steps = (21 * 24 - 1) * 60 // PERIODIC.step_minutes  # the period loses an hour to summer time
    dropout_minutes = periodic.labels.loc[periodic.labels["kind"] == "dropout", "minutes"].sum()
    assert len(periodic.readings) == PERIODIC.zones * steps - dropout_minutes // PERIODIC.step_minutes
    times = periodic.readings[S.TIMESTAMP]
    assert times.min() == pd.Timestamp("2025-03-24 00:00", tz="Europe/Berlin")
    assert times.max() == pd.Timestamp("2025-04-13 23:55", tz="Europe/Berlin")
    assert set(times.drop_duplicates().diff().dropna()) == {pd.Timedelta(minutes=5)}  # true elapsed steps


def test_zone_structure_and_clients(periodic: GeneratedData, site: SiteConfig) -> None:
    r, zones = periodic.readings, periodic.zones
    assert len(zones) == PERIODIC.zones and zones[S.ZONE_ID].is_unique
    for row in zones.itertuples():
        m = S.ZONE_ID_PATTERN.match(row.zone_id)
        assert m is not None
        assert (m["building"], int(m["floor"]), int(m["zone"])) == (row.building, row.floor, row.zone)
    assert set(zones[S.CLIENT_ID]) <= set(site.clients)
    assert set(zones[S.CLIENT_ID]) == {"C001", "C002", "C003", "C004", "C005", "C006"}
    assert set(zones[S.BUILDING]) == {"HQ", "R&D", "Manufacturing", "Sales"}
    per_zone = r.groupby(S.ZONE_ID, observed=True).agg(
        clients=(S.CLIENT_ID, "nunique"), client=(S.CLIENT_ID, "first"), floor=(S.FLOOR, "first")
    )
    assert (per_zone["clients"] == 1).all()  # each zone leased to one client
    expected = zones.set_index(S.ZONE_ID)
    assert (per_zone["client"].astype(str) == expected.loc[per_zone.index, S.CLIENT_ID]).all()


def test_default_layout_is_the_legacy_sample_layout() -> None:
    zones = generate(GeneratorConfig(days=1, zones=66, faults=False)).zones
    assert zones.groupby(S.BUILDING)[S.ZONE_ID].count().to_dict() == {
        "HQ": 20, "Manufacturing": 16, "R&D": 18, "Sales": 12,
    }  # fmt: skip
    if LEGACY_SAMPLE.exists():
        sample = pd.read_csv(LEGACY_SAMPLE, usecols=["Room_ID"])
        assert set(sample["Room_ID"]) <= set(zones[S.ZONE_ID])


# --- patterns ----------------------------------------------------------------------------------------


def test_lit_in_contracted_hours_dark_at_night(periodic: GeneratedData, site: SiteConfig) -> None:
    r = periodic.readings
    lit = (r[S.POWER_W] >= ON_W).to_numpy()
    inside = in_contract(r[S.TIMESTAMP], r[S.CLIENT_ID], site)
    normal = (r[S.CLIENT_ID] != "C005").to_numpy()
    night = r[S.TIMESTAMP].dt.hour.between(1, 4).to_numpy()
    assert lit[inside & normal].mean() > 0.75
    assert lit[night & normal].mean() < 0.1
    weekend = r[S.TIMESTAMP].dt.day_of_week.to_numpy() >= 5
    office = r[S.CLIENT_ID].isin(["C001", "C002", "C003", "C006"]).to_numpy()
    assert lit[weekend & office].mean() < 0.1  # mostly dark, some weekend work


def test_24_7_zones_always_lit(periodic: GeneratedData) -> None:
    r = periodic.readings
    always = r[r[S.CLIENT_ID] == "C005"]
    assert len(always) > 0 and (always[S.POWER_W] >= ON_W).all()


def test_off_state_is_standby_noise(periodic: GeneratedData) -> None:
    power = periodic.readings[S.POWER_W]
    dark = power[power < ON_W]
    assert len(dark) > 0 and dark.max() <= 2.0


def test_overtime_labels_are_exactly_the_lit_readings_outside_contract(
    periodic: GeneratedData, site: SiteConfig
) -> None:
    r, labels = periodic.readings, periodic.labels
    outside_lit = (
        (r[S.POWER_W] >= ON_W).to_numpy()
        & ~in_contract(r[S.TIMESTAMP], r[S.CLIENT_ID], site)
        & ~r[S.CLEANING_STAFF].to_numpy()
    )
    overtime = labels[labels["kind"] == "overtime"]
    assert len(overtime) > 20
    assert set(overtime["cause"]) == {"after_closing", "before_opening", "closed_day"}
    assert overtime["minutes"].between(30, 360).all()
    in_overtime = in_labels(r, overtime)
    assert (outside_lit[in_overtime]).all()  # every overtime label is billable overtime in the readings
    stuck = in_labels(r, labels[labels["kind"] == "stuck_on"])
    assert not (outside_lit & ~in_overtime & ~stuck).any()  # and nothing else is


def test_cleaning_labels_are_exactly_the_cleaning_readings(periodic: GeneratedData, site: SiteConfig) -> None:
    r, labels = periodic.readings, periodic.labels
    staff = r[S.CLEANING_STAFF].to_numpy()
    cleaning = labels[labels["kind"] == "cleaning"]
    assert np.array_equal(staff, in_labels(r, cleaning))
    assert ((r[S.POWER_W] >= ON_W).to_numpy()[staff]).all()
    # crews come after closing: cleaning readings lie outside the contracted hours
    assert not (staff & in_contract(r[S.TIMESTAMP], r[S.CLIENT_ID], site)).any()
    assert (cleaning[S.CLIENT_ID] != "C005").all()
    assert 30 <= cleaning["minutes"].median() <= 60
    assert cleaning["minutes"].between(30, 60).mean() > 0.8
    assert (cleaning["flagged"] == (cleaning["minutes"] > 180)).all()
    assert (cleaning.loc[cleaning["cause"] == "lights_left_on", "minutes"] > 180).any()
    # a crew walks its zones one after another: on one evening a crew's sessions do not overlap
    crews = cleaning.assign(crew=cleaning["detail"].str.extract(r"^(.* crew \d+)")[0])
    crews = crews[crews["cause"] == "crew"].sort_values(["crew", "start"])
    gap = crews.groupby("crew")["start"].shift(-1) - crews["end"]
    assert (gap.dropna() >= pd.Timedelta(0)).all()


def test_labels_have_iso_times_and_clients(periodic: GeneratedData, site: SiteConfig) -> None:
    labels = periodic.labels
    assert str(labels["start"].dt.tz) == site.site.timezone
    assert (labels["end"] >= labels["start"]).all()
    assert set(labels[S.CLIENT_ID]) <= set(site.clients)
    lookup = periodic.zones.set_index(S.ZONE_ID)[S.CLIENT_ID]
    assert (labels[S.CLIENT_ID].to_numpy() == lookup.loc[labels[S.ZONE_ID]].to_numpy()).all()
    minutes = (labels["end"] - labels["start"]).dt.total_seconds() / 60
    assert np.allclose(minutes, labels["minutes"])
    assert (labels["is_fault"] == labels["kind"].isin(["drift", "spike", "stuck_on", "dropout"])).all()


# --- faults ------------------------------------------------------------------------------------------


def test_every_fault_kind_is_labelled_in_the_fault_window(periodic: GeneratedData) -> None:
    faults = periodic.labels[periodic.labels["is_fault"]]
    assert set(faults["kind"]) == {"drift", "spike", "stuck_on", "dropout"}
    first = pd.Timestamp("2025-03-24", tz="Europe/Berlin")
    period = pd.Timestamp("2025-04-14", tz="Europe/Berlin") - first
    assert (faults["start"] >= first + 0.4 * period).all()


def test_faults_off_twin_differs_only_where_labels_say(periodic: GeneratedData, twin: GeneratedData) -> None:
    assert not twin.labels["is_fault"].any()
    faults = periodic.labels[periodic.labels["is_fault"]]
    both = twin.readings.merge(
        periodic.readings[[S.TIMESTAMP, S.ZONE_ID, S.POWER_W, S.CLEANING_STAFF]],
        on=[S.TIMESTAMP, S.ZONE_ID], how="left", suffixes=("", "_f"), indicator=True,
    )  # fmt: skip
    windows = faults[faults["kind"] != "spike"]
    spikes = faults[faults["kind"] == "spike"].assign(end=lambda f: f["start"] + pd.Timedelta(minutes=5))
    explained = in_labels(both, pd.concat([windows, spikes]))
    missing = (both["_merge"] == "left_only").to_numpy()
    assert not (missing & ~explained).any()  # rows are missing only inside labelled dropouts
    changed = (both[S.POWER_W] != both[S.POWER_W + "_f"]).to_numpy() & ~missing
    assert not (changed & ~explained).any()  # power differs only inside labelled faults
    assert len(periodic.readings) < len(twin.readings)


def test_drift_raises_on_power_from_its_onset(periodic: GeneratedData, twin: GeneratedData) -> None:
    drift = periodic.labels[periodic.labels["kind"] == "drift"]
    assert len(drift) >= 1 and drift["magnitude"].between(0.005, 0.02).all()
    keys = [S.TIMESTAMP, S.ZONE_ID]
    for label in drift.itertuples():
        mine = periodic.readings[periodic.readings[S.ZONE_ID] == label.zone_id]
        both = mine.merge(twin.readings[keys + [S.POWER_W]], on=keys, suffixes=("", "_0"))
        lit = both[(both[S.POWER_W + "_0"] >= ON_W)]
        ratio = lit[S.POWER_W] / lit[S.POWER_W + "_0"]
        before = ratio[lit[S.TIMESTAMP] < label.start]
        late = ratio.iloc[-36:]  # the last three lit hours (the period may end on a weekend)
        assert np.allclose(before, 1.0, atol=0.01)
        days = (label.end - label.start) / pd.Timedelta(days=1)
        expected = 1 + min(label.magnitude * days, 0.6)
        assert late.median() > 1 + 0.5 * (expected - 1) and late.median() > 1.01


def test_spikes_are_single_readings_2_5_to_4_times_normal(
    periodic: GeneratedData, twin: GeneratedData
) -> None:
    spikes = periodic.labels[periodic.labels["kind"] == "spike"]
    assert len(spikes) >= 5 and (spikes["start"] == spikes["end"]).all()
    keys = [S.TIMESTAMP, S.ZONE_ID]
    at = spikes.rename(columns={"start": S.TIMESTAMP})[keys + ["magnitude"]]
    at = at.merge(periodic.readings[keys + [S.POWER_W]], on=keys).merge(
        twin.readings[keys + [S.POWER_W]], on=keys, suffixes=("", "_normal")
    )
    assert len(at) == len(spikes)
    factor = at[S.POWER_W] / at[S.POWER_W + "_normal"]
    assert factor.between(2.45, 4.05).all()
    np.testing.assert_allclose(factor, at["magnitude"], rtol=1e-3)


def test_stuck_on_zone_is_lit_through_the_night(periodic: GeneratedData, site: SiteConfig) -> None:
    stuck = periodic.labels[periodic.labels["kind"] == "stuck_on"]
    assert len(stuck) >= 1
    for label in stuck.itertuples():
        rows = rows_of(periodic.readings, label)
        assert len(rows) == label.minutes / 5
        assert (rows[S.POWER_W] >= ON_W).all()
        outside = ~in_contract(rows[S.TIMESTAMP], rows[S.CLIENT_ID], site)
        assert outside.sum() * 5 > 12 * 60  # SPEC §5: over 12 h outside contracted hours
        assert rows[S.TIMESTAMP].dt.hour.isin([1, 2, 3, 4]).any()


def test_dropout_zone_has_no_rows_in_its_window(periodic: GeneratedData) -> None:
    dropouts = periodic.labels[periodic.labels["kind"] == "dropout"]
    assert len(dropouts) >= 1 and (dropouts["minutes"] > 24 * 60).all()
    r = periodic.readings
    for label in dropouts.itertuples():
        assert rows_of(r, label).empty
        zone = r[r[S.ZONE_ID] == label.zone_id][S.TIMESTAMP]
        assert (zone < label.start).any() and (zone >= label.end).any()  # it reports around the gap


# --- legacy format -----------------------------------------------------------------------------------


def test_legacy_columns_values_and_file(legacy: GeneratedData, tmp_path: Path) -> None:
    r = legacy.readings
    assert tuple(r.columns) == LEGACY_COLUMNS
    assert r["Timestamp"].dt.tz is None  # naive local wall time
    assert set(r["Cleaning_Staff"].astype(str)) == {"Yes", "No"}
    assert r["Timestamp"].is_monotonic_increasing
    out = write_generated(legacy, tmp_path / "legacy.csv")[0]
    lines = out.read_text().splitlines()
    expected = LEGACY_SAMPLE.read_text().splitlines()[0] if LEGACY_SAMPLE.exists() else LEGACY_HEADER
    assert lines[0] == expected == LEGACY_HEADER
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,")
    assert all(stamp.match(line) for line in lines[1:])
    back = pd.read_csv(out)
    assert len(back) == len(r) and back["Room_ID"].equals(
        r["Room_ID"].astype(str).astype(back["Room_ID"].dtype)
    )


def test_legacy_has_one_to_three_readings_per_zone_and_hour(legacy: GeneratedData) -> None:
    r = legacy.readings
    hours = r.groupby([r["Room_ID"], r["Timestamp"].dt.floor("h")], observed=True).size()
    assert set(hours.unique()) == {1, 2, 3}
    assert not r.duplicated(["Room_ID", "Timestamp"]).any()
    silent = set(legacy.labels.loc[legacy.labels["kind"] == "dropout", S.ZONE_ID])
    per_zone = hours.groupby(level=0, observed=True).size()
    assert (per_zone.drop(list(silent)) == 7 * 24).all()  # every hour of every zone has a reading
    assert r["Timestamp"].dt.minute.nunique() > 50  # at random minutes


def test_legacy_patterns(legacy: GeneratedData, site: SiteConfig) -> None:
    r = legacy.readings
    lit = (r["Power_Usage_W"] >= ON_W).to_numpy()
    inside = in_contract(r["Timestamp"], r["Client_ID"], site)
    normal = (r["Client_ID"] != "C005").to_numpy()
    assert lit[inside & normal].mean() > 0.75
    assert lit[~inside & normal].mean() < 0.25
    staff = (r["Cleaning_Staff"] == "Yes").to_numpy()
    assert staff.any() and not (staff & inside).any() and lit[staff].all()


# --- writing -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> GeneratedData:
    return generate(GeneratorConfig(start=dt.date(2025, 10, 24), days=4, zones=6, seed=5))


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_has_iso_times_with_offsets(small: GeneratedData, tmp_path: Path, suffix: str) -> None:
    paths = write_generated(small, tmp_path / f"r{suffix}", tmp_path / "labels.csv")
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(paths[0], "rt") as raw:
        header, first = raw.readline().strip(), raw.readline()
    assert header == ",".join(READING_COLUMNS)
    assert first.startswith("2025-10-24T00:00:00+02:00,")
    back = pd.read_csv(paths[0])
    stamps = pd.to_datetime(back[S.TIMESTAMP], format="ISO8601", utc=True)
    assert (stamps.dt.tz_convert("Europe/Berlin") == small.readings[S.TIMESTAMP]).all()
    assert (back[S.POWER_W].to_numpy() == small.readings[S.POWER_W].to_numpy()).all()
    assert (back[S.CLEANING_STAFF].to_numpy() == small.readings[S.CLEANING_STAFF].to_numpy()).all()
    # the autumn change: the repeated hour is told apart by its offset
    assert {"2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00"} <= set(back[S.TIMESTAMP])
    labels = pd.read_csv(paths[1])
    assert list(labels.columns) == list(LABEL_COLUMNS)
    iso = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$"
    assert labels["start"].str.match(iso).all() and labels["end"].str.match(iso).all()


def test_parquet_round_trip(small: GeneratedData, tmp_path: Path) -> None:
    paths = write_generated(small, tmp_path / "r.parquet", tmp_path / "labels.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(paths[0]), small.readings)
    pd.testing.assert_frame_equal(pd.read_parquet(paths[1]), small.labels)


def test_unknown_suffix_is_refused_and_nothing_written(small: GeneratedData, tmp_path: Path) -> None:
    with pytest.raises(SlemError, match=r"r\.xlsx: unknown output format"):
        write_generated(small, tmp_path / "ok.csv", tmp_path / "r.xlsx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"step_minutes": 7}, "step_minutes must divide 60"),
        ({"fmt": "excel"}, "format must be"),
        ({"days": 0}, "days must be"),
        ({"zones": 0}, "zones must be"),
        ({"faults_after": 1.5}, "faults_after must be"),
    ],
)
def test_bad_config_is_refused(change: dict, message: str) -> None:
    with pytest.raises(SlemError, match=message):
        GeneratorConfig(**change)

"""Realistic synthetic zone readings with ground-truth labels (SPEC §1 formats, §6 ``slem generate``).

The site is laid out as buildings → floors → zones (``B-F{floor}-Z{zone}``), each zone leased to one
client of a :class:`~slem_ml.config.site.SiteConfig` (default: the shipped ``slem_ml/data/contracts.yaml``).
What happens in a zone is built as time intervals first (cheap: a few per zone and day) and then painted
onto the readings as runs of rows (``np.repeat``), so no Python loop ever runs over readings:

* tenants light their zones during their contracted hours on working days (arriving late, leaving early,
  a lunch break, some days not at all, partial lighting), sometimes stay 30 min – 3 h after closing or
  come 30 min – 2 h before opening, and now and then work on a closed day (weekend or public holiday);
* a 24/7 client's zones are always lit (dimmer at night);
* after closing, cleaning crews (a building's zones split into walks of a few zones, floors in order)
  clean zone after zone, mostly 30–60 minutes each, and now and then leave the lights on for over 3 hours;
* faults (SPEC §5): gradual ``drift`` of on-power, single-reading ``spike`` s, ``stuck_on`` lights
  through a night or a weekend and ``dropout`` s (a zone silent for over 24 hours: no rows at all).

Every overtime session, cleaning session and fault is a row of the labels frame (:data:`LABEL_COLUMNS`),
with ``start``/``end`` in the site timezone. Labels are physical events: a session across midnight is one
row (scoring splits it by date, SPEC §3.4), and ``grace_minutes`` is not applied. In the periodic format
label times lie on the reading grid, so a label's ``[start, end)`` holds exactly the readings the event
lit; spikes have one row per spiked reading (``start == end`` = its timestamp).

Everything is drawn from one :func:`numpy.random.default_rng` seeded by :attr:`GeneratorConfig.seed`: the
same configuration gives identical frames.

This module holds the configuration, :func:`generate` (the order of the steps and of the random draws), the
readings and labels frames, and writing them. The steps live in the private package
:mod:`slem_ml.generator`: ``_calendar`` (local days, contracted hours), ``_layout`` (zones and crews),
``_events`` (the interval type), ``_occupancy`` (tenants and cleaning crews), ``_grid`` (reading times),
``_faults`` (fault injection) and ``_paint`` (power per reading).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from slem_ml.atomic import atomic_path
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.site import SiteConfig, load_site
from slem_ml.errors import SlemError
from slem_ml.generator._calendar import Calendar
from slem_ml.generator._events import (
    CAUSES,
    CLEANING,
    DRIFT,
    DROPOUT,
    OCCUPANCY,
    OVERTIME,
    SPIKE,
    STUCK,
    Events,
    overlaps,
)
from slem_ml.generator._faults import DRIFT_CAP, FaultRates, fault_events, inject_spikes
from slem_ml.generator._grid import Grid
from slem_ml.generator._layout import Layout
from slem_ml.generator._occupancy import cleaning_events, tenant_events
from slem_ml.generator._paint import paint
from slem_ml.io import schema as S
from slem_ml.io.localtime import ms_to_local, ms_to_utc

__all__ = [
    "LABEL_COLUMNS",
    "LABEL_KINDS",
    "LEGACY_COLUMNS",
    "READING_COLUMNS",
    "FaultRates",
    "GeneratedData",
    "GeneratorConfig",
    "default_site",
    "generate",
    "write_generated",
]

#: Headers of the legacy export (SPEC §1), in its column order.
LEGACY_COLUMNS: tuple[str, ...] = (
    "Timestamp", "Room_ID", "Client_ID", "Power_Usage_W", "Cleaning_Staff", "Building", "Floor", "Zone",
)  # fmt: skip
#: Columns of the periodic (canonical) format.
READING_COLUMNS: tuple[str, ...] = (
    S.TIMESTAMP, S.ZONE_ID, S.CLIENT_ID, S.POWER_W, S.CLEANING_STAFF, S.BUILDING, S.FLOOR, S.ZONE,
)  # fmt: skip
#: Columns of the labels frame. ``minutes`` is true elapsed time [min]; ``magnitude`` depends on the kind:
#: overtime/cleaning/stuck_on → nominal power while lit [W], drift → rise per day [fraction/day, 0.01 = 1 %],
#: spike → multiple of the normal power [×], dropout → NaN. ``flagged`` marks cleaning sessions longer than
#: ``cleaning.flag_after_minutes`` (SPEC §4); ``is_fault`` marks the four fault kinds.
LABEL_COLUMNS: tuple[str, ...] = (
    "kind", "zone_id", "client_id", "building", "start", "end", "minutes", "magnitude", "flagged",
    "is_fault", "cause", "detail",
)  # fmt: skip
#: ``kind`` values; the last four are faults (SPEC §5 alert kinds).
LABEL_KINDS: tuple[str, ...] = ("overtime", "cleaning", "drift", "spike", "stuck_on", "dropout")

_KIND_NAMES = ("",) + LABEL_KINDS  # by event kind code (slem_ml.generator._events)


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate.

    ``start`` is the first local date (site timezone); the period runs ``days`` whole local days from its
    midnight. ``zones`` zones are spread over the site's buildings. ``step_minutes`` is the reading
    interval of the periodic format [min] (a divisor of 60); the legacy format has 1–3 readings at random
    minutes per zone and hour instead. ``faults_after`` is the fraction of the period before which no
    fault starts (0.6 → faults only in the last 40 %; 1.0 → none). ``site`` defaults to the shipped
    ``contracts.yaml``; ``faults=False`` gives the same readings without faults.
    """

    start: dt.date = dt.date(2025, 1, 6)
    days: int = 30
    zones: int = 66
    step_minutes: int = 5
    seed: int = 0
    fmt: Literal["periodic", "legacy"] = "periodic"
    faults: bool = True
    faults_after: float = 0.0
    site: SiteConfig | None = None
    fault_rates: FaultRates = field(default_factory=FaultRates)

    def __post_init__(self) -> None:
        if self.fmt not in ("periodic", "legacy"):
            raise SlemError(f"format must be 'periodic' or 'legacy', not {self.fmt!r}")
        if not 1 <= self.days <= 3660:
            raise SlemError(f"days must be 1..3660, not {self.days}")
        if not 1 <= self.zones <= 100_000:
            raise SlemError(f"zones must be 1..100000, not {self.zones}")
        if self.step_minutes < 1 or 60 % self.step_minutes:
            raise SlemError(f"step_minutes must divide 60 (1, 5, 15, …), not {self.step_minutes}")
        if not 0.0 <= self.faults_after <= 1.0:
            raise SlemError(f"faults_after must be a fraction in [0, 1], not {self.faults_after}")


@dataclass(frozen=True)
class GeneratedData:
    """Generated readings, their labels (:data:`LABEL_COLUMNS`) and the zone layout.

    ``readings`` has :data:`READING_COLUMNS` (periodic: ``timestamp`` tz-aware in the site timezone [ms],
    ``power_w`` [W] rounded to 0.1 W, ``cleaning_staff`` bool) or :data:`LEGACY_COLUMNS` (legacy: naive local
    ``Timestamp``, ``Cleaning_Staff`` "Yes"/"No"), ordered by time, then zone. ``zones`` has one row per zone:
    ``zone_id, building, floor, zone, client_id, rated_power_w`` [W, all fixtures on], ``crew`` ("" for zones
    no crew cleans).
    """

    readings: pd.DataFrame
    labels: pd.DataFrame
    zones: pd.DataFrame
    config: GeneratorConfig


def default_site() -> SiteConfig:
    """The shipped sample site: clients C001–C006, Europe/Berlin, German public holidays."""
    return load_site(SAMPLE_CONTRACTS)


def generate(config: GeneratorConfig) -> GeneratedData:
    """Readings and ground-truth labels for ``config`` (deterministic for a given seed)."""
    site = config.site if config.site is not None else default_site()
    rng = np.random.default_rng(config.seed)
    cal = Calendar.build(config.start, config.days, site)
    lay = Layout.build(config.zones, site, rng)
    tenant, busy_until, opens = tenant_events(cal, lay, rng)
    cleaning = cleaning_events(cal, lay, tenant, busy_until, opens, rng)
    if config.fmt == "periodic":
        grid = Grid.periodic(lay.n, cal.total_minutes, config.step_minutes)
    else:
        grid = Grid.legacy(lay.n, cal.total_minutes, rng)
    window_start = int(np.ceil(config.faults_after * grid.end))
    # drawn even without faults, so that faults=False gives the same readings as its twin with faults
    faults = fault_events(cal, lay, grid, window_start, config.fault_rates, rng)
    if not config.faults:
        faults = faults.take(np.zeros(len(faults), dtype=bool))
    # tenant overtime hidden by a stuck-on fault or a dropout, and cleaning inside a dropout, did not happen
    hiding = faults.take((faults.kind == STUCK) | (faults.kind == DROPOUT))
    tenant = tenant.take((tenant.kind != OVERTIME) | ~overlaps(tenant, hiding))
    cleaning = cleaning.take(~overlaps(cleaning, faults.take(faults.kind == DROPOUT)))
    tenant, cleaning, faults = (grid.snapped(e) for e in (tenant, cleaning, faults))
    power, lit, staff, keep = paint(grid, lay, tenant, cleaning, faults, rng)
    if config.faults:
        spikes = inject_spikes(grid, power, lit & keep, window_start, config.fault_rates, rng)
    else:
        spikes = Events.of(np.zeros(0), np.zeros(0), np.zeros(0), SPIKE)
    del lit
    np.round(power, 1, out=power)
    events = Events.concat([tenant.take(tenant.kind != OCCUPANCY), cleaning, faults, spikes])
    labels = _labels_frame(events, lay, cal, site.cleaning.flag_after_minutes)
    readings = _readings_frame(grid, lay, cal, power, staff, keep, config.fmt)
    return GeneratedData(readings=readings, labels=labels, zones=lay.frame(), config=config)


# --- frames ------------------------------------------------------------------------------------------


def _readings_frame(
    grid: Grid,
    lay: Layout,
    cal: Calendar,
    power: np.ndarray,
    staff: np.ndarray,
    keep: np.ndarray,
    fmt: str,
) -> pd.DataFrame:
    if grid.step:  # zone-major → time-major: a transposed view, masked in its own (time-major) order
        shape = (lay.n, grid.end // grid.step)
        kept = keep.reshape(shape).T

        def take(values: np.ndarray) -> np.ndarray:
            return values.reshape(shape).T[kept]
    else:
        order = np.argsort(grid.t, kind="stable")
        order = order[keep[order]]

        def take(values: np.ndarray) -> np.ndarray:
            return values[order]

    zone = take(grid.zone)
    ms = (take(grid.t).astype(np.int64) + cal.t0_minutes) * 60_000
    utc = ms_to_utc(ms)
    zones = pd.Categorical.from_codes(zone, categories=lay.zone_ids)
    clients = pd.Categorical.from_codes(lay.client[zone], categories=lay.client_ids)
    buildings = pd.Categorical.from_codes(lay.building[zone], categories=lay.buildings)
    floor, zno = lay.floor[zone], lay.zone[zone]
    watts, flag = take(power), take(staff)
    if fmt == "periodic":
        columns = (utc.tz_convert(cal.timezone), zones, clients, watts, flag, buildings, floor, zno)
        names = READING_COLUMNS
    else:
        local = utc.tz_convert(cal.timezone).tz_localize(None).as_unit("s")
        yes_no = pd.Categorical.from_codes(flag.astype(np.int8), categories=["No", "Yes"])
        columns = (local, zones, clients, watts, yes_no, buildings, floor, zno)
        names = LEGACY_COLUMNS
    return pd.DataFrame(dict(zip(names, columns, strict=True)), copy=False)


def _labels_frame(ev: Events, lay: Layout, cal: Calendar, flag_after_minutes: int) -> pd.DataFrame:
    ev = ev.take(np.lexsort((ev.kind, ev.zone, ev.start)))
    minutes = (ev.end - ev.start).astype(np.float64)
    kind = ev.kind.astype(np.int64)
    magnitude = np.select(
        [kind == DRIFT, kind == SPIKE],
        [np.round(ev.magnitude, 6), np.round(ev.magnitude, 3)],
        np.round(ev.magnitude, 1),
    )
    flagged = (kind == CLEANING) & (minutes > flag_after_minutes)
    details = [
        _detail(k, c, m, g, lv, lay.crew_names[a] if k == CLEANING else "", cal.total_minutes - s)
        for k, c, m, g, lv, a, s in zip(
            kind.tolist(), ev.cause.tolist(), minutes.tolist(), magnitude.tolist(),
            ev.level.tolist(), ev.aux.tolist(), ev.start.tolist(), strict=True,
        )
    ]  # fmt: skip

    def stamp(t: np.ndarray) -> pd.DatetimeIndex:
        ms = (t + cal.t0_minutes) * 60_000
        return ms_to_local(ms, cal.timezone)

    return pd.DataFrame(
        {
            "kind": pd.array(np.array(_KIND_NAMES, dtype=object)[kind], dtype="str"),
            S.ZONE_ID: pd.array([lay.zone_ids[z] for z in ev.zone], dtype="str"),
            S.CLIENT_ID: pd.array([lay.client_ids[lay.client[z]] for z in ev.zone], dtype="str"),
            S.BUILDING: pd.array([lay.buildings[lay.building[z]] for z in ev.zone], dtype="str"),
            "start": stamp(ev.start),
            "end": stamp(ev.end),
            "minutes": minutes,
            "magnitude": magnitude,
            "flagged": flagged,
            "is_fault": kind >= DRIFT,
            "cause": pd.array(np.array(CAUSES, dtype=object)[ev.cause], dtype="str"),
            "detail": pd.array(details, dtype="str"),
        }
    )


def _detail(
    kind: int, cause: int, minutes: float, magnitude: float, level: float, crew: str, left: float
) -> str:
    """One line a manager understands (no commas, so CSV cells need no quoting)."""
    if kind == OVERTIME:
        what = {1: "after closing", 2: "before opening", 3: "on a closed day"}[cause]
        return f"tenant lights on {minutes:.0f} min {what} at {magnitude:.0f} W"
    if kind == CLEANING:
        if cause == 5:
            return f"{crew} left the lights on: {minutes:.0f} min at {magnitude:.0f} W"
        return f"{crew} cleaned for {minutes:.0f} min at {magnitude:.0f} W"
    if kind == DRIFT:
        rise = min(magnitude * left / 1440, DRIFT_CAP)
        return (
            f"on-power rising {100 * magnitude:.1f} %/day from onset (at most +{100 * DRIFT_CAP:.0f} %);"
            f" +{100 * rise:.0f} % by the end"
        )
    if kind == SPIKE:
        return f"single reading of {level * magnitude:.1f} W: {magnitude:.2f} x the normal {level:.1f} W"
    if kind == STUCK:
        return f"lights stuck on for {minutes / 60:.1f} h outside contracted hours at {magnitude:.0f} W"
    return f"no readings for {minutes / 60:.1f} h"


# --- writing -----------------------------------------------------------------------------------------


def write_generated(
    data: GeneratedData, out_path: str | Path, labels_path: str | Path | None = None
) -> list[Path]:
    """Write the readings (and the labels when ``labels_path`` is given) by suffix: ``.csv``, ``.csv.gz``
    or ``.parquet``; readings to a path ending in ``/`` (or an existing folder) become a folder of Parquet
    files, one per local day (``readings-YYYY-MM-DD.parquet``), as a portfolio's nightly export would be.
    Times in CSV are ISO 8601 with the site's UTC offset (legacy readings: naive local
    ``YYYY-MM-DD HH:MM:SS``, as the legacy export). Each file appears complete or not at all. Returns the
    paths written (for a folder: the folder)."""
    folder = str(out_path).endswith(("/", os.sep)) or Path(out_path).is_dir()
    targets = [(Path(out_path), data.readings)]
    if labels_path is not None:
        targets.append((Path(labels_path), data.labels))
    for path, _ in targets[1:] if folder else targets:
        _file_format(path)  # refuse a bad suffix before writing anything
    for index, (path, frame) in enumerate(targets):
        if folder and index == 0:
            _write_days(frame, path)
        else:
            _write_frame(frame, path)
    return [path for path, _ in targets]


def _write_days(frame: pd.DataFrame, folder: Path) -> None:
    """One Parquet file per local day of the readings' timestamps (the first column)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = frame[frame.columns[0]]
    if isinstance(stamp.dtype, pd.DatetimeTZDtype):
        day = stamp.dt.strftime("%Y-%m-%d")
    else:  # legacy: naive local text
        day = stamp.astype(str).str[:10]
    for value, rows in frame.groupby(day.to_numpy(), sort=True).indices.items():
        _write_frame(frame.iloc[rows], folder / f"readings-{value}.parquet")


def _file_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in ((".csv.gz", "csv.gz"), (".csv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    raise SlemError(f"{path.name}: unknown output format (use .csv, .csv.gz or .parquet)")


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    kind = _file_format(path)
    with atomic_path(path) as tmp:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False, compression="zstd")
        else:
            _write_csv(frame, tmp, gzip=kind == "csv.gz")


def _write_csv(frame: pd.DataFrame, path: Path, *, gzip: bool) -> None:
    """pyarrow's CSV writer over text-encoded columns: fast for millions of rows; quotes only when needed."""
    table = pa.table({str(name): _csv_column(frame[name]) for name in frame.columns})
    header = ",".join(_csv_cell(str(name)) for name in frame.columns) + "\n"
    for quoting in ("none", "needed"):  # "none" raises on a value that needs quotes
        sink = pa.CompressedOutputStream(str(path), "gzip") if gzip else pa.OSFile(str(path), "wb")
        with sink:
            sink.write(header.encode())
            try:
                pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style=quoting))
                return
            except pa.ArrowInvalid:
                if quoting == "needed":
                    raise


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def _csv_column(column: pd.Series) -> pa.Array:
    """Times as ISO 8601 text and floats as Python writes them (``17.0``), dictionary-encoded: only the
    distinct values are formatted."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            text = [ts.isoformat() for ts in uniques]
        else:
            text = list(pd.DatetimeIndex(uniques).strftime("%Y-%m-%d %H:%M:%S"))
        return _dictionary(codes, text)
    if pd.api.types.is_float_dtype(column):
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        return _dictionary(codes, [repr(float(v)) for v in uniques])
    return pa.array(column, from_pandas=True)


def _dictionary(codes: np.ndarray, text: list[str]) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(text, type=pa.string()))

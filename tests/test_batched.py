"""Scoring in batches of zones, locally or on a Dask cluster, gives one piece's outputs (issue 5).

Each case scores the same input through :func:`slem_ml.run.pipeline.score_file` twice or more — in one piece,
in many small batches, from a folder, on a 2-worker Dask LocalCluster — each into its own folder and SQLite
database, and compares the written files byte for byte (``summary.json`` without its timings).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from slem_ml.errors import SlemError
from slem_ml.generator.generate import GeneratorConfig, generate, write_generated
from slem_ml.io import schema as S
from slem_ml.models.registry import Champion
from slem_ml.run.batches import plan_batches, read_batch
from slem_ml.run.pipeline import RunSettings, score_file
from tests.conftest import SITE

FILES = ("invoices.csv", "invoice_lines.csv", "cleaning_sessions.csv", "alerts.csv", "quarantine.csv")


def scored(tmp: Path, name: str, source: Path, models, **options) -> Path:
    out = tmp / name
    score_file(
        source, SITE, out=out, database_url=f"sqlite:///{tmp / (name + '.db')}",
        models=lambda: Champion(models, "test"), settings=RunSettings(**options),
    )  # fmt: skip
    return out


def assert_same_outputs(a: Path, b: Path) -> None:
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    summaries = [(d / "summary.json").read_text() for d in (a, b)]
    assert [re.sub(r'"timings": \{[^}]*\}', "", s) for s in summaries[:1]] == [
        re.sub(r'"timings": \{[^}]*\}', "", s) for s in summaries[1:]
    ]  # the text, not just the parsed values: 23729.6 and 23729.600000000002 differ here
    readings = [pd.read_parquet(d / "scored_readings.parquet") for d in (a, b)]
    key = [S.ZONE_ID, S.TIMESTAMP, S.LINE]
    left, right = (
        r.astype({S.ZONE_ID: str, S.CLIENT_ID: str}).sort_values(key, ignore_index=True) for r in readings
    )
    pd.testing.assert_frame_equal(left, right, check_categorical=False, check_dtype=False)


@pytest.fixture(scope="module")
def faulty():
    """Three weeks of 14 zones with faults; one zone falls silent two days before the end (a dropout that
    only the whole input's end reveals)."""
    data = generate(GeneratorConfig(days=21, zones=14, step_minutes=15, seed=5, faults_after=0.3))
    frame = data.readings
    zone = sorted(frame[S.ZONE_ID].astype(str).unique())[3]
    end = frame[S.TIMESTAMP].max() - pd.Timedelta(days=2)
    keep = (frame[S.ZONE_ID].astype(str) != zone) | (frame[S.TIMESTAMP] <= end)
    return data, frame[keep].reset_index(drop=True), zone


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batches_give_the_outputs_of_one_piece(tmp_path: Path, faulty, run, suffix: str) -> None:
    data, frame, silent = faulty
    source = tmp_path / f"readings{suffix}"
    write_generated(dataclasses.replace(data, readings=frame), source)
    whole = scored(tmp_path, "whole", source, run.bundle)
    batched = scored(tmp_path, "batched", source, run.bundle, batch_rows=5_000)
    plan = plan_batches(source, batch_rows=5_000, by_building=False, spill_dir=tmp_path / "spill")
    assert plan.batches >= 5
    assert_same_outputs(whole, batched)
    alerts = pd.read_csv(whole / "alerts.csv")
    assert ((alerts["kind"] == "dropout") & (alerts[S.ZONE_ID] == silent)).any()
    assert (batched / "scored_readings.parquet").is_dir()


def test_a_csv_with_bad_rows_gives_the_same_quarantine_in_batches(tmp_path: Path, run) -> None:
    data = generate(GeneratorConfig(days=8, zones=8, step_minutes=15, seed=2))
    source = tmp_path / "messy.csv"
    write_generated(data, source)
    lines = source.read_text().splitlines()
    lines[5] = lines[5].replace("2025-", "20x5-", 1)  # bad timestamp
    lines[40] = lines[40] + ",extra"  # malformed: a field too many
    cells = lines[77].split(",")
    lines[77] = ",".join([*cells[:3], "-3.0", *cells[4:]])  # negative power
    lines[120] = lines[120].replace(",C0", ",X9", 1)  # unknown client
    lines.insert(300, lines[299])  # an exact duplicate
    source.write_text("\n".join(lines) + "\n")
    whole = scored(tmp_path, "whole", source, run.bundle)
    batched = scored(tmp_path, "batched", source, run.bundle, batch_rows=2_000)
    quarantine = pd.read_csv(whole / "quarantine.csv")
    assert len(quarantine) >= 3 and set(quarantine["line"]) >= {6, 41}
    assert json.loads((whole / "summary.json").read_text())["rows_duplicate"] >= 1
    assert_same_outputs(whole, batched)


def test_decimal_commas_and_semicolons_in_batches(tmp_path: Path) -> None:
    data = generate(GeneratorConfig(days=5, zones=6, step_minutes=15, seed=8))
    plain = tmp_path / "plain.csv"
    write_generated(data, plain)
    rows = []
    for row in plain.read_text().splitlines():
        cells = row.split(",")
        rows.append(";".join([*cells[:3], cells[3].replace(".", ","), *cells[4:]]))
    european = tmp_path / "european.csv"
    european.write_text("\n".join(rows) + "\n")
    whole = scored(tmp_path, "whole", european, None)
    batched = scored(tmp_path, "batched", european, None, batch_rows=1_000)
    assert (
        "decimal commas read as decimal points" in json.loads((batched / "summary.json").read_text())["notes"]
    )
    assert_same_outputs(whole, batched)


def test_a_folder_of_daily_parquet_files(tmp_path: Path, faulty, run) -> None:
    data, frame, _ = faulty
    single, folder = tmp_path / "all.parquet", tmp_path / "days"
    write_generated(dataclasses.replace(data, readings=frame), single)
    write_generated(dataclasses.replace(data, readings=frame), str(folder) + "/")
    assert len(list(folder.glob("readings-*.parquet"))) == 21
    whole = scored(tmp_path, "whole", single, run.bundle)
    from_folder = scored(tmp_path, "folder", folder, run.bundle)
    for name in FILES:
        assert (whole / name).read_bytes() == (from_folder / name).read_bytes(), name
    summary = json.loads((from_folder / "summary.json").read_text())
    assert summary["rows_in"] == len(frame) and summary["source"] == "days"


def test_buildings_stay_together_where_the_classifier_decides_cleaning(tmp_path: Path, faulty, run) -> None:
    assert run.bundle.sessions is not None
    data, frame, _ = faulty
    source = tmp_path / "unflagged.parquet"
    frame.drop(columns=[S.CLEANING_STAFF]).to_parquet(source)
    plan = plan_batches(source, batch_rows=5_000, by_building=True, spill_dir=tmp_path / "spill")
    buildings = [
        set(batch.frame[S.BUILDING].astype(str))
        for batch in (read_batch(plan, k, SITE) for k in range(plan.batches))
        if batch is not None
    ]
    assert len(buildings) >= 2 and all(
        a.isdisjoint(b) for i, a in enumerate(buildings) for b in buildings[i + 1 :]
    )
    whole = scored(tmp_path, "whole", source, run.bundle)
    batched = scored(tmp_path, "batched", source, run.bundle, batch_rows=5_000)
    assert pd.read_csv(whole / "cleaning_sessions.csv")["inferred"].all()
    assert_same_outputs(whole, batched)


FIXTURES = sorted((Path(__file__).parent / "data" / "readings").glob("*.csv"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_every_csv_fixture_reads_the_same_in_batches(tmp_path: Path, fixture: Path) -> None:
    """Legacy and canonical headers, BOM, Windows-1252, quoted line breaks, decimal commas, formula cells,
    bad rows: a batch per few rows gives the files (or the refusal) of one piece."""
    outcomes = []
    for name, options in (("whole", {}), ("batched", {"batch_rows": 3})):
        try:
            outcomes.append(scored(tmp_path, name, fixture, None, **options))
        except SlemError as exc:
            outcomes.append(str(exc))
    if isinstance(outcomes[0], str):
        assert outcomes[1] == outcomes[0]
    else:
        assert not isinstance(outcomes[1], str), outcomes[1]
        assert_same_outputs(*outcomes)


def test_irregular_times_null_words_and_refusals_in_batches(tmp_path: Path) -> None:
    """Readings at odd seconds (covered minutes with decimals), spreadsheet null words, a file whose rows
    all name unknown clients (refused as a whole) and one whose rows are all bad (refused as a whole too)."""
    data = generate(GeneratorConfig(days=4, zones=6, step_minutes=15, seed=9))
    frame = data.readings.copy()
    jitter = pd.to_timedelta((frame.index.to_numpy() * 7919) % 61, unit="s")
    frame[S.TIMESTAMP] = frame[S.TIMESTAMP] + jitter
    odd = tmp_path / "odd.csv"
    write_generated(dataclasses.replace(data, readings=frame), odd)
    lines = odd.read_text().splitlines()
    for row, word in ((10, "#N/A"), (20, "-nan"), (30, "NULL")):
        cells = lines[row].split(",")
        lines[row] = ",".join([*cells[:3], word, *cells[4:]])
    odd.write_text("\n".join(lines) + "\n")
    assert_same_outputs(
        scored(tmp_path, "whole", odd, None), scored(tmp_path, "batched", odd, None, batch_rows=500)
    )
    reasons = pd.read_csv(tmp_path / "whole" / "quarantine.csv")["reason"]
    assert (reasons == "missing power_w").sum() == 3

    strangers = tmp_path / "strangers.csv"
    strangers.write_text("\n".join([lines[0], *(row.replace(",C0", ",Z9", 1) for row in lines[1:40])]) + "\n")
    messages = []
    for name, options in (("s1", {}), ("s2", {"batch_rows": 10})):
        with pytest.raises(SlemError) as refused:
            scored(tmp_path, name, strangers, None, **options)
        messages.append(str(refused.value))
    assert messages[0] == messages[1] and "no row has a client from the contracts" in messages[0]

    broken = tmp_path / "broken.csv"
    broken.write_text(
        "\n".join(
            [lines[0], *(",".join([*row.split(",")[:3], "x", *row.split(",")[4:]]) for row in lines[1:40])]
        )
        + "\n"
    )
    messages = []  # no usable row: refused as a whole too, in the same words (issue 15 item 7)
    for name, options in (("b1", {}), ("b2", {"batch_rows": 10})):
        with pytest.raises(SlemError) as refused:
            scored(tmp_path, name, broken, None, **options)
        messages.append(str(refused.value))
        assert not (tmp_path / name).exists()
    said = "broken.csv: no usable row, all 39 quarantined (39 non-numeric power_w); nothing stored"
    assert messages == [f"{said} (`slem validate` lists every reason)"] * 2


def test_dask_engine_gives_the_outputs_of_the_local_engine(tmp_path: Path, faulty, run, monkeypatch) -> None:
    """slem's own 2-worker LocalCluster (preloaded, one thread a worker), and a scheduler given by address:
    the same invoices (content hashes), cleaning sessions and alerts as the local engine."""
    from dask.distributed import LocalCluster

    monkeypatch.setattr("os.cpu_count", lambda: 2)  # slem sizes its LocalCluster by the cores: two workers
    data, frame, _ = faulty
    source = tmp_path / "readings.csv"
    write_generated(dataclasses.replace(data, readings=frame), source)
    local = scored(tmp_path, "local", source, run.bundle)
    own = scored(tmp_path, "own", source, run.bundle, engine="dask", batch_rows=5_000)
    assert_same_outputs(local, own)
    assert len(list((own / "scored_readings.parquet").glob("part-*.parquet"))) >= 2
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = scored(
            tmp_path, "remote", source, run.bundle, engine="dask", scheduler=cluster.scheduler_address
        )
    assert_same_outputs(local, remote)

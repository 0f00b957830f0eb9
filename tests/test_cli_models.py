"""``slem train``, ``slem forecast`` and ``slem score`` with models, as a user runs them (SPEC §6), against
a real MLflow store (SQLite, artifacts in ./mlruns) in a scratch working directory."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slem_ml.config import SAMPLE_CONTRACTS

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = SAMPLE_CONTRACTS


def slem(
    *args: str, cwd: Path, program: tuple[str, ...] = ("-m", "slem_ml")
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SLEM_DATABASE_URL": f"sqlite:///{cwd / 'slem.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, *program, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with 22 days of 6 zones and a champion trained on the first 21 of them."""
    cwd = tmp_path_factory.mktemp("models")
    made = slem(
        "generate", "--out", "all.csv", "--days", "22", "--zones", "6", "--step-minutes", "15", "--seed", "4",
        cwd=cwd,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    frame = pd.read_csv(cwd / "all.csv")
    day = frame["timestamp"].str[:10]
    frame[day < day.max()].to_csv(cwd / "train.csv", index=False)
    frame[day == day.max()].to_csv(cwd / "today.csv", index=False)
    trained = slem("train", "train.csv", "--contracts", str(CONTRACTS), cwd=cwd)
    assert trained.returncode == 0, trained.stderr
    assert trained.stderr == "", "MLflow's narration must not reach the user"
    assert "champion: first model" in trained.stdout and "backtest (last 14 days): WAPE" in trained.stdout
    return cwd


def test_train_exports_the_champion_and_logs_it_in_the_local_store(workspace: Path) -> None:
    manifest = json.loads((workspace / "models" / "manifest.json").read_text())
    assert manifest["registered_version"] == "1" and len(manifest["data_fingerprint"]) == 64
    assert {"model_wape", "seasonal_naive_wape", "brier", "coverage"} <= set(manifest["metrics"])
    # what the backtest taught the forecaster (issue 16), recorded with it
    assert {"coverage_lit", "coverage_dark", "profile_wape", "brier_raw"} <= set(manifest["metrics"])
    assert manifest["profile_weight_default"] == 0.5
    assert set(manifest["profile_weights"].values()) <= {0.0, 1.0}  # the zones that leave the mix
    assert set(manifest["interval_margins"]) == {"lit", "dark"}
    assert (workspace / "mlflow.db").exists() and any((workspace / "mlruns").iterdir())


def test_train_if_no_champion_trains_nothing_when_one_exists(workspace: Path) -> None:
    again = slem("train", "train.csv", "--contracts", str(CONTRACTS), "--if-no-champion", cwd=workspace)
    assert again.returncode == 0, again.stderr
    assert "already in place" in again.stdout and "nothing trained" in again.stdout


def test_forecast_writes_every_zone_and_hour_after_the_input(workspace: Path) -> None:
    done = slem(
        "forecast", "train.csv", "--contracts", str(CONTRACTS), "--days", "2", "--out", "fc", cwd=workspace
    )
    assert done.returncode == 0, done.stderr
    with (workspace / "fc" / "forecasts.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["zone_id", "timestamp", "expected_power_w", "p_on", "lower_w", "upper_w"]
    zones = {r["zone_id"] for r in rows}
    assert len(zones) == 6 and len(rows) == 6 * 48
    last_input = pd.to_datetime(pd.read_csv(workspace / "train.csv")["timestamp"], utc=True).max()
    assert pd.Timestamp(min(r["timestamp"] for r in rows)) > last_input
    for r in rows:
        assert float(r["lower_w"]) <= float(r["expected_power_w"]) <= float(r["upper_w"])
        assert 0.0 <= float(r["p_on"]) <= 1.0
    assert (workspace / "fc" / "peak_hours_zones.csv").exists()
    assert (workspace / "fc" / "peak_hours_buildings.csv").exists()
    # the expected occupancy: the on-probability per zone and hour, and its peak hours
    occupancy = pd.read_csv(workspace / "fc" / "occupancy.csv")
    assert list(occupancy.columns) == ["zone_id", "building", "floor", "timestamp", "expected_occupancy"]
    assert len(occupancy) == 6 * 48 and occupancy["expected_occupancy"].between(0, 1).all()
    p_on = {(r["zone_id"], r["timestamp"]): float(r["p_on"]) for r in rows}
    assert [p_on[(z, t)] for z, t in zip(occupancy["zone_id"], occupancy["timestamp"], strict=True)] == (
        occupancy["expected_occupancy"].tolist()
    )
    buildings = pd.read_csv(workspace / "fc" / "occupancy_buildings.csv")
    assert buildings["expected_occupied_zones"].le(buildings["zones"]).all()
    peaks = pd.read_csv(workspace / "fc" / "peak_occupancy_zones.csv")
    assert peaks.groupby("zone_id")["rank"].apply(list).tolist() == [[1, 2, 3]] * 6
    assert (workspace / "fc" / "peak_occupancy_buildings.csv").exists()
    assert "peak occupancy" in done.stdout
    assert (workspace / "fc" / "forecast.png").stat().st_size > 1000


def test_score_uses_the_champion(workspace: Path) -> None:
    done = slem("score", "today.csv", "--contracts", str(CONTRACTS), "--out", "res", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "slem v1" in done.stdout
    scored = pd.read_parquet(workspace / "res" / "scored_readings.parquet")
    assert scored["expected_power_w"].notna().all()
    with (workspace / "res" / "alerts.csv").open(newline="") as fh:
        assert "status" in next(csv.reader(fh))


def test_forecast_without_any_model_says_to_train(tmp_path: Path, workspace: Path) -> None:
    done = slem(
        "forecast", str(workspace / "train.csv"), "--contracts", str(CONTRACTS), "--out", "fc", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "slem train" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "fc").exists() and not (tmp_path / "mlflow.db").exists()


def test_score_without_any_model_scores_and_says_so(tmp_path: Path, workspace: Path) -> None:
    done = slem(
        "score", str(workspace / "today.csv"), "--contracts", str(CONTRACTS), "--out", "res", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "without models" in done.stdout and "slem train" in done.stdout


def test_too_little_history_to_train_is_one_clear_line(tmp_path: Path, workspace: Path) -> None:
    done = slem("train", str(workspace / "today.csv"), "--contracts", str(CONTRACTS), cwd=tmp_path)
    assert done.returncode == 2
    assert "at least 21" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "models").exists()


def test_training_entry_point_logs_a_second_version(workspace: Path) -> None:
    done = slem(
        "train.csv", "--contracts", str(CONTRACTS), "--strategy", "global", "--n-estimators", "20",
        cwd=workspace,
        program=(str(REPO / "training" / "train.py"),),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "version 2" in done.stdout and "champion:" in done.stdout


@pytest.mark.parametrize("command", ["train", "forecast"])
def test_train_and_forecast_need_the_site_s_contracts(command: str, tmp_path: Path) -> None:
    (tmp_path / "readings.csv").write_text("timestamp,zone_id,client_id,power_w\n")
    done = slem(command, "readings.csv", *(["--out", "o"] if command == "forecast" else []), cwd=tmp_path)
    assert done.returncode == 2 and "Missing option '--contracts'" in done.stderr  # no quiet sample site
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "models").exists()


def test_a_missing_mlflow_artifact_falls_back_to_the_export_or_is_one_clear_line(
    tmp_path: Path, workspace: Path
) -> None:
    """Issue 16 item 7: the registry database kept, ``mlruns/`` gone. With the champion's export in
    ``models/`` training and scoring use it; without it both end with one line and exit 2, and training
    leaves no half-logged run behind."""
    import shutil

    for name in ("train.csv", "today.csv"):
        shutil.copy(workspace / name, tmp_path / name)
    first = slem("train", "train.csv", "--contracts", str(CONTRACTS), cwd=tmp_path)
    assert first.returncode == 0 and "first model" in first.stdout, first.stderr
    (tmp_path / "mlruns").rename(tmp_path / "mlruns.moved")  # the registry names artifacts no longer there
    score = ("score", "today.csv", "--contracts", str(CONTRACTS), "--db", "none", "--out")
    with_export = slem(*score, "res", cwd=tmp_path)
    assert with_export.returncode == 0, with_export.stderr
    assert "without models" not in with_export.stdout
    trained = slem("train", "train.csv", "--contracts", str(CONTRACTS), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "champion:" in trained.stdout and "first model" not in trained.stdout  # compared with the export
    shutil.rmtree(tmp_path / "models")
    shutil.rmtree(tmp_path / "mlruns", ignore_errors=True)  # what the second run logged, gone too
    for done in (
        slem(*score, "res2", cwd=tmp_path),
        slem("train", "train.csv", "--contracts", str(CONTRACTS), cwd=tmp_path),
    ):
        assert done.returncode == 2, done.stdout
        assert done.stderr.count("\n") == 1 and "model files are missing" in done.stderr
        assert "restore mlruns/" in done.stderr and "MlflowException" not in done.stderr
    assert not (tmp_path / "res2").exists()

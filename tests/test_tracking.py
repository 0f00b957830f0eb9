"""Training, the MLflow registry and the exported bundle, against a real local MLflow store (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from slem_ml.errors import ConfigError
from slem_ml.generator.generate import default_site
from slem_ml.models.bundle import BUNDLE_FILE, MANIFEST_FILE, load_bundle
from slem_ml.models.training import TrainingConfig, TrainingRun, data_fingerprint, train_models

SITE = default_site()


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # artifacts go to ./mlruns
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_training_run_carries_what_the_issue_asks_for(run: TrainingRun, readings):
    manifest = run.bundle.manifest
    assert manifest["data_fingerprint"] == data_fingerprint(readings)
    assert manifest["strategy"] == run.backtest.strategy and manifest["strategy_reason"]
    for key in ("model_wape", "model_mae", "model_cv_rmse", "model_nmbe", "brier", "coverage"):
        assert key in run.backtest.metrics
    assert run.bundle.sessions is not None and run.session_metrics["cleaning_session_f1"] > 0.8


def test_fit_log_load_gives_identical_predictions(run: TrainingRun, store: str, tmp_path: Path):
    from slem_ml.models.registry import load_champion
    from slem_ml.models.tracking import log_training

    outcome = log_training(run, tracking_uri=store, models_dir=tmp_path / "models")
    assert outcome.promoted and outcome.version == "1" and "first model" in outcome.reason
    manifest = (tmp_path / "models" / MANIFEST_FILE).read_text()
    assert '"registered_version": "1"' in manifest and run.bundle.manifest["data_fingerprint"] in manifest

    bundle, source = load_champion(tracking_uri=store, models_dir=tmp_path / "nowhere")
    assert source.startswith("registry") and "exported copy" not in source
    expected = run.bundle.forecaster.predict(run.hours)
    pd.testing.assert_frame_equal(bundle.forecaster.predict(run.hours), expected)
    exported = load_bundle(tmp_path / "models")
    assert exported is not None
    pd.testing.assert_frame_equal(exported.forecaster.predict(run.hours), expected)


def test_a_worse_model_does_not_take_the_alias(run: TrainingRun, readings, store: str, tmp_path: Path):
    import mlflow
    from mlflow import MlflowClient

    from slem_ml.models.tracking import log_training

    log_training(run, tracking_uri=store, models_dir=tmp_path / "models")
    weak = train_models(readings, SITE, TrainingConfig(forecaster={"n_estimators": 1, "num_leaves": 2}))
    outcome = log_training(weak, tracking_uri=store, models_dir=tmp_path / "models")
    assert not outcome.promoted and "kept the champion" in outcome.reason
    mlflow.set_tracking_uri(store)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("slem", "champion").version) == "1"
    logged = client.get_run(outcome.run_id).data
    assert logged.metrics["champion_model_wape"] < logged.metrics["new_model_wape"]
    assert logged.tags["promotion"] == outcome.reason

    # the champion as scoring reads it (one SQL query, no MLflow import) is the client's champion
    from slem_ml.models.registry import _champion_in_sqlite

    champion = client.get_model_version_by_alias("slem", "champion")
    assert _champion_in_sqlite(store) == (str(champion.version), champion.run_id)


def test_scoring_loads_the_exported_champion_without_importing_mlflow(run, store: str, tmp_path: Path):
    import subprocess
    import sys

    from slem_ml.models.tracking import log_training

    log_training(run, tracking_uri=store, models_dir=tmp_path / "models")
    check = (
        "import sys; from slem_ml.models.registry import load_champion; "
        f"bundle, source = load_champion(tracking_uri={store!r}, models_dir={str(tmp_path / 'models')!r}); "
        "print(source); print('mlflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    source, imported = done.stdout.splitlines()
    assert source.startswith("registry") and "exported copy" in source and "slem v1" in source
    assert imported == "False"


def test_without_a_store_the_export_is_used_and_no_store_is_created(run, store: str, tmp_path: Path):
    from slem_ml.models.bundle import save_bundle
    from slem_ml.models.registry import load_champion

    save_bundle(run.bundle, tmp_path / "models")
    bundle, source = load_champion(tracking_uri=store, models_dir=tmp_path / "models")
    assert "slem-models.joblib" in source
    assert not (tmp_path / "mlflow.db").exists()


def test_with_neither_the_message_says_to_train(store: str, tmp_path: Path):
    from slem_ml.models.registry import load_champion

    with pytest.raises(ConfigError, match="run `slem train"):
        load_champion(tracking_uri=store, models_dir=tmp_path / "models")


def test_a_bundle_pickled_before_the_modules_moved_still_loads(run: TrainingRun, tmp_path: Path):
    """A champion exported by slem 0.1 before issue 11 names its classes by their old modules
    (``slem_ml.forecaster.ZoneForecaster``, …); it loads and predicts as before, and the old names do not
    stay behind in ``sys.modules``."""
    import sys

    import joblib

    from slem_ml.models.bundle import save_bundle

    save_bundle(run.bundle, tmp_path)
    plain = tmp_path / "plain.joblib"
    joblib.dump(run.bundle, plain, protocol=2)  # protocol 2 names classes as text: "c<module>\n<name>\n"
    data = plain.read_bytes()
    moved = {
        b"slem_ml.models.forecaster\n": b"slem_ml.forecaster\n",
        b"slem_ml.models.spikes\n": b"slem_ml.anomaly\n",  # SpikeDetector lived in slem_ml.anomaly then
    }
    moved |= {b"slem_ml.models.drift\n": b"slem_ml.drift\n", b"slem_ml.models.bundle\n": b"slem_ml.bundle\n"}
    for new, old in moved.items():
        assert new in data
        data = data.replace(new, old)
    assert b"cslem_ml.forecaster\nZoneForecaster\n" in data
    (tmp_path / BUNDLE_FILE).write_bytes(data)

    loaded = load_bundle(tmp_path)
    assert loaded is not None
    expected = run.bundle.forecaster.predict(run.hours)
    pd.testing.assert_frame_equal(loaded.forecaster.predict(run.hours), expected)
    assert "slem_ml.forecaster" not in sys.modules


def test_an_unusable_export_means_scoring_without_models_unless_models_are_required(tmp_path: Path):
    """An export from another model schema is no champion: scoring goes on without models and its note
    names the problem; forecasting, which needs models, refuses with the advice to retrain."""
    from slem_ml.models.registry import find_champion

    models = tmp_path / "models"
    models.mkdir()
    (models / MANIFEST_FILE).write_text('{"schema_version": 999}')
    (models / BUNDLE_FILE).write_bytes(b"not read: the manifest is checked first")
    store = f"sqlite:///{tmp_path / 'no-store.db'}"
    champion = find_champion(store, models, required=False)
    assert champion.bundle is None
    assert "another slem model schema (999" in champion.source and "slem train" not in champion.source
    with pytest.raises(ConfigError, match="another slem model schema.*run `slem train` again"):
        find_champion(store, models, required=True)


def test_a_retrain_on_the_same_readings_is_judged_against_the_champions_recipe(readings, run: TrainingRun):
    """Issue 16 item 5: the champion's settings refitted on the same backtest folds, not the champion
    re-scored on weeks it learnt from (which kept a weak champion against any retrain)."""
    from slem_ml.models.promotion import judge

    weak = train_models(readings, SITE, TrainingConfig(forecaster={"n_estimators": 1, "num_leaves": 2}))
    verdict = judge(run, weak.bundle)
    assert verdict.promoted and "champion's settings refitted" in verdict.reason
    assert verdict.metrics["new_model_wape"] < verdict.metrics["champion_model_wape"]
    assert verdict.metrics["new_model_wape"] == run.backtest.metrics["model_wape"]
    back = judge(weak, run.bundle)  # and the weak one never replaces the good one
    assert not back.promoted and "kept the champion" in back.reason


def test_a_champion_of_older_readings_is_scored_as_it_is_on_weeks_neither_saw(training_data):
    """The new model's backtest hours after the champion's last reading were seen by neither."""
    from slem_ml.io import schema as S
    from slem_ml.io.reader import validate_frame
    from slem_ml.models.promotion import judge

    frame = training_data.readings
    zones = frame[S.ZONE_ID].astype(str).isin(sorted(frame[S.ZONE_ID].astype(str).unique())[:4])
    cutoff = frame[S.TIMESTAMP].max() - pd.Timedelta(days=7)
    older = train_models(
        validate_frame(frame[zones & (frame[S.TIMESTAMP] <= cutoff)], SITE),
        SITE,
        TrainingConfig(forecaster={"n_estimators": 20}, min_days=14, backtest_days=7),
    )
    newer = train_models(
        validate_frame(frame[zones], SITE), SITE, TrainingConfig(forecaster={"n_estimators": 20})
    )
    verdict = judge(newer, older.bundle)
    assert verdict.metrics["promotion_unseen"] == 1.0 and "which neither model saw" in verdict.reason
    unseen = newer.backtest.forecasts[newer.backtest.forecasts["hour_start"] > cutoff]
    assert verdict.metrics["new_model_wape"] != newer.backtest.metrics["model_wape"]  # those hours only
    assert unseen["hour_start"].dt.floor("D").nunique() >= 7

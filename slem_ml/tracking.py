"""The one MLflow adapter (SPEC §5): log a training run, register it, promote a champion, load it back.

Everything MLflow touches lives here; the scoring core never imports it. The whole
:class:`~slem_ml.bundle.ModelBundle` is one registered model (``slem``) logged as a pyfunc whose input is
the forecaster's hourly feature rows, so the forecaster, detectors and classifier that scored a run always
come from one training run. A new version takes the alias ``champion`` only when its forecaster beats the
current champion's on the new run's backtest weeks; the run logs both WAPEs and the decision. The champion
is then exported to ``models/`` (joblib + manifest) so scoring works without the tracking store.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slem_ml import schema as S
from slem_ml.bundle import BUNDLE_FILE, ModelBundle, load_bundle, read_manifest, save_bundle
from slem_ml.errors import ConfigError
from slem_ml.features import FORECAST_FEATURES
from slem_ml.metrics import wape
from slem_ml.training import TrainingRun

__all__ = [
    "DEFAULT_TRACKING_URI",
    "REGISTERED_NAME",
    "TrackingOutcome",
    "load_champion",
    "log_training",
    "training_runs",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
REGISTERED_NAME = "slem"
EXPERIMENT = "slem"
CHAMPION = "champion"
_PIP = ["slem", "lightgbm", "scikit-learn", "pandas", "numpy", "joblib"]


def _mlflow(tracking_uri: str | None) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow draws tqdm progress bars on stderr while it moves artifacts (tqdm comes with gradio/dask)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    # MLflow narrates every step (tables created, model registered, pickling advice) on stderr; the CLI
    # prints its own summary, so keep only MLflow's warnings and errors.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # …and its advice against pickled python_model objects: the model logged is a thin wrapper class,
    # the fitted models travel as a joblib artifact.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)

    mlflow.set_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    return mlflow


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence MLflow's advisory warnings (type-hint and pickling advice, integer-schema hints)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        yield


def _input_columns() -> list[str]:
    return ["hour_ms", *FORECAST_FEATURES]


@functools.cache
def _bundle_model_class() -> type:
    """The pyfunc wrapper class, defined on first use: importing this module must not import MLflow
    (3-4 s), which scoring needs only when the champion is not exported to ``models/``."""
    import mlflow.pyfunc

    class BundleModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """pyfunc face of a bundle: hourly feature rows in, the forecaster's columns out."""

        def load_context(self, context: Any) -> None:
            import joblib

            self.bundle: ModelBundle = joblib.load(context.artifacts["bundle"])

        # A DataFrame hint: MLflow infers no signature from it (ours comes from a real input example)
        # and, unlike no hint at all, does not print advice about type hints.
        def predict(
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            rows = model_input.assign(hour_start=pd.to_datetime(model_input["hour_ms"], unit="ms", utc=True))
            out = self.bundle.forecaster.predict(rows)
            return out[[S.EXPECTED_POWER_W, "p_on", "lower_w", "upper_w"]]

    return BundleModel


@dataclass(frozen=True)
class TrackingOutcome:
    """What happened in the store: the run, the registered version and whether it became champion."""

    run_id: str
    version: str
    promoted: bool
    reason: str
    exported_to: Path | None


def log_training(
    run: TrainingRun, *, tracking_uri: str | None = None, models_dir: str | Path = "models"
) -> TrackingOutcome:
    """Log ``run`` as an MLflow run, register it, promote it if it beats the champion, export the champion."""
    with _quiet():
        return _log_training(run, tracking_uri, models_dir)


def _log_training(run: TrainingRun, tracking_uri: str | None, models_dir: str | Path) -> TrackingOutcome:
    mlflow = _mlflow(tracking_uri)
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    manifest = run.bundle.manifest
    with mlflow.start_run(run_name=f"train {manifest.get('trained_to', '')[:10]}") as active:
        mlflow.log_params(
            {f"forecaster.{k}": v for k, v in run.bundle.forecaster.get_params().items()}
            | {
                "strategy": run.backtest.strategy,
                "data_fingerprint": manifest["data_fingerprint"],
                "rows": manifest["rows"],
                "zones": len(manifest["zones"]),
                "trained_from": manifest["trained_from"],
                "trained_to": manifest["trained_to"],
                "session_classifier": manifest["session_classifier"],
            }
        )
        mlflow.set_tags(
            {"strategy_reason": run.strategy_reason, "data_fingerprint": manifest["data_fingerprint"]}
        )
        logged = run.backtest.metrics | run.session_metrics
        mlflow.log_metrics({k: v for k, v in logged.items() if np.isfinite(v)})
        for candidate in run.candidates:
            mlflow.log_metric(f"{candidate.strategy}_model_wape", candidate.metrics["model_wape"])
        mlflow.log_metrics({f"time_{k}": v for k, v in run.timings.items()})
        with tempfile.TemporaryDirectory() as temp:
            for name, figure in _plots(run).items():
                path = Path(temp) / name
                figure.savefig(path, dpi=110, bbox_inches="tight")
                mlflow.log_artifact(str(path), artifact_path="plots")
            run.backtest.forecasts.to_csv(Path(temp) / "backtest_forecasts.csv", index=False)
            mlflow.log_artifact(str(Path(temp) / "backtest_forecasts.csv"))

            champion = _current_champion(client)
            promoted, reason, comparison = _compare(run, champion)
            mlflow.log_metrics(comparison)
            mlflow.set_tag("promotion", reason)

            example = run.hours.loc[run.hours[S.POWER_W].notna(), _input_columns()].head(5)
            example = _plain(example)
            predicted = run.bundle.forecaster.predict(
                example.assign(hour_start=pd.to_datetime(example["hour_ms"], unit="ms", utc=True))
            )[[S.EXPECTED_POWER_W, "p_on", "lower_w", "upper_w"]]
            save_bundle(run.bundle, temp)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=_bundle_model_class()(),
                artifacts={"bundle": str(Path(temp) / BUNDLE_FILE)},
                signature=infer_signature(example, predicted),
                input_example=example,
                pip_requirements=_PIP,
            )
        version = _register(client, info, active.info.run_id)
        exported = None
        if promoted:
            client.set_registered_model_alias(REGISTERED_NAME, CHAMPION, version)
            run.bundle.manifest = run.bundle.manifest | {
                "registered_name": REGISTERED_NAME,
                "registered_version": version,
                "run_id": active.info.run_id,
            }
            save_bundle(run.bundle, models_dir)
            exported = Path(models_dir)
        return TrackingOutcome(active.info.run_id, version, promoted, reason, exported)


def _register(client: Any, info: Any, run_id: str) -> str:
    """Register a logged model as the next version of ``slem``; the registry's version number.

    The client API, not ``registered_model_name=``: the fluent path narrates each step on stderr.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(REGISTERED_NAME)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    created = client.create_model_version(
        REGISTERED_NAME, source=info.model_uri, run_id=run_id, model_id=info.model_id
    )
    return str(created.version)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature rows with plain dtypes MLflow's schema understands (str categoricals, int flags)."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_bool_dtype(out[column]) or pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].astype(np.float64)  # missing values stay representable
        else:
            out[column] = out[column].astype(str).astype(object)
    return out.reset_index(drop=True)


def _current_champion(client: Any) -> ModelBundle | None:
    """The bundle behind the registry's champion alias, or ``None`` when there is none yet."""
    import mlflow

    try:
        client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}@{CHAMPION}")
    bundle: ModelBundle = model.unwrap_python_model().bundle
    return bundle


def _compare(run: TrainingRun, champion: ModelBundle | None) -> tuple[bool, str, dict[str, float]]:
    """Whether the new forecaster beats the champion on the new run's backtest weeks, and why."""
    new = run.backtest.metrics["model_wape"]
    if champion is None:
        return True, f"first model: becomes champion (backtest WAPE {new:.3f})", {"new_model_wape": new}
    weeks = run.backtest.forecasts[[S.ZONE_ID, "hour_start", S.POWER_W]]
    rows = run.hours.merge(weeks[[S.ZONE_ID, "hour_start"]], on=[S.ZONE_ID, "hour_start"])
    predicted = champion.forecaster.predict(rows)
    old = wape(rows[S.POWER_W].to_numpy(), predicted[S.EXPECTED_POWER_W].to_numpy())
    metrics = {"new_model_wape": new, "champion_model_wape": old}
    overlap = ""
    trained_to = champion.manifest.get("trained_to")
    if trained_to and pd.Timestamp(trained_to) >= run.backtest.forecasts["hour_start"].min():
        overlap = " (the champion was trained on some of these weeks, which flatters it)"
    if new < old:
        return True, f"new WAPE {new:.3f} < champion {old:.3f} on the same backtest weeks{overlap}", metrics
    return False, f"kept the champion: new WAPE {new:.3f} ≥ champion {old:.3f}{overlap}", metrics


def _plots(run: TrainingRun) -> dict[str, Any]:
    """Feature importance and backtest (building totals: actual vs forecast with the band) as figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    importance = run.bundle.forecaster.feature_importance()
    fig, ax = plt.subplots(figsize=(6, 4))
    importance.iloc[::-1].plot.barh(ax=ax, color="#4477aa")
    ax.set_xlabel("gain")
    ax.set_title("Forecaster feature importance")
    figures["feature_importance.png"] = fig
    totals = run.backtest.forecasts.groupby("hour_start")[
        [S.POWER_W, S.EXPECTED_POWER_W, "lower_w", "upper_w", "seasonal_naive_w"]
    ].sum(min_count=1)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.fill_between(
        totals.index, totals["lower_w"], totals["upper_w"], color="#4477aa", alpha=0.2, label="80 % band"
    )
    ax.plot(totals.index, totals[S.POWER_W], color="black", lw=1, label="actual")
    ax.plot(totals.index, totals[S.EXPECTED_POWER_W], color="#4477aa", lw=1, label="forecast")
    ax.plot(
        totals.index, totals["seasonal_naive_w"], color="#cc6677", lw=0.8, ls="--", label="seasonal-naive"
    )
    ax.set_ylabel("site power [W]")
    ax.set_title(f"Backtest, last 14 days (WAPE {run.backtest.metrics['model_wape']:.3f})")
    ax.legend(loc="upper right")
    figures["backtest.png"] = fig
    plt.close("all")
    return figures


#: Columns of :func:`training_runs`.
RUN_COLUMNS = (
    "started (UTC)", "run_id", "strategy", "rows", "zones", "trained_to", "model_wape",
    "seasonal_naive_wape", "coverage", "brier", "promotion",
)  # fmt: skip


def training_runs(tracking_uri: str | None = None, *, limit: int = 20) -> pd.DataFrame:
    """The latest training runs in the store, newest first: backtest figures and the promotion decision.

    Empty (with :data:`RUN_COLUMNS`) when there is no store or no run yet; never creates a store.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    empty = pd.DataFrame(columns=list(RUN_COLUMNS))
    if not _store_exists(uri):
        return empty
    with _quiet():
        mlflow = _mlflow(uri)
        experiment = mlflow.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return empty
        runs = mlflow.search_runs(
            [experiment.experiment_id], max_results=limit, order_by=["attributes.start_time DESC"]
        )
    if runs.empty:
        return empty

    def column(name: str) -> pd.Series:
        return runs[name] if name in runs.columns else pd.Series(np.nan, index=runs.index)

    out = pd.DataFrame(
        {
            "started (UTC)": runs["start_time"].dt.strftime("%Y-%m-%d %H:%M"),
            "run_id": runs["run_id"],
            "strategy": column("params.strategy"),
            "rows": column("params.rows"),
            "zones": column("params.zones"),
            "trained_to": column("params.trained_to").astype(str).str[:10],
            "model_wape": column("metrics.model_wape").round(3),
            "seasonal_naive_wape": column("metrics.seasonal_naive_wape").round(3),
            "coverage": column("metrics.coverage").round(3),
            "brier": column("metrics.brier").round(3),
            "promotion": column("tags.promotion"),
        }
    )
    return out[list(RUN_COLUMNS)]


def load_champion(
    *, tracking_uri: str | None = None, models_dir: str | Path = "models"
) -> tuple[ModelBundle, str]:
    """The champion bundle and where it came from: the registry, else ``models_dir``.

    The registry is asked only when a store is reachable (a SQLite store must already exist: loading never
    creates one). When ``models_dir`` holds the export of that same champion version it is loaded from
    there (no download). With neither, a :class:`ConfigError` that says to run ``slem train``.

    For a SQLite store the champion's version is read with one SQL query on MLflow's registry tables
    (:func:`_champion_in_sqlite`): importing MLflow and opening its store costs 3–4 s, more than scoring a
    million readings. Anything unexpected there falls back to MLflow's client.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    registry_error = ""
    if _store_exists(uri):
        try:
            champion = _champion_in_sqlite(uri)
            manifest = read_manifest(models_dir)
            if champion is not None and manifest and _same_version(manifest, *champion):
                bundle = load_bundle(models_dir)
                if bundle is not None:
                    return (
                        bundle,
                        f"registry {uri}, champion {bundle.version} (exported copy in {models_dir}/)",
                    )
            with _quiet():
                return _from_registry(uri, models_dir)
        except Exception as exc:  # any store failure falls back to the export
            registry_error = f"; the registry at {uri} had none ({str(exc).splitlines()[0][:120]})"
    exported = load_bundle(models_dir)
    if exported is not None:
        return exported, f"{Path(models_dir) / BUNDLE_FILE} ({exported.version})"
    raise ConfigError(
        f"no trained models: no champion in the registry and none exported to {models_dir}/{registry_error}; "
        "run `slem train READINGS --contracts C` first"
    )


def _from_registry(uri: str, models_dir: str | Path) -> tuple[ModelBundle, str]:
    mlflow = _mlflow(uri)
    from mlflow import MlflowClient

    champion = MlflowClient().get_model_version_by_alias(REGISTERED_NAME, CHAMPION)
    version = str(champion.version)
    manifest = read_manifest(models_dir)
    if manifest and _same_version(manifest, version, str(champion.run_id)):
        bundle = load_bundle(models_dir)
        if bundle is not None:
            return bundle, _exported_source(uri, bundle, models_dir)
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}@{CHAMPION}")
    loaded: ModelBundle = model.unwrap_python_model().bundle
    loaded.manifest = loaded.manifest | {
        "registered_name": REGISTERED_NAME,
        "registered_version": version,
        "run_id": champion.run_id,
    }
    return loaded, f"registry {uri}, champion {loaded.version}"


def _exported_source(uri: str, bundle: ModelBundle, models_dir: str | Path) -> str:
    return f"registry {uri}, champion {bundle.version} (exported copy in {models_dir}/)"


def _same_version(manifest: dict[str, Any], version: str, run_id: str) -> bool:
    """The export's manifest is of registry ``version`` from run ``run_id``."""
    return str(manifest.get("registered_version")) == str(version) and manifest.get("run_id") == run_id


def _champion_in_sqlite(uri: str) -> tuple[str, str] | None:
    """(version, run_id) of the champion in a SQLite MLflow store, or None to ask MLflow's client.

    Reads MLflow's own registry tables (``registered_model_aliases``, ``model_versions``) read-only; a store
    of another kind, or one whose tables differ, returns None.
    """
    if not uri.startswith("sqlite:///"):
        return None
    import sqlite3

    path = Path(uri.removeprefix("sqlite:///"))
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT v.version, v.run_id FROM registered_model_aliases AS a JOIN model_versions AS v "
                "ON v.name = a.name AND v.version = a.version WHERE a.name = ? AND a.alias = ?",
                (REGISTERED_NAME, CHAMPION),
            ).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else (str(row[0]), str(row[1]))


def _store_exists(uri: str) -> bool:
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return not uri.startswith("file:")

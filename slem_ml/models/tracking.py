"""Logging a training run to MLflow (SPEC §5): log it, register it, promote a champion, export it.

The whole :class:`~slem_ml.models.bundle.ModelBundle` is one registered model (``slem``) logged as a pyfunc
whose input is the forecaster's hourly feature rows, so the forecaster, detectors and classifier that scored
a run always come from one training run. A new version takes the alias ``champion`` only when its
forecaster beats the current champion's on weeks neither was trained on (:mod:`slem_ml.models.promotion`);
the run logs both WAPEs and the decision. The champion is then exported to ``models/`` (joblib + manifest)
so scoring works without the tracking store. Reading the store back is :mod:`slem_ml.models.registry`'s job.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.io import schema as S
from slem_ml.models.bundle import BUNDLE_FILE, ModelBundle, save_bundle
from slem_ml.models.features import FORECAST_FEATURES
from slem_ml.models.promotion import judge
from slem_ml.models.registry import (
    CHAMPION,
    EXPERIMENT,
    REGISTERED_NAME,
    mlflow_module,
    quiet,
    registered_champion,
    resolve_tracking_uri,
)
from slem_ml.models.training import TrainingRun

__all__ = ["TrackingOutcome", "log_training"]

_PIP = ["slem", "lightgbm", "scikit-learn", "pandas", "numpy", "joblib"]


def _input_columns() -> list[str]:
    return ["hour_ms", *FORECAST_FEATURES]


@functools.cache
def _bundle_model_class() -> type:
    """The pyfunc wrapper class, defined on first use: importing this module must not import MLflow
    (3-4 s), which scoring needs only when the champion is not exported to ``models/``."""
    import mlflow.pyfunc  # lazy: MLflow takes 3-4 s to import

    class BundleModel(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """pyfunc face of a bundle: hourly feature rows in, the forecaster's columns out."""

        def load_context(self, context: Any) -> None:
            import joblib  # lazy: runs inside MLflow's model loading

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
    with quiet():
        return _log_training(run, tracking_uri, models_dir)


def _log_training(run: TrainingRun, tracking_uri: str | None, models_dir: str | Path) -> TrackingOutcome:
    mlflow = mlflow_module(tracking_uri)
    # lazy: MLflow takes 3-4 s to import (and mlflow_module sets its environment first)
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    mlflow.set_experiment(EXPERIMENT)
    client = MlflowClient()
    # before the run starts: a champion whose files are gone stops here, leaving no half-logged run
    champion = _current_champion(client, resolve_tracking_uri(tracking_uri), models_dir)
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

            verdict = judge(run, champion)
            promoted, reason, comparison = verdict.promoted, verdict.reason, verdict.metrics
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
    from mlflow.exceptions import MlflowException  # lazy: MLflow takes 3-4 s to import

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


def _current_champion(client: Any, uri: str, models_dir: str | Path) -> ModelBundle | None:
    """The bundle behind the registry's champion alias (its export in ``models_dir`` when it is of that
    version), or ``None`` when there is none yet. A champion whose files are gone raises
    :class:`~slem_ml.models.registry.MissingArtifactError` (one line, exit 2)."""
    import mlflow  # lazy: MLflow takes 3-4 s to import

    try:
        champion = client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    bundle, _ = registered_champion(champion, uri, models_dir)
    return bundle


def _plots(run: TrainingRun) -> dict[str, Any]:
    """Feature importance and backtest (building totals: actual vs forecast with the band) as figures."""
    import matplotlib  # lazy: only training draws charts

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

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

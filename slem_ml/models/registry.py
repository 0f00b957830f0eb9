"""Where the models come from (SPEC §5): the MLflow tracking store and the champion in its registry.

:func:`find_champion` (or :func:`load_champion`, which raises without one) is what scoring, forecasting and
the app call; it never imports the training code, and for a SQLite store it does not even import MLflow when
``models/`` holds the champion's export.
:func:`training_runs` lists the store's runs for the app. Logging and promoting a new training run is
:mod:`slem_ml.models.tracking`'s job; both share this module's store helpers, so the tracking URI is resolved
in one place (:func:`resolve_tracking_uri`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slem_ml.errors import ConfigError
from slem_ml.models.bundle import BUNDLE_FILE, ModelBundle, legacy_module_names, load_bundle, read_manifest

__all__ = [
    "CHAMPION",
    "Champion",
    "DEFAULT_TRACKING_URI",
    "EXPERIMENT",
    "MissingArtifactError",
    "NoChampionError",
    "REGISTERED_NAME",
    "RUN_COLUMNS",
    "champion_status",
    "find_champion",
    "load_champion",
    "mlflow_module",
    "quiet",
    "registered_champion",
    "resolve_tracking_uri",
    "store_exists",
    "training_runs",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
REGISTERED_NAME = "slem"
EXPERIMENT = "slem"
CHAMPION = "champion"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The MLflow tracking URI: ``uri``, else ``$MLFLOW_TRACKING_URI``, else :data:`DEFAULT_TRACKING_URI`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def mlflow_module(uri: str | None) -> Any:
    """MLflow, imported, quietened and pointed at the store ``uri`` resolves to (see
    :func:`resolve_tracking_uri`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow draws tqdm progress bars on stderr while it moves artifacts (tqdm comes with gradio/dask)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # lazy: importing MLflow takes 3-4 s

    # MLflow narrates every step (tables created, model registered, pickling advice) on stderr; the CLI
    # prints its own summary, so keep only MLflow's warnings and errors.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # …and its advice against pickled python_model objects: the model logged is a thin wrapper class,
    # the fitted models travel as a joblib artifact.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)

    mlflow.set_tracking_uri(resolve_tracking_uri(uri))
    return mlflow


@contextlib.contextmanager
def quiet() -> Any:
    """Silence MLflow's advisory warnings (type-hint and pickling advice, integer-schema hints)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        yield


RUN_COLUMNS = (
    "started (UTC)", "run_id", "strategy", "rows", "zones", "trained_to", "model_wape",
    "seasonal_naive_wape", "coverage", "brier", "promotion",
)  # fmt: skip


def training_runs(tracking_uri: str | None = None, *, limit: int = 20) -> pd.DataFrame:
    """The latest training runs in the store, newest first: backtest figures and the promotion decision.

    Empty (with :data:`RUN_COLUMNS`) when there is no store or no run yet; never creates a store.
    """
    uri = resolve_tracking_uri(tracking_uri)
    empty = pd.DataFrame(columns=list(RUN_COLUMNS))
    if not store_exists(uri):
        return empty
    with quiet():
        mlflow = mlflow_module(uri)
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


class NoChampionError(ConfigError):
    """No trained models anywhere: :attr:`reason` says where none was found, the message what to do."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{detail}; run `slem train READINGS --contracts C` first", reason=reason)


@dataclass(frozen=True)
class Champion:
    """The models to score with, or None, and where they came from or why there are none (one clause)."""

    bundle: ModelBundle | None
    source: str


def find_champion(tracking_uri: str | None, models_dir: str | Path, *, required: bool) -> Champion:
    """:func:`load_champion`, as a :class:`Champion` whose bundle is None, saying why, when there is none or
    it cannot be loaded and it is not ``required`` (then the :class:`ConfigError` is raised). A champion
    whose files are missing raises :class:`MissingArtifactError` either way."""
    try:
        bundle, source = load_champion(tracking_uri=tracking_uri, models_dir=models_dir)
    except ConfigError as exc:
        if required or isinstance(exc, MissingArtifactError):  # a broken champion is never "none"
            raise
        return Champion(None, exc.reason)
    return Champion(bundle, source)


def champion_status(tracking_uri: str | None, models_dir: str | Path) -> tuple[bool, str]:
    """Whether there is a champion, and where or why not, without loading it (a registry row or an exported
    manifest; milliseconds): for a status line. A store other than SQLite is asked through
    :func:`find_champion`, which loads the models."""
    uri = resolve_tracking_uri(tracking_uri)
    if store_exists(uri) and not uri.startswith("sqlite:///"):
        champion = find_champion(tracking_uri, models_dir, required=False)
        return champion.bundle is not None, champion.source
    found = _champion_in_sqlite(uri) if store_exists(uri) else None
    if found is not None:
        return True, f"registry {uri}, champion version {found[0]}"
    if read_manifest(models_dir) and (Path(models_dir) / BUNDLE_FILE).is_file():
        return True, str(Path(models_dir) / BUNDLE_FILE)
    return False, f"no trained models: no champion in the registry and none exported to {models_dir}/"


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
    uri = resolve_tracking_uri(tracking_uri)
    registry_error = missing = ""
    if store_exists(uri):
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
            with quiet():
                return _from_registry(uri, models_dir)
        except MissingArtifactError as exc:  # the export of another version may still serve, saying so
            registry_error = missing = f"; {exc.reason}"
        except Exception as exc:  # any store failure falls back to the export
            registry_error = f"; the registry at {uri} had none ({str(exc).splitlines()[0][:120]})"
    exported = load_bundle(models_dir)
    if exported is not None:
        instead = f", not the registry's champion{missing}" if missing else ""
        return exported, f"{Path(models_dir) / BUNDLE_FILE} ({exported.version}){instead}"
    if missing:  # a champion exists, broken: not the same as none (scoring on without models would hide it)
        raise MissingArtifactError(
            missing.removeprefix("; ").capitalize() + _MISSING_ADVICE, reason=missing[2:]
        )
    raise NoChampionError(
        f"no trained models: no champion in the registry and none exported to {models_dir}/", registry_error
    )


def _from_registry(uri: str, models_dir: str | Path) -> tuple[ModelBundle, str]:
    mlflow_module(uri)
    from mlflow import MlflowClient  # lazy: MLflow takes 3-4 s to import

    champion = MlflowClient().get_model_version_by_alias(REGISTERED_NAME, CHAMPION)
    bundle, source = registered_champion(champion, uri, models_dir)
    return bundle, source


class MissingArtifactError(ConfigError):
    """The registry names a champion whose model files are gone (``mlruns/`` moved or deleted) and
    ``models/`` holds no export of it."""


def registered_champion(champion: Any, uri: str, models_dir: str | Path) -> tuple[ModelBundle, str]:
    """The bundle of registry version ``champion`` (an MLflow ``ModelVersion``) and where it came from: the
    export in ``models_dir`` when it is of that version, else the registry's artifact.

    Raises
    ------
    MissingArtifactError
        When the artifact is missing (the registry database kept, ``mlruns/`` moved or removed) and
        ``models_dir`` holds no export of that version: one line saying so and what to do.
    """
    import mlflow  # lazy: MLflow takes 3-4 s to import

    version, run_id = str(champion.version), str(champion.run_id)
    manifest = read_manifest(models_dir)
    if manifest and _same_version(manifest, version, run_id):
        bundle = load_bundle(models_dir)
        if bundle is not None:
            return bundle, _exported_source(uri, bundle, models_dir)
    try:
        with legacy_module_names():  # a champion logged before slem's modules moved
            model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}@{CHAMPION}")
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        if not _artifact_missing(exc):
            raise
        reason = (
            f"the registry {uri} names champion version {version}, but its model files are missing "
            f"({champion.source or 'no location'}): was mlruns/ moved or deleted? and {models_dir}/ holds "
            "no export of it"
        )
        raise MissingArtifactError(reason + _MISSING_ADVICE, reason=reason) from None
    loaded: ModelBundle = model.unwrap_python_model().bundle
    loaded.manifest = loaded.manifest | {
        "registered_name": REGISTERED_NAME,
        "registered_version": version,
        "run_id": run_id,
    }
    return loaded, f"registry {uri}, champion {loaded.version}"


_MISSING_ADVICE = (
    "; restore mlruns/ beside the registry, or train into a new store (--tracking-uri sqlite:///another.db)"
)


def _artifact_missing(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, FileNotFoundError) or "No such artifact" in text or "does not exist" in text


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


def store_exists(uri: str) -> bool:
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return not uri.startswith("file:")

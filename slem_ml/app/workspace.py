"""Where the app keeps a run: the database, and one folder of outputs per stored run.

The database holds what a run decided (invoices and their revisions, cleaning sessions, alerts, the audit
log); the run's folder ``<runs_dir>/run-<id>/`` holds its files (SPEC §7), the input as uploaded and the site
configuration it was scored with, so that a reload, the charts and the forecast find everything again.

:func:`upload` is the app's one way to score: :func:`~slem_ml.run.pipeline.score_file` into a fresh folder,
which then becomes the run's folder.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from slem_ml.atomic import staged_folder
from slem_ml.config.site import load_site
from slem_ml.errors import InputError, SlemError
from slem_ml.io.sources import is_parquet
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.registry import find_champion
from slem_ml.progress import Progress, no_progress
from slem_ml.run.pipeline import RunSettings, ScoredFile, score_file
from slem_ml.storage.users import User, role_allows

__all__ = ["AppConfig", "RUN_CONTRACTS", "run_folder", "run_input", "upload"]

RUN_CONTRACTS = "contracts.yaml"  # the site configuration a run was scored with, in its folder
_INPUT = "input"  # the uploaded readings keep their suffix: input.csv / input.parquet


@dataclass(frozen=True)
class AppConfig:
    """What ``slem serve`` was started with."""

    database_url: str = "sqlite:///slem.db"
    contracts: Path | None = None  # the site's contracts; None: each upload brings its own
    models_dir: Path = Path("models")
    tracking_uri: str | None = None  # MLflow store (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)
    runs_dir: Path = Path("app_runs")
    max_upload_mb: float = 500.0  # [MB] larger uploads are refused with a message
    #: The user everyone acts as when ``slem serve`` runs without sign-in (loopback, no users yet): an
    #: admin named so; ``None`` once users exist and everyone signs in.
    open_user: str | None = None


def champion_bundle(config: AppConfig) -> ModelBundle | None:
    """The champion's models for the app (registry, else ``models/``), or ``None`` when there is none."""
    return find_champion(config.tracking_uri, config.models_dir, required=False).bundle


def run_folder(config: AppConfig, run_id: int) -> Path:
    """The folder of stored run ``run_id`` (it may not exist: a run scored by ``slem score`` elsewhere)."""
    return config.runs_dir / f"run-{run_id}"


def run_input(folder: Path) -> Path | None:
    """The readings file a run was scored from, if its folder keeps it."""
    found = sorted(folder.glob(f"{_INPUT}.*"))
    return found[0] if found else None


def upload(
    config: AppConfig,
    user: User,
    readings: str | Path,
    *,
    contracts: str | Path | None = None,
    progress: Progress = no_progress,
) -> ScoredFile:
    """Score an uploaded readings file (CSV or Parquet, legacy or canonical) and store it as a run.

    ``contracts`` is a site configuration uploaded beside the readings; without it the configuration given
    to ``slem serve`` is used. Returns what :func:`~slem_ml.run.pipeline.score_file` did (the run's id,
    what the upload changed in the store); the outputs are in :func:`run_folder`.
    Raises :class:`SlemError` with one readable line: not allowed for the user's role, file too large, no
    contracts, unusable file or configuration.
    """
    if not role_allows(user, "upload") or user.client_id is not None:  # a run bills every client
        raise SlemError(f"{user.name} ({user.role}) may not upload readings; ask a manager")
    readings = Path(readings)
    size_mb = readings.stat().st_size / 1e6
    if size_mb > config.max_upload_mb:
        raise InputError(
            f"{readings.name} is {size_mb:,.0f} MB; uploads are limited to {config.max_upload_mb:,.0f} MB "
            "(score larger files with `slem score`)"
        )
    site_file = Path(contracts) if contracts else config.contracts
    if site_file is None:
        raise SlemError("no site contracts: upload a contracts.yaml beside the readings")
    site = load_site(site_file)
    with staged_folder(config.runs_dir, "upload") as staging:
        done = score_file(
            readings,
            site,
            out=staging / "out",
            database_url=config.database_url,
            models=lambda: find_champion(config.tracking_uri, config.models_dir, required=False),
            settings=RunSettings(actor=user.name),
            progress=progress,
        )
        if done.run_id is None:  # pragma: no cover - the app always has a database
            raise SlemError("the upload was scored but not stored")
        folder = staging / "out"
        shutil.copyfile(readings, folder / f"{_INPUT}{_suffix(readings)}")
        shutil.copyfile(site_file, folder / RUN_CONTRACTS)
        final = run_folder(config, done.run_id)
        if final.exists():  # the identical run uploaded again: fresh files replace the old ones
            shutil.rmtree(final)
        os.replace(folder, final)
    return done


def _suffix(path: Path) -> str:
    """``.parquet`` for Parquet (uploads may lose their name: by its magic bytes too), else ``.csv``."""
    return ".parquet" if is_parquet(path) else ".csv"

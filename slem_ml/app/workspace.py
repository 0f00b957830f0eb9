"""Where the app keeps a run: the database, and one folder of outputs per stored run.

The database holds what a run decided (invoices and their revisions, cleaning sessions, alerts, the audit
log); the run's folder ``<runs_dir>/run-<id>/`` holds its files (SPEC §7), the input as uploaded and the site
configuration it was scored with, so that a reload, the charts and the forecast find everything again.

:func:`upload` is the app's one way to score: :func:`~slem_ml.run.pipeline.score_file` into a hidden folder
``<runs_dir>/.upload-{pid}-…`` (:class:`RunFolder`). The run's files, input and contracts are complete there
and synced before the run is committed, and one rename makes them ``run-<id>`` after: a run is stored with
its folder or not at all (SPEC §11). :func:`recover_runs`, when ``slem serve`` starts, finishes what a kill
interrupted: it renames the complete folder of a run that was committed, removes every other leftover, and
rebuilds from the store the folder of the latest run if it has none (see its docstring for what cannot be
rebuilt).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from slem_ml.atomic import dead_staged, fsync_dir, fsync_tree, staged_folder
from slem_ml.billing.sessions import decimal_minutes
from slem_ml.config.site import load_site
from slem_ml.crashpoint import crash_point
from slem_ml.errors import InputError, SlemError
from slem_ml.io.schema import INVOICE_COLUMNS, INVOICE_LINE_COLUMNS, MS_PER_MINUTE
from slem_ml.io.sources import is_parquet
from slem_ml.models.bundle import ModelBundle
from slem_ml.models.registry import find_champion
from slem_ml.outputs.csvsafe import write_csv
from slem_ml.outputs.formatting import format_cleaning_sessions
from slem_ml.outputs.targets import Committed, RunLabel
from slem_ml.outputs.writer import OUTPUT_FILES, write_invoice_files
from slem_ml.progress import Progress, no_progress
from slem_ml.run.pipeline import RunSettings, ScoredFile, score_file
from slem_ml.storage import open_database
from slem_ml.storage.queries import latest_run, run_cleaning, run_invoices
from slem_ml.storage.service_days import stored_service_periods
from slem_ml.storage.upload import committed_runs
from slem_ml.storage.users import User, role_allows

__all__ = [
    "AppConfig",
    "REBUILT",
    "RUN_CONTRACTS",
    "RunFolder",
    "recover_runs",
    "run_folder",
    "run_input",
    "upload",
]

RUN_CONTRACTS = "contracts.yaml"  # the site configuration a run was scored with, in its folder
REBUILT = "rebuilt.txt"  # in a run folder rebuilt from the store: what it holds and what it lacks
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
        keep = {f"{_INPUT}{_suffix(readings)}": readings, RUN_CONTRACTS: Path(site_file)}
        return score_file(
            readings,
            site,
            out=RunFolder(config, staging, keep),
            database_url=config.database_url,
            models=lambda: find_champion(config.tracking_uri, config.models_dir, required=False),
            settings=RunSettings(actor=user.name),
            progress=progress,
        )


class RunFolder:
    """The folder of one uploaded run, as :func:`~slem_ml.run.pipeline.score_file` writes it (an
    :class:`~slem_ml.outputs.targets.OutputTarget`).

    The files are staged in ``staging/writing`` (in the upload's hidden folder) beside copies of ``keep``
    (the input as uploaded, the contracts); sealing syncs everything and renames it
    ``staging/r{run}-{fingerprint}``; after the commit one rename makes it ``run-<id>`` (a run stored
    again identically gets fresh files: its old folder is moved aside first). What a kill leaves is
    :func:`recover_runs`' to finish.
    """

    def __init__(self, config: AppConfig, staging: Path, keep: dict[str, Path]) -> None:
        self.config, self.staging, self.keep = config, staging, keep
        self._sealed: Path | None = None
        self._final: Path | None = None

    @property
    def out_dir(self) -> Path:
        return self._final if self._final is not None else self.staging / "out"

    def recover(self, committed: Committed | None) -> str:
        return ""  # the app's sweep is recover_runs, when slem serve starts: uploads may run side by side

    @contextlib.contextmanager
    def scratch(self, what: str) -> Iterator[Path]:
        folder = self.staging / what
        folder.mkdir()
        if what == "writing":  # the files to keep beside the outputs, copied before the transaction starts
            for name, source in self.keep.items():
                shutil.copyfile(source, folder / name)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def seal(self, staged: Path, run: RunLabel | None) -> None:
        if run is None:  # pragma: no cover - the app always has a database
            raise SlemError("the upload was scored but not stored")
        fsync_tree(staged)
        self._sealed = self.staging / run.tag
        os.rename(staged, self._sealed)
        fsync_dir(self.staging)
        self._final = run_folder(self.config, run.run_id)

    def install(self) -> None:
        if self._sealed is None or self._final is None:
            raise RuntimeError("install() before seal()")
        aside = self.staging / "replaced"
        if self._final.exists():  # the identical run uploaded again: fresh files replace the old ones
            os.rename(self._final, aside)
            crash_point("between-installs")
        try:
            os.rename(self._sealed, self._final)
        except BaseException:
            if aside.exists() and not self._final.exists():
                os.rename(aside, self._final)
            raise
        fsync_dir(self._final.parent)

    def discard(self) -> None:
        pass  # everything is in the upload's hidden folder, which goes when the upload ends


def recover_runs(config: AppConfig) -> str:
    """The app's sweep when ``slem serve`` starts: a line saying what it did, "" when there was nothing to do.

    * A run committed just before a kill, whose complete folder was left in ``<runs_dir>/.upload-…``, gets it
      installed as ``run-<id>``.
    * Every other leftover of a stopped upload (staging, batches, a half-written folder) is removed; those
      of an upload still running in another process are left alone.
    * The latest stored run — whose folder the app reads — gets a folder rebuilt from the store if it has
      none (a run scored by ``slem score``, or files lost before this sweep existed): its invoices as stored
      (``invoices.csv``, ``invoice_lines.csv``, ``invoices/`` HTML and PDF), its cleaning sessions, and the
      site contracts (``--contracts``, else those kept by the newest run folder that has them). The store
      cannot give back ``scored_readings.parquet``, ``alerts.csv``, ``quarantine.csv``, ``summary.json`` or
      the readings file as uploaded (the app then asks for an upload before it retrains or forecasts);
      ``rebuilt.txt`` in the folder says so. Without any contracts nothing is rebuilt and the line says why.
    """
    engine = open_database(config.database_url)
    try:
        installed, removed = _finish_uploads(config, engine)
        rebuilt = _rebuild_latest(config, engine)
    finally:
        engine.dispose()
    said = []
    if installed:
        said.append(f"installed the files of run {', '.join(map(str, installed))}, stored just before a stop")
    if removed:
        said.append(f"removed {removed} leftover folder(s) of stopped uploads")
    if rebuilt:
        said.append(rebuilt)
    return f"{config.runs_dir}: {'; '.join(said)}" if said else ""


def _finish_uploads(config: AppConfig, engine: Engine) -> tuple[list[int], int]:
    """Install the sealed folders of committed runs that have none; remove the stopped uploads' folders."""
    left = dead_staged(config.runs_dir, ["upload", "rebuild"])
    sealed: dict[RunLabel, Path] = {}
    for folder in left:
        for child in folder.iterdir() if folder.is_dir() and not folder.is_symlink() else ():
            label = RunLabel.parse(child.name)
            if label is not None and child.is_dir():
                sealed[label] = child
    stored = committed_runs(engine, [(label.run_id, label.fingerprint) for label in sealed])
    installed = []
    for label, child in sorted(sealed.items(), key=lambda item: item[0].run_id):
        final = run_folder(config, label.run_id)
        if (label.run_id, label.fingerprint) in stored and not final.exists():
            os.rename(child, final)
            fsync_dir(config.runs_dir)
            installed.append(label.run_id)
    for folder in left:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)
    return installed, len(left)


def _rebuild_latest(config: AppConfig, engine: Engine) -> str:
    """Rebuild the latest run's folder from the store if it has none (see :func:`recover_runs`)."""
    run = latest_run(engine)
    if run is None or run_folder(config, run.run_id).exists():
        return ""
    site_file = config.contracts or _kept_contracts(config)
    if site_file is None:
        return (
            f"run {run.run_id} has no folder and none can be rebuilt without the site's contracts "
            "(start slem serve with --contracts)"
        )
    site = load_site(site_file)
    revisions = run_invoices(engine, run.run_id)
    invoices = pd.DataFrame(
        [[getattr(r, column) for column in INVOICE_COLUMNS] for r in revisions], columns=list(INVOICE_COLUMNS)
    )
    frames = [r.line_items for r in revisions if len(r.line_items)]
    lines = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(INVOICE_LINE_COLUMNS))
    )
    # billing's exact minutes (3 decimals: what the content hash covers), which the store keeps as a double
    exact = [decimal_minutes(round(m * MS_PER_MINUTE)) for m in lines["minutes"].astype("float64").tolist()]
    lines = lines.assign(minutes=pd.Series(exact, index=lines.index, dtype=object))
    with engine.connect() as connection:
        service = stored_service_periods(connection, invoices["invoice_id"].astype(str))
    cleaning = run_cleaning(engine, run.run_id)
    with staged_folder(config.runs_dir, "rebuild") as staging:
        folder = staging / "out"
        folder.mkdir()
        write_invoice_files(invoices, lines, site, folder, service)
        write_csv(format_cleaning_sessions(cleaning, site), folder / OUTPUT_FILES["cleaning_sessions"])
        shutil.copyfile(site_file, folder / RUN_CONTRACTS)
        (folder / REBUILT).write_text(_rebuilt_text(run.run_id, site_file), encoding="utf-8")
        fsync_tree(folder)
        os.rename(folder, run_folder(config, run.run_id))
        fsync_dir(config.runs_dir)
    return f"rebuilt run {run.run_id}'s missing folder from the store (invoices, cleaning sessions)"


def _kept_contracts(config: AppConfig) -> Path | None:
    """The contracts kept by the newest run folder that has them."""
    found = config.runs_dir.glob(f"run-*/{RUN_CONTRACTS}")
    kept = [(int(p.parent.name[4:]), p) for p in found if p.parent.name[4:].isdigit()]
    return max(kept, key=lambda item: item[0])[1] if kept else None


def _rebuilt_text(run_id: int, site_file: Path) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Run {run_id}'s folder was missing; slem serve rebuilt it from the store on {when}.\n"
        "It holds the run's invoices as stored (invoices.csv, invoice_lines.csv, invoices/), its cleaning\n"
        f"sessions, and the site contracts from {site_file}.\n"
        "Not rebuilt (the store does not keep them): scored_readings.parquet, alerts.csv, quarantine.csv,\n"
        "summary.json and the readings file as uploaded. Upload the readings again to retrain or forecast.\n"
    )


def _suffix(path: Path) -> str:
    """``.parquet`` for Parquet (uploads may lose their name: by its magic bytes too), else ``.csv``."""
    return ".parquet" if is_parquet(path) else ".csv"

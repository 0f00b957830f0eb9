"""A readings file in, a training run logged and maybe promoted: what ``slem train``, ``training/train.py``
and the app's *Retrain* do (SPEC §5).

:func:`train_file` is the one way to run the job: read and validate, fit every model
(:func:`slem_ml.models.training.train_models`), log the run to MLflow, register it and promote it when it
beats the champion (:func:`slem_ml.models.tracking.log_training`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slem_ml.config.site import SiteConfig
from slem_ml.errors import SlemError
from slem_ml.io.reader import read_readings
from slem_ml.io.readings import ValidationReport
from slem_ml.models.tracking import TrackingOutcome, log_training
from slem_ml.models.training import TrainingConfig, TrainingRun, train_models
from slem_ml.progress import Progress, no_progress

__all__ = ["CannotTrainError", "TrainedFile", "train_file"]


class CannotTrainError(SlemError):
    """The readings cannot be trained on: ``"{file}: {reason}"``; :attr:`reason` says why without the file."""

    def __init__(self, source: str | Path, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{source}: {reason}")


@dataclass(frozen=True)
class TrainedFile:
    """What :func:`train_file` did: the input's validation report, the fitted run and the store's outcome."""

    report: ValidationReport
    run: TrainingRun
    outcome: TrackingOutcome


def train_file(
    path: str | Path,
    site: SiteConfig,
    *,
    tracking_uri: str | None,
    models_dir: str | Path,
    config: TrainingConfig | None = None,
    progress: Progress = no_progress,
) -> TrainedFile:
    """Train every model on the readings in ``path`` and log the run (see the module docstring).

    Raises :class:`CannotTrainError` when the file has no valid reading or too little history to train on.
    """
    validated = read_readings(path, site)
    if validated.report.rows_valid == 0:
        raise CannotTrainError(path, "no valid readings to train on")
    try:
        run = train_models(validated, site, config, progress=progress)
    except ValueError as exc:  # too little history, or nothing to tell apart
        raise CannotTrainError(path, str(exc)) from None
    outcome = log_training(run, tracking_uri=tracking_uri, models_dir=models_dir)
    return TrainedFile(validated.report, run, outcome)

"""Fixtures shared by the model tests: one small training run per test session (about 5 s)."""

from __future__ import annotations

import pytest

from slem_ml import schema as S
from slem_ml.generate import GeneratorConfig, default_site, generate
from slem_ml.reader import validate_frame
from slem_ml.result import Readings
from slem_ml.training import TrainingConfig, TrainingRun, train_models

SITE = default_site()
#: A zone kept out of training, to check how scoring treats a zone the models never saw.
HELD_OUT_ZONE_INDEX = -1


@pytest.fixture(scope="session")
def training_data():
    """Four fault-free weeks of 10 zones at 15 minutes, with the generator's truth."""
    return generate(GeneratorConfig(days=28, zones=10, step_minutes=15, seed=3, faults=False))


@pytest.fixture(scope="session")
def held_out_zone(training_data) -> str:
    return sorted(training_data.readings[S.ZONE_ID].astype(str).unique())[HELD_OUT_ZONE_INDEX]


@pytest.fixture(scope="session")
def readings(training_data, held_out_zone: str) -> Readings:
    """The training readings: every zone but the held-out one."""
    frame = training_data.readings
    return validate_frame(frame[frame[S.ZONE_ID].astype(str) != held_out_zone], SITE)


@pytest.fixture(scope="session")
def run(readings: Readings) -> TrainingRun:
    return train_models(readings, SITE, TrainingConfig(forecaster={"n_estimators": 40}))

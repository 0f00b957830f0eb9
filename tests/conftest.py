"""Fixtures shared by the tests: one small training run per test session (about 5 s), and databases.

``db_url`` runs a test on both backends (:data:`tests.databases.BACKENDS`): a SQLite file in ``tmp_path``, and
the local PostgreSQL server in a database created for this session and a schema created for each test, both
dropped afterwards; ``engine`` is that database opened (migrated) by slem.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from slem_ml.generator.generate import GeneratorConfig, default_site, generate
from slem_ml.io import schema as S
from slem_ml.io.reader import validate_frame
from slem_ml.io.readings import Readings
from slem_ml.models.training import TrainingConfig, TrainingRun, train_models
from slem_ml.storage import open_database
from tests.databases import BACKENDS, PG_HOST

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


# --- databases ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of its own for this test session on the local server, dropped at the end."""
    try:
        admin = psycopg.connect(f"postgresql://{PG_HOST}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST} is not reachable: {exc}")
    name = f"slem_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(f"postgresql://{PG_HOST}/test", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (as the connection's search_path)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'slem.db'}"
        return
    database = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"postgresql://{PG_HOST}/{database}", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield f"postgresql+psycopg://{PG_HOST}/{database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(f"postgresql://{PG_HOST}/{database}", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """The database of ``db_url``, created by slem's migrations; disposed afterwards."""
    engine = open_database(db_url)
    yield engine
    engine.dispose()

"""No crash window (SPEC §11, issue 15 item 5): a run is stored together with its files or not at all.

``slem score`` and the app's upload are run in a child process that kills itself with SIGKILL at a named
point (``SLEM_CRASH_AT``, :mod:`slem_ml.crashpoint`), or is killed with ``kill -9`` at a random moment;
then the sweep runs (:func:`slem_ml.run.pipeline.recover_outputs`, :func:`slem_ml.app.workspace.recover_runs`)
and the database and the folders must agree: the latest stored run's invoices are the files' ``invoices.csv``
(id, revision and content hash), every stored app run has its folder, and nothing a killed run left remains.
On SQLite and on the local PostgreSQL (``db_url``).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from slem_ml.app.workspace import REBUILT, RUN_CONTRACTS, AppConfig, recover_runs, run_folder, upload
from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.config.site import load_site
from slem_ml.crashpoint import CRASH_POINTS
from slem_ml.generator.generate import GeneratorConfig, generate, write_generated
from slem_ml.models.registry import Champion
from slem_ml.outputs.writer import OUTPUT_NAMES
from slem_ml.run.pipeline import recover_outputs, score_file
from slem_ml.storage import open_database
from slem_ml.storage.queries import latest_run, run_invoices
from slem_ml.storage.users import User

REPO = Path(__file__).resolve().parents[1]
SITE = load_site(SAMPLE_CONTRACTS)
MANAGER = User("mgr", "manager", None, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two readings files of one February, A (3rd–6th) then B (7th–10th): B revises A's invoices."""
    folder = tmp_path_factory.mktemp("inputs")
    data = generate(GeneratorConfig(start=dt.date(2025, 2, 3), days=8, zones=6, step_minutes=15, seed=3))
    whole = folder / "whole.csv"
    write_generated(data, whole)
    frame = pd.read_csv(whole, dtype=str)
    first = frame["timestamp"].str[:10] < "2025-02-07"
    a, b = folder / "a.csv", folder / "b.csv"
    frame[first].to_csv(a, index=False)
    frame[~first].to_csv(b, index=False)
    return a, b


def no_models() -> Champion:
    return Champion(None, "no champion in this test")


def _env(crash_at: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLEM_CRASH_AT", "MLFLOW_TRACKING_URI")}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(REPO)}
    return env | ({"SLEM_CRASH_AT": crash_at} if crash_at else {})


def slem_score(readings: Path, out: Path, url: str, *, crash_at: str | None = None) -> int:
    """``slem score`` in a child process (in ``out``'s parent: no models there); its exit code."""
    args = ["score", str(readings), "--contracts", str(SAMPLE_CONTRACTS), "--out", str(out), "--db", url]
    done = subprocess.run(
        [sys.executable, "-m", "slem_ml", *args],
        cwd=out.parent, env=_env(crash_at), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def score_here(readings: Path, out: Path, url: str) -> int:
    """``slem score`` in this process (faster: the imports are done); the stored run's id."""
    done = score_file(readings, SITE, out=out, database_url=url, models=no_models)
    assert done.run_id is not None
    return done.run_id


def latest(url: str) -> tuple[int | None, set[tuple[str, int, str]]]:
    """The latest stored run's id and its invoices (id, revision, content hash)."""
    engine = open_database(url)
    try:
        run = latest_run(engine)
        if run is None:
            return None, set()
        return run.run_id, {
            (r.invoice_id, r.revision, r.content_hash) for r in run_invoices(engine, run.run_id)
        }
    finally:
        engine.dispose()


def file_invoices(folder: Path) -> set[tuple[str, int, str]]:
    path = folder / "invoices.csv"
    if not path.exists():
        return set()
    with path.open(newline="", encoding="utf-8") as fh:
        return {(r["invoice_id"], int(r["revision"]), r["content_hash"]) for r in csv.DictReader(fh)}


def assert_agree(out: Path, url: str, *, adopted: bool = False) -> None:
    """The store and ``out`` agree, and nothing a killed run left remains in or beside ``out``
    (``adopted``: the files are an older slem's, adopted as they were, not named after a run)."""
    run_id, stored = latest(url)
    assert file_invoices(out) == stored
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []
    versions = out / ".versions"
    if run_id is None:  # nothing stored: no files either
        assert not any((out / name).exists() or (out / name).is_symlink() for name in OUTPUT_NAMES)
        assert not versions.exists() or sorted(os.listdir(versions)) == []
        return
    current = os.readlink(versions / "current")
    assert sorted(os.listdir(versions)) == sorted(["current", current])  # one version, no scratch
    assert current.endswith("-adopted") if adopted else f"-r{run_id}-" in current  # named after its run
    for name in OUTPUT_NAMES:  # SPEC §7's paths, each a link into the installed version
        assert (out / name).is_symlink() and (out / name).exists(), name
    assert len(list((out / "invoices").glob("*.pdf"))) == len(stored)


def test_the_crash_points_are_the_documented_ones() -> None:
    assert CRASH_POINTS == (
        "between-links",
        "before-commit",
        "after-commit",
        "after-switch",
        "between-installs",
    )


# --- slem score --------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["before-commit", "after-commit", "after-switch"])
def test_slem_score_killed_at_a_point_leaves_store_and_files_agreeing(
    point: str, inputs: tuple[Path, Path], db_url: str, tmp_path: Path
) -> None:
    a, b = inputs
    out = tmp_path / "out"
    first = score_here(a, out, db_url)
    files_a = file_invoices(out)
    assert slem_score(b, out, db_url, crash_at=point) == KILLED
    run_id, stored = latest(db_url)
    # what the kill left, before any sweep: the commit is the line between before and after
    if point == "before-commit":
        assert run_id == first and file_invoices(out) == files_a == stored
    elif point == "after-commit":  # the window the sweep closes: B stored, A's files still installed
        assert run_id == first + 1 and file_invoices(out) == files_a != stored
    else:  # B installed, A's superseded version not yet removed
        assert run_id == first + 1 and file_invoices(out) == stored
        assert len([p for p in (out / ".versions").iterdir() if p.name != "current"]) == 2
    said = recover_outputs(out, db_url)
    assert_agree(out, db_url)
    assert ("installed the files of run" in said) == (point == "after-commit")
    assert "leftover" in said  # the version a kill left (unstored, stored or superseded) went
    if point == "after-commit":
        score_here(b, out, db_url)  # and the next run works as ever
        assert_agree(out, db_url)


def test_a_first_run_killed_while_linking_leaves_nothing(
    inputs: tuple[Path, Path], db_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert slem_score(inputs[0], out, db_url, crash_at="between-links") == KILLED
    assert latest(db_url) == (None, set())
    made = [p for p in out.iterdir() if p.name != ".versions"]
    assert len(made) == 1 and made[0].is_symlink()  # one link made: it points nowhere yet,
    assert not made[0].exists()  # so the name reads as absent, as before the run
    recover_outputs(out, db_url)
    assert_agree(out, db_url)


def test_an_older_slems_folder_is_adopted_and_a_kill_while_adopting_loses_nothing(
    inputs: tuple[Path, Path], db_url: str, tmp_path: Path
) -> None:
    a, b = inputs
    score_here(a, tmp_path / "scored", db_url)
    out = tmp_path / "out"  # plain files, as slem wrote them before versions
    shutil.copytree(tmp_path / "scored", out, ignore=shutil.ignore_patterns(".versions"))
    shutil.rmtree(tmp_path / "scored")
    assert not (out / "invoices.csv").is_symlink()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert slem_score(b, out, db_url, crash_at="between-links") == KILLED
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # same bytes, some linked
    recover_outputs(out, db_url)
    assert_agree(out, db_url, adopted=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    score_here(b, out, db_url)
    assert_agree(out, db_url)


@pytest.fixture(scope="module")
def run_seconds(inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> float:
    """[s] How long a whole ``slem score`` of B takes here, start-up included."""
    folder = tmp_path_factory.mktemp("timing")
    clock = time.perf_counter()
    assert slem_score(inputs[1], folder / "out", f"sqlite:///{folder / 'slem.db'}") == 0
    return time.perf_counter() - clock


def test_slem_score_killed_at_a_random_moment_leaves_store_and_files_agreeing(
    inputs: tuple[Path, Path], run_seconds: float, db_url: str, tmp_path: Path
) -> None:
    a, b = inputs
    out = tmp_path / "out"
    score_here(a, out, db_url)
    took = run_seconds
    moment = random.Random().uniform(0.3, 1.0) * took  # most of a run's first 30 % is start-up
    args = ["score", str(b), "--contracts", str(SAMPLE_CONTRACTS), "--out", str(out), "--db", db_url]
    child = subprocess.Popen(
        [sys.executable, "-m", "slem_ml", *args],
        cwd=tmp_path, env=_env(None), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(moment)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    print(f"killed after {moment:.2f} s of a {took:.2f} s run")  # shown if the test fails
    recover_outputs(out, db_url)
    assert_agree(out, db_url)


# --- the app's upload --------------------------------------------------------------------------------


def app_config(tmp_path: Path, url: str, *, contracts: Path | None = SAMPLE_CONTRACTS) -> AppConfig:
    return AppConfig(
        database_url=url,
        contracts=contracts,
        models_dir=tmp_path / "models",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        runs_dir=tmp_path / "runs",
    )


def upload_in_child(config: AppConfig, readings: Path, crash_at: str) -> int:
    """The app's upload (:func:`slem_ml.app.workspace.upload`) in a child process; its exit code."""
    code = (
        "import datetime as dt, pathlib, sys\n"
        "from slem_ml.app.workspace import AppConfig, upload\n"
        "from slem_ml.storage.users import User\n"
        "url, runs, models, tracking, contracts, readings = sys.argv[1:]\n"
        "config = AppConfig(database_url=url, contracts=pathlib.Path(contracts),"
        " models_dir=pathlib.Path(models), tracking_uri=tracking, runs_dir=pathlib.Path(runs))\n"
        "upload(config, User('mgr', 'manager', None, dt.datetime(2025, 1, 1, tzinfo=dt.UTC)), readings)\n"
    )
    args = [
        config.database_url,
        config.runs_dir,
        config.models_dir,
        config.tracking_uri,
        config.contracts,
        readings,
    ]
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=config.runs_dir.parent, env=_env(crash_at), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def assert_app_agrees(config: AppConfig, url: str) -> None:
    """Every stored run has its folder, whole; the latest's invoices are its folder's; no leftovers."""
    engine = open_database(url)
    try:
        run = latest_run(engine)
        assert run is not None
        for run_id in range(1, run.run_id + 1):
            folder = run_folder(config, run_id)
            assert (folder / RUN_CONTRACTS).exists() and (folder / "input.csv").exists(), folder
            stored = {(r.invoice_id, r.revision, r.content_hash) for r in run_invoices(engine, run_id)}
            assert file_invoices(folder) == stored
    finally:
        engine.dispose()
    assert sorted(p.name for p in config.runs_dir.iterdir()) == [f"run-{i}" for i in range(1, run.run_id + 1)]


def test_the_apps_upload_killed_after_its_commit_gets_its_folder_at_start(
    inputs: tuple[Path, Path], db_url: str, tmp_path: Path
) -> None:
    a, b = inputs
    config = app_config(tmp_path, db_url)
    assert upload(config, MANAGER, a).run_id == 1
    assert upload_in_child(config, b, "after-commit") == KILLED
    assert latest(db_url)[0] == 2 and not run_folder(config, 2).exists()  # everyone's latest, no files
    said = recover_runs(config)
    assert said.startswith(f"{config.runs_dir}: installed the files of run 2")
    assert_app_agrees(config, db_url)
    # the same upload again is the identical run: killed between moving its old folder aside and the new in
    assert upload_in_child(config, b, "between-installs") == KILLED
    assert not run_folder(config, 2).exists()
    assert "installed the files of run 2" in recover_runs(config)
    assert_app_agrees(config, db_url)
    assert recover_runs(config) == ""  # nothing left to do


def test_the_apps_sweep_rebuilds_the_latest_runs_missing_folder_from_the_store(
    inputs: tuple[Path, Path], db_url: str, tmp_path: Path
) -> None:
    a, b = inputs
    config = app_config(tmp_path, db_url, contracts=None)
    upload(config, MANAGER, a, contracts=SAMPLE_CONTRACTS)
    run_id = score_here(b, tmp_path / "out", db_url)  # slem score into the app's store: no app folder
    assert recover_runs(config).endswith(f"rebuilt run {run_id}'s missing folder from the store (invoices, "
                                         "cleaning sessions)")  # fmt: skip
    folder = run_folder(config, run_id)
    assert file_invoices(folder) == latest(db_url)[1] == file_invoices(tmp_path / "out")
    assert (folder / "invoice_lines.csv").read_bytes() == (
        tmp_path / "out" / "invoice_lines.csv"
    ).read_bytes()
    assert sorted(p.name for p in (folder / "invoices").iterdir()) == sorted(
        p.name for p in (tmp_path / "out" / "invoices").iterdir()
    )
    # the contracts kept by run 1's folder, the only ones there are; what is missing is said
    assert (folder / RUN_CONTRACTS).read_bytes() == SAMPLE_CONTRACTS.read_bytes()
    assert "scored_readings.parquet" in (folder / REBUILT).read_text()
    assert recover_runs(config) == ""
    # without any contracts nothing can be rebuilt, and the line says why
    shutil.rmtree(config.runs_dir)
    assert "cannot be rebuilt" not in recover_runs(app_config(tmp_path, db_url, contracts=SAMPLE_CONTRACTS))
    shutil.rmtree(config.runs_dir)
    assert recover_runs(config).endswith(
        f"run {run_id} has no folder and none can be rebuilt without the site's contracts "
        "(start slem serve with --contracts)"
    )

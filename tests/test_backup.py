"""``slem backup`` and ``slem restore`` as an operator runs them (issue 15 item 4, SPEC §11).

One site is built once for the module with the real commands: 22 generated days of 6 zones, ``slem train``
(an MLflow store in SQLite with artifacts in ./mlruns, and the exported champion in ./models), ``slem
score`` (readings, invoices, cleaning sessions, runs). It is backed up, restored into a fresh database on
the local PostgreSQL server, backed up from there and restored into SQLite again: every table holds the same
rows, ``slem invoices export`` gives the same invoices (content hashes included), and the restored MLflow
registry serves the champion from the restored artifacts. A tampered, cut or wrongly keyed archive and a
non-empty target are refused with exit 2 and one line, and nothing is written.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pyrage import x25519
from sqlalchemy import create_engine, select

from slem_ml.config import SAMPLE_CONTRACTS
from slem_ml.models.registry import mlflow_module, quiet
from slem_ml.run import backup_job
from slem_ml.run.backup_archive import ArchiveError, check_members
from slem_ml.run.backup_crypto import (
    AGE_MAGIC,
    PASSPHRASE_MAGIC,
    BackupKey,
    decrypt_archive,
    read_identities,
)
from slem_ml.run.backup_job import SlemPlaces
from slem_ml.storage.backup import slem_tables
from slem_ml.storage.database import HEAD_REVISION
from tests.databases import PG_HOST
from tests.test_cli import slem

CONTRACTS = str(SAMPLE_CONTRACTS)
PASSPHRASE = "correct horse battery staple 7"


# --- the site -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a store filled by `slem score`, an MLflow store and a champion."""
    cwd = tmp_path_factory.mktemp("site")
    made = slem(
        "generate", "--out", "all.csv", "--days", "22", "--zones", "6", "--step-minutes", "15", "--seed", "4",
        cwd=cwd,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    trained = slem("train", "all.csv", "--contracts", CONTRACTS, *_mlflow(cwd), cwd=cwd)
    assert trained.returncode == 0, trained.stderr
    scored = slem("score", "all.csv", "--contracts", CONTRACTS, "--out", "out", *_mlflow(cwd), cwd=cwd)
    assert scored.returncode == 0, scored.stderr
    assert "new invoice revisions: INV-" in scored.stdout
    return cwd


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """An age key pair: the public key, and the key file `age-keygen` would write."""
    identity = x25519.Identity.generate()
    path = tmp_path_factory.mktemp("keys") / "key.txt"
    path.write_text(f"# created: for the tests\n# public key: {identity.to_public()}\n{identity}\n")
    return str(identity.to_public()), path


@pytest.fixture(scope="module")
def archive(site: Path, keys: tuple[str, Path]) -> Path:
    """The site's backup, encrypted to the test key."""
    done = slem("backup", "--out", "site.age", "--recipient", keys[0], *_mlflow(site), cwd=site)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return site / "site.age"


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh database with a random name on the local server, dropped afterwards."""
    name = f"slem_backup_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"postgresql://{PG_HOST}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST} is not reachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql+psycopg://{PG_HOST}/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _mlflow(cwd: Path) -> tuple[str, ...]:
    return ("--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}", "--models-dir", str(cwd / "models"))


def _tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every slem table, ordered by primary key, as SQLAlchemy reads them (Decimal money, UTC
    instants, bytes of blocks)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(select(table).order_by(*table.primary_key.columns))
                ]
                for table in slem_tables()
            }
    finally:
        engine.dispose()


def _export(cwd: Path, db: str, period: str = "2025-02") -> str:
    out = f"export-{period}"
    done = slem("invoices", "export", "--period", period, "--out", out, "--contracts", CONTRACTS, "--db", db,
                cwd=cwd)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (cwd / f"export-{period}" / "invoices.csv").read_text()


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- the round trip -------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_sqlite_to_postgresql_and_back_keeps_every_row_invoice_and_model(
    site: Path, archive: Path, keys: tuple[str, Path], postgres_db: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    original = _tables(f"sqlite:///{site / 'slem.db'}")
    assert len(original["invoices"]) >= 3 and len(original["reading_blocks"]) > 100

    # SQLite → PostgreSQL
    moved = tmp_path / "moved"
    moved.mkdir()
    into_pg = slem("restore", str(archive), "--identity", str(keys[1]), "--db", postgres_db, *_mlflow(moved),
                   cwd=moved)  # fmt: skip
    assert into_pg.returncode == 0, into_pg.stderr
    assert "every count matches the manifest" in into_pg.stdout
    assert _tables(postgres_db) == original

    # PostgreSQL → SQLite, with a passphrase this time
    monkeypatch.setenv("SLEM_TEST_PASSPHRASE", PASSPHRASE)
    again = slem("backup", "--out", "pg.age", "--passphrase-env", "SLEM_TEST_PASSPHRASE", "--db", postgres_db,
                 *_mlflow(moved), cwd=moved)  # fmt: skip
    assert again.returncode == 0, again.stderr
    back = tmp_path / "back"
    back.mkdir()
    into_sqlite = slem("restore", str(moved / "pg.age"), "--passphrase-env", "SLEM_TEST_PASSPHRASE",
                       "--db", f"sqlite:///{back / 'slem.db'}", *_mlflow(back), cwd=back)  # fmt: skip
    assert into_sqlite.returncode == 0, into_sqlite.stderr
    assert _tables(f"sqlite:///{back / 'slem.db'}") == original

    # the same invoices, as the store builds them now (content hashes included)
    exported = _export(site, f"sqlite:///{site / 'slem.db'}")
    assert "content_hash" in exported.splitlines()[0] and exported.count("INV-") >= 3
    assert _export(moved, postgres_db) == exported
    assert _export(back, f"sqlite:///{back / 'slem.db'}") == exported

    # the models, byte for byte; the MLflow registry serves the champion from the restored artifacts only
    for name in ("manifest.json", "slem-models.joblib"):
        assert (back / "models" / name).read_bytes() == (site / "models" / name).read_bytes()
    assert str(site) not in (back / "mlflow.db").read_bytes().decode("latin-1")
    (site / "mlruns").rename(site / "mlruns.away")
    try:
        model = _champion_from_registry(back)
    finally:
        (site / "mlruns.away").rename(site / "mlruns")
    assert type(model).__name__ == "PyFuncModel"

    # a restored PostgreSQL store takes new runs: its sequences were moved past the restored ids
    (moved / "new.csv").write_text(
        "timestamp,zone_id,client_id,power_w\n2025-03-03T19:00:00+01:00,HQ-F1-Z1,C001,50\n"
    )
    runs = len(original["score_runs"])
    scored = slem("score", "new.csv", "--contracts", CONTRACTS, "--out", "o", "--db", postgres_db,
                  *_mlflow(moved), cwd=moved)  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert f"stored: run {runs + 1} in" in scored.stdout

    # and it is no longer empty: a second restore into it is refused, and changes nothing
    before = _tables(postgres_db)
    elsewhere = (
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'none.db'}",
        "--models-dir",
        str(tmp_path / "none"),
    )
    twice = slem("restore", str(archive), "--identity", str(keys[1]), "--db", postgres_db, *elsewhere,
                 cwd=tmp_path)  # fmt: skip
    assert twice.returncode == 2
    assert twice.stderr.count("\n") == 1 and "is not empty (" in twice.stderr
    assert _tables(postgres_db) == before


def _champion_from_registry(cwd: Path) -> Any:
    """The champion as MLflow's registry loads it (not slem's exported copy)."""
    mlflow = mlflow_module(f"sqlite:///{cwd / 'mlflow.db'}")
    with quiet():
        return mlflow.pyfunc.load_model("models:/slem@champion")


# --- what the archive holds -------------------------------------------------------------------------------


def test_the_archive_is_an_owner_only_age_file_with_a_manifest_of_counts_and_hashes(
    site: Path, archive: Path, keys: tuple[str, Path]
) -> None:
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert archive.read_bytes().startswith(AGE_MAGIC)
    plain = io.BytesIO()
    decrypt_archive(archive, plain, read_identities(keys[1]))
    plain.seek(0)
    with tarfile.open(fileobj=plain, mode="r:") as tar:
        names = tar.getnames()
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    assert names[0] == "manifest.json"
    assert manifest["schema_revision"] == HEAD_REVISION and manifest["database"] == "sqlite"
    stored = _tables(f"sqlite:///{site / 'slem.db'}")
    assert {name: entry["rows"] for name, entry in manifest["tables"].items()} == {
        name: len(rows) for name, rows in stored.items()
    }
    # every reading of the generated file (all valid, each stored once)
    assert manifest["readings"] == len((site / "all.csv").read_text().splitlines()) - 1 == 12_528
    assert set(manifest["members"]) == set(names) - {"manifest.json"}
    assert {"mlflow/mlflow.db", "models/manifest.json", "models/slem-models.joblib"} <= set(names)
    assert all(len(entry["sha256"]) == 64 for entry in manifest["members"].values())
    assert not [p for p in site.iterdir() if p.name.startswith(".site.age")]  # no staging left behind


def test_a_member_that_differs_from_the_manifest_is_named() -> None:
    manifest = {"members": {"tables/users.parquet": {"sha256": "a" * 64}}}
    check_members(manifest, {"manifest.json": "x", "tables/users.parquet": "a" * 64})
    with pytest.raises(ArchiveError, match="tables/users.parquet does not match its SHA-256"):
        check_members(manifest, {"manifest.json": "x", "tables/users.parquet": "b" * 64})
    with pytest.raises(ArchiveError, match="holds models/extra, which its manifest does not list"):
        check_members(manifest, {"tables/users.parquet": "a" * 64, "models/extra": "c" * 64})


# --- refusals: exit 2, one line, nothing written ------------------------------------------------------------


@pytest.mark.parametrize("damage", ["one byte flipped", "cut short", "header byte flipped"])
def test_a_damaged_archive_is_refused_and_nothing_is_written(
    archive: Path, keys: tuple[str, Path], tmp_path: Path, damage: str
) -> None:
    data = bytearray(archive.read_bytes())
    if damage == "one byte flipped":
        data[len(data) // 2] ^= 0x01
    elif damage == "cut short":
        del data[-1000:]
    else:
        data[60] ^= 0x01  # inside the recipient stanza
    bad = tmp_path / "bad.age"
    bad.write_bytes(bytes(data))
    target = tmp_path / "target"
    target.mkdir()
    done = slem("restore", str(bad), "--identity", str(keys[1]), *_mlflow(target), cwd=target)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert ("damaged or cut short" if damage != "header byte flipped" else "damaged header") in done.stderr
    assert _listing(target) == []


def test_a_wrong_passphrase_is_refused_and_nothing_is_written(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLEM_TEST_PASSPHRASE", PASSPHRASE)
    made = slem("backup", "--out", str(tmp_path / "p.age"), "--passphrase-env", "SLEM_TEST_PASSPHRASE",
                *_mlflow(site), cwd=site)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "p.age").read_bytes().startswith(PASSPHRASE_MAGIC)
    target = tmp_path / "target"
    target.mkdir()
    monkeypatch.setenv("SLEM_TEST_PASSPHRASE", PASSPHRASE + "!")
    done = slem("restore", str(tmp_path / "p.age"), "--passphrase-env", "SLEM_TEST_PASSPHRASE",
                *_mlflow(target), cwd=target)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'p.age'}: wrong passphrase (or a damaged archive)\n"
    assert _listing(target) == []


def test_a_non_empty_target_is_refused_and_left_as_it_was(
    site: Path, archive: Path, keys: tuple[str, Path], tmp_path: Path
) -> None:
    before = (site / "slem.db").read_bytes()
    done = slem("restore", str(archive), "--identity", str(keys[1]), "--db", f"sqlite:///{site / 'slem.db'}",
                "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--models-dir", str(tmp_path / "m"),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "is not empty (audit_log has rows): restore only into an empty database" in done.stderr
    assert (site / "slem.db").read_bytes() == before
    assert _listing(tmp_path) == []


def test_an_existing_models_folder_is_not_overwritten(
    archive: Path, keys: tuple[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.txt").write_text("keep me")
    done = slem("restore", str(archive), "--identity", str(keys[1]), *_mlflow(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "is not empty: restore models only into an empty one" in done.stderr
    assert _listing(tmp_path) == ["models", "models/mine.txt"]


def test_a_newer_schema_revision_is_refused(
    site: Path, keys: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup_job, "HEAD_REVISION", "9999")  # as a later slem would write it
    key = BackupKey.for_recipients([keys[0]])
    places = SlemPlaces(f"sqlite:///{site / 'slem.db'}", f"sqlite:///{tmp_path / 'no.db'}", tmp_path / "none")
    backup_job.backup(tmp_path / "newer.age", key, places)
    target = tmp_path / "target"
    target.mkdir()
    done = slem("restore", str(tmp_path / "newer.age"), "--identity", str(keys[1]), *_mlflow(target),
                cwd=target)  # fmt: skip
    assert done.returncode == 2
    assert f"schema revision 9999, newer than this slem's {HEAD_REVISION}" in done.stderr
    assert done.stderr.count("\n") == 1 and _listing(target) == []


def test_a_killed_backups_plaintext_staging_is_swept_by_the_next(
    site: Path, keys: tuple[str, Path], tmp_path: Path
) -> None:
    # last night's, killed: no such process (pid_max is at most 4194304)
    dead = tmp_path / ".slem-20250301.age.backup-4999999-abcd1234"
    (dead / "tables").mkdir(parents=True)
    (dead / "tables" / "invoices.parquet").write_bytes(b"plaintext")
    alive = tmp_path / f".other.age.backup-{os.getpid()}-efgh5678"  # a running process's: left alone
    alive.mkdir()
    places = SlemPlaces(f"sqlite:///{site / 'slem.db'}", f"sqlite:///{tmp_path / 'no.db'}", tmp_path / "none")
    backup_job.backup(tmp_path / "slem-20250302.age", BackupKey.for_recipients([keys[0]]), places)
    assert _listing(tmp_path) == [alive.name, "slem-20250302.age"]


def test_encryption_is_mandatory(site: Path, tmp_path: Path) -> None:
    done = slem("backup", "--out", str(tmp_path / "plain.tar"), *_mlflow(site), cwd=site)
    assert done.returncode == 2
    assert done.stderr == (
        "error: a backup is always encrypted: give --recipient AGE_PUBLIC_KEY or --passphrase-env VARIABLE\n"
    )
    assert _listing(tmp_path) == []


def test_the_passphrase_never_goes_on_the_command_line(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # There is no option that takes the passphrase itself …
    given = slem("backup", "--out", str(tmp_path / "x.age"), "--passphrase", PASSPHRASE, cwd=site)
    assert given.returncode == 2 and not (tmp_path / "x.age").exists()
    # … only the name of the variable that holds it; it is not echoed anywhere nor kept in the archive.
    monkeypatch.setenv("SLEM_TEST_PASSPHRASE", PASSPHRASE)
    argv = ["backup", "--out", str(tmp_path / "p.age"), "--passphrase-env", "SLEM_TEST_PASSPHRASE",
            *_mlflow(site)]  # fmt: skip
    done = slem(*argv, cwd=site)
    assert done.returncode == 0, done.stderr
    assert not any(PASSPHRASE in arg for arg in argv)
    assert PASSPHRASE not in done.stdout + done.stderr
    assert PASSPHRASE.encode() not in (tmp_path / "p.age").read_bytes()
    monkeypatch.delenv("SLEM_TEST_PASSPHRASE")
    unset = slem(*argv, cwd=site)
    assert unset.returncode == 2
    assert (
        unset.stderr == "error: --passphrase-env SLEM_TEST_PASSPHRASE: no such environment variable is set\n"
    )


def test_a_key_that_is_not_an_age_key_is_named(site: Path, tmp_path: Path) -> None:
    done = slem("backup", "--out", str(tmp_path / "x.age"), "--recipient", "age1notakey", *_mlflow(site),
                cwd=site)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "error: --recipient 'age1notakey' is not an age public key (age1…)\n"
    assert _listing(tmp_path) == []

"""``slem backup`` and ``slem restore`` (SPEC §11): one encrypted archive of everything slem keeps.

**Backup** — every table of the database from one snapshot (:mod:`slem_ml.storage.backup`), the MLflow
store (:mod:`slem_ml.run.backup_mlflow`) and the exported models are staged in a private folder (0o700)
beside the archive, hashed into a manifest, and streamed as a tar (:mod:`slem_ml.run.backup_archive`)
through age encryption (:mod:`slem_ml.run.backup_crypto`) into the archive, created owner-only (0o600) and
shown by one rename once complete (:func:`slem_ml.atomic.atomic_path`). The staging folder is removed
whatever happens. Memory follows a chunk of rows or a MiB of a file, not the store.

**Restore** — in this order, so that a refusal writes nothing: the target database must hold no slem rows;
the archive is decrypted into a private staging folder (a wrong key, a flipped byte or a cut file stops
here); every member's SHA-256 is checked against the manifest, the manifest's schema revision against
this slem's and each table's columns against this schema; the MLflow and models targets must be empty.
Then the files are prepared beside their targets, the database is restored in one transaction (created by
slem's migrations first, counts checked before the commit), and only then are the files moved into place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from slem_ml import __version__
from slem_ml.atomic import atomic_path, staged_folder
from slem_ml.errors import SlemError
from slem_ml.progress import Progress, no_progress
from slem_ml.run.backup_archive import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ArchiveError,
    check_members,
    copy_hashed,
    extract_verified,
    read_manifest,
    sha256_file,
    tar_chunks,
)
from slem_ml.run.backup_crypto import BackupKey, decrypt_archive, encrypt_archive
from slem_ml.run.backup_mlflow import mlflow_db_path, move_artifact_root, stage_mlflow
from slem_ml.storage import open_database
from slem_ml.storage.backup import READINGS_TABLE, dump_tables
from slem_ml.storage.backup_load import RestoreError, check_table_files, load_tables, occupied_tables
from slem_ml.storage.database import HEAD_REVISION

__all__ = ["BackupDone", "RestoreDone", "SlemPlaces", "backup", "restore"]


@dataclass(frozen=True)
class SlemPlaces:
    """Where slem's state lives: the database URL, the MLflow tracking URI (None: the default) and the
    exported models' folder."""

    database_url: str
    tracking_uri: str | None
    models_dir: Path


@dataclass(frozen=True)
class BackupDone:
    """A written archive: where, how large [B], its manifest, and how long it took [s]."""

    path: Path
    size_bytes: int
    manifest: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class RestoreDone:
    """A restored archive: its manifest, rows per table, where the MLflow store and models went (None:
    the archive had none) and how long it took [s]."""

    manifest: dict[str, Any]
    rows: dict[str, int]
    mlflow_db: Path | None
    models_dir: Path | None
    seconds: float


def backup(out: Path, key: BackupKey, places: SlemPlaces, *, progress: Progress = no_progress) -> BackupDone:
    """Write the encrypted archive ``out`` of the database, MLflow store and models at ``places``."""
    clock = time.perf_counter()
    if out.is_dir():
        raise SlemError(f"--out {out}: is a folder; give the archive's file name")
    _refuse_missing_sqlite(places.database_url)
    _sweep_dead_staging(out.parent, ".*.backup-*", ".backup-")
    with _staging(out.parent, f"{out.name}.backup", "--out") as stage:
        engine = open_database(places.database_url)
        try:
            database = engine.dialect.name
            (stage / "tables").mkdir(mode=0o700)
            dumps = dump_tables(engine, stage / "tables", progress=progress)
        finally:
            engine.dispose()
        progress("mlflow", 0.0)
        mlflow, mlflow_note = stage_mlflow(places.tracking_uri, stage / "mlflow")
        models = _stage_models(places.models_dir, stage / "models")
        members: list[tuple[str, Path, str]] = []
        for table in dumps:
            members.append((f"tables/{table.name}.parquet", table.path, sha256_file(table.path)))
        if mlflow is not None:
            members.append(("mlflow/mlflow.db", mlflow.db, mlflow.db_sha256))
            members += [(f"mlflow/mlruns/{name}", path, sha) for name, path, sha in mlflow.artifacts]
        members += [(f"models/{name}", path, sha) for name, path, sha in models]
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "slem_version": __version__,
            "schema_revision": HEAD_REVISION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "database": database,
            "tables": {t.name: {"rows": t.rows, "member": f"tables/{t.name}.parquet"} for t in dumps},
            "readings": next(t.readings for t in dumps if t.name == READINGS_TABLE),
            "mlflow": None
            if mlflow is None
            else {
                "tracking_uri": mlflow.uri,
                "artifact_root": mlflow.artifact_root,
                "artifact_files": len(mlflow.artifacts),
            },
            "mlflow_note": mlflow_note,
            "models": {"files": len(models)} if models else None,
            "members": {name: {"sha256": sha, "bytes": path.stat().st_size} for name, path, sha in members},
        }
        manifest_path = stage / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        progress("encrypt", 0.0)
        entries = [(MANIFEST, manifest_path)] + [(name, path) for name, path, _ in members]
        with atomic_path(out, mode=0o600) as temp, temp.open("wb") as handle:
            encrypt_archive(tar_chunks(entries), handle, key)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_folder(out.parent)
    progress("encrypt", 1.0)
    return BackupDone(out, out.stat().st_size, manifest, time.perf_counter() - clock)


def restore(
    archive: Path, key: BackupKey, places: SlemPlaces, *, progress: Progress = no_progress
) -> RestoreDone:
    """Restore ``archive`` into the empty database, MLflow store and models folder of ``places``."""
    clock = time.perf_counter()
    if not archive.is_file():
        raise SlemError(f"{archive}: no such file")
    url = places.database_url
    _refuse_occupied(url)
    work = places.models_dir.resolve().parent
    _sweep_dead_staging(work, ".restore-*", ".restore-")
    with _staging(work, "restore", "the restore's work folder") as stage:
        progress("decrypt", 0.0)
        plain = stage / "archive.tar"
        with plain.open("xb") as handle:
            decrypt_archive(archive, handle, key)
        members = stage / "members"
        members.mkdir(mode=0o700)
        hashes = extract_verified(plain, members)
        plain.unlink()
        manifest = read_manifest(members, hashes)
        check_members(manifest, hashes)
        _check_revision(manifest)
        files = _table_files(manifest, members, hashes)
        check_table_files(files)
        mlflow_target = _mlflow_target(manifest, places.tracking_uri)
        models_target = _models_target(manifest, places.models_dir)
        _refuse_occupied(url)  # again, after the decryption: nobody filled it meanwhile
        created = _new_sqlite_file(url)
        with contextlib.ExitStack() as stack:
            moves: list[tuple[Path, Path]] = []
            if mlflow_target is not None:
                moves += _prepare_mlflow(stack, members, manifest, mlflow_target)
            if models_target is not None:
                moves.append(_prepare_tree(stack, members / "models", models_target))
            expected = {name: int(entry["rows"]) for name, entry in manifest["tables"].items()}
            try:
                engine = open_database(url)
                try:
                    rows = load_tables(engine, files, expected, progress=progress)
                finally:
                    engine.dispose()
            except BaseException:
                if created is not None:
                    for path in (created, *(created.with_name(created.name + s) for s in ("-wal", "-shm"))):
                        path.unlink(missing_ok=True)
                raise
            for source, target in moves:
                if target.is_dir():
                    target.rmdir()  # checked empty above
                os.replace(source, target)
    return RestoreDone(
        manifest,
        rows,
        mlflow_target,
        places.models_dir if models_target is not None else None,
        time.perf_counter() - clock,
    )


# --- internals --------------------------------------------------------------------------------------


def _table_files(manifest: dict[str, Any], members: Path, hashes: dict[str, str]) -> dict[str, Path]:
    files = {}
    for name, entry in manifest["tables"].items():
        member = entry.get("member") if isinstance(entry, dict) else None
        if member not in hashes:
            raise ArchiveError(f"the archive's manifest names no file of table {name}")
        files[name] = members / member
    return files


def _stage_models(folder: Path, stage: Path) -> list[tuple[str, Path, str]]:
    """Copies of the regular files under the models folder: (name under ``models/``, copy, SHA-256)."""
    if not folder.is_dir():
        return []
    staged = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.relative_to(folder).as_posix()
        copy = stage / name
        staged.append((name, copy, copy_hashed(path, copy)))
    return staged


def _refuse_missing_sqlite(url: str) -> None:
    parsed = make_url(url) if "://" in url else None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path and path != ":memory:" and not Path(path).is_file():
            raise SlemError(f"no slem database at {url}: nothing to back up")


def _refuse_occupied(url: str) -> None:
    occupied = occupied_tables(url)
    if occupied:
        shown = make_url(url).render_as_string(hide_password=True)
        raise RestoreError(
            f"{shown} is not empty ({occupied[0]} has rows): restore only into an empty database"
        )


def _new_sqlite_file(url: str) -> Path | None:
    """The SQLite file restore will create, if it does not exist yet (removed again on failure)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def _check_revision(manifest: dict[str, Any]) -> None:
    revision = str(manifest.get("schema_revision"))
    if revision == HEAD_REVISION:
        return
    if revision.isdigit() and len(revision) == len(HEAD_REVISION) and revision < HEAD_REVISION:
        raise RestoreError(
            f"the archive has schema revision {revision} (slem {manifest.get('slem_version')}); this slem "
            f"restores revision {HEAD_REVISION}: restore it with that slem, then upgrade"
        )
    raise RestoreError(
        f"the archive has schema revision {revision}, newer than this slem's {HEAD_REVISION} "
        f"(written by slem {manifest.get('slem_version')}): upgrade slem"
    )


def _mlflow_target(manifest: dict[str, Any], tracking_uri: str | None) -> Path | None:
    if manifest.get("mlflow") is None:
        return None
    db = mlflow_db_path(tracking_uri)
    if db is None:
        raise RestoreError("the archive holds an MLflow store: give a SQLite --tracking-uri (sqlite:///PATH)")
    if db.exists() and db.stat().st_size > 0:
        raise RestoreError(f"the MLflow store {db} exists: restore only where there is none")
    artifacts = db.resolve().parent / "mlruns"
    if artifacts.exists() and (not artifacts.is_dir() or any(artifacts.iterdir())):
        raise RestoreError(f"{artifacts} is not empty: restore the MLflow store only where there is none")
    return db


def _models_target(manifest: dict[str, Any], models_dir: Path) -> Path | None:
    if not manifest.get("models"):
        return None
    if models_dir.exists() and (not models_dir.is_dir() or any(models_dir.iterdir())):
        raise RestoreError(f"--models-dir {models_dir} is not empty: restore models only into an empty one")
    return models_dir


def _prepare_mlflow(
    stack: contextlib.ExitStack, members: Path, manifest: dict[str, Any], db: Path
) -> list[tuple[Path, Path]]:
    """The MLflow database in its temporary file beside ``db`` (renamed when the stack closes without an
    error) with artifact paths moved to ``db``'s folder's ``mlruns/``; the artifacts' move."""
    artifacts = db.resolve().parent / "mlruns"
    temp = stack.enter_context(atomic_path(db, mode=0o600))
    shutil.copyfile(members / "mlflow" / "mlflow.db", temp)
    old_root = manifest["mlflow"].get("artifact_root")
    if old_root:
        move_artifact_root(temp, old_root, str(artifacts))
    if (members / "mlflow" / "mlruns").is_dir():
        return [_prepare_tree(stack, members / "mlflow" / "mlruns", artifacts)]
    return []


def _prepare_tree(stack: contextlib.ExitStack, source: Path, target: Path) -> tuple[Path, Path]:
    """A copy of ``source`` in a hidden folder beside ``target``, and the move that puts it in place."""
    staged = stack.enter_context(staged_folder(target.resolve().parent, f"{target.name}.restore"))
    shutil.copytree(source, staged / "tree")
    return staged / "tree", target


@contextlib.contextmanager
def _staging(parent: Path, prefix: str, what: str) -> Iterator[Path]:
    """:func:`~slem_ml.atomic.staged_folder`, with a folder that cannot be made said in one line."""
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(staged_folder(parent, prefix))
        except OSError as exc:
            raise SlemError(f"{what}: cannot write in {parent} ({exc.strerror})") from None
        yield folder


def _sweep_dead_staging(parent: Path, pattern: str, tag: str) -> None:
    """Remove the staging folders in ``parent`` matching ``pattern`` (``….backup-{pid}-…``,
    ``.restore-{pid}-…``) of a backup or restore that was killed (their process is gone): they hold
    plaintext. A folder of a running process is left alone."""
    if not parent.is_dir():
        return
    for path in parent.glob(pattern):
        pid = path.name.rsplit(tag, 1)[-1].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OverflowError):
            continue  # another user's process, or not a process id


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

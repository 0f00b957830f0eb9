"""The MLflow store in a backup (SPEC §11): its SQLite tracking database and the ``mlruns/`` artifacts.

:func:`stage_mlflow` copies the tracking database with SQLite's online backup API (a consistent copy even
while a training run writes to it) and the artifact folder its experiments point at. MLflow keeps absolute
artifact paths in its database (``experiments.artifact_location``, ``runs.artifact_uri``, the registry's
``source`` and ``storage_location``), so :func:`move_artifact_root` rewrites them in a restored copy when
the artifacts land in another folder. Only a local SQLite store is backed up; any other store (an MLflow
server, a database server) is backed up with its own tools, and the backup says so.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from slem_ml.errors import SlemError
from slem_ml.models.registry import resolve_tracking_uri
from slem_ml.run.backup_archive import copy_hashed, sha256_file

__all__ = ["StagedStore", "mlflow_db_path", "move_artifact_root", "stage_mlflow"]

_SQLITE = "sqlite:///"


@dataclass(frozen=True)
class StagedStore:
    """A staged copy of an MLflow store: the database, and its artifacts as (name under ``mlruns/``,
    staged file, SHA-256)."""

    uri: str
    db: Path
    db_sha256: str
    artifact_root: str | None
    artifacts: list[tuple[str, Path, str]] = field(default_factory=list)


def mlflow_db_path(tracking_uri: str | None) -> Path | None:
    """The SQLite file of a ``sqlite:///`` tracking URI (after :func:`resolve_tracking_uri`), else None."""
    uri = resolve_tracking_uri(tracking_uri)
    if not uri.startswith(_SQLITE):
        return None
    return Path(uri.removeprefix(_SQLITE).split("?", 1)[0])


def stage_mlflow(tracking_uri: str | None, folder: Path) -> tuple[StagedStore | None, str]:
    """Copy the MLflow store into ``folder``; returns it (None when there is nothing to copy) and a few
    words on what was or was not copied."""
    uri = resolve_tracking_uri(tracking_uri)
    path = mlflow_db_path(uri)
    if path is None:
        return None, f"not included: {uri.split('://', 1)[0]}:// is not a local SQLite store"
    if not path.is_file():
        return None, f"none at {uri}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    copy = folder / "mlflow.db"
    _copy_sqlite(path, copy)
    root = _artifact_root(copy)
    artifacts: list[tuple[str, Path, str]] = []
    if root is not None and Path(root).is_dir():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                source = Path(dirpath) / name
                if not source.is_file() or source.is_symlink():
                    continue
                relative = source.relative_to(root).as_posix()
                staged = folder / "mlruns" / relative
                artifacts.append((relative, staged, copy_hashed(source, staged)))
    store = StagedStore(uri, copy, sha256_file(copy), root, artifacts)
    return store, f"{uri}, {len(artifacts):,} artifact files"


def move_artifact_root(db: Path, old_root: str, new_root: str) -> int:
    """In the MLflow database ``db``, rewrite every text value that starts with the folder ``old_root``
    (as a path or a ``file://`` URI) to start with ``new_root`` instead; returns the values changed."""
    if old_root.rstrip("/") == new_root.rstrip("/"):
        return 0
    pairs = [
        (old_root.rstrip("/"), new_root.rstrip("/")),
        (Path(old_root).as_uri(), Path(new_root).as_uri()),
    ]
    changed = 0
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
            for column in columns:
                name, declared = column[1], str(column[2]).upper()
                if not any(word in declared for word in ("CHAR", "TEXT", "CLOB")):
                    continue
                for old, new in pairs:
                    cursor = connection.execute(
                        f'UPDATE "{table}" SET "{name}" = :new || substr("{name}", length(:old) + 1) '
                        f'WHERE "{name}" = :old OR substr("{name}", 1, length(:old) + 1) = :old || \'/\'',
                        {"old": old, "new": new},
                    )
                    changed += cursor.rowcount
    return changed


# --- internals --------------------------------------------------------------------------------------


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API), owner-only."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with (
            contextlib.closing(sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
    except sqlite3.Error as exc:
        raise SlemError(f"cannot copy the MLflow store {source}: {exc}") from None


def _artifact_root(db: Path) -> str | None:
    """The one local folder the store's experiments keep their artifacts under (``…/mlruns``), or None."""
    try:
        with contextlib.closing(sqlite3.connect(db)) as connection:
            locations = [r[0] for r in connection.execute("SELECT artifact_location FROM experiments")]
    except sqlite3.Error:
        return None  # not an MLflow store with experiments yet
    roots = set()
    for location in locations:
        if not location:
            continue
        parsed = urlparse(location)
        if parsed.scheme not in ("", "file"):
            continue  # remote artifacts: not ours to copy
        local = unquote(parsed.path) if parsed.scheme == "file" else location
        roots.add(str(Path(local).parent))
    if len(roots) > 1:
        raise SlemError(
            f"the MLflow store keeps artifacts in {len(roots)} folders ({', '.join(sorted(roots)[:3])}): "
            "slem backup copies one artifact folder"
        )
    return roots.pop() if roots else None

"""Files that appear whole or not at all: the one way slem writes a file or a set of files.

:func:`atomic_path` gives a temporary path beside the target and renames it into place in one step;
:func:`staged_folder` gives a hidden folder beside the target to write a set of files into, removed
afterwards whatever happens (the caller moves what it keeps out of it first). A failure, an exception or
Ctrl-C leaves what was there before.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "staged_folder"]


@contextlib.contextmanager
def atomic_path(path: str | Path, *, mode: int = 0o666) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (created if needed) to write one file to; when the block ends
    without an error it replaces ``path`` in one rename, otherwise it is removed.

    The file is created with ``mode`` less the process umask, as ``open()`` would create it (0o600 for a
    file only its owner may read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            break
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(parent: str | Path, prefix: str) -> Iterator[Path]:
    """A new hidden folder ``parent/.{prefix}-XXXX`` (``parent`` created if needed) to stage files in; it
    and whatever is still in it are removed when the block ends."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""Files that appear whole or not at all: the one way slem writes a file or a set of files.

:func:`atomic_path` gives a temporary path beside the target and renames it into place in one step;
:func:`staged_folder` gives a hidden folder beside the target to write a set of files into, removed
afterwards whatever happens (the caller moves what it keeps out of it first). A failure, an exception or
Ctrl-C leaves what was there before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "staged_folder"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (created if needed) to write one file to; when the block ends
    without an error it replaces ``path`` in one rename, otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temp = Path(name)
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

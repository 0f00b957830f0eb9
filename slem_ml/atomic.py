"""Files that appear whole or not at all: the one way slem writes a file or a set of files.

:func:`atomic_path` gives a temporary path beside the target and renames it into place in one step;
:func:`staged_folder` gives a hidden folder beside the target to write a set of files into, removed
afterwards whatever happens (the caller moves what it keeps out of it first). A failure, an exception or
Ctrl-C leaves what was there before. :func:`fsync_tree` makes a set of files durable before it is installed.

A folder whose files are replaced as a set, run after run, is a :class:`VersionedFolder`: every set is a
complete version in ``FOLDER/.versions/``, and one rename of a symbolic link installs it (see the class).

A kill (``kill -9``, a power cut) skips every ``finally``: what it leaves is swept later.
:func:`staged_folder` names its folder after the process that made it (``.{prefix}-{pid}-XXXX``), so that
:func:`sweep_staged` removes only the leftovers of processes that are gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from slem_ml.crashpoint import crash_point

__all__ = [
    "Version",
    "VersionedFolder",
    "atomic_path",
    "dead_staged",
    "fsync_dir",
    "fsync_tree",
    "staged_folder",
    "sweep_staged",
]

#: Staged folders of this process that are still in use (absolute paths): never swept.
_LIVE: set[str] = set()


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
    """A new hidden folder ``parent/.{prefix}-{pid}-XXXX`` (``parent`` created if needed) to stage files in;
    it and whatever is still in it are removed when the block ends."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{prefix}-{os.getpid()}-", dir=parent))
    _LIVE.add(str(folder.absolute()))
    try:
        yield folder
    finally:
        _LIVE.discard(str(folder.absolute()))
        shutil.rmtree(folder, ignore_errors=True)


def dead_staged(parent: str | Path, prefixes: Iterable[str]) -> list[Path]:
    """The entries ``parent/.{prefix}-…`` whose process is gone (or that name none: an older slem's), sorted;
    a staged folder of this process that is still in use, or of another running process, is not listed."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    heads = tuple(f".{prefix}-" for prefix in prefixes)
    found = []
    for entry in parent.iterdir():
        head = next((h for h in heads if entry.name.startswith(h)), None)
        if head is not None and not _in_use(entry, entry.name[len(head) :].split("-", 1)[0]):
            found.append(entry)
    return sorted(found)


def sweep_staged(parent: str | Path, prefixes: Iterable[str]) -> list[Path]:
    """Remove :func:`dead_staged` leftovers (folders, files or links); returns what was removed."""
    gone = dead_staged(parent, prefixes)
    for entry in gone:
        _remove(entry)
    return gone


def fsync_tree(path: str | Path) -> None:
    """Flush ``path`` to disk: every file under it and every folder (symbolic links are not followed)."""
    path = Path(path)
    if path.is_symlink():
        return
    if not path.is_dir():
        _fsync(path, directory=False)
        return
    for root, _, files in os.walk(path):
        for name in files:
            file = os.path.join(root, name)
            if not os.path.islink(file):
                _fsync(file, directory=False)
        _fsync(root, directory=True)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename or a new name in it) to disk."""
    _fsync(path, directory=True)


# --- versioned folders -----------------------------------------------------------------------------------

VERSIONS = ".versions"
CURRENT = "current"
_VERSION = re.compile(r"^v(\d{6,})-p(\d+)-(.+)$")
#: Scratch names inside ``.versions`` (a link being made, a folder moved aside, a folder being adopted).
_SCRATCH = ("link", "trash", "switch", "adopt")


@dataclass(frozen=True)
class Version:
    """One complete version of a :class:`VersionedFolder`: ``.versions/v{seq}-p{pid}-{tag}``."""

    path: Path
    seq: int  # 1, 2, … in the order versions were made
    pid: int  # the process that made it
    tag: str  # what it belongs to, for the caller (e.g. the stored run)

    @classmethod
    def parse(cls, path: Path) -> Version | None:
        match = _VERSION.match(path.name)
        if match is None or path.is_symlink() or not path.is_dir():
            return None
        return cls(path, int(match[1]), int(match[2]), match[3])


class VersionedFolder:
    """A folder whose files (``names``) are installed as a set by one atomic step.

    Layout: each set is a complete folder ``FOLDER/.versions/v000007-p1234-TAG/``;
    ``FOLDER/.versions/current`` is a relative symbolic link to the installed one; every name is a link
    ``FOLDER/NAME → .versions/current/NAME``, made once. Readers keep using ``FOLDER/invoices.csv``; a new
    version is installed by renaming a new ``current`` link over the old one, so every name changes at once.
    Names the folder holds that are not in ``names`` (a user's own files) are never touched.

    The steps: :meth:`add` syncs a staged folder, moves it into ``.versions`` and makes the links (which
    point nowhere while a name has no installed file yet — as before, it is absent); :meth:`switch`
    installs; :meth:`prune` removes the superseded versions and what killed processes left. :meth:`recover`
    is the sweep at start: it installs the newest version that is newer than the installed one and that
    ``committed`` vouches for (its run was stored, then the process stopped) and prunes the rest. A folder
    written by an older slem (plain files) is adopted: its files become the first version (hard links, no
    copy) before anything new is added.
    """

    def __init__(self, path: str | Path, names: Iterable[str]) -> None:
        self.path = Path(path)
        self.names = tuple(names)
        self.versions = self.path / VERSIONS

    def current(self) -> Version | None:
        """The installed version, if any."""
        link = self.versions / CURRENT
        if not link.is_symlink():
            return None
        return Version.parse(self.versions / os.readlink(link))

    def all_versions(self) -> list[Version]:
        """Every complete version, oldest first."""
        if not self.versions.is_dir():
            return []
        found = (Version.parse(p) for p in self.versions.iterdir())
        return sorted((v for v in found if v is not None), key=lambda v: v.seq)

    def add(self, staged: Path, tag: str) -> Version:
        """Make ``staged`` (a folder on the same file system) the next version, synced to disk, with a link
        for each of its names in the folder; nothing visible changes until :meth:`switch`."""
        created = not self.path.exists()
        self.versions.mkdir(parents=True, exist_ok=True)
        self._adopt()
        fsync_tree(staged)
        version = self._place(staged, tag)
        for name in self.names:
            if (version.path / name).exists() or (version.path / name).is_symlink():
                self._link(name)
        fsync_dir(self.path)
        if created:
            fsync_dir(self.path.absolute().parent)
        return version

    def carry(self, staged: Path) -> None:
        """Hard-link into ``staged`` the installed version's names that ``staged`` lacks (a partial set, such
        as an invoice export, keeps the rest of the folder as it is)."""
        current = self.current()
        if current is None:
            return
        for name in self.names:
            source, target = current.path / name, staged / name
            if source.exists() and not (target.exists() or target.is_symlink()):
                _link_tree(source, target)

    def install(self, version: Version) -> list[Path]:
        """:meth:`switch` to ``version``, then :meth:`prune`; returns what was pruned."""
        self.switch(version)
        crash_point("after-switch")
        self._relink()
        return self.prune()

    def discard(self, version: Version) -> None:
        """Remove a version that will not be installed, and the links made for it that point nowhere."""
        shutil.rmtree(version.path, ignore_errors=True)
        for name in self.names:
            if self._is_ours(name) and not (self.path / name).exists():
                (self.path / name).unlink()

    def switch(self, version: Version) -> None:
        """Install ``version``: one rename of the ``current`` link, synced."""
        temporary = self.versions / f".switch-{os.getpid()}-{secrets.token_hex(4)}"
        os.symlink(version.path.name, temporary)
        os.replace(temporary, self.versions / CURRENT)
        fsync_dir(self.versions)

    def prune(self) -> list[Path]:
        """Remove every version but the installed one (except those another running process is making),
        scratch left by killed processes and links that point at nothing of the installed version."""
        current = self.current()
        removed = sweep_staged(self.versions, _SCRATCH)
        for version in self.all_versions():
            installed = current is not None and version.path == current.path
            if not installed and not _in_use(version.path, str(version.pid)):
                shutil.rmtree(version.path, ignore_errors=True)
                removed.append(version.path)
        for name in self.names:
            if self._is_ours(name) and not (self.path / name).exists():
                (self.path / name).unlink()
        return removed

    def recover(self, committed: Callable[[list[str]], set[str]] | None) -> tuple[Version | None, list[Path]]:
        """The sweep at start (see the class): returns the version it installed, if any, and what it removed.

        ``committed(tags)`` returns the tags whose data was committed; ``None``: nothing was (no database)."""
        if not self.versions.is_dir():
            return None, []
        current = self.current()
        newer = [
            v
            for v in self.all_versions()
            if (current is None or v.seq > current.seq) and not _in_use(v.path, str(v.pid))
        ]
        vouched = committed([v.tag for v in newer]) if committed is not None and newer else set()
        chosen = max((v for v in newer if v.tag in vouched), key=lambda v: v.seq, default=None)
        if chosen is not None:
            self.switch(chosen)
        self._relink()
        return chosen, self.prune()

    # --- internals ---

    def _relink(self) -> None:
        """A link for every name the installed version has (those a kill interrupted: the first run, an
        adoption; or a link another process's sweep removed while it pointed nowhere yet)."""
        for name in self.names:
            if (self.versions / CURRENT / name).exists() and not self._is_ours(name):
                self._link(name)

    def _place(self, staged: Path, tag: str) -> Version:
        seq = max((v.seq for v in self.all_versions()), default=0) + 1
        path = self.versions / f"v{seq:06d}-p{os.getpid()}-{tag}"
        os.rename(staged, path)
        fsync_dir(self.versions)
        version = Version.parse(path)
        assert version is not None
        return version

    def _adopt(self) -> None:
        """An older slem's plain files become the installed version (hard links), then links."""
        plain = [n for n in self.names if (self.path / n).exists() and not (self.path / n).is_symlink()]
        if not plain or self.current() is not None:
            return
        with staged_folder(self.versions, "adopt") as staged:
            for name in plain:
                _link_tree(self.path / name, staged / name)
            fsync_tree(staged)
            self.switch(self._place(staged, "adopted"))
        for name in plain:
            self._link(name)

    def _is_ours(self, name: str) -> bool:
        link = self.path / name
        return link.is_symlink() and os.readlink(link) == f"{VERSIONS}/{CURRENT}/{name}"

    def _link(self, name: str) -> None:
        """``FOLDER/name → .versions/current/name``, replacing what is there in one rename (a folder of an
        older slem is first moved aside: the name is absent for that moment)."""
        if self._is_ours(name):
            return
        target = self.path / name
        temporary = self.versions / f".link-{os.getpid()}-{secrets.token_hex(4)}"
        os.symlink(f"{VERSIONS}/{CURRENT}/{name}", temporary)
        if target.is_dir() and not target.is_symlink():
            aside = self.versions / f".trash-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, aside)
            os.replace(temporary, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(temporary, target)
        crash_point("between-links")


def _link_tree(source: Path, target: Path) -> None:
    """A copy of ``source`` (file or folder) at ``target`` made of hard links (copies where the file system
    has none)."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(source), str(target))


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _in_use(path: Path, pid_text: str) -> bool:
    """Whether the process named by ``pid_text`` (from a staged name) still works on ``path``."""
    if not pid_text.isdigit():
        return False  # an older slem's name, without a process id
    pid = int(pid_text)
    if pid == os.getpid():
        return str(path.absolute()) in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's running process
        return True
    except OverflowError:  # pragma: no cover - not a process id
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: str | Path, *, directory: bool) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a folder; its files are synced all the same
        if not (directory and exc.errno in (errno.EINVAL, errno.EBADF)):
            raise
    finally:
        os.close(fd)

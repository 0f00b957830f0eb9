"""Where a run's files go and how they are installed, so that a run is stored with its files or not at all.

An :class:`OutputTarget` is what the score job (:func:`slem_ml.run.pipeline.score_file`) writes to. The job
stages the files in the target's ``scratch`` folder; inside the database transaction it seals them (synced
to disk, named after the stored run: a :class:`RunLabel`); it commits; only then it installs them, in one
atomic step. A kill between the commit and the install leaves a sealed set whose run is stored: the sweep
at the next start (``recover``) asks the database (``committed``) and installs it; whatever else a kill
left is removed.

:class:`OutputFolder` is ``slem score --out DIR`` (and ``slem invoices export``): a
:class:`~slem_ml.atomic.VersionedFolder` whose versions are named after their run. The app keeps one folder
per run instead (``slem_ml.app.workspace``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from slem_ml.atomic import Version, VersionedFolder, staged_folder, sweep_staged
from slem_ml.errors import SlemError

__all__ = ["Committed", "OutputFolder", "OutputTarget", "RunLabel"]

_LABEL = re.compile(r"^r(\d+)-([0-9a-f]{64})$")


@dataclass(frozen=True)
class RunLabel:
    """A stored run as its sealed files name it: its id and its fingerprint (an id alone may be reused by
    SQLite after a rollback; the pair names one run, or an identical one)."""

    run_id: int
    fingerprint: str  # sha256 hex of the run's content (``score_runs.fingerprint``)

    @property
    def tag(self) -> str:
        return f"r{self.run_id}-{self.fingerprint}"

    @classmethod
    def parse(cls, tag: str) -> RunLabel | None:
        match = _LABEL.match(tag)
        return cls(int(match[1]), match[2]) if match else None


#: Which of these runs the database holds (committed); what the sweep asks before it installs anything.
Committed = Callable[[list[RunLabel]], set[RunLabel]]


class OutputTarget(Protocol):
    """Where a run's files go (see the module docstring)."""

    @property
    def out_dir(self) -> Path:
        """Where the files are read once installed."""
        ...

    def recover(self, committed: Committed | None) -> str:
        """The sweep before a run: install what a kill after a commit left, remove the rest; a line saying
        what was done ("" when nothing). ``committed`` None: no database."""
        ...

    def scratch(self, what: str) -> AbstractContextManager[Path]:
        """A private working folder on the target's file system, removed at the end (``writing``,
        ``batches``)."""
        ...

    def seal(self, staged: Path, run: RunLabel | None) -> None:
        """Make the staged files complete and durable as ``run``'s (None: stored nowhere); before the
        commit."""
        ...

    def install(self) -> None:
        """After the commit: make the sealed files the ones read, in one atomic step."""
        ...

    def discard(self) -> None:
        """Remove sealed files that will not be installed (sealed for no run, then a failure)."""
        ...


class OutputFolder:
    """``slem score --out DIR``: the files are versions of ``DIR`` installed by one switch of a link.

    ``DIR/invoices.csv`` and the other ``names`` stay readable where SPEC §7 puts them (links into
    ``DIR/.versions/current/``); versions are named ``v{seq}-p{pid}-r{run}-{fingerprint}`` (``-none``
    without a database). Staging and batch folders are hidden beside ``DIR`` (``.DIR.writing-{pid}-…``,
    ``.DIR.batches-{pid}-…``).
    """

    def __init__(self, out_dir: str | Path, names: Iterable[str]) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise SlemError(f"{self.out_dir}: exists and is not a folder; choose another --out")
        self.folder = VersionedFolder(self.out_dir, names)
        self._sealed: Version | None = None

    def recover(self, committed: Committed | None) -> str:
        """Remove what killed runs left beside ``DIR`` and in it; install the files of a run stored just
        before a kill (newer than the installed files, sealed, and ``committed`` says it is stored)."""
        name = self.out_dir.name
        kinds = ("writing", "batches", "previous")  # "previous": an older slem's files moved aside
        removed = sweep_staged(self.out_dir.absolute().parent, [f"{name}.{kind}" for kind in kinds])

        def vouched(tags: list[str]) -> set[str]:
            labels = [label for label in map(RunLabel.parse, tags) if label is not None]
            return {label.tag for label in committed(labels)} if committed is not None and labels else set()

        chosen, pruned = self.folder.recover(vouched)
        said = []
        if chosen is not None:
            label = RunLabel.parse(chosen.tag)
            run = f"run {label.run_id}" if label else "the last run"
            said.append(f"installed the files of {run}, stored just before a slem stopped")
        if removed or pruned:
            said.append(f"removed {len(removed) + len(pruned)} leftover(s) of stopped or superseded runs")
        return f"{self.out_dir}: {'; '.join(said)}" if said else ""

    def scratch(self, what: str) -> AbstractContextManager[Path]:
        return staged_folder(self.out_dir.absolute().parent, f"{self.out_dir.name}.{what}")

    def carry(self, staged: Path) -> None:
        """Hard-link the installed files ``staged`` lacks into it (an export replaces only its own names)."""
        self.folder.carry(staged)

    def seal(self, staged: Path, run: RunLabel | None) -> None:
        self._sealed = self.folder.add(staged, run.tag if run is not None else "none")

    def install(self) -> None:
        if self._sealed is None:
            raise RuntimeError("install() before seal()")
        self.folder.install(self._sealed)
        self._sealed = None

    def discard(self) -> None:
        if self._sealed is not None:
            self.folder.discard(self._sealed)
            self._sealed = None

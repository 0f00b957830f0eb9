"""Storing a run while the outputs are written: the two are independent and each takes about a second.

``slem score`` writes its files and stores the run at once, in two processes: a forked child stores (it
inherits the result, nothing is copied), the parent writes. Before that,
:func:`slem_ml.storage.store.planned_revisions` reads the revision each invoice will get, so the files can
show it; if another writer got in between, the caller re-renders the invoices with the revisions the store
actually assigned.

Where forking is not safe (no ``os.fork``, or a threaded process such as the app) the store simply runs
first, in the same process (:func:`slem_ml.forked.can_fork`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from slem_ml import forked
from slem_ml.scoring.result import ScoringResult
from slem_ml.storage.database import open_database
from slem_ml.storage.store import StoredRun, store_result

__all__ = ["StoreJob", "start_store"]


class StoreJob:
    """A run being stored in a forked child that commits only when told to.

    The child prepares the whole transaction, then waits: :meth:`commit` lets it commit and returns what
    was stored; :meth:`abandon` (or the parent dying) closes the pipe and the child rolls back. So a run
    is never stored without its files, whatever interrupts the parent.
    """

    def __init__(self, url: str, result: ScoringResult, actor: str) -> None:
        self._url, self._result, self._actor = url, result, actor
        self._job: forked.ForkJob[StoredRun] | None = None
        self._go = -1
        if forked.can_fork():
            go_read, self._go = os.pipe()

            def work() -> StoredRun:
                os.close(self._go)  # the child's copy of the parent's end
                return _store(url, result, actor, _Gate(go_read))

            self._job = forked.start(work)
            os.close(go_read)

    def commit(self) -> StoredRun:
        """Let the store commit and wait for it; without ``os.fork`` the store runs now."""
        if self._job is None:
            return _store(self._url, self._result, self._actor, None)
        os.write(self._go, b"1")
        os.close(self._go)
        self._go = -1
        return self._job.result()

    def abandon(self) -> None:
        """Roll the store back unless it was committed; wait for the child either way."""
        if self._go >= 0:
            os.close(self._go)  # the child reads end-of-file and raises before committing
            self._go = -1
        if self._job is not None:
            self._job.close()


class _Gate:
    """Blocks the child's commit until the parent says go (one byte) or goes away (end of file)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.open = fd, False

    def __call__(self) -> None:
        if not self.open:
            if os.read(self.fd, 1) != b"1":
                raise RuntimeError("the scoring process stopped before its files were written")
            self.open = True


def start_store(url: str, result: ScoringResult, *, actor: str = "slem") -> StoreJob:
    """Prepare storing ``result`` in a forked child; it commits on :meth:`StoreJob.commit`."""
    return StoreJob(url, result, actor)


def _store(url: str, result: ScoringResult, actor: str, gate: Callable[[], None] | None) -> StoredRun:
    engine = open_database(url)
    try:
        return store_result(engine, result, actor=actor, before_commit=gate)
    finally:
        engine.dispose()

"""Run a function in a forked child process and collect its answer, to use the second core.

Used where two independent, Python-heavy pieces of work meet (storing a run while its files are written;
PDFs while the HTML invoices are written). The child inherits everything, so nothing is copied in; only
the answer is pickled back. Where forking is not safe (no ``os.fork``, or other threads running) the
function runs at once, in-process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from slem_ml.errors import SlemError

__all__ = ["ForkJob", "can_fork", "start"]

T = TypeVar("T")


@dataclass
class ForkJob(Generic[T]):
    """Work under way in a child process, or already done."""

    pid: int = 0
    read_fd: int = -1
    answer: tuple[str, Any] | None = None

    def result(self) -> T:
        """Wait for the child and return its value; a :class:`SlemError` it raised is raised here."""
        if self.answer is None:
            self.answer = self._collect()
        kind, value = self.answer
        if kind == "value":
            return value
        if kind == "refused":
            raise value
        raise RuntimeError(f"work in a child process failed:\n{value}")

    def close(self) -> None:
        """Reap the child if nobody has (after an error elsewhere), ignoring what it says."""
        if self.answer is None:
            with contextlib.suppress(Exception):  # the error that got us here is the one to report
                self.answer = self._collect()

    def _collect(self) -> tuple[str, Any]:
        chunks = []
        while block := os.read(self.read_fd, 1 << 16):
            chunks.append(block)
        os.close(self.read_fd)
        os.waitpid(self.pid, 0)
        if not chunks:
            return ("failed", "the child process ended without an answer")
        answer: tuple[str, Any] = pickle.loads(b"".join(chunks))
        return answer


def can_fork() -> bool:
    """Whether forking is safe here: ``os.fork`` exists and this process runs a single thread.

    A fork copies only the calling thread; in a threaded server (the app) another thread may hold a lock the
    child then waits on forever, so there the work runs in-process instead."""
    return hasattr(os, "fork") and threading.active_count() == 1


def start(work: Callable[[], T]) -> ForkJob[T]:
    """Start ``work()`` in a forked child (in-process where :func:`can_fork` says no); :meth:`ForkJob.result`
    waits for it."""
    if not can_fork():
        return ForkJob(answer=_run(work))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return ForkJob(pid=pid, read_fd=read_fd)
    os.close(read_fd)
    try:  # the child: answer, then leave without running the parent's cleanup or flushing its buffers
        data = memoryview(pickle.dumps(_run(work)))
        while data:
            data = data[os.write(write_fd, data) :]
    finally:
        os._exit(0)


def _run(work: Callable[[], T]) -> tuple[str, Any]:
    try:
        return ("value", work())
    except SlemError as exc:
        return ("refused", exc)
    except BaseException:
        return ("failed", traceback.format_exc())

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

__all__ = ["ForkJob", "Standby", "can_fork", "start"]

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


class Standby:
    """A child forked now that does ``prepare()`` at once (an import, say) and then waits to run one
    function, sent later with :meth:`run`: the slow start-up happens on the other core while the parent
    works, and the child is small because the parent still is. Where :func:`can_fork` says no, the
    function runs in-process when sent.

    ``run`` pickles the function: send a module-level function or a :func:`functools.partial` of one."""

    def __init__(self, prepare: Callable[[], object]) -> None:
        self.pid, self._send, self._receive = 0, -1, -1
        if not can_fork():
            return
        from_parent, to_child = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(from_parent)
            os.close(to_parent_w)
            self.pid, self._send, self._receive = pid, to_child, to_parent_r
            return
        os.close(to_child)
        os.close(to_parent_r)
        try:  # the child: prepare, wait for the work (none: the parent did not need it), answer, leave
            with contextlib.suppress(Exception):
                prepare()
            chunks = []
            while block := os.read(from_parent, 1 << 16):
                chunks.append(block)
            if chunks:
                data = memoryview(pickle.dumps(_run(pickle.loads(b"".join(chunks)))))
                while data:
                    data = data[os.write(to_parent_w, data) :]
        finally:
            os._exit(0)

    def run(self, work: Callable[[], T]) -> ForkJob[T]:
        """Run ``work()`` in the waiting child (once); :meth:`ForkJob.result` waits for its answer."""
        if self._send < 0:
            return ForkJob(answer=_run(work))
        data = memoryview(pickle.dumps(work))
        while data:
            data = data[os.write(self._send, data) :]
        os.close(self._send)
        job: ForkJob[T] = ForkJob(pid=self.pid, read_fd=self._receive)
        self._send = self._receive = -1
        self.pid = 0
        return job

    def close(self) -> None:
        """Let an unused child go (it sees the end of its input and leaves) and reap it."""
        if self._send >= 0:
            os.close(self._send)
            os.close(self._receive)
            os.waitpid(self.pid, 0)
            self._send = self._receive = -1
            self.pid = 0


def _run(work: Callable[[], T]) -> tuple[str, Any]:
    try:
        return ("value", work())
    except SlemError as exc:
        return ("refused", exc)
    except BaseException:
        return ("failed", traceback.format_exc())

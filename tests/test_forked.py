"""Work in a forked child: its value, its user errors and its failures reach the parent."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from slem_ml import forked
from slem_ml.errors import InputError


def test_value_comes_back_from_the_child() -> None:
    """In a fresh single-threaded process (earlier tests leave threads behind in this one) the work runs in
    a forked child and its value comes back through the pipe."""
    program = (
        "import os\n"
        "from slem_ml import forked\n"
        "assert forked.can_fork()\n"
        "child, payload = forked.start(lambda: (os.getpid(), [1, 2, 3])).result()\n"
        "assert payload == [1, 2, 3] and child != os.getpid(), (child, payload)\n"
        "print('forked', child)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("forked ")


def test_a_threaded_process_does_the_work_itself() -> None:
    """A fork copies only the calling thread: with another thread running, nothing is forked."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not forked.can_fork()
        child, payload = forked.start(lambda: (os.getpid(), "done")).result()
    finally:
        stop.set()
        other.join()
    assert (child, payload) == (os.getpid(), "done")


def test_a_user_error_in_the_child_is_raised_as_itself() -> None:
    def refuse() -> None:
        raise InputError("readings.csv: no readings")

    job = forked.start(refuse)
    with pytest.raises(InputError, match="no readings"):
        job.result()


def test_a_bug_in_the_child_is_reported_with_its_traceback() -> None:
    def crash() -> None:
        raise ZeroDivisionError("boom")

    with pytest.raises(RuntimeError, match="ZeroDivisionError: boom"):
        forked.start(crash).result()


def test_close_reaps_a_child_nobody_asked() -> None:
    job = forked.start(lambda: "unread")
    job.close()
    assert job.result() == "unread"  # the answer was kept

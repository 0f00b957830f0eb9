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


def test_a_standby_child_prepares_at_once_and_runs_the_work_sent_later() -> None:
    """The child does ``prepare`` before it gets work (here: imports a module the work then finds loaded),
    runs what is sent, and an unused standby child ends when closed (no zombie)."""
    program = (
        "import functools, os, sys\n"
        "from slem_ml import forked\n"
        "def mark(): import fractions\n"
        "def probe(tag): return os.getpid(), 'fractions' in sys.modules, tag\n"
        "assert 'fractions' not in sys.modules\n"
        "job = forked.Standby(mark)\n"
        "child, ready, tag = job.run(functools.partial(probe, 'x')).result()\n"
        "assert child != os.getpid() and ready and tag == 'x', (child, ready, tag)\n"
        "assert 'fractions' not in sys.modules  # it was the child that imported it\n"
        "idle = forked.Standby(mark)\n"
        "pid = idle.pid\n"
        "idle.close()\n"
        "try:\n"
        "    os.kill(pid, 0)\n"
        "    raise SystemExit('the idle child is still there')\n"
        "except ProcessLookupError:\n"
        "    print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_standby_in_a_threaded_process_runs_the_work_in_process() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        standby = forked.Standby(lambda: None)
        assert standby.pid == 0
        assert standby.run(os.getpid).result() == os.getpid()
        standby.close()
    finally:
        stop.set()
        other.join()

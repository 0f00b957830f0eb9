"""Named crash points: a test hook that kills the process where a crash would hurt most.

``crash_point("after-commit")`` does nothing unless the environment variable ``SLEM_CRASH_AT`` names that
point; then the process kills itself with SIGKILL on the spot (no cleanup, no ``finally``, no flushed
buffers: what ``kill -9`` or a power cut leaves). ``tests/test_crash.py`` runs ``slem score`` and the app's
upload with each point set, then checks that the database and the output folders agree. A point costs one
dictionary lookup when unset. The points, in the order a run meets them:

* ``between-links`` — while an output folder's names are made links into its versions (the first run into a
  folder, or adopting a folder an older slem wrote);
* ``before-commit`` — the run's files are complete and synced, the database transaction not yet committed;
* ``after-commit`` — the run is stored, its files not yet installed (``slem score`` and the app's upload);
* ``after-switch`` — the new files are installed, the superseded version not yet removed;
* ``between-installs`` — the app replacing the folder of a run stored again: the old folder moved aside,
  the new one not yet in place.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINTS", "crash_point"]

CRASH_POINTS = ("between-links", "before-commit", "after-commit", "after-switch", "between-installs")
_VARIABLE = "SLEM_CRASH_AT"


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``$SLEM_CRASH_AT`` is ``name`` (a test hook; see the module)."""
    if os.environ.get(_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)

"""How many threads slem's own parallel steps use (LightGBM prediction, IsolationForest scoring).

Every core of the machine by default; ``SLEM_THREADS`` overrides it — a Dask worker that runs one task at a
time sets 1, so that the workers on a machine do not fight over its cores.
"""

from __future__ import annotations

import os

__all__ = ["cores"]


def cores() -> int:
    """Threads to use: ``$SLEM_THREADS`` when set to a positive number, else the machine's cores."""
    try:
        wanted = int(os.environ.get("SLEM_THREADS", "0"))
    except ValueError:
        wanted = 0
    return wanted if wanted > 0 else (os.cpu_count() or 1)

"""How long work tells its caller how far it has got: a callback, so the library never prints.

The CLI draws a progress line with it (:class:`slem_ml.cli.progress.ProgressLine`), the app a progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "no_progress"]

#: Called with (stage name, fraction done 0..1).
Progress = Callable[[str, float], None]


def no_progress(stage: str, fraction: float) -> None:
    """The default progress callback: says nothing."""

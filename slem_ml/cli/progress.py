"""The CLI's progress line: one line on stderr, rewritten in place, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressLine", "clear_progress_line"]


class ProgressLine:
    """A :data:`slem_ml.progress.Progress` callback that draws ``[####      ]  40% stage   1.2 s``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.tty:  # logs of unattended runs get the summary, not a bar
            return
        elapsed = time.perf_counter() - self.start
        bar = "#" * int(fraction * 20)
        sys.stderr.write(f"\r[{bar:<20}] {fraction:4.0%} {stage:<12} {elapsed:6.1f} s")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


def clear_progress_line() -> None:
    """Wipe an unfinished progress line before an error message."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")

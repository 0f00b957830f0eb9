"""The errors slem raises for things a user can fix.

Every :class:`SlemError` carries one line that names the problem; the CLI prints it and exits with code 2,
the app shows it as a message. Anything else that escapes is a bug (exit code 1).
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "SlemError"]


class SlemError(Exception):
    """A problem with the user's input, configuration or arguments (SPEC §6: exit code 2)."""


class InputError(SlemError):
    """A readings file that cannot be used at all (SPEC §1)."""


class ConfigError(SlemError):
    """A malformed site configuration (SPEC §2), or models that cannot be used.

    :attr:`reason` is the problem in one clause, without the advice that may follow it in the message
    (what a run's note quotes when it goes on without the thing that failed).
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason

"""How the app's page answers a refused or failed action (issue 14 item 5), and what it shows whom (item 8).

A handler's refusal (a :class:`gradio.Error` carrying a :class:`~slem_ml.errors.SlemError`'s sentence, or the
sentence itself) becomes a message in the status line of the panel where it happened, and every other output
of the event is left as it was (``gr.update()``): raising :class:`gradio.Error` from an event would mark each
of its outputs as failed ("Error" badges over the headline and the tables) and cover them. A failure that is
no one's fault (a bug) is logged with its traceback and reported in the same line in words.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from slem_ml.app.access import user_of
from slem_ml.app.workspace import AppConfig
from slem_ml.errors import SlemError
from slem_ml.storage.users import role_allows

__all__ = ["OK", "Abilities", "abilities", "attempt", "guarded", "refused", "said", "unchanged"]

T = TypeVar("T")
OK = ""  # the status line after an action that worked and has nothing to say
_log = logging.getLogger(__name__)


def refused(reason: str) -> str:
    """A status line (Markdown) saying why an action was refused or failed."""
    return f"⚠️ **Not done:** {reason}"


def said(text: str) -> str:
    """A status line (Markdown) saying what an action did."""
    return f"✅ {text}"


def attempt(call: Callable[[], T]) -> tuple[T | None, str]:
    """Run one handler: ``(its result, "")``, or ``(None, a status line saying why not)`` when it was
    refused (:class:`gradio.Error`, :class:`SlemError`, :class:`PermissionError`) or failed."""
    try:
        return call(), OK
    except gr.Error as exc:
        return None, refused(str(exc.message))
    except (SlemError, PermissionError) as exc:
        return None, refused(str(exc))
    except Exception:  # a bug: the page stays usable, the log keeps the traceback
        _log.exception("an app action failed")
        return None, refused("something went wrong on the server (its log says what); nothing was changed")


def unchanged(count: int) -> list[Any]:
    """``count`` outputs left exactly as they are."""
    return [gr.update() for _ in range(count)]


def guarded(handler: Callable[..., Any], outputs: int = 1) -> Callable[..., list[Any]]:
    """``handler`` (which fills ``outputs`` outputs: one value, or a list of them) for an event whose
    outputs are those plus a status line last: on success its values and an empty status line; refused or
    failed, every other output unchanged and the reason in the status line. Gradio sees ``handler``'s own
    signature (the request and progress it asks for are still given)."""

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> list[Any]:
        result: Any
        result, problem = attempt(lambda: handler(*args, **kwargs))
        if problem:
            return [*unchanged(outputs), problem]
        values = list(result) if outputs > 1 else [result]
        return [*values, OK]

    return run


@dataclass(frozen=True)
class Abilities:
    """What the page offers the signed-in user (the server still checks each action)."""

    upload: bool
    retrain: bool
    maintain: bool  # acknowledge and resolve alerts


def abilities(config: AppConfig, username: str | None) -> Abilities:
    """Upload: managers and admins of the whole site; retrain: data scientists and admins of the whole site
    (a user tied to a client does neither: a run bills every client); maintain (Acknowledge, Resolve):
    managers and admins, as :func:`slem_ml.app.maintenance.acknowledge` allows."""
    user = user_of(config, username)
    site_wide = user.client_id is None
    return Abilities(
        upload=site_wide and role_allows(user, "upload"),
        retrain=site_wide and role_allows(user, "retrain"),
        maintain=role_allows(user, "maintain"),
    )

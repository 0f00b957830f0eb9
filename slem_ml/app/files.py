"""Downloads checked against who asks, when they ask (SPEC §11).

A file the app offers — a printable invoice, the month's ZIP, an upload's result CSVs, a report — is never
handed to Gradio (whose cache serves any file it holds to anyone signed in who knows its URL). Instead the
page shows a link ``files/<ticket>/<name>``: :meth:`Downloads.offer` makes the file once (so a refusal shows
on the page at once) and keeps, under a random ticket, the user it was made for and the function that made
it. ``GET /files/<ticket>/<name>`` (:func:`files_router`) serves it only to that same signed-in user and
only after running that function again — the permission checks inside it see the user's role, client and
the store as they are at that moment (an account removed, or an invoice revised, since the link was shown).
Tickets last ``ttl_s`` (default 1 hour); an old link says so.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from slem_ml.errors import SlemError

__all__ = ["UPLOAD_CACHE", "Downloads", "files_router", "links_html", "upload_cache"]

UPLOAD_CACHE = ".gradio-uploads"  # Gradio's cache, in the app's runs folder (never the shared /tmp/gradio)
TICKET_TTL_S = 3600.0  # [s] how long a download link works
_MAX_TICKETS = 10_000  # tickets kept before the expired ones are swept


@dataclass(frozen=True)
class _Offer:
    user: str | None
    make: Callable[[], Path]
    name: str
    until: float  # monotonic [s]


class Downloads:
    """The files offered to signed-in users, by ticket (thread-safe)."""

    def __init__(self, *, ttl_s: float = TICKET_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.clock = ttl_s, clock
        self._offers: dict[str, _Offer] = {}
        self._mutex = threading.Lock()

    def offer(self, user: str | None, make: Callable[[], Path]) -> tuple[str, Path]:
        """Make the file for ``user`` now (``make`` raises :class:`SlemError` to refuse) and return its link
        (relative to the app's root) and the file."""
        path = make()
        ticket = secrets.token_urlsafe(24)
        now = self.clock()
        with self._mutex:
            if len(self._offers) > _MAX_TICKETS:
                self._offers = {t: o for t, o in self._offers.items() if o.until > now}
            self._offers[ticket] = _Offer(user, make, path.name, now + self.ttl_s)
        return f"files/{ticket}/{urllib.parse.quote(path.name)}", path

    def fetch(self, ticket: str, user: str | None) -> Path:
        """The file behind ``ticket`` for ``user``, made again (its checks run now).

        Raises ``LookupError`` for an unknown or expired ticket, ``PermissionError`` for another user and
        :class:`SlemError` when the checks now refuse."""
        with self._mutex:
            offer = self._offers.get(ticket)
        if offer is None or offer.until < self.clock():
            raise LookupError("this download link has expired: ask for the file again on the page")
        if offer.user != user:
            raise PermissionError("this download was made for another user")
        return offer.make()


def files_router(downloads: Downloads, who: Callable[[Request], str | None]) -> APIRouter:
    """``GET /files/{ticket}/{name}``: the file, to the user it was offered to (``who`` tells the signed-in
    user of a request). 404 for an unknown or expired link, 403 for anyone else or when refused now."""
    router = APIRouter()

    @router.get("/files/{ticket}/{name}", include_in_schema=False)
    def download(ticket: str, name: str, request: Request) -> FileResponse:  # a worker thread: it may render
        try:
            path = downloads.fetch(ticket, who(request))
        except LookupError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        except PermissionError as exc:
            raise HTTPException(403, detail=str(exc)) from None
        except SlemError as exc:
            raise HTTPException(403, detail=str(exc)) from None
        return FileResponse(path, filename=path.name, headers={"Cache-Control": "private, no-store"})

    return router


def upload_cache(runs_dir: Path) -> Path:
    """Gradio's upload cache for the app: ``runs_dir/.gradio-uploads``, created owner-only (0o700), its
    absolute path. Uploads leave it once scored; Gradio sweeps the rest after an hour."""
    folder = (runs_dir / UPLOAD_CACHE).absolute()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # made by an older slem under umask 022
    return folder


def links_html(links: list[tuple[str, Path]], *, title: str = "") -> str:
    """Download links for the page (a ``gr.HTML``): each file's name and size."""
    if not links:
        return ""
    items = "".join(
        f'<li><a href="{html.escape(url)}" download="{html.escape(path.name)}">{html.escape(path.name)}</a>'
        f" ({_size(path)})</li>"
        for url, path in links
    )
    heading = f"<p><strong>{html.escape(title)}</strong></p>" if title else ""
    return f'<div class="slem-downloads">{heading}<ul>{items}</ul></div>'


def _size(path: Path) -> str:
    size = path.stat().st_size if path.exists() else 0
    return f"{size / 1e6:,.1f} MB" if size >= 1e5 else f"{max(1, round(size / 1e3)):,} kB"

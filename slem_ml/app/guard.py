"""Checks on every request to the app, before Gradio sees it (SPEC §11): sessions that expire, uploads only
for who may upload, and the client's address for the sign-in throttle.

Gradio signs a browser in with a random token in an ``access-token-*`` cookie and keeps ``token -> user``
in memory, forever. :class:`Sessions` notes when each token was issued (from the ``Set-Cookie`` of a
successful ``POST /login``) and ends it after ``hours``: from then on the request reaches Gradio without
the cookie, so the page asks to sign in again and every action refuses ("sign in first"). Signing out
(Gradio's ``/logout``) ends every session of the user.

:class:`Guard` is a plain ASGI middleware (it streams bodies through untouched):

* ``POST /login`` — puts the client's address in :data:`~slem_ml.app.signin.CLIENT_ADDRESS` for the
  :class:`~slem_ml.app.signin.SignInGate`, and starts the session it issues;
* ``POST /gradio_api/upload`` and ``GET /gradio_api/file=…`` (Gradio's upload cache, which holds nothing
  but uploads: downloads go through :mod:`slem_ml.app.files`) — HTTP 403 unless the signed-in user may
  upload (``may_upload``), before a byte is stored;
* every request — an expired session's cookie is removed.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

import anyio.to_thread

from slem_ml.app.signin import CLIENT_ADDRESS

__all__ = ["DEFAULT_SESSION_HOURS", "Guard", "Sessions", "request_user"]

DEFAULT_SESSION_HOURS = 12.0  # [h] a sign-in lasts this long (slem serve --session-hours)
_COOKIE = "access-token"  # Gradio's cookies: access-token-<id> and access-token-unsecure-<id>
_UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/file=")
_SLASHES = re.compile("/{2,}")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Sessions:
    """Gradio's sign-in tokens (``tokens``: its ``token -> user name`` dict) with an issue time each, ended
    ``hours`` after sign-in. ``clock``: monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        tokens: MutableMapping[str, str],
        *,
        hours: float = DEFAULT_SESSION_HOURS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens, self.ttl_s, self.clock = tokens, hours * 3600, clock
        self._issued: dict[str, float] = {}
        self._mutex = threading.Lock()

    def started(self, token: str) -> None:
        with self._mutex:
            self._issued[token] = self.clock()

    def user(self, token: str | None) -> str | None:
        """The user of ``token`` if its session is live; an expired (or unknown) one is ended here."""
        if not token:
            return None
        with self._mutex:
            issued = self._issued.get(token)
            if issued is not None and self.clock() - issued < self.ttl_s:
                user = self.tokens.get(token)
                if user is None:  # signed out: Gradio forgot it
                    del self._issued[token]
                return user
            self._issued.pop(token, None)
        self.tokens.pop(token, None)  # a token slem did not see issued is not honoured either
        return None


class Guard:
    """The ASGI middleware described in the module docstring, around the whole server.

    ``may_upload(user)`` tells whether a signed-in user (``None``: nobody signed in) may upload; it may
    read the database (it runs on a worker thread). ``open_user``: the open local mode's user (no sign-in;
    no sessions to check)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        sessions: Sessions,
        may_upload: Callable[[str | None], bool],
        open_user: str | None = None,
    ) -> None:
        self.app, self.sessions, self.may_upload, self.open_user = app, sessions, may_upload, open_user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = _SLASHES.sub("/", scope.get("path", ""))  # "//gradio_api/upload" is the same route
        user = self.open_user
        if self.open_user is None:
            token = _token(scope)
            user = self.sessions.user(token)
            if token is not None and user is None:
                scope = {**scope, "headers": _without_tokens(scope["headers"])}
        if path.startswith(_UPLOAD_PATHS) and not await anyio.to_thread.run_sync(self.may_upload, user):
            await _refuse(scope, send, 403, "your role may not upload files; ask a manager")
            return
        if path.rstrip("/") == "/login" and scope.get("method") == "POST":
            client = scope.get("client")
            CLIENT_ADDRESS.set(client[0] if client else "unknown")
            await self.app(scope, receive, self._issuing(send))
            return
        await self.app(scope, receive, send)

    def _issuing(self, send: Send) -> Send:
        """``send``, noting the token of a successful sign-in's ``Set-Cookie``."""

        async def noting(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                for name, value in message.get("headers", []):
                    if name.lower() == b"set-cookie":
                        cookie = SimpleCookie(value.decode("latin-1"))
                        for key, morsel in cookie.items():
                            if key.startswith(_COOKIE) and morsel.value:
                                self.sessions.started(morsel.value)
            await send(message)

        return noting


def request_user(sessions: Sessions, request: Any) -> str | None:
    """The user signed in on ``request`` (a Starlette request), if the session is live."""
    return sessions.user(_token(request.scope))


def _token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookie = SimpleCookie()
            with contextlib.suppress(CookieError):  # a malformed header: no token from it
                cookie.load(value.decode("latin-1"))
            for key, morsel in cookie.items():
                if key.startswith(_COOKIE) and morsel.value:
                    return str(morsel.value)
    return None


def _without_tokens(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers with Gradio's sign-in cookies left out (the session has ended)."""
    kept = []
    for name, value in headers:
        if name == b"cookie":
            parts = [p for p in value.split(b";") if not p.strip().startswith(_COOKIE.encode())]
            if parts:
                kept.append((name, b";".join(parts)))
        else:
            kept.append((name, value))
    return kept


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = ('{"detail": "' + reason + '"}').encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

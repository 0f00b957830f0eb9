"""One server for the manager app and the HTTP ingest API (SPEC §6 ``slem serve``, §9): FastAPI under uvicorn.

``slem serve`` answers on one address:

* ``POST /api/v1/readings`` — HTTP ingest (:mod:`slem_ml.live.http`) with bearer tokens
  (``slem tokens``), for the site of ``--contracts`` (without it the route is left out: no site, no
  readings to check);
* ``/api/docs`` and ``/api/openapi.json`` — the ingest API's description (the API only, never the app's
  own endpoints);
* ``/`` — the Gradio app, mounted by :func:`slem_ml.app.ui.launch` on the parent app made here (this
  module does not import Gradio).

The API's routes are included before the app is mounted at ``/``, so they answer first. The 10 MB body
limit is the ingest route's own: a limit on the whole server would also cap the app's uploads.

With a :class:`Tls` (``slem serve --ssl-certfile F --ssl-keyfile F``, SPEC §11) the same server answers
HTTPS only, app and API alike: :func:`load_tls` checks the two files before anything starts, so a bad
file is one line naming it rather than a traceback from uvicorn's thread.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from slem_ml import __version__
from slem_ml.app.workspace import AppConfig
from slem_ml.config.site import load_site
from slem_ml.errors import SlemError
from slem_ml.live.housekeeping import Housekeeping
from slem_ml.live.http import readings_router
from slem_ml.live.watch import LiveWatch
from slem_ml.models.registry import find_champion
from slem_ml.reports.schedule import ReportScheduler
from slem_ml.storage.database import open_database

__all__ = [
    "API_DOCS_URL",
    "API_OPENAPI_URL",
    "Running",
    "Tls",
    "api_app",
    "load_tls",
    "serve_forever",
    "serve_in_background",
]

_log = logging.getLogger(__name__)
API_DOCS_URL = "/api/docs"  # the ingest API's interactive description
API_OPENAPI_URL = "/api/openapi.json"  # and its OpenAPI document
_GRACE_S = 3  # how long a stopping server waits for requests still open [s] (an upload in flight)
_START_TIMEOUT_S = 30.0  # how long a server started in the background may take to listen [s]


def api_app(config: AppConfig) -> FastAPI:
    """The parent app: the HTTP ingest API and its description, before anything is mounted on it.

    The ingest route stores into ``config.database_url`` for the site of ``config.contracts``; with no
    contracts it is left out. With it, the live detectors' clock and daily jobs run on a thread while the
    server runs (:class:`~slem_ml.live.housekeeping.Housekeeping`), and so do the site's report schedules
    (:class:`~slem_ml.reports.schedule.ReportScheduler`). The database engine it opens is disposed when the
    server stops.
    """
    engine = open_database(config.database_url)
    watch: LiveWatch | None = None
    reports: ReportScheduler | None = None
    if config.contracts is not None:  # the live detectors, as `slem ingest` runs them
        champion = find_champion(config.tracking_uri, config.models_dir, required=False)
        watch = LiveWatch(load_site(config.contracts), champion.bundle, actor="http")
        if watch.site.reports:
            reports = ReportScheduler(engine, watch.site, models=champion.bundle, log=_log.warning)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if watch is not None:  # the clock's and the day's detector jobs, for readings that come over HTTP
            Housekeeping(engine, watch, log=_log.warning, name="serve").start(stop)
        if reports is not None:
            reports.start()
        elif watch is None:
            _log.warning("reports: no schedules run: slem serve has no --contracts (no site configuration)")
        else:
            _log.warning("reports: no schedules run: the site's contracts have no reports: list")
        try:
            yield
        finally:
            stop.set()
            if reports is not None:
                reports.shutdown()
            engine.dispose()

    app = FastAPI(
        title="slem ingest API",
        version=__version__,
        description="Live readings into slem's store (SPEC §9). Tokens: `slem tokens add NAME`.",
        docs_url=API_DOCS_URL,
        openapi_url=API_OPENAPI_URL,
        redoc_url=None,  # one description: /api/docs
        lifespan=lifespan,
    )
    if watch is not None:
        app.include_router(readings_router(engine, watch.site, watch=watch))
    return app


@dataclass(frozen=True)
class Tls:
    """HTTPS for the server: a PEM certificate (chain) and its unencrypted private key, already loaded."""

    certfile: Path
    keyfile: Path
    context: ssl.SSLContext


class _Encrypted(Exception):
    """Raised instead of OpenSSL's prompt on the terminal when the key asks for a passphrase."""


def _refuse_passphrase() -> str:
    raise _Encrypted


def load_tls(certfile: Path, keyfile: Path) -> Tls:
    """The certificate ``certfile`` and its key ``keyfile`` (PEM files) loaded into a server TLS context
    (TLS 1.2 and newer).

    Raises
    ------
    SlemError
        Naming the file, when either cannot be read or is not PEM of its kind, when the key is encrypted
        (uvicorn would prompt for its passphrase on the terminal) or is not the certificate's key.
    """
    pem = (
        (certfile, "certificate", b"-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE----- line"),
        (keyfile, "key", b"PRIVATE KEY-----", "-----BEGIN ... PRIVATE KEY----- line"),
    )
    for path, kind, marker, wanted in pem:
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise SlemError(f"cannot read the TLS {kind} {path}: {exc.strerror or exc}") from None
        if marker not in text:
            raise SlemError(f"the TLS {kind} {path} is not a PEM {kind}: it has no {wanted}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile, password=_refuse_passphrase)
    except _Encrypted:
        raise SlemError(
            f"the TLS key {keyfile} is encrypted: give slem an unencrypted key (openssl ... -nodes), "
            "readable only by the service's user"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise SlemError(f"the TLS key {keyfile} is not the key of the certificate {certfile}") from None
        raise SlemError(f"the TLS certificate {certfile} and key {keyfile} do not load: {exc}") from None
    return Tls(certfile, keyfile, context)


def serve_forever(
    app: Any, *, host: str, port: int, on_stop: Callable[[], None] = lambda: None, tls: Tls | None = None
) -> None:
    """Serve ``app`` (an ASGI app) on http://HOST:PORT (https:// with ``tls``) until Ctrl-C or SIGTERM.

    ``on_stop`` runs as the server begins to stop (the app closes its long-lived streams there, so that
    stopping does not wait for them). Ctrl-C returns; SIGTERM then goes on to the process's own handler
    (``slem``'s exits 143).

    Raises
    ------
    SlemError
        When the address cannot be listened on (in use, not this machine's).
    """
    server = _Server(_config(app, host, port, tls), on_stop)
    with suppress(KeyboardInterrupt):  # uvicorn raises the Ctrl-C it stopped on again once it is down
        server.run(sockets=[_listen(host, port)])


@dataclass
class Running:
    """A server serving in the background (tests): its base URL; :meth:`close` stops it."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait up to ``timeout_s`` [s] for the server's thread."""
        self.server.should_exit = True
        self.thread.join(timeout_s)


def serve_in_background(
    app: Any, *, host: str, port: int, on_stop: Callable[[], None] = lambda: None, tls: Tls | None = None
) -> Running:
    """Serve ``app`` on http://HOST:PORT (https:// with ``tls``) from a daemon thread; return once it
    listens (see :func:`serve_forever`; signals stay with the main thread)."""
    sock = _listen(host, port)
    server = _Server(_config(app, host, port, tls), on_stop)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="slem-serve")
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise SlemError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    shown = f"[{host}]" if ":" in host else host
    scheme = "http" if tls is None else "https"
    return Running(f"{scheme}://{shown}:{sock.getsockname()[1]}", server, thread)


class _Server(uvicorn.Server):
    """uvicorn's server, running ``on_stop`` first when it stops."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_stop()
        await super().shutdown(sockets=sockets)


def _config(app: Any, host: str, port: int, tls: Tls | None) -> uvicorn.Config:
    if tls is None:
        return uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=_GRACE_S
        )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=_GRACE_S,
        ssl_certfile=tls.certfile,
        ssl_keyfile=tls.keyfile,
        ssl_context_factory=lambda _config, _default: tls.context,  # the context load_tls checked
    )


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (``port`` 0: a free one), or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise SlemError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart at once
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise SlemError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock

"""``slem serve`` (SPEC §6, §9): the manager app, signed in against slem's users, and the HTTP ingest API
(``POST /api/v1/readings`` with bearer tokens, described at ``/api/docs``) on the same address.

With users in the database everyone signs in (argon2 hashes, :mod:`slem_ml.storage.users`). Without any,
the app only listens on a loopback address, where everyone acts as a local admin; on any other address it
refuses to start (exit 2) until ``slem users add`` has made one.

With ``--ssl-certfile`` and ``--ssl-keyfile`` (both or neither; SPEC §11) it serves HTTPS only. Plain HTTP
on an address other than loopback starts with one warning line: passwords and tokens would cross the
network in clear.

Sign-in resists guessing (:mod:`slem_ml.app.signin`: 5 failures within 15 minutes lock the user name or the
address out, every attempt is in the audit log) and lasts ``--session-hours`` (default 12); files go out
only to who may have them when they ask (:mod:`slem_ml.app.files`, :mod:`slem_ml.app.guard`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from pathlib import Path
from typing import Annotated

import typer

from slem_ml.cli.models import DEFAULT_MODELS_DIR, Db, ModelsDir, TrackingUri
from slem_ml.errors import SlemError

__all__ = ["OPEN_USER", "PLAIN_HTTP_WARNING", "serve"]

OPEN_USER = "local"  # who everyone is in the open local mode
PLAIN_HTTP_WARNING = (
    "warning: serving plain HTTP on {host}: passwords and tokens cross the network in clear; "
    "use --ssl-certfile/--ssl-keyfile or a reverse proxy with TLS (README)"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) resolves only to loopback addresses."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 7860,
    contracts: Annotated[
        Path | None,
        typer.Option(help="The site's contracts (else each upload brings its own, and HTTP ingest is off)."),
    ] = None,
    readings: Annotated[
        Path | None, typer.Option(help="Score this readings file before serving (as a local admin).")
    ] = None,
    db: Db = None,
    tracking_uri: TrackingUri = None,
    models_dir: ModelsDir = Path(DEFAULT_MODELS_DIR),
    runs_dir: Annotated[Path, typer.Option(help="Where the app keeps each run's files.")] = Path("app_runs"),
    max_upload_mb: Annotated[float, typer.Option(min=1, help="Largest upload [MB].")] = 500.0,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The certificate's unencrypted PEM private key; needs --ssl-certfile.")
    ] = None,
    session_hours: Annotated[
        float, typer.Option(min=0.0005, max=24 * 30, help="A sign-in lasts this long [h], then ends.")
    ] = 12.0,
) -> None:
    """Serve the manager app (Gradio) on http://HOST:PORT (https:// with --ssl-certfile and --ssl-keyfile),
    and HTTP ingest at /api/v1/readings (bearer tokens from `slem tokens add`; described at /api/docs)."""
    if (ssl_certfile is None) != (ssl_keyfile is None):
        given, missing = (
            ("--ssl-certfile", "--ssl-keyfile")
            if ssl_keyfile is None
            else ("--ssl-keyfile", "--ssl-certfile")
        )
        raise SlemError(f"{given} needs {missing} too: give both for HTTPS, or neither for plain HTTP")
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.app.server import load_tls
    from slem_ml.app.workspace import AppConfig, recover_runs, upload
    from slem_ml.config.site import load_site
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.users import User, authenticate, count_users

    tls = None if ssl_certfile is None or ssl_keyfile is None else load_tls(ssl_certfile, ssl_keyfile)
    url = database_url(db)
    if contracts is not None:
        load_site(contracts)  # a broken configuration stops here, with its one line
    engine = open_database(url)
    try:
        users = count_users(engine)
    finally:
        engine.dispose()
    if users == 0 and not is_loopback(host):
        raise SlemError(
            f"refusing to serve on {host} with no users: add one with "
            "`slem users add NAME --role admin`, or serve on 127.0.0.1"
        )
    config = AppConfig(
        database_url=url,
        contracts=contracts,
        models_dir=models_dir,
        tracking_uri=tracking_uri,
        runs_dir=runs_dir,
        max_upload_mb=max_upload_mb,
        open_user=OPEN_USER if users == 0 else None,
    )
    recovered = recover_runs(config)  # what a kill left: a committed run's folder installed, leftovers gone
    if recovered:
        typer.echo(f"slem serve — {recovered}")
    if readings is not None:
        typer.echo(f"slem serve — scoring {readings} first …")
        local = User(OPEN_USER, "admin", None, dt.datetime.now(dt.UTC))
        done = upload(config, local, readings)
        typer.echo(f"  stored as run {done.run_id}")

    def sign_in(name: str, password: str) -> bool:
        engine = open_database(url)
        try:
            return authenticate(engine, name, password) is not None
        finally:
            engine.dispose()

    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.app.ui import launch

    typer.echo(f"slem serve — {'http' if tls is None else 'https'}://{host}:{port}  (Ctrl-C stops)")
    if tls is None and not is_loopback(host):
        typer.echo(PLAIN_HTTP_WARNING.format(host=host), err=True)
    if contracts is not None:
        typer.echo("  HTTP ingest: POST /api/v1/readings, a token from `slem tokens add NAME`; see /api/docs")
    else:
        typer.echo("  HTTP ingest: off (it needs the site's --contracts)")
    if users == 0:
        typer.echo(
            "  no users yet: open to everyone on this machine as a local admin (`slem users add` to sign in)"
        )
    launch(
        config, host=host, port=port, auth=sign_in if users else None, tls=tls, session_hours=session_hours
    )

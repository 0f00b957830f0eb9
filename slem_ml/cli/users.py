"""``slem users add|list|remove``: the app's accounts, kept in slem's database.

A thin adapter over :mod:`slem_ml.storage.users`; registered on :data:`slem_ml.cli.main.app` as ``users``.
Errors are :class:`~slem_ml.errors.SlemError` (one line, exit code 2 through
:func:`~slem_ml.cli.main.run_app`). Passwords are typed twice at a hidden prompt, or read from standard input
with ``--password-stdin`` (for scripts: ``printf %s "$PW" | slem users add mia --role manager
--password-stdin``), never taken as an argument, where they would land in the shell's history and the process
list.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from slem_ml.cli.models import Db

__all__ = ["users_app"]

users_app = typer.Typer(
    help="Who may sign in to the app: add, list and remove users.",
    no_args_is_help=True,
)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name to sign in with (no spaces).")],
    role: Annotated[str, typer.Option(help="viewer, manager, data_scientist or admin.")],
    client: Annotated[
        str | None, typer.Option(help="Limit the user to this client's data (e.g. C001).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    db: Db = None,
) -> None:
    """Add a user; the password is asked for twice (hidden) unless --password-stdin (the first line of
    standard input, without its line end)."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.users import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")  # its first line: what `echo`, `printf` or a file give
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    engine = open_database(database_url(db))
    try:
        user = add_user(engine, name, password, role, client_id=client, actor="cli")
    finally:
        engine.dispose()
    scope = f"client {user.client_id}" if user.client_id else "all clients"
    typer.echo(f"added user {user.name} ({user.role}, {scope})")


@users_app.command("list")
def list_(db: Db = None) -> None:
    """List the users: name, role, client, when created (UTC)."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.users import list_users

    engine = open_database(database_url(db))
    try:
        users = list_users(engine)
    finally:
        engine.dispose()
    if not users:
        typer.echo("no users yet: add one with `slem users add NAME --role ROLE`")
        return
    rows = [("name", "role", "client", "created")] + [
        (u.name, u.role, u.client_id or "-", f"{u.created_at:%Y-%m-%d %H:%M} UTC") for u in users
    ]
    w_name, w_role, w_client = (max(len(row[i]) for row in rows) for i in range(3))
    for name, role, client, created in rows:
        typer.echo(f"{name:<{w_name}}  {role:<{w_role}}  {client:<{w_client}}  {created}")


@users_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="User to remove.")],
    db: Db = None,
) -> None:
    """Remove a user; they can no longer sign in."""
    # lazy: the command's own imports keep `slem --help` fast (no pandas, pyarrow or SQLAlchemy)
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.users import remove_user

    engine = open_database(database_url(db))
    try:
        remove_user(engine, name, actor="cli")
    finally:
        engine.dispose()
    typer.echo(f"removed user {name}")

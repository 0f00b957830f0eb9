"""``slem tokens add|list|revoke``: bearer tokens for the HTTP ingest API (SPEC §9).

A thin adapter over :mod:`slem_ml.storage.tokens`. ``add`` prints the new token once, alone on the last
line of standard output (``TOKEN=$(slem tokens add site-a | tail -n 1)``); only its hash is kept.
"""

from __future__ import annotations

from typing import Annotated

import typer

from slem_ml.cli.models import Db, cli_actor

__all__ = ["tokens_app"]

tokens_app = typer.Typer(
    help="Bearer tokens for the HTTP ingest API: add, list and revoke.", no_args_is_help=True
)


@tokens_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="What the token is for (a site, a gateway).")], db: Db = None
) -> None:
    """Make a token; it is printed once, on the last line, and cannot be shown again."""
    # lazy: the command's own imports keep `slem --help` fast (no SQLAlchemy)
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.tokens import add_token

    engine = open_database(database_url(db))
    try:
        secret = add_token(engine, name, actor=cli_actor())
    finally:
        engine.dispose()
    typer.echo(f"added token {name}; keep it now, it is not shown again:")
    typer.echo(secret)


@tokens_app.command("list")
def list_(db: Db = None) -> None:
    """List the tokens: name, its first characters, when made and last used, and whether revoked (UTC)."""
    # lazy: as above
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.tokens import list_tokens

    engine = open_database(database_url(db))
    try:
        tokens = list_tokens(engine)
    finally:
        engine.dispose()
    if not tokens:
        typer.echo("no tokens; make one with `slem tokens add NAME`")
        return

    def when(at: object) -> str:
        return "-" if at is None else f"{at:%Y-%m-%d %H:%M}"

    typer.echo(f"{'name':<24} {'starts':<14} {'made':<17} {'last used':<17} revoked")
    for t in tokens:
        revoked = when(t.revoked_at) if t.revoked_at else "no"
        typer.echo(
            f"{t.name:<24} {t.prefix + '…':<14} {when(t.created_at):<17} {when(t.last_used_at):<17} {revoked}"
        )


@tokens_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name.")], db: Db = None) -> None:
    """Refuse a token from now on (it stays listed, marked revoked)."""
    # lazy: as above
    from slem_ml.storage import database_url, open_database
    from slem_ml.storage.tokens import revoke_token

    engine = open_database(database_url(db))
    try:
        revoke_token(engine, name, actor=cli_actor())
    finally:
        engine.dispose()
    typer.echo(f"revoked token {name}")

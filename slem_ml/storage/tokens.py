"""Bearer tokens for the HTTP ingest API (SPEC §9): ``slem tokens add|list|revoke``.

A token is ``slem_`` and 43 random URL-safe characters (256 bits, :func:`secrets.token_urlsafe`), shown
once when it is made and never again: only its SHA-256 is stored (a fast hash is enough for a secret that
random; a password needs argon2, :mod:`slem_ml.storage.users`). Its first 12 characters (``prefix``) name
it in lists and logs. A revoked token stays listed, marked, and is refused from then on. Making and
revoking a token are audit entries (``token.added``, ``token.revoked``); the token itself is never logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update

from slem_ml.errors import SlemError
from slem_ml.storage.database import write_session
from slem_ml.storage.tables import ApiToken, AuditEntry

__all__ = ["Token", "TokenError", "add_token", "list_tokens", "note_use", "revoke_token", "token_named"]

_PREFIX = "slem_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


class TokenError(SlemError):
    """A token cannot be made or revoked as asked (a bad or taken name, no such token)."""


@dataclass(frozen=True)
class Token:
    name: str
    prefix: str  # the token's first characters, to recognise it
    created_at: dt.datetime
    created_by: str
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def add_token(engine: Engine, name: str, *, actor: str) -> str:
    """Make a token called ``name`` and return it (the only time it is seen)."""
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name!r}: letters, digits and . _ @ - only, at most 100, no spaces")
    secret = _PREFIX + secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    with write_session(engine) as session:
        if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
            raise TokenError(f"a token called {name!r} exists already; revoke it or choose another name")
        session.add(
            ApiToken(
                name=name, prefix=secret[:12], token_sha256=_digest(secret), created_at=now,
                created_by=actor, last_used_at=None, revoked_at=None,
            )
        )  # fmt: skip
        session.add(_audit(now, actor, "token.added", name, secret[:12]))
    return secret


def list_tokens(engine: Engine) -> list[Token]:
    """Every token, revoked ones too, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)).all()
    return [Token(r.name, r.prefix, r.created_at, r.created_by, r.last_used_at, r.revoked_at) for r in rows]


def revoke_token(engine: Engine, name: str, *, actor: str) -> None:
    """Refuse the token called ``name`` from now on."""
    now = dt.datetime.now(dt.UTC)
    with write_session(engine) as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise TokenError(f"no token called {name!r} (slem tokens list shows them)")
        if row.revoked_at is not None:
            raise TokenError(f"token {name!r} was revoked already, at {row.revoked_at:%Y-%m-%d %H:%M} UTC")
        row.revoked_at = now
        session.add(_audit(now, actor, "token.revoked", name, row.prefix))


def token_named(engine: Engine, secret: str) -> str | None:
    """The name of the live token ``secret`` is, or None (unknown, revoked or malformed). Reads only: the
    request that uses it notes the use in its own transaction (:func:`note_use`)."""
    if not secret.startswith(_PREFIX) or len(secret) > 100:
        return None
    with engine.connect() as connection:
        row = connection.execute(
            select(ApiToken.name, ApiToken.revoked_at).where(ApiToken.token_sha256 == _digest(secret))
        ).first()
    return None if row is None or row.revoked_at is not None else str(row.name)


def note_use(connection: Connection, name: str) -> None:
    """Record that the token ``name`` was just used, in the caller's transaction."""
    connection.execute(
        update(ApiToken).where(ApiToken.name == name).values(last_used_at=dt.datetime.now(dt.UTC))
    )


def _audit(at: dt.datetime, actor: str, action: str, name: str, prefix: str) -> AuditEntry:
    return AuditEntry(
        at=at, actor=actor, action=action, entity="api_token", entity_id=name, detail={"prefix": prefix}
    )

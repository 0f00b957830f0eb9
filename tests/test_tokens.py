"""Bearer tokens of the HTTP ingest API (SPEC §9; slem_ml/storage/tokens.py, `slem tokens`)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from slem_ml.storage.tables import ApiToken, AuditEntry
from slem_ml.storage.tokens import TokenError, add_token, list_tokens, revoke_token, token_named


def test_a_token_is_shown_once_kept_hashed_and_refused_once_revoked(engine: Engine) -> None:
    secret = add_token(engine, "site-a", actor="ops")
    assert secret.startswith("slem_") and len(secret) >= 40
    with engine.connect() as connection:
        row = connection.execute(select(ApiToken)).one()
        audit = connection.execute(select(AuditEntry).where(AuditEntry.entity == "api_token")).all()
    assert row.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (row.prefix, row.token_sha256) and row.prefix == secret[:12]
    assert all(secret not in str(a.detail) for a in audit) and [a.action for a in audit] == ["token.added"]
    assert token_named(engine, secret) == "site-a"
    assert token_named(engine, secret + "x") is None
    assert token_named(engine, "Bearer " + secret) is None
    revoke_token(engine, "site-a", actor="ops")
    assert token_named(engine, secret) is None
    [listed] = list_tokens(engine)
    assert listed.name == "site-a" and listed.revoked_at is not None


@pytest.mark.parametrize(
    ("name", "message"), [("two words", "no spaces"), ("", "no spaces"), ("x" * 101, "at most 100")]
)
def test_a_bad_name_is_refused(engine: Engine, name: str, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        add_token(engine, name, actor="ops")


def test_names_are_unique_and_revoking_twice_says_when(engine: Engine) -> None:
    add_token(engine, "gw", actor="ops")
    with pytest.raises(TokenError, match="exists already"):
        add_token(engine, "gw", actor="ops")
    revoke_token(engine, "gw", actor="ops")
    with pytest.raises(TokenError, match="revoked already"):
        revoke_token(engine, "gw", actor="ops")
    with pytest.raises(TokenError, match="no token called 'nope'"):
        revoke_token(engine, "nope", actor="ops")


def test_the_cli_prints_the_token_alone_on_the_last_line_and_never_again(engine: Engine, db_url: str) -> None:
    from slem_ml.cli.main import app

    runner = CliRunner()
    added = runner.invoke(app, ["tokens", "add", "site-b", "--db", db_url])
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert token_named(engine, secret) == "site-b"
    listed = runner.invoke(app, ["tokens", "list", "--db", db_url])
    assert listed.exit_code == 0 and "site-b" in listed.output and secret not in listed.output
    assert secret[:12] in listed.output
    revoked = runner.invoke(app, ["tokens", "revoke", "site-b", "--db", db_url])
    assert revoked.exit_code == 0 and token_named(engine, secret) is None
    again = runner.invoke(app, ["tokens", "revoke", "site-b", "--db", db_url])
    assert isinstance(again.exception, TokenError) and "revoked already" in str(again.exception)

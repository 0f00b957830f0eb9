"""Users: argon2id hashes, sign-in, the role matrix and client scoping, migration 0002, ``slem users``.

Database tests run on SQLite and on the local PostgreSQL server (``db_url`` and ``engine`` in conftest.py).
Hashing uses the real argon2 defaults (about 0.15 s a hash), as the app does.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import typer
from argon2 import PasswordHasher
from sqlalchemy import Engine, create_engine, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from slem_ml.cli.users import users_app
from slem_ml.errors import SlemError
from slem_ml.storage import (
    ROLES,
    User,
    UserError,
    add_user,
    audit_log,
    authenticate,
    can_see_client,
    count_users,
    get_user,
    invoice_history,
    latest_run,
    list_users,
    open_database,
    remove_user,
    role_allows,
)
from slem_ml.storage import users as users_module
from slem_ml.storage.database import HEAD_REVISION, VERSION_TABLE, alembic_config
from slem_ml.storage.tables import Base
from slem_ml.storage.tables import User as UserRow
from tests.databases import insert_old_run_with_invoice

PASSWORD = "correct horse"


def stored_hash(engine: Engine, name: str) -> str:
    with Session(engine) as session:
        return session.scalars(select(UserRow.password_hash).where(UserRow.name == name)).one()


def make_user(role: str, client_id: str | None = None) -> User:
    return User("u", role, client_id, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))


# --- accounts and sign-in -----------------------------------------------------------------------------


def test_a_user_is_stored_with_an_argon2id_hash(engine: Engine) -> None:
    before = dt.datetime.now(dt.UTC)

    user = add_user(engine, "mia", PASSWORD, "manager", client_id="C001")

    assert (user.name, user.role, user.client_id) == ("mia", "manager", "C001")
    assert before <= user.created_at <= dt.datetime.now(dt.UTC)
    assert get_user(engine, "mia") == user and count_users(engine) == 1
    password_hash = stored_hash(engine, "mia")
    assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash
    assert PasswordHasher().verify(password_hash, PASSWORD)


def test_sign_in_with_the_right_password_only(engine: Engine) -> None:
    add_user(engine, "mia", PASSWORD, "viewer", client_id="C002")

    assert authenticate(engine, "mia", PASSWORD) == get_user(engine, "mia")
    assert authenticate(engine, "mia", PASSWORD + "!") is None
    assert authenticate(engine, "mia", "") is None
    assert authenticate(engine, "MIA", PASSWORD) is None  # names are case-sensitive
    assert authenticate(engine, "nobody", PASSWORD) is None


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


def test_an_unknown_name_costs_one_verification_like_a_known_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_user(engine, "mia", PASSWORD, "manager")
    hasher = CountingHasher()
    monkeypatch.setattr(users_module, "_HASHER", hasher)

    assert authenticate(engine, "nobody", PASSWORD) is None
    assert authenticate(engine, "mia", "wrong password") is None

    assert hasher.verified == [users_module._DUMMY_HASH, stored_hash(engine, "mia")]


def test_the_dummy_hash_has_the_hashers_parameters() -> None:
    # else an unknown name would be answered faster (or slower) than a wrong password
    assert users_module._DUMMY_HASH.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(users_module._DUMMY_HASH)


def test_a_hash_with_old_parameters_is_renewed_at_sign_in(engine: Engine) -> None:
    add_user(engine, "mia", PASSWORD, "manager")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with Session(engine) as session, session.begin():
        session.execute(update(UserRow).values(password_hash=weak))

    assert authenticate(engine, "mia", "wrong password") is None
    assert stored_hash(engine, "mia") == weak  # a failed sign-in changes nothing
    assert authenticate(engine, "mia", PASSWORD) is not None

    renewed = stored_hash(engine, "mia")
    assert renewed != weak and not PasswordHasher().check_needs_rehash(renewed)
    assert authenticate(engine, "mia", PASSWORD) is not None


@pytest.mark.parametrize(
    ("name", "password", "role", "client_id", "message"),
    [
        ("mia", PASSWORD, "manager", None, "user 'mia' already exists"),
        (
            "ben",
            PASSWORD,
            "root",
            None,
            "unknown role 'root': use one of viewer, manager, data_scientist, admin",
        ),
        ("", PASSWORD, "manager", None, "a user name cannot be empty"),
        ("ben smith", PASSWORD, "manager", None, "user name 'ben smith' contains whitespace"),
        ("ben", "1234567", "manager", None, "the password is too short: at least 8 characters"),
        ("ben", PASSWORD, "viewer", "C 001", "client 'C 001' is not a client id"),
        ("b" * 101, PASSWORD, "manager", None, "is longer than 100 characters"),
    ],
)
def test_a_user_that_cannot_be_added_is_one_clear_error(
    engine: Engine, name: str, password: str, role: str, client_id: str | None, message: str
) -> None:
    add_user(engine, "mia", PASSWORD, "admin")

    with pytest.raises(UserError, match=message) as raised:
        add_user(engine, name, password, role, client_id=client_id)

    assert isinstance(raised.value, SlemError) and "\n" not in str(raised.value)
    assert [u.name for u in list_users(engine)] == ["mia"]
    assert [e.action for e in audit_log(engine, entity="user")] == ["user.added"]


def test_eight_characters_are_enough(engine: Engine) -> None:
    assert add_user(engine, "ben", "12345678", "viewer", client_id="C001").name == "ben"
    assert authenticate(engine, "ben", "12345678") is not None


def test_the_database_refuses_an_unknown_role(engine: Engine) -> None:
    row = UserRow(name="eve", password_hash="x", role="root", created_at=dt.datetime.now(dt.UTC))
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(row)


def test_remove_a_user(engine: Engine) -> None:
    add_user(engine, "mia", PASSWORD, "manager")
    add_user(engine, "ben", PASSWORD, "viewer", client_id="C001")

    remove_user(engine, "mia", actor="admin-ann")

    assert get_user(engine, "mia") is None and authenticate(engine, "mia", PASSWORD) is None
    assert [u.name for u in list_users(engine)] == ["ben"] and count_users(engine) == 1
    with pytest.raises(UserError, match="no user 'mia'"):
        remove_user(engine, "mia")


def test_users_are_listed_by_name(engine: Engine) -> None:
    for name, role in [("zoe", "admin"), ("ann", "data_scientist"), ("mia", "manager")]:
        add_user(engine, name, PASSWORD, role)

    assert [(u.name, u.role) for u in list_users(engine)] == [
        ("ann", "data_scientist"), ("mia", "manager"), ("zoe", "admin"),
    ]  # fmt: skip
    assert count_users(engine) == 3


def test_the_audit_log_names_users_and_never_their_hashes(engine: Engine) -> None:
    add_user(engine, "mia", PASSWORD, "manager", client_id="C001", actor="admin-ann")
    password_hash = stored_hash(engine, "mia")
    remove_user(engine, "mia", actor="admin-ann")

    entries = audit_log(engine, entity="user", entity_id="mia")

    assert [(e.action, e.actor) for e in entries] == [
        ("user.removed", "admin-ann"),
        ("user.added", "admin-ann"),
    ]
    assert [e.detail for e in entries] == [{"role": "manager", "client_id": "C001"}] * 2
    everything = json.dumps([e.detail for e in audit_log(engine, limit=None)])
    assert password_hash not in everything and "argon2" not in everything and PASSWORD not in everything


# --- what a user may see and do -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "client_id", "sees_c001", "sees_c002"),
    [
        ("admin", None, True, True),
        ("manager", None, True, True),
        ("data_scientist", None, True, True),
        ("viewer", None, True, True),  # the operator's read-only staff
        ("admin", "C001", True, False),
        ("manager", "C001", True, False),
        ("data_scientist", "C002", False, True),
        ("viewer", "C002", False, True),
    ],
)
def test_client_scoping(role: str, client_id: str | None, sees_c001: bool, sees_c002: bool) -> None:
    user = make_user(role, client_id)

    assert (can_see_client(user, "C001"), can_see_client(user, "C002")) == (sees_c001, sees_c002)


def test_the_role_matrix() -> None:
    allowed = {
        role: {
            action
            for action in ("view", "upload", "maintain", "retrain")
            if role_allows(make_user(role), action)
        }
        for role in ROLES
    }

    assert allowed == {
        "viewer": {"view"},
        "manager": {"view", "upload", "maintain"},
        "data_scientist": {"view", "retrain"},
        "admin": {"view", "upload", "maintain", "retrain"},
    }
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        role_allows(make_user("admin"), "delete")


# --- migration 0002 -----------------------------------------------------------------------------------


def test_a_0001_database_upgrades_to_users_and_keeps_its_runs(db_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    command.upgrade(alembic_config(url=db_url), "0001")  # a database written by the previous slem
    old = create_engine(db_url)
    try:
        assert "users" not in inspect(old).get_table_names()
        with old.begin() as connection:
            run_id = insert_old_run_with_invoice(connection)
    finally:
        old.dispose()

    engine = open_database(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert context.get_current_heads() == (HEAD_REVISION,)
            assert compare_metadata(context, Base.metadata) == []
        run = latest_run(engine)
        assert run is not None and run.run_id == run_id
        assert [r.revision for r in invoice_history(engine, "INV-C001-202502")] == [1]
        add_user(engine, "mia", PASSWORD, "manager")
        assert authenticate(engine, "mia", PASSWORD) is not None
    finally:
        engine.dispose()

    command.downgrade(alembic_config(url=db_url), "0001")
    old = create_engine(db_url)
    try:
        assert "users" not in inspect(old).get_table_names()
        assert "score_runs" in inspect(old).get_table_names()
    finally:
        old.dispose()


# --- slem users ---------------------------------------------------------------------------------------


def cli() -> typer.Typer:
    """``slem`` as :mod:`slem_ml.cli.main` registers the users commands."""
    app = typer.Typer()
    app.add_typer(users_app, name="users")
    return app


def test_cli_add_list_remove(db_url: str) -> None:
    runner = CliRunner()

    add_mia = ["users", "add", "mia", "--role", "manager", "--client", "C001", "--password-stdin"]
    added = runner.invoke(cli(), [*add_mia, "--db", db_url], input=PASSWORD + "\n")
    prompted = runner.invoke(
        cli(), ["users", "add", "ann", "--role", "admin", "--db", db_url], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    listed = runner.invoke(cli(), ["users", "list", "--db", db_url])

    assert added.exit_code == 0, added.output
    assert added.output == "added user mia (manager, client C001)\n"
    assert prompted.exit_code == 0 and "added user ann (admin, all clients)" in prompted.output
    assert PASSWORD not in prompted.output  # hidden input
    assert listed.exit_code == 0
    header, ann, mia = listed.output.splitlines()
    assert header.split() == ["name", "role", "client", "created"]
    assert ann.split()[:3] == ["ann", "admin", "-"] and mia.split()[:3] == ["mia", "manager", "C001"]
    assert mia.endswith(" UTC") and header.index("role") == mia.index("manager")
    engine = open_database(db_url)
    try:
        assert authenticate(engine, "mia", PASSWORD) is not None  # the newline is not part of it
        assert authenticate(engine, "ann", PASSWORD) is not None

        removed = runner.invoke(cli(), ["users", "remove", "mia", "--db", db_url])

        assert removed.exit_code == 0 and removed.output == "removed user mia\n"
        assert [u.name for u in list_users(engine)] == ["ann"]
        assert [e.actor for e in audit_log(engine, entity="user")] == ["cli"] * 3
    finally:
        engine.dispose()


def test_password_stdin_takes_the_first_line_without_its_line_end(db_url: str) -> None:
    runner = CliRunner()
    for name, given in (("ann", f"{PASSWORD}\n\n"), ("bob", f"{PASSWORD}\r\n"), ("cid", PASSWORD)):
        add = ["users", "add", name, "--role", "viewer", "--password-stdin", "--db", db_url]
        done = runner.invoke(cli(), add, input=given)
        assert done.exit_code == 0, done.output
    engine = create_engine(db_url)
    try:
        for name in ("ann", "bob", "cid"):
            assert authenticate(engine, name, PASSWORD) is not None
            assert authenticate(engine, name, PASSWORD + "\n") is None
    finally:
        engine.dispose()


def test_cli_errors_are_slem_errors(db_url: str) -> None:
    runner = CliRunner()
    add = ["users", "add", "mia", "--role", "manager", "--password-stdin", "--db", db_url]
    assert runner.invoke(cli(), add, input=PASSWORD).exit_code == 0

    again = runner.invoke(cli(), add, input=PASSWORD)
    short = runner.invoke(
        cli(), ["users", "add", "ben", "--role", "viewer", "--password-stdin", "--db", db_url], input="short"
    )
    unknown = runner.invoke(cli(), ["users", "remove", "nobody", "--db", db_url])
    mismatch = runner.invoke(
        cli(), ["users", "add", "ben", "--role", "viewer", "--db", db_url], input=f"{PASSWORD}\nother one\n"
    )

    assert isinstance(again.exception, UserError) and str(again.exception) == "user 'mia' already exists"
    assert isinstance(short.exception, UserError) and "too short" in str(short.exception)
    assert isinstance(unknown.exception, UserError) and str(unknown.exception) == "no user 'nobody'"
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    engine = open_database(db_url)
    try:
        assert [u.name for u in list_users(engine)] == ["mia"]
    finally:
        engine.dispose()


def test_cli_uses_slem_database_url(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # were the variable ignored, slem.db would appear here
    monkeypatch.setenv("SLEM_DATABASE_URL", db_url)
    runner = CliRunner()

    empty = runner.invoke(cli(), ["users", "list"])
    added = runner.invoke(
        cli(), ["users", "add", "mia", "--role", "viewer", "--password-stdin"], input=PASSWORD
    )

    assert empty.output.startswith("no users yet")
    assert not (elsewhere / "slem.db").exists()
    assert added.exit_code == 0, added.output
    engine = open_database(db_url)
    try:
        assert [u.name for u in list_users(engine)] == ["mia"]
    finally:
        engine.dispose()

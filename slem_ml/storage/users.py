"""The app's users: accounts with argon2id password hashes, sign-in, and what each role may see and do.

Who may do what (:func:`role_allows`):

==============  ======  ========  ==========  =======
role            view    upload    maintain    retrain
==============  ======  ========  ==========  =======
viewer          yes     no        no          no
manager         yes     yes       yes         no
data_scientist  yes     no        no          yes
admin           yes     yes       yes         yes
==============  ======  ========  ==========  =======

``upload``: score a month of readings; ``maintain``: acknowledge and resolve alerts, record maintenance;
``retrain``: fit and promote models.

Whose data they see (:func:`can_see_client`): a user with a ``client_id`` sees only that client, whatever
the role (a tenant's account); a user without one sees every client (the operator's staff; a viewer reads
everything and changes nothing).

Passwords are hashed with argon2id (:class:`argon2.PasswordHasher`'s defaults, RFC 9106's low-memory
profile: about 0.15 s and 64 MiB a hash); the hash never leaves this module, and the audit log records
who was added or removed, with role and client, never the hash.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from slem_ml.errors import SlemError
from slem_ml.storage.database import write_session
from slem_ml.storage.tables import USER_ROLES, AuditEntry
from slem_ml.storage.tables import User as UserRow

__all__ = [
    "ACTIONS",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "User",
    "UserError",
    "add_user",
    "authenticate",
    "can_see_client",
    "SignInAttempt",
    "count_users",
    "get_user",
    "list_users",
    "record_sign_ins",
    "remove_user",
    "role_allows",
]

ROLES: tuple[str, ...] = USER_ROLES  # ("viewer", "manager", "data_scientist", "admin")
MIN_PASSWORD_LENGTH = 8  # [characters]
#: action -> the roles allowed to do it (the table in the module docstring)
_ALLOWED: dict[str, frozenset[str]] = {
    "view": frozenset(ROLES),
    "upload": frozenset({"manager", "admin"}),
    "maintain": frozenset({"manager", "admin"}),
    "bill": frozenset({"manager", "admin"}),  # hold, release or waive invoice lines (SPEC §8.4)
    "retrain": frozenset({"data_scientist", "admin"}),
}
ACTIONS: tuple[str, ...] = tuple(_ALLOWED)
_NAME_MAX = 100  # users.name is String(100)
_CLIENT_MAX = 64  # users.client_id is String(64)

_HASHER = PasswordHasher()  # argon2id; holds parameters only, no work at import
#: Verified for unknown names so that a failed sign-in takes as long whether or not the name exists. Made
#: with the hasher's defaults; a test checks it still matches them (else the timing would differ).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$zkV5moBC5YaziAEYiZyVWg$faogyoZtEk614+R3/NCZuOkl5PYQMgPIO76iLpzP/dc"
)


class UserError(SlemError):
    """A user account cannot be added or removed as asked: the name, role, client or password."""


@dataclass(frozen=True)
class User:
    """A user as the app sees one: no password hash."""

    name: str
    role: str  # one of ROLES
    client_id: str | None  # set: sees only this client's data
    created_at: dt.datetime  # UTC


def add_user(
    engine: Engine,
    name: str,
    password: str,
    role: str,
    *,
    client_id: str | None = None,
    actor: str = "cli",
) -> User:
    """Create a user with an argon2id hash of ``password``, and an audit entry ``user.added``.

    Raises
    ------
    UserError
        When ``name`` is empty, contains whitespace, is longer than 100 characters or is taken; ``role`` is
        not one of :data:`ROLES`; ``client_id`` is empty, contains whitespace or is longer than 64
        characters; or ``password`` is shorter than :data:`MIN_PASSWORD_LENGTH` characters.
    """
    _check_name(name)
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if client_id is not None:
        _check_client(client_id)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    password_hash = _HASHER.hash(password)  # before the write lock: it takes a while
    now = dt.datetime.now(dt.UTC)
    with write_session(engine) as session:
        if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
            raise UserError(f"user {name!r} already exists")
        row = UserRow(name=name, password_hash=password_hash, role=role, client_id=client_id, created_at=now)
        session.add(row)
        session.add(_audit(now, actor, "user.added", row))
        return _user(row)


def remove_user(engine: Engine, name: str, *, actor: str = "cli") -> None:
    """Delete user ``name`` and write an audit entry ``user.removed``; raises :class:`UserError` if absent."""
    with write_session(engine) as session:
        row = session.scalars(select(UserRow).where(UserRow.name == name)).first()
        if row is None:
            raise UserError(f"no user {name!r}")
        session.add(_audit(dt.datetime.now(dt.UTC), actor, "user.removed", row))
        session.delete(row)


def list_users(engine: Engine) -> list[User]:
    """Every user, sorted by name."""
    with Session(engine) as session:
        return [_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.name))]


def get_user(engine: Engine, name: str) -> User | None:
    """User ``name``, or ``None``."""
    with Session(engine) as session:
        row = session.scalars(select(UserRow).where(UserRow.name == name)).first()
        return None if row is None else _user(row)


def count_users(engine: Engine) -> int:
    """How many users there are (0: the app has no one to sign in yet)."""
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(UserRow)) or 0


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else ``None`` (unknown name, wrong password, unreadable hash).

    An unknown name costs one argon2 verification too, so the time taken does not tell which names exist.
    A hash made with older parameters than the hasher's is replaced by a new one on success.
    """
    with Session(engine) as session:
        row = session.scalars(select(UserRow).where(UserRow.name == name)).first()
        user, stored = (None, _DUMMY_HASH) if row is None else (_user(row), row.password_hash)
    if not _verify(stored, password) or user is None:
        return None
    if _HASHER.check_needs_rehash(stored):
        # The write lock only here: signing in must not queue behind a score run being stored.
        rehashed = _HASHER.hash(password)
        with write_session(engine) as session:
            session.execute(
                update(UserRow)
                .where(UserRow.name == name, UserRow.password_hash == stored)
                .values(password_hash=rehashed)
            )
    return user


@dataclass(frozen=True)
class SignInAttempt:
    """One sign-in attempt for the audit log: the name given, from where, and how it ended."""

    name: str  # as typed (it may name no user)
    address: str  # the client's IP address
    outcome: str  # "signed_in", "failed" (wrong name or password) or "refused" (locked out)
    reason: str  # why it failed or was refused ("" when signed in)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def record_sign_ins(engine: Engine, attempts: list[SignInAttempt]) -> None:
    """Write ``attempts`` to the audit log (``user.signed_in``, ``user.sign_in_failed``,
    ``user.sign_in_refused``), in one transaction. Never a password."""
    actions = {
        "signed_in": "user.signed_in",
        "failed": "user.sign_in_failed",
        "refused": "user.sign_in_refused",
    }
    with write_session(engine) as session:
        session.add_all(
            AuditEntry(
                at=a.at,
                actor=a.name[:_NAME_MAX] or "?",
                action=actions[a.outcome],
                entity="user",
                entity_id=a.name[:_NAME_MAX] or "?",
                detail={"address": a.address, "reason": a.reason},
            )
            for a in attempts
        )


def can_see_client(user: User, client_id: str) -> bool:
    """Whether ``user`` may see ``client_id``'s invoices and findings (see the module docstring)."""
    return user.client_id is None or user.client_id == client_id


def role_allows(user: User, action: str) -> bool:
    """Whether ``user``'s role may do ``action`` (one of :data:`ACTIONS`); ``ValueError`` for another."""
    allowed = _ALLOWED.get(action)
    if allowed is None:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    return user.role in allowed


# --- internals ----------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not name:
        raise UserError("a user name cannot be empty")
    if any(char.isspace() for char in name):
        raise UserError(f"user name {name!r} contains whitespace")
    if len(name) > _NAME_MAX:
        raise UserError(f"user name {name[:20]!r}... is longer than {_NAME_MAX} characters")


def _check_client(client_id: str) -> None:
    if not client_id or any(char.isspace() for char in client_id):
        raise UserError(f"client {client_id!r} is not a client id (e.g. C001)")
    if len(client_id) > _CLIENT_MAX:
        raise UserError(f"client {client_id[:20]!r}... is longer than {_CLIENT_MAX} characters")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _user(row: UserRow) -> User:
    return User(name=row.name, role=row.role, client_id=row.client_id, created_at=row.created_at)


def _audit(at: dt.datetime, actor: str, action: str, row: UserRow) -> AuditEntry:
    detail = {"role": row.role, "client_id": row.client_id}  # never the hash
    return AuditEntry(at=at, actor=actor, action=action, entity="user", entity_id=row.name, detail=detail)

"""Reading blocks stored uncompressed on PostgreSQL (docs/benchmarks.md, "PostgreSQL: TOAST compression").

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

PostgreSQL compresses every ``bytea`` value over 2 kB by default (TOAST, pglz). The packed arrays of a block
hardly compress (17.0 bytes a reading stored against 15.9 on SQLite, which never compresses), yet the
compression took 60 % of the time of writing them. ``STORAGE EXTERNAL`` keeps them out of line without
compressing; blocks written before keep their form, which PostgreSQL reads either way. SQLite has no such
setting: nothing changes there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PACKED = ("ts", "power", "client", "cleaning", "billed")


def _storage(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in _PACKED:
        op.execute(f"ALTER TABLE reading_blocks ALTER COLUMN {column} SET STORAGE {kind}")


def upgrade() -> None:
    _storage("EXTERNAL")


def downgrade() -> None:
    _storage("EXTENDED")

"""Held lines and decisions on them (SPEC §8.4), cleaning sessions of the store (§8.2), the days each client
has readings on (service periods): what migration 0003 came to hold after its first release.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Migration 0003 was released once without these and then grew them in place, so a database at 0003 may or
may not have them. This revision adds only what is missing, and so brings either to the same schema.
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _money() -> sa.Numeric[Decimal]:
    return sa.Numeric(14, 2).with_variant(sa.String(16), "sqlite")


def _quantity() -> sa.Numeric[Decimal]:
    return sa.Numeric(18, 6).with_variant(sa.String(20), "sqlite")


def upgrade() -> None:
    schema = sa.inspect(op.get_bind())
    tables = set(schema.get_table_names())
    if "held_total" not in {c["name"] for c in schema.get_columns("invoices")}:
        with op.batch_alter_table("invoices") as batch:
            batch.add_column(sa.Column("held_total", _money(), server_default="0.00", nullable=False))
            batch.alter_column("run_id", existing_type=sa.Integer(), nullable=True)
    if "status" not in {c["name"] for c in schema.get_columns("invoice_lines")}:
        with op.batch_alter_table("invoice_lines") as batch:
            batch.add_column(sa.Column("status", sa.String(8), server_default="billed", nullable=False))
    if "line_decisions" not in tables:
        op.create_table(
            "line_decisions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("invoice_id", sa.String(64), nullable=False),
            sa.Column("zone_id", sa.String(64), nullable=False),
            sa.Column("start_ms", sa.BigInteger(), nullable=False),
            sa.Column("decision", sa.String(8), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.Column("user_name", sa.String(100), nullable=False),
            sa.Column("at", _instant(), nullable=False),
            sa.CheckConstraint(
                "decision IN ('held', 'released', 'waived')", name="ck_line_decisions_decision"
            ),
            sa.PrimaryKeyConstraint("id", name="pk_line_decisions"),
        )
        op.create_index("ix_line_decisions_invoice_id", "line_decisions", ["invoice_id"])
        op.create_index("ix_line_decisions_zone_id_start_ms", "line_decisions", ["zone_id", "start_ms"])
    if "store_cleaning_sessions" not in tables:
        op.create_table(
            "store_cleaning_sessions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("zone_id", sa.String(64), nullable=False),
            sa.Column("client_id", sa.String(64), nullable=False),
            sa.Column("building", sa.String(64), nullable=False),
            sa.Column("floor", sa.String(32), nullable=False),
            sa.Column("date", sa.Date(), nullable=False),
            sa.Column("start_at", _instant(), nullable=False),
            sa.Column("end_at", _instant(), nullable=False),
            sa.Column("minutes", sa.Double(), nullable=False),
            sa.Column("flagged", sa.Boolean(), nullable=False),
            sa.Column("excess_minutes", sa.Double(), nullable=False),
            sa.Column("wasted_kwh", _quantity(), nullable=False),
            sa.Column("savings", _money(), nullable=False),
            sa.Column("inferred", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_store_cleaning_sessions"),
        )
        op.create_index(
            "ix_store_cleaning_sessions_zone_id_start_at", "store_cleaning_sessions", ["zone_id", "start_at"]
        )
        op.create_index("ix_store_cleaning_sessions_date", "store_cleaning_sessions", ["date"])
    if "client_days" not in tables:
        op.create_table(
            "client_days",
            sa.Column("client_id", sa.String(64), nullable=False),
            sa.Column("date", sa.Date(), nullable=False),
            sa.PrimaryKeyConstraint("client_id", "date", name="pk_client_days"),
        )


def downgrade() -> None:
    op.drop_table("client_days")
    op.drop_table("store_cleaning_sessions")
    op.drop_table("line_decisions")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_column("status")
    with op.batch_alter_table("invoices") as batch:
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("held_total")

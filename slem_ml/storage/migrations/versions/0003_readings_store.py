"""The readings store (SPEC §8): zones, clients, zone-day reading blocks, corrections, billing sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Existing runs, invoices and audit entries are kept as they are: their readings were never stored, so the
store starts empty and the new run columns are NULL for them (docs/store.md says why blocks).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("score_runs") as batch:
        batch.add_column(sa.Column("readings_added", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("readings_unchanged", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("readings_corrected", sa.Integer(), nullable=True))
    op.create_table(
        "store_zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("floor", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_zones"),
        sa.UniqueConstraint("zone_id", name="uq_store_zones_zone_id"),
    )
    op.create_table(
        "store_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_clients"),
        sa.UniqueConstraint("client_id", name="uq_store_clients_client_id"),
    )
    op.create_table(
        "reading_blocks",
        sa.Column("zone_key", sa.Integer(), nullable=False),
        sa.Column("utc_day", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("ts", sa.LargeBinary(), nullable=False),
        sa.Column("power", sa.LargeBinary(), nullable=False),
        sa.Column("client", sa.LargeBinary(), nullable=False),
        sa.Column("cleaning", sa.LargeBinary(), nullable=False),
        sa.Column("billed", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(
            ["zone_key"], ["store_zones.id"], name="fk_reading_blocks_zone_key_store_zones"
        ),
        sa.PrimaryKeyConstraint("zone_key", "utc_day", name="pk_reading_blocks"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # the arrays are already dense: no point in TOAST compressing them (docs/store.md)
        for column in ("ts", "power", "client", "cleaning", "billed"):
            op.execute(f"ALTER TABLE reading_blocks ALTER COLUMN {column} SET STORAGE EXTERNAL")
    op.create_table(
        "reading_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("timestamp", _instant(), nullable=False),
        sa.Column("old_power_w", sa.Double(), nullable=False),
        sa.Column("new_power_w", sa.Double(), nullable=False),
        sa.Column("old_client_id", sa.String(64), nullable=False),
        sa.Column("new_client_id", sa.String(64), nullable=False),
        sa.Column("old_cleaning", sa.Boolean(), nullable=True),
        sa.Column("new_cleaning", sa.Boolean(), nullable=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["score_runs.id"], name="fk_reading_corrections_run_id_score_runs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reading_corrections"),
    )
    op.create_index(
        "ix_reading_corrections_zone_id_timestamp", "reading_corrections", ["zone_id", "timestamp"]
    )
    op.create_index("ix_reading_corrections_run_id", "reading_corrections", ["run_id"])
    op.create_table(
        "billing_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "start_ms",
                "end_ms",
                "covered_ms",
                "billable_minutes",
                "energy_units",
                "measured_units",
                "hours_cents",
                "energy_cents",
            )  # fmt: skip
        ),
        sa.PrimaryKeyConstraint("id", name="pk_billing_sessions"),
    )
    op.create_index("ix_billing_sessions_invoice_id", "billing_sessions", ["invoice_id"])
    op.create_index("ix_billing_sessions_zone_id_date", "billing_sessions", ["zone_id", "date"])


def downgrade() -> None:
    op.drop_table("billing_sessions")
    op.drop_table("reading_corrections")
    op.drop_table("reading_blocks")
    op.drop_table("store_clients")
    op.drop_table("store_zones")
    with op.batch_alter_table("score_runs") as batch:
        batch.drop_column("readings_corrected")
        batch.drop_column("readings_unchanged")
        batch.drop_column("readings_added")

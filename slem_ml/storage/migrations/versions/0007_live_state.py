"""Live state (SPEC §9): each zone as the stream last saw it, buildings' energy per quarter hour, zones'
expected bands per hour; alerts raised by the live detectors belong to no scoring run; an index for the
open alerts, newest first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_zones",
        sa.Column("zone_key", sa.Integer(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("power_w", sa.Double(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("lit", sa.Boolean(), nullable=False),
        sa.Column("in_contract", sa.Boolean(), nullable=False),
        sa.Column("cleaning", sa.Boolean(), nullable=False),
        sa.Column("interval_ms", sa.BigInteger(), nullable=False),
        sa.Column("run_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("run_energy_wh", sa.Double(), nullable=False),
        sa.Column("spike_first_ms", sa.BigInteger(), nullable=True),
        sa.Column("spike_last_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["zone_key"], ["store_zones.id"], name="fk_live_zones_zone_key_store_zones"),
        sa.PrimaryKeyConstraint("zone_key", name="pk_live_zones"),
    )
    op.create_table(
        "live_power",
        sa.Column("building", sa.String(64), nullable=False),
        sa.Column("bucket_ms", sa.BigInteger(), nullable=False),
        sa.Column("energy_wh", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("building", "bucket_ms", name="pk_live_power"),
    )
    op.create_table(
        "live_bands",
        sa.Column("zone_key", sa.Integer(), nullable=False),
        sa.Column("hour_ms", sa.BigInteger(), nullable=False),
        sa.Column("expected_w", sa.Double(), nullable=False),
        sa.Column("lower_w", sa.Double(), nullable=False),
        sa.Column("upper_w", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["zone_key"], ["store_zones.id"], name="fk_live_bands_zone_key_store_zones"),
        sa.PrimaryKeyConstraint("zone_key", "hour_ms", name="pk_live_bands"),
    )
    op.create_index("ix_live_bands_hour_ms", "live_bands", ["hour_ms"])
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("last_run_id", existing_type=sa.Integer(), nullable=True)
    op.create_index("ix_alerts_status_detected_at", "alerts", ["status", "detected_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_status_detected_at", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("last_run_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index("ix_live_bands_hour_ms", table_name="live_bands")
    op.drop_table("live_bands")
    op.drop_table("live_power")
    op.drop_table("live_zones")

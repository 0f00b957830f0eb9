"""Kept reports (SPEC §10): every report made, its files (one per format, with SHA-256 and size) and its
delivery by mail; one report per (schedule, period, scope).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("schedule", sa.String(100), nullable=True),
        sa.Column("mail_to", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_error", sa.Text(), nullable=True),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("send_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.UniqueConstraint("schedule", "period", "scope", name="uq_reports_schedule_period_scope"),
    )
    op.create_index("ix_reports_created_at", "reports", ["created_at"])
    op.create_table(
        "report_files",
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name="fk_report_files_report_id_reports", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", "format", name="pk_report_files"),
    )


def downgrade() -> None:
    op.drop_table("report_files")
    op.drop_index("ix_reports_created_at", table_name="reports")
    op.drop_table("reports")

"""Initial schema: score runs, invoice revisions and lines, cleaning sessions, alerts, maintenance, audit log.

Revision ID: 0001
Revises:
Create Date: 2025-03-01

Money is NUMERIC(14, 2) and energy/hours NUMERIC(18, 6) on PostgreSQL; on SQLite both are fixed-point text,
which SQLite keeps exactly (its NUMERIC affinity would turn them into floats). Every time is a UTC instant:
timestamptz on PostgreSQL, UTC text on SQLite.
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money() -> sa.Numeric[Decimal]:
    return sa.Numeric(14, 2).with_variant(sa.String(16), "sqlite")


def _quantity() -> sa.Numeric[Decimal]:
    return sa.Numeric(18, 6).with_variant(sa.String(20), "sqlite")


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("rows_in", sa.Integer(), nullable=False),
        sa.Column("rows_scored", sa.Integer(), nullable=False),
        sa.Column("rows_quarantined", sa.Integer(), nullable=False),
        sa.Column("rows_duplicate", sa.Integer(), nullable=False),
        sa.Column("first_timestamp", _instant(), nullable=True),
        sa.Column("last_timestamp", _instant(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_score_runs"),
    )
    op.create_index("ix_score_runs_fingerprint", "score_runs", ["fingerprint"])
    op.create_index("ix_score_runs_input_sha256", "score_runs", ["input_sha256"])

    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("billable_hours", _quantity(), nullable=False),
        sa.Column("energy_kwh", _quantity(), nullable=False),
        sa.Column("total", _money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _instant(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["score_runs.id"], name="fk_invoices_run_id_score_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_invoices"),
        sa.UniqueConstraint("invoice_id", "revision", name="uq_invoices_invoice_id_revision"),
    )
    op.create_index("ix_invoices_client_id", "invoices", ["client_id"])
    op.create_index("ix_invoices_run_id", "invoices", ["run_id"])

    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_pk", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("start_at", _instant(), nullable=False),
        sa.Column("end_at", _instant(), nullable=False),
        sa.Column("minutes", sa.Double(), nullable=False),
        sa.Column("billable_minutes", sa.Integer(), nullable=False),
        sa.Column("energy_kwh", _quantity(), nullable=False),
        sa.Column("hours_charge", _money(), nullable=False),
        sa.Column("energy_charge", _money(), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("adjusted", sa.Boolean(), nullable=False),
        sa.Column("original_energy_kwh", _quantity(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_pk"],
            ["invoices.id"],
            name="fk_invoice_lines_invoice_pk_invoices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_invoice_lines"),
        sa.UniqueConstraint("invoice_pk", "line_no", name="uq_invoice_lines_invoice_pk_line_no"),
    )

    op.create_table(
        "run_invoices",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("invoice_pk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["score_runs.id"], name="fk_run_invoices_run_id_score_runs"),
        sa.ForeignKeyConstraint(["invoice_pk"], ["invoices.id"], name="fk_run_invoices_invoice_pk_invoices"),
        sa.PrimaryKeyConstraint("run_id", "invoice_pk", name="pk_run_invoices"),
    )
    op.create_index("ix_run_invoices_invoice_pk", "run_invoices", ["invoice_pk"])

    op.create_table(
        "cleaning_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
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
        sa.ForeignKeyConstraint(["run_id"], ["score_runs.id"], name="fk_cleaning_sessions_run_id_score_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_cleaning_sessions"),
    )
    op.create_index("ix_cleaning_sessions_run_id", "cleaning_sessions", ["run_id"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detected_at", _instant(), nullable=False),
        sa.Column("first_seen", _instant(), nullable=False),
        sa.Column("last_seen", _instant(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=False),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("acknowledged_at", _instant(), nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
        sa.Column("resolved_at", _instant(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'ongoing', 'resolved')", name="ck_alerts_status"),
        sa.ForeignKeyConstraint(["run_id"], ["score_runs.id"], name="fk_alerts_run_id_score_runs"),
        sa.ForeignKeyConstraint(["last_run_id"], ["score_runs.id"], name="fk_alerts_last_run_id_score_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("alert_id", name="uq_alerts_alert_id"),
    )
    op.create_index("ix_alerts_zone_id_status", "alerts", ["zone_id", "status"])

    op.create_table(
        "maintenance_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("alert_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_actions"),
    )
    op.create_index("ix_maintenance_actions_zone_id", "maintenance_actions", ["zone_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _instant(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_entity_entity_id", "audit_log", ["entity", "entity_id"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "maintenance_actions",
        "alerts",
        "cleaning_sessions",
        "run_invoices",
        "invoice_lines",
        "invoices",
        "score_runs",
    ):
        op.drop_table(table)

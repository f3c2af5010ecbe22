"""Alerts: the durable outbox (alerts and their per-partner, per-channel deliveries).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("alert_json", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("updated_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_key", sa.String(256), nullable=False),
        sa.Column("alert_id", sa.String(64), sa.ForeignKey("alerts.alert_id", name="fk_deliveries_alert"),
                  nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("alert_version", sa.String(128), nullable=False),
        sa.Column("alert_json", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_ns", sa.BigInteger, nullable=False),
        sa.Column("first_attempt_ns", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_ns", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("delivery_key", name="uq_deliveries_key"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_ns"])
    op.create_index("ix_deliveries_alert", "deliveries", ["alert_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_alert", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("alerts")

"""Alerts: lifecycle state of each alert, per-contact API tokens (hashed) and the audit log.

- ``alert_lifecycle``: one row per alert: its state (open, acknowledged, resolved), the escalated
  flag and level, the outcome, who did what and when, and a revision counter for optimistic
  concurrency; ``alert_json`` is the alert's content as the alert stage last gave it.
- ``contact_tokens``: API tokens of partner contacts; only the SHA-256 of a token is stored.
- ``audit_log``: who did what, when, from where, to which subject; shared with the console.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A 64-bit id that autoincrements on every backend (SQLite only autoincrements INTEGER PRIMARY KEY).
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_lifecycle",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("alert_json", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("opened_ns", sa.BigInteger, nullable=False),
        sa.Column("acknowledged_by", sa.String(256), nullable=True),
        sa.Column("acknowledged_ns", sa.BigInteger, nullable=True),
        sa.Column("escalated_by", sa.String(256), nullable=True),
        sa.Column("escalated_ns", sa.BigInteger, nullable=True),
        sa.Column("resolved_by", sa.String(256), nullable=True),
        sa.Column("resolved_ns", sa.BigInteger, nullable=True),
        sa.Column("reopened_by", sa.String(256), nullable=True),
        sa.Column("reopened_ns", sa.BigInteger, nullable=True),
        sa.Column("updated_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_alert_lifecycle_state", "alert_lifecycle", ["state", "updated_ts_ns"])
    op.create_table(
        "contact_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("note", sa.String(256), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("expires_ns", sa.BigInteger, nullable=True),
        sa.Column("revoked_ns", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("token_sha256", name="uq_contact_tokens_sha256"),
    )
    op.create_index("ix_contact_tokens_contact", "contact_tokens", ["partner_id", "contact_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("partner_id", sa.String(64), nullable=True),
        sa.Column("address", sa.String(128), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_kind", "subject_id", "id"])
    op.create_index("ix_audit_log_ts", "audit_log", ["ts_ns"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_ts", table_name="audit_log")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_contact_tokens_contact", table_name="contact_tokens")
    op.drop_table("contact_tokens")
    op.drop_index("ix_alert_lifecycle_state", table_name="alert_lifecycle")
    op.drop_table("alert_lifecycle")

"""Console: accounts (users, sessions, API tokens, failed log-ins), the store of tracks, detections,
events and sensor health, detection reviews and joint-operation case files.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64)),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("username", name="uq_console_users_username"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("console_users.user_id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=False),
        sa.Column("address", sa.String(64)),
    )
    op.create_index("ix_console_sessions_user", "console_sessions", ["user_id"])
    op.create_table(
        "console_api_tokens",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("partner_id", sa.String(64)),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("revoked_ns", sa.BigInteger),
        sa.UniqueConstraint("token_hash", name="uq_console_api_tokens_hash"),
    )
    op.create_table(
        "console_login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_login_failures_user", "console_login_failures", ["username", "at_ns"])
    op.create_index("ix_console_login_failures_address", "console_login_failures", ["address", "at_ns"])
    op.create_table(
        "console_tracks",
        sa.Column("track_id", sa.String(256), primary_key=True),
        sa.Column("sector_id", sa.String(256), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("time_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("lat_deg", sa.Float, nullable=False),
        sa.Column("lon_deg", sa.Float, nullable=False),
        sa.Column("class_name", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("track_json", sa.Text, nullable=False),
        sa.Column("stored_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_tracks_stored", "console_tracks", ["stored_ns"])
    op.create_table(
        "console_track_points",
        sa.Column("track_id", sa.String(256), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("time_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("lat_deg", sa.Float, nullable=False),
        sa.Column("lon_deg", sa.Float, nullable=False),
        sa.UniqueConstraint("track_id", "version", name="uq_console_track_points"),
    )
    op.create_table(
        "console_detections",
        sa.Column("detection_id", sa.String(64), primary_key=True),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("sector_id", sa.String(256), nullable=False),
        sa.Column("frame_sequence", sa.BigInteger, nullable=False),
        sa.Column("capture_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("det_index", sa.Integer, nullable=False),
        sa.Column("class_id", sa.Integer, nullable=False),
        sa.Column("class_name", sa.String(256), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("x1_px", sa.Float, nullable=False),
        sa.Column("y1_px", sa.Float, nullable=False),
        sa.Column("x2_px", sa.Float, nullable=False),
        sa.Column("y2_px", sa.Float, nullable=False),
        sa.Column("image_width_px", sa.Integer, nullable=False),
        sa.Column("image_height_px", sa.Integer, nullable=False),
        sa.Column("sensor_track_id", sa.BigInteger),
        sa.Column("evidence_ref", sa.Text),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("model_version", sa.String(256), nullable=False),
        sa.Column("stored_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_console_detections_time", "console_detections", ["capture_ts_ns"])
    op.create_index("ix_console_detections_sector", "console_detections", ["sector_id", "capture_ts_ns"])
    op.create_table(
        "console_events",
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("track_id", sa.String(256), nullable=False),
        sa.Column("sector_id", sa.String(256), nullable=False),
        sa.Column("event_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("event_json", sa.Text, nullable=False),
        sa.Column("stored_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "console_event_evidence",
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("evidence_ref", sa.String(512), nullable=False),
        sa.UniqueConstraint("event_id", "evidence_ref", name="uq_console_event_evidence"),
    )
    op.create_index("ix_console_event_evidence_ref", "console_event_evidence", ["evidence_ref"])
    op.create_table(
        "console_sensor_health",
        sa.Column("sensor_id", sa.String(64), primary_key=True),
        sa.Column("sector_id", sa.String(256), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("event_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("silent_s", sa.Float, nullable=False),
        sa.Column("stored_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "console_reviews",
        sa.Column("detection_id", sa.String(64), sa.ForeignKey("console_detections.detection_id", ondelete="CASCADE"),
                   primary_key=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("reviewed_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "console_cases",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("sector_id", sa.String(256)),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "console_case_items",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("console_cases.case_id", ondelete="CASCADE"), nullable=False),
        sa.Column("item_kind", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_ns", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("case_id", "item_kind", "item_id", name="uq_console_case_items"),
    )
    op.create_index("ix_console_case_items_item", "console_case_items", ["item_kind", "item_id"])
    op.create_table(
        "console_case_partners",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("console_cases.case_id", ondelete="CASCADE"), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.UniqueConstraint("case_id", "partner_id", name="uq_console_case_partners"),
    )
    op.create_table(
        "console_case_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("console_cases.case_id", ondelete="CASCADE"), nullable=False),
        sa.Column("author_id", sa.String(64), nullable=False),
        sa.Column("at_ns", sa.BigInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_console_case_notes_case", "console_case_notes", ["case_id"])


def downgrade() -> None:
    # dropping a table drops its indexes
    op.drop_table("console_case_notes")
    op.drop_table("console_case_partners")
    op.drop_table("console_case_items")
    op.drop_table("console_cases")
    op.drop_table("console_reviews")
    op.drop_table("console_sensor_health")
    op.drop_table("console_event_evidence")
    op.drop_table("console_events")
    op.drop_table("console_detections")
    op.drop_table("console_track_points")
    op.drop_table("console_tracks")
    op.drop_table("console_login_failures")
    op.drop_table("console_api_tokens")
    op.drop_table("console_sessions")
    op.drop_table("console_users")

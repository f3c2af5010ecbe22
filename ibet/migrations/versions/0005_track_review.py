"""Console: tracks in the analysts' review queue. The evidence each fused track carries, the
sensors that fed it (for the sensor filter), the order of an event's evidence, the crop of a detection's new image track (so
retention can remove it), and the verdicts on tracks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("console_tracks", sa.Column("sensor_ids", sa.Text))
    # tracks stored before this revision: their sensors from the stored TrackUpdate
    tracks = sa.table("console_tracks", sa.column("track_id", sa.String), sa.column("track_json", sa.Text),
                      sa.column("sensor_ids", sa.Text))
    bind = op.get_bind()
    for track_id, text in bind.execute(sa.select(tracks.c.track_id, tracks.c.track_json)).all():
        sensors = json.loads(text).get("sensor_ids", [])
        bind.execute(tracks.update().where(tracks.c.track_id == track_id).values(sensor_ids="," + ",".join(sensors) + ","))
    op.add_column("console_detections", sa.Column("crop_ref", sa.Text))
    op.add_column("console_event_evidence", sa.Column("position", sa.Integer))
    op.create_table(
        "console_track_evidence",
        sa.Column("track_id", sa.String(256), nullable=False),
        sa.Column("evidence_ref", sa.String(512), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.UniqueConstraint("track_id", "evidence_ref", name="uq_console_track_evidence"),
    )
    op.create_index("ix_console_track_evidence_ref", "console_track_evidence", ["evidence_ref"])
    op.create_table(
        "console_track_reviews",
        sa.Column("track_id", sa.String(256), sa.ForeignKey("console_tracks.track_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("reviewed_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_track_reviews")
    op.drop_table("console_track_evidence")
    with op.batch_alter_table("console_event_evidence") as batch:
        batch.drop_column("position")
    with op.batch_alter_table("console_detections") as batch:
        batch.drop_column("crop_ref")
    with op.batch_alter_table("console_tracks") as batch:
        batch.drop_column("sensor_ids")

"""Ingest: per-sensor frame sequence counters and the ledger of pushed frames (retry de-duplication).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_sensor_sequences",
        sa.Column("sensor_id", sa.String(64), primary_key=True),
        sa.Column("next_sequence", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ingest_frames",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("device_frame_id", sa.String(256), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("frame_sha256", sa.String(64), nullable=False),
        sa.Column("reserved_ts_ns", sa.BigInteger, nullable=False),
        sa.Column("produced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("kafka_partition", sa.Integer, nullable=True),
        sa.Column("kafka_offset", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("sensor_id", "device_frame_id", name="uq_ingest_frames_device_frame"),
        sa.UniqueConstraint("sensor_id", "sequence", name="uq_ingest_frames_sequence"),
    )
    op.create_index("ix_ingest_frames_reserved", "ingest_frames", ["reserved_ts_ns"])


def downgrade() -> None:
    op.drop_index("ix_ingest_frames_reserved", table_name="ingest_frames")
    op.drop_table("ingest_frames")
    op.drop_table("ingest_sensor_sequences")

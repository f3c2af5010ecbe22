"""The console's tables, as revisions 0004 (``ibet/migrations/versions/0004_console.py``) and 0005
(track evidence and track reviews, ``0005_track_review.py``) create them.

Accounts (users, sessions, API tokens, failed log-ins), the store of what the pipeline produced
(tracks and their points, detections, border events, sensor health), the analysts' reviews and
joint-operation case files. Portable SQLAlchemy Core; alerts themselves live in the alert
service's ``alerts`` table (revision 0002) and the audit trail in ``audit_log`` (revision 0003).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

users = Table(
    "console_users", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("partner_id", String(64)),
    Column("display_name", String(256), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    UniqueConstraint("username", name="uq_console_users_username"),
)
sessions = Table(
    "console_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("console_users.user_id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=False),
    Column("address", String(64)),
    Index("ix_console_sessions_user", "user_id"),
)
api_tokens = Table(
    "console_api_tokens", metadata,
    Column("token_id", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("partner_id", String(64)),
    Column("created_by", String(64), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("revoked_ns", BigInteger),
    UniqueConstraint("token_hash", name="uq_console_api_tokens_hash"),
)
login_failures = Table(
    "console_login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at_ns", BigInteger, nullable=False),
    Index("ix_console_login_failures_user", "username", "at_ns"),
    Index("ix_console_login_failures_address", "address", "at_ns"),
)
tracks = Table(
    "console_tracks", metadata,
    Column("track_id", String(256), primary_key=True),
    Column("sector_id", String(256), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("time_ts_ns", BigInteger, nullable=False),
    Column("lat_deg", Float, nullable=False),
    Column("lon_deg", Float, nullable=False),
    Column("class_name", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("track_json", Text, nullable=False),
    Column("stored_ns", BigInteger, nullable=False),
    Column("sensor_ids", Text),  # ",cam-1,drone-2,": so a filter by sensor is one LIKE (0005)
    Index("ix_console_tracks_stored", "stored_ns"),
)
track_evidence = Table(
    "console_track_evidence", metadata,
    Column("track_id", String(256), nullable=False),
    Column("evidence_ref", String(512), nullable=False),
    Column("position", Integer, nullable=False),  # its place in the track's evidence_refs (crop, then frame)
    UniqueConstraint("track_id", "evidence_ref", name="uq_console_track_evidence"),
    Index("ix_console_track_evidence_ref", "evidence_ref"),
)
track_points = Table(
    "console_track_points", metadata,
    Column("track_id", String(256), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("time_ts_ns", BigInteger, nullable=False),
    Column("lat_deg", Float, nullable=False),
    Column("lon_deg", Float, nullable=False),
    UniqueConstraint("track_id", "version", name="uq_console_track_points"),
)
detections = Table(
    "console_detections", metadata,
    Column("detection_id", String(64), primary_key=True),
    Column("sensor_id", String(64), nullable=False),
    Column("sector_id", String(256), nullable=False),
    Column("frame_sequence", BigInteger, nullable=False),
    Column("capture_ts_ns", BigInteger, nullable=False),
    Column("det_index", Integer, nullable=False),
    Column("class_id", Integer, nullable=False),
    Column("class_name", String(256), nullable=False),
    Column("score", Float, nullable=False),
    Column("x1_px", Float, nullable=False),
    Column("y1_px", Float, nullable=False),
    Column("x2_px", Float, nullable=False),
    Column("y2_px", Float, nullable=False),
    Column("image_width_px", Integer, nullable=False),
    Column("image_height_px", Integer, nullable=False),
    Column("sensor_track_id", BigInteger),
    Column("evidence_ref", Text),
    Column("model_name", String(256), nullable=False),
    Column("model_version", String(256), nullable=False),
    Column("stored_ns", BigInteger, nullable=False),
    Column("crop_ref", Text),  # the crop of the detection's new image track, when it is the first (0005)
    Index("ix_console_detections_time", "capture_ts_ns"),
    Index("ix_console_detections_sector", "sector_id", "capture_ts_ns"),
)
events = Table(
    "console_events", metadata,
    Column("event_id", String(256), primary_key=True),
    Column("event_type", String(32), nullable=False),
    Column("track_id", String(256), nullable=False),
    Column("sector_id", String(256), nullable=False),
    Column("event_ts_ns", BigInteger, nullable=False),
    Column("event_json", Text, nullable=False),
    Column("stored_ns", BigInteger, nullable=False),
)
event_evidence = Table(
    "console_event_evidence", metadata,
    Column("event_id", String(256), nullable=False),
    Column("evidence_ref", String(512), nullable=False),
    Column("position", Integer),  # its place in the event's evidence_refs (crop, then frame); 0005
    UniqueConstraint("event_id", "evidence_ref", name="uq_console_event_evidence"),
    Index("ix_console_event_evidence_ref", "evidence_ref"),
)
sensor_health = Table(
    "console_sensor_health", metadata,
    Column("sensor_id", String(64), primary_key=True),
    Column("sector_id", String(256), nullable=False),
    Column("state", String(32), nullable=False),
    Column("event_ts_ns", BigInteger, nullable=False),
    Column("silent_s", Float, nullable=False),
    Column("stored_ns", BigInteger, nullable=False),
)
reviews = Table(
    "console_reviews", metadata,
    Column("detection_id", String(64), ForeignKey("console_detections.detection_id", ondelete="CASCADE"),
           primary_key=True),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("reviewer_id", String(64), nullable=False),
    Column("reviewed_ns", BigInteger, nullable=False),
)
track_reviews = Table(
    "console_track_reviews", metadata,
    Column("track_id", String(256), ForeignKey("console_tracks.track_id", ondelete="CASCADE"), primary_key=True),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("reviewer_id", String(64), nullable=False),
    Column("reviewed_ns", BigInteger, nullable=False),
)
cases = Table(
    "console_cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("title", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("outcome", Text),
    Column("sector_id", String(256)),
    Column("created_by", String(64), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)
case_items = Table(
    "console_case_items", metadata,
    Column("case_id", String(64), ForeignKey("console_cases.case_id", ondelete="CASCADE"), nullable=False),
    Column("item_kind", String(16), nullable=False),
    Column("item_id", String(256), nullable=False),
    Column("added_by", String(64), nullable=False),
    Column("added_ns", BigInteger, nullable=False),
    UniqueConstraint("case_id", "item_kind", "item_id", name="uq_console_case_items"),
    Index("ix_console_case_items_item", "item_kind", "item_id"),
)
case_partners = Table(
    "console_case_partners", metadata,
    Column("case_id", String(64), ForeignKey("console_cases.case_id", ondelete="CASCADE"), nullable=False),
    Column("partner_id", String(64), nullable=False),
    UniqueConstraint("case_id", "partner_id", name="uq_console_case_partners"),
)
case_notes = Table(
    "console_case_notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", String(64), ForeignKey("console_cases.case_id", ondelete="CASCADE"), nullable=False),
    Column("author_id", String(64), nullable=False),
    Column("at_ns", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_console_case_notes_case", "case_id"),
)

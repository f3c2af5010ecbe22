"""The console's store of what the pipeline produced, and the stage ``console-store`` that fills it.

The stage consumes tracks, detections, border events and sensor health and writes them into the
console's tables (revisions 0004, 0005): the latest state of each track plus its points and the
evidence it gathered, one row per detection (with its frame's and its crop's evidence references),
each event with its evidence references (the evidence snapshot of an alert), the latest health of
each sensor. Alerts are not copied: the console reads
them from the alert service's table in the same database.

Every write is idempotent (deterministic ids, "insert if absent", "update if newer"), so a batch
consumed again after a crash changes nothing. A record that cannot be decoded is a dead letter;
a database that refuses a write raises, so the batch is not committed and is consumed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import Column, Connection, Engine, insert, select, update

from console import tables
from ibet import topics
from ibet.bus.base import Record
from ibet.clock import Clock, SystemClock
from ibet.messages import BorderEvent, DetectionBatch, SensorHealthEvent, TrackUpdate, WireMessage
from ibet.stage import Outcome

DECODERS: dict[str, type[WireMessage]] = {
    topics.TRACKS: TrackUpdate,
    topics.DETECTIONS: DetectionBatch,
    topics.EVENTS: BorderEvent,
    topics.SENSOR_HEALTH: SensorHealthEvent,
}


def detection_id(batch: DetectionBatch, index: int) -> str:
    """Deterministic id of the ``index``-th detection of a frame: ``"det-"`` + 16 hex digits."""
    canonical = f"ibet.console.detection.v1\x00{batch.sensor_id}\x00{batch.frame_sequence}\x00{batch.capture_ts_ns}\x00{index}"
    return "det-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ConsoleStore:
    """Writes decoded pipeline messages into the console's tables."""

    def __init__(self, engine: Engine, clock: Clock | None = None):
        self.engine = engine
        self.clock = clock or SystemClock()

    def write(self, messages: Sequence[WireMessage]) -> None:
        """Store ``messages`` in one transaction (idempotent)."""
        now = self.clock.now_ns()
        with self.engine.begin() as conn:
            for message in messages:
                if isinstance(message, TrackUpdate):
                    self._track(conn, message, now)
                elif isinstance(message, DetectionBatch):
                    self._detections(conn, message, now)
                elif isinstance(message, BorderEvent):
                    self._event(conn, message, now)
                elif isinstance(message, SensorHealthEvent):
                    self._health(conn, message, now)
                else:
                    raise TypeError(f"the console store does not keep {type(message).__name__}")

    def _track(self, conn: Connection, track: TrackUpdate, now: int) -> None:
        t, p = tables.tracks, tables.track_points
        values = dict(sector_id=track.sector_id, version=track.version, time_ts_ns=track.time_ts_ns, lat_deg=track.lat_deg,
                      lon_deg=track.lon_deg, class_name=track.class_name.value, status=track.status.value,
                      track_json=track.model_dump_json(exclude_none=True), stored_ns=now,
                      sensor_ids="," + ",".join(track.sensor_ids) + ",")
        stored = conn.execute(select(t.c.version).where(t.c.track_id == track.track_id)).scalar()
        if stored is None:
            conn.execute(insert(t).values(track_id=track.track_id, **values))
        elif track.version > stored:
            conn.execute(update(t).where(t.c.track_id == track.track_id).values(**values))
        point = conn.execute(select(p.c.version).where(p.c.track_id == track.track_id, p.c.version == track.version)).first()
        if point is None:
            conn.execute(insert(p).values(track_id=track.track_id, version=track.version, time_ts_ns=track.time_ts_ns,
                                          lat_deg=track.lat_deg, lon_deg=track.lon_deg))
        _add_evidence(conn, tables.track_evidence.c.track_id, track.track_id, track.evidence_refs)

    def _detections(self, conn: Connection, batch: DetectionBatch, now: int) -> None:
        t = tables.detections
        for index, det in enumerate(batch.detections):
            det_id = detection_id(batch, index)
            if conn.execute(select(t.c.detection_id).where(t.c.detection_id == det_id)).first() is not None:
                continue
            x1, y1, x2, y2 = det.box_xyxy_px
            conn.execute(insert(t).values(
                detection_id=det_id, sensor_id=batch.sensor_id, sector_id=batch.sector_id,
                frame_sequence=batch.frame_sequence, capture_ts_ns=batch.capture_ts_ns, det_index=index,
                class_id=det.class_id, class_name=det.class_name, score=det.score, x1_px=x1, y1_px=y1, x2_px=x2, y2_px=y2,
                image_width_px=batch.image_width_px, image_height_px=batch.image_height_px,
                sensor_track_id=det.sensor_track_id, evidence_ref=batch.evidence_ref, crop_ref=det.evidence_ref,
                model_name=batch.model_name,
                model_version=batch.model_version, stored_ns=now))

    def _event(self, conn: Connection, event: BorderEvent, now: int) -> None:
        t = tables.events
        if conn.execute(select(t.c.event_id).where(t.c.event_id == event.event_id)).first() is None:
            conn.execute(insert(t).values(event_id=event.event_id, event_type=event.event_type.value, track_id=event.track_id,
                                          sector_id=event.sector_id, event_ts_ns=event.event_ts_ns,
                                          event_json=event.model_dump_json(exclude_none=True), stored_ns=now))
        _add_evidence(conn, tables.event_evidence.c.event_id, event.event_id, event.evidence_refs)

    def _health(self, conn: Connection, health: SensorHealthEvent, now: int) -> None:
        t = tables.sensor_health
        values = dict(sector_id=health.sector_id, state=health.state.value, event_ts_ns=health.event_ts_ns,
                      silent_s=health.silent_s, stored_ns=now)
        stored = conn.execute(select(t.c.event_ts_ns).where(t.c.sensor_id == health.sensor_id)).scalar()
        if stored is None:
            conn.execute(insert(t).values(sensor_id=health.sensor_id, **values))
        elif health.event_ts_ns >= stored:
            conn.execute(update(t).where(t.c.sensor_id == health.sensor_id).values(**values))


def _add_evidence(conn: Connection, owner: Column, owner_id: str, refs: Sequence[str]) -> None:
    """Insert the evidence references of a track or event not stored yet, each at its place in ``refs``."""
    if not refs:
        return
    table = owner.table
    known = set(conn.execute(select(table.c.evidence_ref).where(owner == owner_id)).scalars())
    for position, ref in enumerate(dict.fromkeys(refs)):
        if ref not in known:
            conn.execute(insert(table).values({owner.name: owner_id, "evidence_ref": ref, "position": position}))


class ConsoleStoreStage:
    """The ``console-store`` stage: decode each record, store the good ones of a batch together."""

    name = "console-store"
    input_topics = tuple(DECODERS)

    def __init__(self, store: ConsoleStore):
        self.store = store

    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """One outcome per record: decode errors are dead letters; the rest are written in one transaction
        (a database error propagates, so the batch is not committed)."""
        outcomes: list[Outcome] = []
        good: list[WireMessage] = []
        for record in records:
            decoder = DECODERS.get(record.topic)
            try:
                if decoder is None:
                    raise ValueError(f"console-store does not read topic {record.topic!r}")
                good.append(decoder.from_bytes(record.value))
                outcomes.append(Outcome())
            except Exception as exc:  # bad data: the runner dead-letters this record, the batch goes on
                outcomes.append(Outcome(error=exc))
        if good:
            self.store.write(good)
        return outcomes


def build_console_store(database_url_settings) -> ConsoleStoreStage:
    """The ``console-store`` stage on the database of ``database_url_settings`` (an
    :class:`ibet.config.DatabaseSettings`), migrated first; what ``ibet run console-store`` builds."""
    from ibet.db import make_engine, migrate

    engine = make_engine(database_url_settings)
    migrate(engine)
    return ConsoleStoreStage(ConsoleStore(engine))

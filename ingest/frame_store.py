"""The frame ledger: durable per-sensor sequence numbers and de-duplication of retried uploads.

A drone that gets no answer retries the same upload (same ``device_frame_id``). The ledger makes the
retry harmless: the first attempt reserves the sensor's next sequence number; the retry gets the same
number back, told whether the first attempt already reached Kafka (then nothing is produced again) or
died before (then it is produced now, with that sequence). Portable SQLAlchemy Core: SQLite in the
embedded mode and tests, PostgreSQL in production; the schema comes from :func:`ibet.db.migrate`.

    >>> ledger = FrameLedger(engine)  # doctest: +SKIP
    >>> ledger.reserve("drone-1", "f-000001")  # doctest: +SKIP
    Reservation(sequence=0, already_produced=False, partition=None, offset=None)
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ibet.clock import Clock, SystemClock
from ingest.exceptions import FrameIdReusedError, LedgerError

# The tables as revision 0001 (ibet/migrations/versions/0001_ingest_frames.py) creates them.
metadata = MetaData()
sensor_sequences = Table(
    "ingest_sensor_sequences", metadata,
    Column("sensor_id", String(64), primary_key=True),
    Column("next_sequence", BigInteger, nullable=False),
)
frames = Table(
    "ingest_frames", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sensor_id", String(64), nullable=False),
    Column("device_frame_id", String(256), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("frame_sha256", String(64), nullable=False),
    Column("reserved_ts_ns", BigInteger, nullable=False),
    Column("produced", Boolean, nullable=False),
    Column("kafka_partition", Integer),
    Column("kafka_offset", BigInteger),
    UniqueConstraint("sensor_id", "device_frame_id", name="uq_ingest_frames_device_frame"),
    UniqueConstraint("sensor_id", "sequence", name="uq_ingest_frames_sequence"),
    Index("ix_ingest_frames_reserved", "reserved_ts_ns"),
)

_ATTEMPTS = 5  # concurrent first uploads of one frame, or of a new sensor's first frame, collide at most once each


class Reservation(NamedTuple):
    """A frame's place in its sensor's sequence; for a retried upload, what became of the first attempt."""

    sequence: int
    already_produced: bool
    partition: int | None = None  # where the first attempt landed, when already_produced
    offset: int | None = None


class FrameLedger:
    """Sequence numbers and the pushed frames' ledger in the database of ``engine`` (migrated)."""

    def __init__(self, engine: Engine, clock: Clock | None = None):
        self.engine = engine
        self._clock = clock or SystemClock()

    def reserve(self, sensor_id: str, device_frame_id: str | None, frame_sha256: str = "") -> Reservation:
        """The sequence of this upload, in one transaction.

        A new ``device_frame_id`` gets the sensor's next sequence; a known one its existing sequence
        and whether it was produced. Without a ``device_frame_id`` every call is a new frame. With
        ``frame_sha256`` given, a known id whose first upload had other bytes raises FrameIdReusedError
        (a device that restarted its frame counter would otherwise lose every frame as a "retry").
        """
        for _ in range(_ATTEMPTS):
            try:
                return self._reserve_once(sensor_id, device_frame_id, frame_sha256)
            except IntegrityError:
                continue  # another upload of this frame (or this new sensor's first) won the race: read again
            except SQLAlchemyError as exc:
                raise LedgerError(f"frame ledger unavailable, cannot number the frame of {sensor_id}: {exc}") from exc
        raise LedgerError(f"could not reserve a sequence for {sensor_id} frame {device_frame_id!r} "
                          f"after {_ATTEMPTS} attempts")

    def _reserve_once(self, sensor_id: str, device_frame_id: str | None, frame_sha256: str) -> Reservation:
        with self.engine.begin() as conn:
            if device_frame_id is None:
                return Reservation(_next_sequence(conn, sensor_id), False)
            row = conn.execute(
                select(frames.c.sequence, frames.c.produced, frames.c.kafka_partition, frames.c.kafka_offset,
                       frames.c.frame_sha256)
                .where(frames.c.sensor_id == sensor_id, frames.c.device_frame_id == device_frame_id)
            ).first()
            if row is not None:
                if frame_sha256 and row.frame_sha256 and row.frame_sha256 != frame_sha256:
                    raise FrameIdReusedError(
                        f"device_frame_id {device_frame_id!r} of {sensor_id} was accepted before with other "
                        f"bytes (sequence {row.sequence}); give every frame its own id")
                return Reservation(row.sequence, row.produced, row.kafka_partition, row.kafka_offset)
            sequence = _next_sequence(conn, sensor_id)
            conn.execute(insert(frames).values(
                sensor_id=sensor_id, device_frame_id=device_frame_id, sequence=sequence,
                frame_sha256=frame_sha256, reserved_ts_ns=self._clock.now_ns(), produced=False))
            return Reservation(sequence, False)

    def mark_produced(self, sensor_id: str, device_frame_id: str | None, partition: int | None = None,
                      offset: int | None = None) -> None:
        """Record that the frame is durably in Kafka (at ``partition``/``offset``); no-op without an id."""
        if device_frame_id is None:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(frames)
                    .where(frames.c.sensor_id == sensor_id, frames.c.device_frame_id == device_frame_id)
                    .values(produced=True, kafka_partition=partition, kafka_offset=offset)
                )
        except SQLAlchemyError as exc:
            raise LedgerError(f"frame ledger unavailable, cannot mark {sensor_id} {device_frame_id!r} produced: "
                              f"{exc}") from exc

    def prune(self, older_than_s: float) -> int:
        """Forget frames reserved more than ``older_than_s`` seconds ago (retries come within minutes);
        the sequence counters are kept. Returns how many frames were forgotten."""
        cutoff_ns = self._clock.now_ns() - int(older_than_s * 1e9)
        try:
            with self.engine.begin() as conn:
                return conn.execute(delete(frames).where(frames.c.reserved_ts_ns < cutoff_ns)).rowcount
        except SQLAlchemyError as exc:
            raise LedgerError(f"frame ledger unavailable, cannot prune: {exc}") from exc

    def next_sequence_of(self, sensor_id: str) -> int:
        """The sequence the sensor's next new frame will get (0 for a sensor never seen)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(sensor_sequences.c.next_sequence)
                                 .where(sensor_sequences.c.sensor_id == sensor_id)).scalar()
        return 0 if value is None else int(value)


def _next_sequence(conn: Connection, sensor_id: str) -> int:
    """Take the sensor's next sequence inside ``conn``'s transaction.

    The UPDATE locks the counter row until commit, so concurrent transactions (several API replicas on
    PostgreSQL, or threads on SQLite) queue on it and never hand out the same number; a rolled-back
    transaction gives its number back.
    """
    bumped = conn.execute(update(sensor_sequences).where(sensor_sequences.c.sensor_id == sensor_id)
                          .values(next_sequence=sensor_sequences.c.next_sequence + 1))
    if bumped.rowcount == 0:  # the sensor's first frame; a concurrent first insert fails on the key: retried
        conn.execute(insert(sensor_sequences).values(sensor_id=sensor_id, next_sequence=1))
        return 0
    taken = conn.execute(select(sensor_sequences.c.next_sequence)
                         .where(sensor_sequences.c.sensor_id == sensor_id)).scalar_one()
    return int(taken) - 1

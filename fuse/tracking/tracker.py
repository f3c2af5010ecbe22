"""The multi-target, multi-sensor tracker: composes predictor, associator, updater, initiator, deleter."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import Any

import numpy as np

from fuse.tracking.associator import MahalanobisGnnAssociator
from fuse.tracking.classes import ClassFusion
from fuse.tracking.deleter import Deleter
from fuse.tracking.exceptions import TrackerStateError
from fuse.tracking.initiator import MOfNInitiator
from fuse.tracking.predictor import ConstantVelocityPredictor
from fuse.tracking.reorder import Accepted, ReorderBuffer
from fuse.tracking.state import SCHEMA, restore, track_from_dict, track_to_dict
from fuse.tracking.types import Measurement, Track, TrackerOutput, TrackStatus
from fuse.tracking.updater import KalmanUpdater


class Tracker:
    """Tracks targets in metres from the measurements of many sensors, in event time.

    Measurements go through the reorder buffer; each distinct ``time_ns`` released is one scan
    (all sensors that measured at that instant). Per scan: predict every track to the scan time,
    coast and delete what has gone stale, associate, update, confirm, and start tentative tracks
    from what is left. No I/O, no clock: the same calls give the same tracks, ids and versions.
    Call :meth:`process` once per input message (a frame's measurements and its capture time),
    so a replay from the committed offsets makes the same calls whatever its poll batches were.

    Components default to the documented defaults; when passing your own initiator, give it the
    same ``class_fusion`` and ``updater`` as the tracker. Example::

        tracker = Tracker(id_prefix="sector-7")
        out = tracker.process(measurements, time_ns=frame_capture_ns)
        for track in out.updated: ...
    """

    def __init__(
        self,
        predictor: ConstantVelocityPredictor | None = None,
        updater: KalmanUpdater | None = None,
        associator: MahalanobisGnnAssociator | None = None,
        initiator: MOfNInitiator | None = None,
        deleter: Deleter | None = None,
        class_fusion: ClassFusion | None = None,
        reorder: ReorderBuffer | None = None,
        id_prefix: str = "trk",
    ) -> None:
        if not isinstance(id_prefix, str) or not id_prefix or any(ch.isspace() for ch in id_prefix):
            raise ValueError(f"id_prefix must be a non-empty string without spaces, got {id_prefix!r}")
        self.predictor = predictor or ConstantVelocityPredictor()
        self.updater = updater or KalmanUpdater()
        self.associator = associator or MahalanobisGnnAssociator()
        self.class_fusion = class_fusion or ClassFusion()
        self.initiator = initiator or MOfNInitiator(updater=self.updater, class_fusion=self.class_fusion)
        self.deleter = deleter or Deleter()
        self.reorder = reorder if reorder is not None else ReorderBuffer()
        self.id_prefix = id_prefix
        self.scans_total = 0
        self._tracks: set[Track] = set()

    @property
    def tracks(self) -> tuple[Track, ...]:
        """The live tracks sorted by id (owned by the tracker: read, do not modify)."""
        return tuple(sorted(self._tracks, key=lambda t: t.track_id))

    def add(self, measurements: Iterable[Measurement]) -> Accepted:
        """Buffer measurements (any order within the reorder window); returns late ones and duplicates."""
        return self.reorder.add(measurements)

    def step(self, time_ns: int | None = None, sensor_id: str | None = None) -> TrackerOutput:
        """Advance event time to ``time_ns`` (if given; reached by ``sensor_id``'s frame, when known),
        run every released scan, then age the tracks."""
        if time_ns is not None:
            self.reorder.advance(time_ns, sensor_id)
        return self._run(self.reorder.release())

    def process(self, measurements: Iterable[Measurement], time_ns: int | None = None,
                sensor_id: str | None = None) -> TrackerOutput:
        """:meth:`add` then :meth:`step`; ``time_ns`` is event time known to be reached (e.g. an empty
        frame of ``sensor_id``)."""
        accepted = self.add(measurements)
        out = self.step(time_ns, sensor_id)
        return TrackerOutput(out.updated, out.deleted, accepted.late, accepted.duplicates, out.scans)

    def flush(self) -> TrackerOutput:
        """Run every buffered measurement now (end of input): nothing at or before the newest time is accepted after."""
        return self._run(self.reorder.flush())

    def _run(self, released: list[Measurement]) -> TrackerOutput:
        updated: list[Track] = []
        deleted: list[Track] = []
        scans = 0
        for time_ns, scan in groupby(sorted(released, key=lambda m: m.key), key=lambda m: m.time_ns):
            self._scan(time_ns, list(scan), updated, deleted)
            scans += 1
        if self.reorder.watermark_ns is not None:
            self._age(self.reorder.watermark_ns, updated, deleted)
        return TrackerOutput(updated=tuple(updated), deleted=tuple(deleted), scans=scans)

    def _scan(self, time_ns: int, measurements: list[Measurement], updated: list[Track], deleted: list[Track]) -> None:
        """One scan: all measurements share ``time_ns`` and are sorted by ``Measurement.key``."""
        self._predict(time_ns)
        changed = self._age(time_ns, updated, deleted, emit=False)
        tracks = self.tracks
        associations = self.associator.associate(tracks, measurements, time_ns)
        self._record_hits(tracks, associations, measurements)
        self._update(associations, time_ns)
        changed.update(associations)
        for track in self.initiator.confirmed(tracks):
            track.status = TrackStatus.CONFIRMED
            changed.add(track)
        used = {id(m) for ms in associations.values() for m in ms}
        unassociated = [m for m in measurements if id(m) not in used]
        new_tracks = self.initiator.initiate(unassociated, time_ns, self.id_prefix)
        self._tracks |= new_tracks
        self._emit(changed | new_tracks, updated)
        self.scans_total += 1

    def _predict(self, time_ns: int) -> None:
        tracks = self.tracks
        if not tracks:
            return
        from_ns = np.array([t.state_ns for t in tracks], dtype=np.int64)
        x, P = self.predictor.predict_to(np.stack([t.x for t in tracks]), np.stack([t.P for t in tracks]), from_ns, time_ns)
        for i, track in enumerate(tracks):
            track.x, track.P, track.state_ns = x[i], P[i], time_ns

    def _age(self, time_ns: int, updated: list[Track], deleted: list[Track], emit: bool = True) -> set[Track]:
        """Delete stale tracks (reported at once) and mark coasting ones; returns the coasting set."""
        gone = self.deleter.delete_tracks(self.tracks, time_ns)
        self._tracks -= gone
        for track in sorted(gone, key=lambda t: t.track_id):
            track.status = TrackStatus.DELETED
            track.version += 1
            deleted.append(track.snapshot())
        coasting = self.deleter.coasting(self.tracks, time_ns)
        for track in coasting:
            track.status = TrackStatus.COASTING
        if emit:
            self._emit(coasting, updated)
        return set(coasting)

    def _record_hits(
        self, tracks: tuple[Track, ...], associations: dict[Track, tuple[Measurement, ...]], scan: list[Measurement]
    ) -> None:
        """A scan counts for a track when it hit it or holds a sensor that has seen it before (M-of-N)."""
        scan_sensors = {m.sensor_id for m in scan}
        for track in tracks:
            hit = track in associations
            if hit or not scan_sensors.isdisjoint(track.sensors):
                track.hits = [*track.hits, hit][-self.initiator.n :]

    def _update(self, associations: dict[Track, tuple[Measurement, ...]], time_ns: int) -> None:
        """Kalman-update each track with its measurements, one sensor at a time (sensor order), batched over tracks.

        A track adopts a measurement's sensor track id as its hint unless another live track holds
        it, so one wrong association near a crossing does not hand the identity over for good.
        """
        holders = {(sensor, sid): t for t in self.tracks for sensor, sid in t.hints.items()}
        by_sensor: dict[str, list[tuple[Track, Measurement]]] = {}
        for track, measurements in associations.items():
            for meas in measurements:
                by_sensor.setdefault(meas.sensor_id, []).append((track, meas))
        for sensor in sorted(by_sensor):
            pairs = by_sensor[sensor]
            result = self.updater.update(
                np.stack([t.x for t, _ in pairs]),
                np.stack([t.P for t, _ in pairs]),
                np.stack([m.xy_m for _, m in pairs]),
                np.stack([m.cov_m2 for _, m in pairs]),
            )
            for i, (track, meas) in enumerate(pairs):
                track.x, track.P = result.x[i], result.P[i]
                track.class_probabilities = self.class_fusion.update(track.class_probabilities, meas.class_name, meas.score)
                track.sensors.add(meas.sensor_id)
                track.evidence[meas.sensor_id] = meas.ref
                sid = meas.sensor_track_id
                if sid is not None and holders.get((sensor, sid), track) is track:  # a hint another track holds stays there
                    track.hints[sensor] = sid
        for track in associations:
            track.last_update_ns = time_ns
            if track.status is TrackStatus.COASTING:
                track.status = TrackStatus.CONFIRMED

    @staticmethod
    def _emit(changed: Iterable[Track], updated: list[Track]) -> None:
        for track in sorted(changed, key=lambda t: t.track_id):
            track.version += 1
            updated.append(track.snapshot())

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue: tracks, the reorder buffer, counters (JSON-serialisable, exact)."""
        return {
            "schema": SCHEMA,
            "id_prefix": self.id_prefix,
            "scans_total": self.scans_total,
            "tracks": [track_to_dict(t) for t in self.tracks],
            "reorder": self.reorder.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], **components: Any) -> Tracker:
        """A tracker that continues a saved :meth:`to_state` with the same tracks and ids.

        ``components`` are the constructor's (predictor=..., reorder=...; defaults otherwise);
        ``id_prefix``, if given, must match the saved one. TrackerStateError if the state is
        of another schema or malformed.
        """
        if not isinstance(state, dict) or state.get("schema") != SCHEMA:
            got = state.get("schema") if isinstance(state, dict) else type(state).__name__
            raise TrackerStateError(f"tracker state must have schema {SCHEMA!r}, got {got!r}")
        saved_prefix = state.get("id_prefix")
        if components.setdefault("id_prefix", saved_prefix) != saved_prefix:
            raise TrackerStateError(f"saved state has id_prefix {saved_prefix!r}, tracker was given {components['id_prefix']!r}")
        tracker = cls(**components)
        tracks = [track_from_dict(d) for d in restore("tracker", lambda: state["tracks"])]
        if len({t.track_id for t in tracks}) != len(tracks):
            raise TrackerStateError("saved state holds two tracks with the same id")
        tracker._tracks = set(tracks)
        tracker.scans_total = restore("tracker", lambda: int(state["scans_total"]))
        tracker.reorder.load_state(restore("tracker", lambda: state["reorder"]))
        return tracker

"""All fusion of one sector: its tracking plane, its tracker and its border memory.

Pure: ground measurements in, TrackUpdates and BorderEvents out, in event time. The whole state
round-trips through JSON (:meth:`SectorFusion.to_state`), so the stage can save it with its
offsets and a restarted worker continues the same tracks.

Evidence: the detect stage stores a crop (and the frame) when a sensor's image track first appears
and names it on that detection. :meth:`SectorFusion.note_evidence` remembers it per (sensor, sensor
track id); every fused track gathers the evidence of the sensor tracks it was associated with (its
``hints``), and its TrackUpdates and BorderEvents carry it, so an alert shows what was seen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from fuse.border_events import BorderEventDetector
from fuse.border_relation import BorderModel
from fuse.event_time import EventTimeGuard
from fuse.frames import LocalPlane
from fuse.groups import Membership, group_tracks
from fuse.measurements import GroundMeasurement
from fuse.tracking import (
    ClassFusion,
    ConstantVelocityPredictor,
    Deleter,
    KalmanUpdater,
    Measurement,
    MOfNInitiator,
    ReorderBuffer,
    Track,
    Tracker,
)
from fuse.tracking import TrackStatus as TrackerStatus
from ibet.config import FuseSettings
from ibet.messages import BorderEvent, TrackClass, TrackStatus, TrackUpdate

_CLASSES = {c.value for c in TrackClass}
MAX_EVIDENCE_PER_TRACK = 8  # references (crops and frames) carried by one track's messages
MAX_REMEMBERED_SENSOR_TRACKS = 512  # per sector, a bound on the evidence index (kept in the saved state)
_PUBLISHED = {TrackerStatus.CONFIRMED: TrackStatus.CONFIRMED, TrackerStatus.COASTING: TrackStatus.COASTING,
              TrackerStatus.DELETED: TrackStatus.DELETED}


def _tracker(sector_id: str, settings: FuseSettings, state: dict | None = None) -> Tracker:
    """The sector's tracker from the settings, new or continuing ``state`` (same components either way)."""
    updater, class_fusion = KalmanUpdater(), ClassFusion()
    components = dict(
        predictor=ConstantVelocityPredictor(process_noise_accel_mps2=settings.process_noise_accel_mps2),
        updater=updater,
        class_fusion=class_fusion,
        initiator=MOfNInitiator(m=settings.confirm_m, n=settings.confirm_n, updater=updater, class_fusion=class_fusion),
        deleter=Deleter(coast_after_s=settings.coast_after_s, delete_after_s=settings.delete_after_s),
        reorder=ReorderBuffer(window_s=settings.reorder_window_s, sensor_live_s=settings.sensor_live_s),
    )
    if state is not None:
        return Tracker.from_state(state, **components)
    return Tracker(id_prefix=sector_id, **components)


class SectorFusion:
    """Tracks and border events of one sector, on a tangent plane fixed at its first measurement."""

    def __init__(self, sector_id: str, model: BorderModel, settings: FuseSettings, plane: LocalPlane | None = None,
                 tracker: Tracker | None = None, detector: BorderEventDetector | None = None):
        self.sector_id, self.model, self.settings, self.plane = sector_id, model, settings, plane
        self.tracker = tracker or _tracker(sector_id, settings)
        self.detector = detector or BorderEventDetector(model, approach_distance_m=settings.approach_distance_m,
                                                        hysteresis_m=settings.hysteresis_m,
                                                        lost_distance_m=settings.lost_distance_m)
        # (sensor id, sensor track id) -> (capture time it was noted, its evidence references), oldest first;
        # an entry lives while a live track is associated with that sensor track, or for a tracker's
        # lifetime of a track (reorder window + coasting + deletion) after it was noted
        self.sensor_evidence: OrderedDict[tuple[str, int], tuple[int, tuple[str, ...]]] = OrderedDict()
        self._evidence_ttl_ns = int((settings.reorder_window_s + settings.coast_after_s + settings.delete_after_s) * 1e9)
        # fused track id -> evidence gathered so far (dropped when the track is deleted)
        self.track_evidence: dict[str, list[str]] = {}
        self.time_guard = EventTimeGuard(settings.max_time_ahead_s, settings.max_time_jump_s)

    def check_time(self, capture_ts_ns: int, now_ns: int) -> None:
        """ImplausibleEventTimeError when a frame at ``capture_ts_ns`` would move this sector's event time
        implausibly (see :mod:`fuse.event_time`); ``now_ns`` is the worker's clock."""
        self.time_guard.check(capture_ts_ns, now_ns)

    def repair_time(self, now_ns: int) -> tuple[int, int] | None:
        """Bring a restored event time that lies ahead of the clock back to the newest plausible one.

        Returns (old newest, new newest or -1) when something was repaired, None otherwise; pending
        measurements after the limit are dropped."""
        reorder = self.tracker.reorder
        limit = now_ns + self.time_guard.max_ahead_ns
        if reorder.newest_ns is None or reorder.newest_ns <= limit:
            return None
        before = reorder.newest_ns
        tracked = [t.state_ns for t in self.tracker.tracks if t.state_ns <= limit]
        reorder.rewind(limit, max(tracked) if tracked else None)
        self.time_guard.newest_ns, self.time_guard.seen_at_ns = reorder.newest_ns, now_ns
        if reorder.newest_ns is None:
            self.time_guard.seen_at_ns = None
        return before, -1 if reorder.newest_ns is None else reorder.newest_ns

    def note_evidence(self, sensor_id: str, sensor_track_id: int, refs: Sequence[str | None], capture_ts_ns: int) -> None:
        """Remember the evidence stored for a sensor's image track (its crop, then its frame)."""
        refs = tuple(dict.fromkeys(r for r in refs if r))
        if not refs:
            return
        key = (sensor_id, int(sensor_track_id))
        self.sensor_evidence[key] = (capture_ts_ns, refs)
        self.sensor_evidence.move_to_end(key)
        while len(self.sensor_evidence) > MAX_REMEMBERED_SENSOR_TRACKS:
            self.sensor_evidence.popitem(last=False)

    def _forget_old_evidence(self, time_ns: int) -> None:
        hinted = {(sensor, int(tid)) for t in self.tracker.tracks for sensor, tid in t.hints.items()}
        for key, (noted_ns, _) in list(self.sensor_evidence.items()):
            if noted_ns < time_ns - self._evidence_ttl_ns and key not in hinted:
                del self.sensor_evidence[key]

    def _gather_evidence(self, track: Track) -> tuple[str, ...]:
        gathered = self.track_evidence.setdefault(track.track_id, [])
        for sensor_id, sensor_track_id in sorted(track.hints.items()):
            for ref in self.sensor_evidence.get((sensor_id, int(sensor_track_id)), (0, ()))[1]:
                if ref not in gathered and len(gathered) < MAX_EVIDENCE_PER_TRACK:
                    gathered.append(ref)
        return tuple(gathered)

    def expect_sensors(self, sensor_ids: Sequence[str]) -> None:
        """The sector's sensors (the registry's): once all that report have passed a time, what is
        older is released without waiting out the reorder window (see ``ReorderBuffer``)."""
        self.tracker.reorder.expect(sensor_ids)

    def process(self, measurements: Sequence[GroundMeasurement], time_ns: int,
                now_ns: int | None = None, sensor_id: str | None = None) -> tuple[list[TrackUpdate], list[BorderEvent]]:
        """One frame's measurements (maybe none) at its capture time -> published tracks, events.

        ``now_ns``: the worker's clock, when the caller checks event time (:meth:`check_time`);
        ``sensor_id``: whose frame it is (its frame at ``time_ns`` is complete)."""
        if now_ns is not None:
            self.time_guard.seen(time_ns, now_ns)
        if self.plane is None and measurements:
            self.plane = LocalPlane(measurements[0].lat_deg, measurements[0].lon_deg)
        if self.plane is None:
            return [], []
        local = []
        for m in measurements:
            east, north = self.plane.to_en(m.lat_deg, m.lon_deg)
            local.append(Measurement(m.sensor_id, m.capture_ts_ns, (float(east), float(north)), m.cov_en_m2,
                                     m.class_name, m.score, m.sensor_track_id, m.ref))
        out = self.tracker.process(local, time_ns=time_ns, sensor_id=sensor_id)
        live = [t for t in out.updated if t.status in _PUBLISHED]
        groups = self._groups() if live else {}
        updates = self._updates(live, groups) + self._updates(list(out.deleted))
        events = self.detector.update(updates)
        evidence = {u.track_id: u.evidence_refs for u in updates}
        events = [e.model_copy(update={"evidence_refs": evidence[e.track_id]}) if evidence.get(e.track_id) else e
                  for e in events]
        for track in out.deleted:
            self.track_evidence.pop(track.track_id, None)
        self._forget_old_evidence(time_ns)
        return updates, events

    def _groups(self) -> dict[str, Membership]:
        """The groups among every published track of the sector now (see :mod:`fuse.groups`)."""
        tracks = [t for t in self.tracker.tracks if t.status in _PUBLISHED]
        if len(tracks) < 2:
            return {}
        x = np.array([t.x for t in tracks])
        return group_tracks([t.track_id for t in tracks], [str(t.class_name) for t in tracks], x[:, :2], x[:, 2:4],
                            self.settings.group_distance_m, self.settings.group_speed_mps)

    def _updates(self, tracks: Sequence[Track], groups: dict[str, Membership] | None = None) -> list[TrackUpdate]:
        if not tracks:
            return []
        groups = groups or {}
        east = np.array([t.x[0] for t in tracks])
        north = np.array([t.x[1] for t in tracks])
        lat, lon = self.plane.to_latlon(east, north)
        lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
        ve = np.array([t.x[2] for t in tracks])
        vn = np.array([t.x[3] for t in tracks])
        relation = self.model.relation(lat, lon, ve, vn)
        updates = []
        for i, t in enumerate(tracks):
            probs = {k: v for k, v in t.class_probabilities.items() if k in _CLASSES}
            total = sum(probs.values())
            probs = {k: v / total for k, v in probs.items()} if total > 0 else {}
            cov = t.position_cov_m2
            cov = (cov + cov.T) / 2
            side = relation.country[i]
            updates.append(TrackUpdate(
                track_id=t.track_id, sector_id=self.sector_id, time_ts_ns=t.state_ns, lat_deg=float(lat[i]),
                lon_deg=float(lon[i]), position_cov_m2=((float(cov[0, 0]), float(cov[0, 1])),
                                                        (float(cov[1, 0]), float(cov[1, 1]))),
                velocity_east_mps=float(ve[i]), velocity_north_mps=float(vn[i]),
                class_name=t.class_name if t.class_name in _CLASSES else TrackClass.UNKNOWN,
                class_probabilities=probs, sensor_ids=tuple(sorted(t.sensors)), status=_PUBLISHED[t.status],
                border_side=side if side in ("CA", "US") else None,
                distance_to_border_m=float(relation.distance_m[i]) if np.isfinite(relation.distance_m[i]) else None,
                version=t.version, evidence_refs=self._gather_evidence(t),
                **({"group_id": groups[t.track_id].group_id, "group_size": groups[t.track_id].size}
                   if t.track_id in groups else {}),
            ))
        return updates

    def to_state(self) -> dict[str, Any]:
        plane = None if self.plane is None else [self.plane.lat0_deg, self.plane.lon0_deg]
        return {"sector_id": self.sector_id, "plane": plane, "tracker": self.tracker.to_state(),
                "border": self.detector.to_state(),
                "sensor_evidence": [[s, t, noted, list(refs)] for (s, t), (noted, refs) in self.sensor_evidence.items()],
                "track_evidence": {k: list(v) for k, v in sorted(self.track_evidence.items())},
                "event_time": self.time_guard.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], model: BorderModel, settings: FuseSettings) -> SectorFusion:
        plane = LocalPlane(*state["plane"]) if state["plane"] else None
        detector = BorderEventDetector.from_state(model, state["border"], approach_distance_m=settings.approach_distance_m,
                                                  hysteresis_m=settings.hysteresis_m,
                                                  lost_distance_m=settings.lost_distance_m)
        fusion = cls(state["sector_id"], model, settings, plane,
                     _tracker(state["sector_id"], settings, state["tracker"]), detector)
        # states saved before evidence was carried have neither key
        for sensor_id, sensor_track_id, noted_ns, refs in state.get("sensor_evidence", []):
            fusion.sensor_evidence[(str(sensor_id), int(sensor_track_id))] = (int(noted_ns), tuple(str(r) for r in refs))
        fusion.track_evidence = {str(k): [str(r) for r in v] for k, v in state.get("track_evidence", {}).items()}
        fusion.time_guard.load_state(state.get("event_time"))  # states saved before the guard have none
        return fusion

"""Tracing of ``ibet bench e2e`` (pure): each delivered alert version back to the frame that made it.

alert version on ``ibet.alerts.v1`` -> its newest event on ``ibet.events.v1`` -> the frame whose
measurement made that event (for a crossing, the frame that put its track past the hysteresis) ->
that frame's detections; the producer timestamps split the time into stages (see ``e2e.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.formats import alert_version
from ibet.messages import Alert, BorderEvent, BorderEventType, DetectionBatch, Direction, TrackUpdate

STAGES = ("detect", "fuse", "alerts", "delivery")
MS = 1_000_000


@dataclass(frozen=True)
class Chain:
    """When one delivered alert version's triggering frame passed each stage (ns since the epoch).

    ``sent_ns``: the frame sent (its capture); ``detect_ns``/``fuse_ns``/``alerts_ns``: its detections,
    the border event and the alert version produced; ``delivered_ns``: the webhook received.
    """

    alert_id: str
    event_type: str
    sensor_id: str
    sent_ns: int
    detect_ns: int
    fuse_ns: int
    alerts_ns: int
    delivered_ns: int

    @property
    def total_ns(self) -> int:
        return self.delivered_ns - self.sent_ns

    def stage_ns(self) -> dict[str, int]:
        """Time in each stage; every boundary is held between the one before it and the delivery, so
        the stages add up to the total even where a millisecond timestamp or a worker that delivers
        before the alert record is produced puts one boundary out of order."""
        bounds = [self.sent_ns]
        for t in (self.detect_ns, self.fuse_ns, self.alerts_ns):
            bounds.append(min(max(t, bounds[-1]), self.delivered_ns))
        bounds.append(max(self.delivered_ns, bounds[-1]))
        return {stage: bounds[i + 1] - bounds[i] for i, stage in enumerate(STAGES)}


@dataclass
class Trace:
    chains: list[Chain] = field(default_factory=list)
    untraced: dict[str, int] = field(default_factory=dict)  # reason -> delivered versions that should trace
    not_frames: dict[str, int] = field(default_factory=dict)  # what made the version -> versions no frame made

    def miss(self, reason: str) -> None:
        self.untraced[reason] = self.untraced.get(reason, 0) + 1

    def not_a_frame(self, cause: str) -> None:
        self.not_frames[cause] = self.not_frames.get(cause, 0) + 1


def _earliest(pairs: Sequence[tuple[int, Any]], key) -> dict[Any, tuple[int, Any]]:
    """``key(item)`` -> (first timestamp, item): a duplicate (at-least-once) keeps the first."""
    out: dict[Any, tuple[int, Any]] = {}
    for ts, item in pairs:
        k = key(item)
        if k not in out or ts < out[k][0]:
            out[k] = (ts, item)
    return out


def trigger_capture_ns(event: BorderEvent, track_updates: Sequence[TrackUpdate], hysteresis_m: float) -> int | None:
    """The capture time of the measurement that made ``event``.

    Most events carry it as ``event_ts_ns``. A crossing carries the interpolated instant the track
    crossed the line instead; it is made by the first update of its track after that instant that
    is ``hysteresis_m`` deep into the destination country (see :mod:`fuse.border_events`), whose
    time is its latest measurement's capture time. None when the track's updates do not show it.
    """
    if event.event_type is not BorderEventType.CROSSING:
        return event.event_ts_ns
    destination = "US" if event.direction is Direction.CA_TO_US else "CA"
    deep = [u.time_ts_ns for u in track_updates if u.track_id == event.track_id and u.time_ts_ns >= event.event_ts_ns
            and u.border_side == destination and (u.distance_to_border_m or 0.0) >= hysteresis_m - 1e-6]
    return min(deep, default=None)


def trace_chains(sent: Mapping[tuple[str, int], int], detections: Sequence[tuple[int, DetectionBatch]],
                 events: Sequence[tuple[int, BorderEvent]], alerts: Sequence[tuple[int, Alert]],
                 arrivals: Sequence[tuple[int, str, str]], track_updates: Sequence[TrackUpdate] = (),
                 hysteresis_m: float = 3.0) -> Trace:
    """Trace each delivered alert version back to the frame that triggered it.

    ``sent``: (sensor id, capture_ts_ns) -> wall ns the frame was sent; ``detections``, ``events``,
    ``alerts``: (producer timestamp ns, message) as on their topics; ``arrivals``: (wall ns, alert id,
    version) per webhook received; ``track_updates`` (``ibet.tracks.v1``) and the fuse stage's
    ``hysteresis_m`` find the frame that made a crossing (:func:`trigger_capture_ns`). A version
    counts once, at its first arrival. Versions no frame made are counted by cause in
    :attr:`Trace.not_frames` and left out: a state change (escalation, acknowledgement: its newest
    event was already counted), a lost feed (sensor health), a track lost near the border (made by
    the track's deletion after frames without it). What should trace but cannot is counted by
    reason in :attr:`Trace.untraced`.
    """
    by_track: dict[str, list[TrackUpdate]] = {}
    for update in track_updates:
        by_track.setdefault(update.track_id, []).append(update)
    first_arrival: dict[tuple[str, str], int] = {}
    for ts, alert_id, version in arrivals:
        key = (alert_id, version)
        first_arrival[key] = min(ts, first_arrival.get(key, ts))
    versions = _earliest(alerts, lambda a: (a.alert_id, alert_version(a)))
    by_event = _earliest(events, lambda e: e.event_id)
    frames_detected = _earliest(detections, lambda d: (d.sensor_id, d.capture_ts_ns))
    trace, counted = Trace(), set()
    for (alert_id, version), delivered in sorted(first_arrival.items(), key=lambda kv: kv[1]):
        if (alert_id, version) not in versions:
            trace.miss("alert version not on ibet.alerts.v1")
            continue
        alerts_ts, alert = versions[(alert_id, version)]
        if alert.kind != "border":
            trace.not_a_frame(alert.kind)
            continue
        event_id = alert.event_ids[-1]
        if event_id in counted:
            trace.not_a_frame("state change")
            continue
        counted.add(event_id)
        if event_id not in by_event:
            trace.miss("event not on ibet.events.v1")
            continue
        fuse_ts, event = by_event[event_id]
        if event.event_type is BorderEventType.LOST_NEAR_BORDER:
            trace.not_a_frame(event.event_type.value)
            continue
        capture = trigger_capture_ns(event, by_track.get(event.track_id, ()), hysteresis_m)
        if capture is None:
            trace.miss("crossing: no track update deep on the destination side")
            continue
        frame = next(((s, capture) for s in event.sensor_ids if (s, capture) in sent), None)
        if frame is None:
            trace.miss("no frame sent with the event's capture time")
            continue
        if frame not in frames_detected:
            trace.miss("the frame's detections not on ibet.detections.v1")
            continue
        trace.chains.append(Chain(alert_id, event.event_type.value, frame[0], sent[frame], frames_detected[frame][0],
                                  fuse_ts, alerts_ts, delivered))
    return trace


def frame_detect_ns(sent: Mapping[tuple[str, int], int], detections: Sequence[tuple[int, DetectionBatch]]) -> list[int]:
    """Frame sent -> its detections produced, for every frame that has them (did detect keep up?)."""
    done = _earliest(detections, lambda d: (d.sensor_id, d.capture_ts_ns))
    return [done[k][0] - t for k, t in sent.items() if k in done]

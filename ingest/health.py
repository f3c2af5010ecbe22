"""Sensor health: which feeds have gone dark. A pure tracker over (sensor, time) observations.

A sensor is lost when no frame has arrived for ``lost_after_intervals`` of its frame intervals
(and at least ``lost_min_s``); it is restored by its next frame. Times are the ingest clock's
(an injected :class:`~ibet.clock.Clock`), since "nothing arrived" is a fact about arrival.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ibet.messages import SensorHealthEvent, SensorHealthState
from ingest.metrics import FEED_LOST, LAST_FRAME_TIMESTAMP

_NS = 1_000_000_000


@dataclass
class _Feed:
    sector_id: str
    interval_s: float
    last_seen_ns: int | None = None
    last_capture_ns: int | None = None
    lost: bool = False


class FeedHealth:
    """Tracks the sensors it is given; ``frame_seen`` and ``check`` return the events to publish."""

    def __init__(self, sensors: Mapping[str, tuple[str, float]], lost_after_intervals: float = 5.0,
                 lost_min_s: float = 10.0, started_ns: int | None = None):
        """``sensors``: sensor id -> (sector id, expected frame interval in seconds)."""
        self._feeds = {sid: _Feed(sector, interval, started_ns) for sid, (sector, interval) in sensors.items()}
        self.lost_after_intervals, self.lost_min_s = lost_after_intervals, lost_min_s

    def silence_limit_s(self, sensor_id: str) -> float:
        return max(self.lost_min_s, self.lost_after_intervals * self._feeds[sensor_id].interval_s)

    def frame_seen(self, sensor_id: str, now_ns: int, capture_ts_ns: int) -> list[SensorHealthEvent]:
        """Record a frame; a feed that was lost is restored (one event)."""
        feed = self._feeds.get(sensor_id)
        if feed is None:
            return []
        events = []
        if feed.lost:
            feed.lost = False
            FEED_LOST.labels(sensor_id).set(0)
            events.append(self._event(sensor_id, feed, SensorHealthState.FEED_RESTORED, now_ns))
        feed.last_seen_ns, feed.last_capture_ns = now_ns, capture_ts_ns
        LAST_FRAME_TIMESTAMP.labels(sensor_id).set(capture_ts_ns / _NS)
        return events

    def check(self, now_ns: int) -> list[SensorHealthEvent]:
        """Feeds silent for longer than their limit, each reported once until it comes back."""
        events = []
        for sensor_id, feed in self._feeds.items():
            if feed.lost or feed.last_seen_ns is None:
                continue
            if (now_ns - feed.last_seen_ns) / _NS > self.silence_limit_s(sensor_id):
                feed.lost = True
                FEED_LOST.labels(sensor_id).set(1)
                events.append(self._event(sensor_id, feed, SensorHealthState.FEED_LOST, now_ns))
        return events

    def is_lost(self, sensor_id: str) -> bool:
        return self._feeds[sensor_id].lost

    def _event(self, sensor_id: str, feed: _Feed, state: SensorHealthState, now_ns: int) -> SensorHealthEvent:
        silent = (now_ns - feed.last_seen_ns) / _NS if feed.last_seen_ns is not None else 0.0
        return SensorHealthEvent(sensor_id=sensor_id, sector_id=feed.sector_id, state=state, event_ts_ns=now_ns,
                                 last_frame_ts_ns=feed.last_capture_ns, expected_interval_s=feed.interval_s,
                                 silent_s=max(0.0, silent))

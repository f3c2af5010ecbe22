"""Feed health: lost after the silence limit, once; restored by the next frame."""

from __future__ import annotations

from ibet.messages import SensorHealthState
from ingest.health import FeedHealth

S = 1_000_000_000


def test_no_events_for_a_steady_feed_and_for_a_sensor_never_seen():
    health = FeedHealth({"cam": ("sec", 0.5), "quiet": ("sec", 0.5)}, lost_after_intervals=5, lost_min_s=2)
    for k in range(20):
        assert health.frame_seen("cam", k * S // 2, k * S // 2) == []
        assert health.check(k * S // 2) == []


def test_lost_once_then_restored():
    health = FeedHealth({"cam": ("sec", 0.5)}, lost_after_intervals=5, lost_min_s=2)
    health.frame_seen("cam", 10 * S, 9 * S)
    assert health.check(12 * S) == []  # 2 s silent: within max(2 s, 5 x 0.5 s = 2.5 s)
    [lost] = health.check(13 * S)
    assert lost.state == SensorHealthState.FEED_LOST and lost.silent_s == 3.0 and lost.last_frame_ts_ns == 9 * S
    assert health.check(20 * S) == []  # reported once
    [back] = health.frame_seen("cam", 21 * S, 21 * S)
    assert back.state == SensorHealthState.FEED_RESTORED and back.sector_id == "sec"
    assert not health.is_lost("cam")


def test_unknown_sensor_is_ignored():
    assert FeedHealth({}).frame_seen("nobody", S, S) == []

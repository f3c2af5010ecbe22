"""Event-time plausibility per sector (fuse.event_time) and the repair of a poisoned saved state."""

from __future__ import annotations

import pytest

from fuse.border_relation import BorderModel
from fuse.event_time import EventTimeGuard, ImplausibleEventTimeError
from fuse.sector_fusion import SectorFusion
from fuse.tracking import Measurement, ReorderBuffer
from ibet.border import load_border, load_ports_of_entry
from ibet.config import FuseSettings

S = 1_000_000_000
T0 = 1_784_149_200 * S  # 2026-07-15T21:00Z
YEAR = 365 * 86400 * S


def guard() -> EventTimeGuard:
    g = EventTimeGuard(max_ahead_s=60, max_jump_s=300)
    g.seen(T0, now_ns=T0)
    return g


@pytest.mark.parametrize("capture, now, words", [
    (T0 + 3 * YEAR, T0 + S, "ahead of the fuse clock"),
    (T0 + 61 * S, T0, "ahead of the fuse clock"),
    (T0 + 400 * S, T0 + 30 * S, None),  # a replay: the clock is far later, the sector's timeline jumps
    (T0 - 5 * YEAR, T0 + S, "older than the sector's event time"),
    (T0 - 301 * S, T0 + S, "older than the sector's event time"),
])
def test_implausible_capture_times_are_refused_with_the_reason(capture: int, now: int, words: str | None):
    g = guard()
    if words is None:  # the clock far ahead (a replayed day), yet a 400 s leap in 30 s of clock
        g = EventTimeGuard(max_ahead_s=60, max_jump_s=300)
        g.seen(T0, now_ns=T0 + YEAR)
        with pytest.raises(ImplausibleEventTimeError, match="jumps"):
            g.check(capture, now_ns=T0 + YEAR + 30 * S)
        return
    with pytest.raises(ImplausibleEventTimeError, match=words):
        g.check(capture, now_ns=now)


@pytest.mark.parametrize("capture, now", [
    (T0 + S // 2, T0 + S // 2),  # the next frame
    (T0 - 2 * S, T0 + S),  # slightly late: the reorder buffer's business
    (T0 + 3600 * S, T0 + 3600 * S),  # an hour of silence: the timeline moved with the clock
])
def test_plausible_capture_times_pass(capture: int, now: int):
    guard().check(capture, now_ns=now)


def test_a_fast_replay_walks_its_timeline_forward_frame_by_frame():
    g = EventTimeGuard(max_ahead_s=60, max_jump_s=300)
    replayed_on = T0 + YEAR  # last year's recording
    for k in range(2000):  # 2 Hz frames fed 20 times faster than real time: 1000 s of event time in 50 s
        capture, now = T0 + k * S // 2, replayed_on + k * S // 40
        g.check(capture, now_ns=now)
        g.seen(capture, now_ns=now)


def test_the_guard_round_trips_with_the_state_and_old_states_have_none():
    g = guard()
    h = EventTimeGuard(60, 300)
    h.load_state(g.to_state())
    assert (h.newest_ns, h.seen_at_ns) == (T0, T0)
    h.load_state(None)
    assert h.newest_ns is None
    h.check(T0 + 3 * YEAR, now_ns=T0 + 4 * YEAR)  # nothing to jump from: only the clock decides


def meas(t: int) -> Measurement:
    return Measurement("drone-1", t, (0.0, 0.0), ((4.0, 0.0), (0.0, 4.0)), "person", 0.9, None, "r")


def test_rewind_forgets_a_poisoned_newest_time_and_drops_what_came_after():
    buffer = ReorderBuffer(window_s=0.5)
    buffer.add([meas(T0), meas(T0 + S // 2)])
    buffer.advance(4_083_955_200 * S)  # one frame dated 2099
    late = buffer.add([meas(T0 + S)])
    assert late.late  # poisoned: everything is late
    poison = meas(4_083_955_200 * S)
    buffer.add([poison])
    dropped = buffer.rewind(T0 + 60 * S, floor_ns=T0 + S // 2)
    assert dropped == (poison,)
    assert buffer.newest_ns == T0 + S // 2 and buffer.watermark_ns == T0
    assert not buffer.add([meas(T0 + S)]).late


def test_a_restored_sector_with_its_clock_in_2099_is_repaired():
    model = BorderModel(load_border(), load_ports_of_entry("config/ports_of_entry.geojson"))
    fusion = SectorFusion("pac-blaine", model, FuseSettings())
    fusion.tracker.reorder.advance(4_083_955_200 * S)
    state = fusion.to_state()
    del state["event_time"]
    restored = SectorFusion.from_state(state, model, FuseSettings())
    assert restored.repair_time(now_ns=T0) == (4_083_955_200 * S, -1)
    assert restored.tracker.reorder.newest_ns is None and restored.tracker.reorder.watermark_ns is None
    assert restored.repair_time(now_ns=T0) is None  # nothing left to repair


def test_a_sector_anchored_by_a_clock_years_behind_follows_the_clock_again():
    g = EventTimeGuard(max_ahead_s=60, max_jump_s=300)
    now = T0 + 3 * YEAR
    g.seen(T0, now_ns=now)  # the sector's first frame came from a clock three years behind
    g.check(now + S, now_ns=now + S)  # a frame that agrees with the clock is fused
    g.seen(now + S, now_ns=now + S)
    with pytest.raises(ImplausibleEventTimeError, match="older than"):
        g.check(T0 + 2 * S, now_ns=now + 2 * S)  # and the wrong clock's next frame is refused

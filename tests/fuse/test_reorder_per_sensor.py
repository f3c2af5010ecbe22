"""Per-sensor watermarks in the reorder buffer: with the sector's sensors known, a frame is released
as soon as every sensor still reporting has reported past it (no wait for the window), a silent or
never-heard sensor stops holding things back after ``sensor_live_s``, nothing is ever released
later than with the window alone, and the per-sensor times survive the saved state."""

from __future__ import annotations

import json

from fuse.tracking import Measurement, ReorderBuffer

S = 1_000_000_000
T0 = 1_700_000_000 * S


def meas(sensor: str, t_ns: int) -> Measurement:
    return Measurement(sensor, t_ns, (0.0, 0.0), ((1.0, 0.0), (0.0, 1.0)), "person", 0.9)


def test_a_frame_goes_out_once_every_reporting_sensor_is_past_it():
    buffer = ReorderBuffer(window_s=0.5, sensors=("cam", "drone"))
    buffer.add([meas("cam", T0), meas("drone", T0 + S // 10)])  # both sensors heard from
    assert [m.sensor_id for m in buffer.release()] == ["cam"]  # cam's 10.0 s: drone is already past it
    buffer.add([meas("cam", T0 + S // 2)])
    assert [m.time_ns for m in buffer.release()] == [T0 + S // 10]  # the drone's frame: cam is past it
    windowed = ReorderBuffer(window_s=0.5)
    windowed.add([meas("cam", T0), meas("drone", T0 + S // 10), meas("cam", T0 + S // 2)])
    assert [m.time_ns for m in windowed.release()] == []  # the window alone still waits (10.0 < 10.0 s)


def test_a_single_sensor_sector_releases_each_frame_at_once():
    buffer = ReorderBuffer(window_s=0.5, sensors=("cam",))
    buffer.add([meas("cam", T0)])
    assert len(buffer.release()) == 1


def test_a_sensor_that_never_reported_holds_back_only_for_sensor_live_s():
    buffer = ReorderBuffer(window_s=0.5, sensors=("cam", "drone"), sensor_live_s=2.0)
    buffer.add([meas("cam", T0)])
    buffer.advance(T0 + S // 4, "cam")
    assert buffer.release() == []  # the drone may still send 10.0 s
    for k in range(1, 6):
        buffer.advance(T0 + k * S // 2, "cam")
    buffer.advance(T0 + 3 * S, "cam")  # the drone silent for 3 s since the start: no longer waited for
    assert buffer.watermark_ns == T0 + 3 * S + 1


def test_a_lagging_sensor_holds_the_release_and_the_window_stays_the_floor():
    buffer = ReorderBuffer(window_s=0.5, sensors=("cam", "drone"))
    buffer.add([meas("drone", T0), meas("cam", T0)])
    buffer.add([meas("cam", T0 + S // 2)])
    buffer.add([meas("cam", T0 + S)])  # the drone lags: its latest is 10.0 s
    assert buffer.watermark_ns == T0 + S // 2  # the window's floor (newest - 0.5 s), not the cam's 11.0 s
    assert buffer.add([meas("drone", T0 + 6 * S // 10)]).late == ()  # the drone's next frame is not late
    assert [m.time_ns for m in buffer.release()] == [T0, T0, T0 + S // 2, T0 + 6 * S // 10]  # both past 10.6 s
    assert buffer.add([meas("drone", T0 + S // 10)]).late  # older than the window: late, as before


def test_per_sensor_times_survive_the_saved_state():
    buffer = ReorderBuffer(window_s=0.5, sensors=("cam", "drone"))
    buffer.add([meas("cam", T0), meas("drone", T0 + S // 10)])
    saved = json.loads(json.dumps(buffer.to_state()))
    again = ReorderBuffer(window_s=0.5, sensors=("cam", "drone"))
    again.load_state(saved)
    assert again.sensor_latest_ns == buffer.sensor_latest_ns and again.first_ns == buffer.first_ns
    assert [m.key for m in again.release()] == [m.key for m in buffer.release()]

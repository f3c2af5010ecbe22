"""KlvPairer: frames paired with the telemetry valid at their capture time (sync by PTS, async by tag 2),
interpolated over small gaps, held within an age, refused beyond it, never extrapolated; clock jumps."""

from __future__ import annotations

import pytest

from ibet.messages import Telemetry
from ingest.klv_pairing import KlvPairer, Paired, Refused

T0_US = 1_784_149_200_000_000  # 2026-07-15T21:00Z in µs
S_US = 1_000_000


def tel(t_us: int, lat: float = 49.0, heading: float = 10.0) -> Telemetry:
    return Telemetry(precision_ts_us=t_us, sensor_lat_deg=lat, sensor_lon_deg=-122.75, platform_heading_deg=heading)


def settle(pairer: KlvPairer) -> list[Paired | Refused]:
    return pairer.ready() + pairer.finish()


def test_synchronous_packets_pair_by_pts_and_set_the_capture_time():
    pairer = KlvPairer()
    for k in range(3):
        pairer.klv(1, tel(T0_US + k * S_US // 2), pts_s=10.0 + k * 0.5)
        pairer.frame(k, pts_s=10.0 + k * 0.5)
    out = settle(pairer)
    assert [(p.frame, p.basis) for p in out] == [(0, "exact"), (1, "exact"), (2, "exact")]
    assert [p.capture_ts_ns for p in out] == [(T0_US + k * S_US // 2) * 1000 for k in range(3)]


def test_asynchronous_packets_are_anchored_at_the_next_frame_and_paired_by_their_time_stamp():
    pairer = KlvPairer()
    # three packets (no PTS) arrive before the first frame, as in the KWIVER sample
    for k in range(3):
        pairer.klv(1, tel(T0_US + k * 33_333), pts_s=None)
    for k in range(3):
        pairer.frame(k, pts_s=5.0 + k / 30)
    out = settle(pairer)
    assert [p.basis for p in out] == ["exact"] * 3
    # frame k is 1/30 s after the first; packet k says k x 33,333 µs: the same instant to within 1 µs
    assert [abs(p.telemetry.precision_ts_us - (T0_US + k * 33_333)) <= 1 for k, p in enumerate(out)] == [True] * 3


def test_between_two_packets_the_telemetry_is_interpolated_and_headings_take_the_short_way():
    pairer = KlvPairer()
    pairer.klv(1, tel(T0_US, lat=49.0, heading=350.0), pts_s=0.0)
    pairer.frame("mid", pts_s=0.25)
    pairer.klv(1, tel(T0_US + S_US // 2, lat=49.001, heading=10.0), pts_s=0.5)
    (paired,) = settle(pairer)
    assert paired.basis == "interpolated" and paired.telemetry_age_s == pytest.approx(0.25)
    assert paired.telemetry.sensor_lat_deg == pytest.approx(49.0005)
    assert paired.telemetry.platform_heading_deg == pytest.approx(0.0, abs=1e-9) or \
        paired.telemetry.platform_heading_deg == pytest.approx(360.0)
    assert paired.capture_ts_ns == (T0_US + S_US // 4) * 1000


def test_a_frame_after_the_last_packet_is_held_within_the_age_then_refused_never_extrapolated():
    pairer = KlvPairer(max_telemetry_age_s=0.5, max_interpolation_gap_s=1.0)
    pairer.klv(1, tel(T0_US, lat=49.0), pts_s=0.0)
    pairer.klv(1, tel(T0_US + S_US // 10, lat=49.001), pts_s=0.1)
    pairer.frame("near", pts_s=0.4)
    pairer.frame("far", pts_s=2.0)
    near, far = settle(pairer)
    assert near.basis == "held" and near.telemetry.sensor_lat_deg == 49.001  # the last value, not a prediction
    assert isinstance(far, Refused) and far.reason == "stale_telemetry" and "1.90 s away" in far.detail


def test_a_gap_wider_than_the_interpolation_limit_is_not_bridged():
    pairer = KlvPairer(max_interpolation_gap_s=1.0, max_telemetry_age_s=0.5)
    pairer.klv(1, tel(T0_US), pts_s=0.0)
    pairer.frame("in-gap", pts_s=1.5)
    pairer.klv(1, tel(T0_US + 3 * S_US), pts_s=3.0)
    (out,) = settle(pairer)
    assert isinstance(out, Refused) and out.reason == "stale_telemetry"


def test_a_frame_waits_for_the_packet_after_it_before_it_is_settled():
    pairer = KlvPairer()
    pairer.klv(1, tel(T0_US), pts_s=0.0)
    pairer.frame("f", pts_s=0.2)
    assert pairer.ready() == []  # the packet at 0.5 s may still come
    pairer.klv(1, tel(T0_US + S_US // 2), pts_s=0.5)
    (out,) = pairer.ready()
    assert out.basis == "interpolated"


def test_video_without_klv_is_refused_as_no_telemetry():
    pairer = KlvPairer()
    for k in range(3):
        pairer.frame(k, pts_s=k * 0.5)
    out = settle(pairer)
    assert [(r.reason, r.capture_ts_ns) for r in out] == [("no_telemetry", None)] * 3
    assert pairer.counts.refused["no_telemetry"] == 3


def test_a_timestamp_only_stream_times_the_frames_but_the_pose_comes_from_the_stream_with_a_position():
    pairer = KlvPairer()
    pairer.klv(2, Telemetry(precision_ts_us=T0_US), pts_s=None)  # timestamp-only
    pairer.klv(1, tel(T0_US), pts_s=0.0)
    pairer.frame("f", pts_s=0.0)
    (out,) = settle(pairer)
    assert out.klv_stream == 1 and out.telemetry.sensor_lat_deg == 49.0


@pytest.mark.parametrize("jump_s", [-3600.0, 10 * 365 * 86400.0])
def test_a_tag_2_clock_jumping_backwards_or_years_ahead_is_refused_and_counted(jump_s):
    pairer = KlvPairer(max_clock_jump_s=30.0, reanchor_after=5)
    pairer.klv(1, tel(T0_US), pts_s=0.0)
    assert pairer.klv(1, tel(T0_US + int(jump_s * S_US)), pts_s=0.5) == "klv_clock_jump"
    pairer.klv(1, tel(T0_US + S_US), pts_s=1.0)
    pairer.frame("f", pts_s=0.5)
    (out,) = settle(pairer)
    assert out.basis == "interpolated" and out.capture_ts_ns == (T0_US + S_US // 2) * 1000
    assert pairer.counts.klv_dropped["klv_clock_jump"] == 1


def test_a_clock_that_really_moved_is_followed_after_enough_agreeing_packets():
    pairer = KlvPairer(max_clock_jump_s=30.0, reanchor_after=3)
    pairer.klv(1, tel(T0_US), pts_s=0.0)
    moved = 3600 * S_US
    results = [pairer.klv(1, tel(T0_US + moved + k * S_US // 2), pts_s=k * 0.5) for k in range(1, 4)]
    assert results == ["klv_clock_jump", "klv_clock_jump", None] and pairer.counts.reanchors == 1
    pairer.frame("f", pts_s=1.5)
    (out,) = settle(pairer)
    assert out.capture_ts_ns == (T0_US + moved + 3 * S_US // 2) * 1000


def test_a_sender_restart_resets_the_timeline_and_the_next_packet_anchors_it_again():
    pairer = KlvPairer()
    pairer.klv(1, tel(T0_US), pts_s=100.0)
    pairer.frame("before", pts_s=100.0)
    pairer.frame("after-restart", pts_s=1.0)  # PTS ran backwards: a new stream
    pairer.klv(1, tel(T0_US + 60 * S_US), pts_s=1.0)
    out = settle(pairer)
    assert [(o.frame, o.basis) for o in out] == [("before", "exact"), ("after-restart", "exact")]
    assert out[1].capture_ts_ns == (T0_US + 60 * S_US) * 1000 and pairer.counts.timeline_resets == 1

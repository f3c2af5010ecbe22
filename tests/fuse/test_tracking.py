"""The fuse tracker: components one by one, then scenarios against ground truth, state and replay.

Scenarios are simulated here with fixed seeds, in metres on a local plane, so every number is
reproducible; thresholds leave room for the noise rather than pinning one run's result.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest

try:
    import scipy  # noqa: F401  (fuse.tracking's assignment solver)
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("scipy is not installed; fuse.tracking needs it (scipy.optimize.linear_sum_assignment)", allow_module_level=True)

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuse.tracking import (
    ClassFusion,
    ConstantVelocityPredictor,
    Deleter,
    KalmanUpdater,
    MahalanobisGnnAssociator,
    Measurement,
    MOfNInitiator,
    ReorderBuffer,
    Track,
    Tracker,
    TrackerOutput,
    TrackerStateError,
    TrackStatus,
    pairwise_mahalanobis_sq,
)
from fuse.tracking.state import track_from_dict, track_to_dict

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # an epoch time, as capture times are
MS = 1_000_000


def meas(sensor="a", t_ns=T0, xy=(0.0, 0.0), sigma_m=1.0, cls="person", score=0.9, sid=None, ref="") -> Measurement:
    return Measurement(sensor, t_ns, xy, np.eye(2) * sigma_m**2, cls, score, sid, ref)


def track(track_id="trk-1", x=(0.0, 0.0, 0.0, 0.0), var=1.0, t_ns=T0, status=TrackStatus.CONFIRMED, **kw) -> Track:
    return Track(track_id, np.array(x, dtype=float), np.eye(4) * var, t_ns, t_ns, t_ns, status, **kw)


# --- scenario helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    p0_m: tuple[float, float]
    v_mps: tuple[float, float]
    until_s: float = 1e9

    def at(self, t_s: float) -> np.ndarray:
        return np.array(self.p0_m) + np.array(self.v_mps) * t_s


@dataclass(frozen=True)
class Sensor:
    sensor_id: str
    sigma_m: float
    period_ms: int
    offset_ms: int = 0
    with_ids: bool = True


def observe(targets, sensors, duration_s, seed, clutter_per_frame=0, clutter_half_width_m=250.0):
    """Frames (capture_ns, sensor, measurements) in capture order; refs are "target/sensor/frame"."""
    rng = np.random.default_rng(seed)
    frames = []
    for sensor in sensors:
        for k, t_ms in enumerate(range(sensor.offset_ms, int(duration_s * 1000), sensor.period_ms)):
            t_ns, t_s = T0 + t_ms * MS, t_ms / 1000
            cov = np.eye(2) * sensor.sigma_m**2
            ms = [
                Measurement(
                    sensor.sensor_id,
                    t_ns,
                    tg.at(t_s) + rng.normal(0.0, sensor.sigma_m, 2),
                    cov,
                    "person",
                    0.8,
                    i + 1 if sensor.with_ids else None,
                    f"{tg.name}/{sensor.sensor_id}/{k}",
                )
                for i, tg in enumerate(targets)
                if t_s <= tg.until_s
            ]
            for c in range(clutter_per_frame):
                xy = rng.uniform(-clutter_half_width_m, clutter_half_width_m, 2)
                ms.append(
                    Measurement(sensor.sensor_id, t_ns, xy, cov, "vehicle", 0.4, None, f"clutter/{sensor.sensor_id}/{k}/{c}")
                )
            frames.append((t_ns, sensor.sensor_id, ms))
    frames.sort(key=lambda f: (f[0], f[1]))
    return frames


def feed(tracker: Tracker, frames) -> list[TrackerOutput]:
    """One process() call per frame (its measurements and capture time), then a flush."""
    outs = [tracker.process(ms, time_ns=t_ns) for t_ns, _, ms in frames]
    return [*outs, tracker.flush()]


def updates(outs):
    return [u for out in outs for u in out.updated]


def digest(tracks, with_version=True):
    """Everything about tracks, exactly (floats as repr via JSON), for equality checks."""
    rows = [track_to_dict(t) for t in tracks]
    if not with_version:
        for row in rows:
            row.pop("version")
    return json.dumps(rows, sort_keys=True)


def owner(update: Track, sensor: str) -> str:
    return update.evidence[sensor].split("/")[0]


# --- measurements -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sensor_id": ""},
        {"time_ns": 1.5},
        {"time_ns": True},
        {"xy_m": (1.0, float("nan"))},
        {"xy_m": (1.0, 2.0, 3.0)},
        {"cov_m2": [[1.0, 0.5], [0.0, 1.0]]},
        {"cov_m2": [[1.0, 0.0], [0.0, -1.0]]},
        {"cov_m2": [[0.0, 0.0], [0.0, 0.0]]},
        {"score": 1.5},
        {"sensor_track_id": 2.0},
        {"ref": None},
    ],
)
def test_measurement_rejects_bad_values(kwargs):
    good = {"sensor_id": "a", "time_ns": T0, "xy_m": (1.0, 2.0), "cov_m2": np.eye(2), "class_name": "person", "score": 0.5}
    with pytest.raises(ValueError):
        Measurement(**(good | kwargs))


def test_measurement_arrays_are_read_only_copies():
    xy = np.array([1.0, 2.0])
    m = Measurement("a", T0, xy, np.eye(2), "person", 0.5)
    xy[0] = 99.0
    assert m.xy_m[0] == 1.0
    with pytest.raises(ValueError):
        m.xy_m[0] = 5.0


# --- predictor and updater ------------------------------------------------------------------------


def test_predict_zero_dt_is_identity_and_negative_dt_raises():
    p = ConstantVelocityPredictor(1.0)
    x, P = np.array([1.0, 2.0, 3.0, 4.0]), np.diag([1.0, 2.0, 3.0, 4.0])
    x0, P0 = p.predict(x, P, 0.0)
    assert np.array_equal(x0, x) and np.array_equal(P0, P)
    with pytest.raises(ValueError):
        p.predict(x, P, -0.1)


def test_predict_matches_closed_form_and_composes():
    p = ConstantVelocityPredictor(process_noise_accel_mps2=2.0)
    x, P = np.array([0.0, 0.0, 1.0, -2.0]), np.eye(4)
    x1, P1 = p.predict(x, P, 2.0)
    assert np.allclose(x1, [2.0, -4.0, 1.0, -2.0])
    q = 4.0
    assert np.isclose(P1[0, 0], 1.0 + 4.0 * 1.0 + q * 8.0 / 3.0)  # P + dt² Pv + q dt³/3
    assert np.isclose(P1[0, 2], 2.0 * 1.0 + q * 4.0 / 2.0)
    assert np.isclose(P1[2, 2], 1.0 + q * 2.0)
    x2, P2 = p.predict(*p.predict(x, P, 0.7), 1.3)
    assert np.allclose(x2, x1) and np.allclose(P2, P1)


def test_update_joseph_form_equals_textbook_form_and_batches():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 4, 4))
    P = A @ A.transpose(0, 2, 1) + np.eye(4)
    x, z, R = rng.normal(size=(3, 4)), rng.normal(size=(3, 2)), np.stack([np.eye(2) * v for v in (0.5, 2.0, 9.0)])
    batched = KalmanUpdater().update(x, P, z, R)
    for i in range(3):
        H = np.eye(2, 4)
        S = H @ P[i] @ H.T + R[i]
        K = P[i] @ H.T @ np.linalg.inv(S)
        single = KalmanUpdater().update(x[i], P[i], z[i], R[i])
        assert np.allclose(single.x, x[i] + K @ (z[i] - x[i][:2]))
        assert np.allclose(single.P, (np.eye(4) - K @ H) @ P[i])
        assert np.allclose(single.S, S) and np.allclose(single.innovation, z[i] - x[i][:2])
        assert np.allclose(batched.x[i], single.x) and np.allclose(batched.P[i], single.P)


# --- association ---------------------------------------------------------------------------------


def test_pairwise_mahalanobis_empty_then_values():
    assert pairwise_mahalanobis_sq(
        np.zeros((0, 2)), np.zeros((0, 2, 2)), np.zeros((3, 2)), np.tile(np.eye(2), (3, 1, 1))
    ).shape == (0, 3)
    assert pairwise_mahalanobis_sq(
        np.zeros((2, 2)), np.tile(np.eye(2), (2, 1, 1)), np.zeros((0, 2)), np.zeros((0, 2, 2))
    ).shape == (2, 0)
    pos, Ppos = np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[[2.0, 0.5], [0.5, 1.0]], np.eye(2)])
    z, R = np.array([[1.0, 2.0], [9.0, 1.0], [3.0, -1.0]]), np.tile(np.eye(2) * 0.5, (3, 1, 1))
    d2 = pairwise_mahalanobis_sq(pos, Ppos, z, R)
    for i in range(2):
        for j in range(3):
            nu = z[j] - pos[i]
            assert np.isclose(d2[i, j], nu @ np.linalg.solve(Ppos[i] + R[j], nu))


def test_associate_with_nothing():
    gnn = MahalanobisGnnAssociator()
    assert gnn.associate([], [meas()], T0) == {}
    assert gnn.associate([track()], [], T0) == {}


def test_associate_gates_and_picks_the_cheapest_assignment():
    gnn = MahalanobisGnnAssociator()
    t1, t2 = track("t1", (0.0, 0.0, 0, 0)), track("t2", (6.0, 0.0, 0, 0))
    near1, near2, far = meas(xy=(0.5, 0.0)), meas(xy=(5.0, 0.0)), meas(xy=(30.0, 0.0))
    result = gnn.associate([t1, t2], [near1, near2, far], T0)
    assert result == {t1: (near1,), t2: (near2,)}


def test_associate_one_measurement_per_sensor_per_track():
    gnn = MahalanobisGnnAssociator()
    t = track()
    a1, a2, b1 = meas("a", xy=(0.1, 0.0)), meas("a", xy=(-0.2, 0.0)), meas("b", xy=(0.3, 0.0))
    result = gnn.associate([t], [a1, a2, b1], T0)
    assert result == {t: (a1, b1)}


def test_hint_tips_a_close_call_but_not_the_gate():
    t1, t2 = track("t1", (0.0, 0.0, 0, 0), hints={"a": 1}), track("t2", (1.0, 0.0, 0, 0), hints={"a": 2})
    m1, m2 = meas(xy=(0.9, 0.0), sid=1), meas(xy=(0.1, 0.0), sid=2)  # geometry says swap, the hints say not
    assert MahalanobisGnnAssociator(hint_bonus=0.0).associate([t1, t2], [m1, m2], T0) == {t1: (m2,), t2: (m1,)}
    assert MahalanobisGnnAssociator().associate([t1, t2], [m1, m2], T0) == {t1: (m1,), t2: (m2,)}
    outside = meas(xy=(5.0, 0.0), sid=1)  # d² = 25 / 3 ... outside the gate of t1 with var 1 + 1
    assert MahalanobisGnnAssociator().associate([t1], [outside], T0) == {}


def test_confirmed_tracks_are_served_before_tentative_ones():
    confirmed = track("c", (0.0, 0.0, 0, 0), var=1.0)
    tentative = track("t", (0.5, 0.0, 0, 0), var=1.0, status=TrackStatus.TENTATIVE)
    m = meas(xy=(0.45, 0.0))  # closer to the tentative track
    assert MahalanobisGnnAssociator().associate([confirmed, tentative], [m], T0) == {confirmed: (m,)}
    assert MahalanobisGnnAssociator(confirmed_first=False).associate([confirmed, tentative], [m], T0) == {tentative: (m,)}


def test_associate_refuses_tracks_not_predicted_to_the_scan():
    with pytest.raises(ValueError):
        MahalanobisGnnAssociator().associate([track(t_ns=T0 - 1)], [meas()], T0)


# --- classes, initiation, deletion ------------------------------------------------------------------


def test_class_fusion_accumulates_normalises_and_recovers():
    cf = ClassFusion()
    probs: dict[str, float] = {}
    for _ in range(5):
        probs = cf.update(probs, "vehicle", 0.7)
    assert max(probs, key=probs.get) == "vehicle" and np.isclose(sum(probs.values()), 1.0)
    for _ in range(10):
        probs = cf.update(probs, "person", 0.9)
    assert max(probs, key=probs.get) == "person"
    assert min(probs.values()) >= cf.min_probability
    assert cf.update(probs, "spaceship", 1.0) == probs
    certain = cf.update({}, "boat", 1.0)
    assert certain["boat"] < 1.0 and all(v > 0.0 for v in certain.values())


def test_initiator_starts_still_tracks_with_a_wide_velocity_and_deterministic_ids():
    init = MOfNInitiator(initial_speed_sigma_mps=5.0)
    far = [meas("a", xy=(0.0, 0.0), ref="r1"), meas("a", xy=(100.0, 0.0), sid=3, ref="r2")]
    tracks = sorted(init.initiate(list(reversed(far)), T0, id_prefix="s7"), key=lambda t: t.track_id)
    assert [t.track_id for t in tracks] == [f"s7-{T0}-0", f"s7-{T0}-1"]  # in Measurement.key order, not arrival
    first, second = tracks
    assert np.array_equal(first.x, [0.0, 0.0, 0.0, 0.0]) and first.P[2, 2] == 25.0
    assert first.status is TrackStatus.TENTATIVE and first.hits == [True] and first.hints == {}
    assert first.evidence == {"a": "r1"} and first.class_name == "person"
    assert np.array_equal(second.x, [100.0, 0.0, 0.0, 0.0]) and second.hints == {"a": 3}


def test_initiator_joins_sensors_that_see_the_same_new_target():
    init = MOfNInitiator()
    new = init.initiate([meas("a", xy=(0.0, 0.0)), meas("b", xy=(1.0, 0.0)), meas("b", xy=(50.0, 0.0))], T0)
    assert len(new) == 2
    joined = next(t for t in new if t.sensors == {"a", "b"})
    assert np.allclose(joined.x[:2], [0.5, 0.0]) and np.isclose(joined.P[0, 0], 0.5)


def test_initiator_confirms_after_m_of_n():
    init = MOfNInitiator(m=3, n=5)
    t = track(status=TrackStatus.TENTATIVE, hits=[True, False, True, False])
    assert init.confirmed([t]) == set()
    t.hits.append(True)
    assert init.confirmed([t]) == {t}
    assert init.confirmed([track(status=TrackStatus.CONFIRMED, hits=[True] * 5)]) == set()


@pytest.mark.parametrize(
    ("status", "age_s", "hits", "var", "coasts", "deleted"),
    [
        (TrackStatus.TENTATIVE, 0.1, [True, False, False], 1.0, False, False),
        (TrackStatus.TENTATIVE, 0.1, [True, False, False, False], 1.0, False, True),
        (TrackStatus.TENTATIVE, 2.5, [True], 1.0, False, True),
        (TrackStatus.CONFIRMED, 1.9, [False] * 5, 1e6, False, False),
        (TrackStatus.CONFIRMED, 2.5, [True], 1.0, True, False),
        (TrackStatus.COASTING, 5.0, [False], 1.0, False, False),
        (TrackStatus.COASTING, 5.0, [False], 3000.0, False, True),
        (TrackStatus.COASTING, 8.5, [False], 1.0, False, True),
    ],
)
def test_deleter_rules(status, age_s, hits, var, coasts, deleted):
    d = Deleter(tentative_max_misses=3, coast_after_s=2.0, delete_after_s=8.0, max_position_trace_m2=5000.0)
    t = track(status=status, hits=hits, var=var)
    now = T0 + int(age_s * NS)
    assert (t in d.coasting([t], now)) == coasts
    assert (t in d.delete_tracks([t], now)) == deleted


# --- reorder buffer ------------------------------------------------------------------------------


def test_reorder_releases_in_time_order_drops_late_and_duplicates():
    buf = ReorderBuffer(window_s=0.5)
    m10, m98, m104 = meas(t_ns=T0 + 10 * NS), meas("b", t_ns=T0 + 9_800 * MS), meas(t_ns=T0 + 10_400 * MS)
    assert buf.add([m10, m98]).late == () and buf.release() == []
    assert buf.add([meas("b", t_ns=T0 + 9_800 * MS)]).duplicates == 1 and len(buf) == 2
    buf.add([m104])
    assert buf.release() == [m98]
    late = meas("c", t_ns=T0 + 9_850 * MS)
    assert buf.add([late]).late == (late,) and buf.dropped_late_total == 1
    assert buf.release() == [] and buf.flush() == [m10, m104]
    assert buf.add([meas(t_ns=T0 + 10_400 * MS, ref="again")]).late != ()


def test_reorder_advance_releases_without_new_measurements():
    buf = ReorderBuffer(window_s=0.5)
    m = meas(t_ns=T0)
    buf.add([m])
    buf.advance(T0 + 400 * MS)
    assert buf.release() == []
    buf.advance(T0 + 501 * MS)
    assert buf.release() == [m]


# --- scenarios ---------------------------------------------------------------------------------


def test_single_target_two_sensors_gives_one_accurate_confirmed_track():
    target = Target("walker", (-50.0, 20.0), (1.5, -0.8))
    sensors = [Sensor("drone-1", 3.0, 100), Sensor("cam-2", 5.0, 200, offset_ms=50)]
    # The target truly moves at constant velocity, so a low process noise suits it.
    tracker = Tracker(predictor=ConstantVelocityPredictor(process_noise_accel_mps2=0.1))
    outs = feed(tracker, observe([target], sensors, 40.0, seed=3))

    assert [t.status for t in tracker.tracks] == [TrackStatus.CONFIRMED]
    (final,) = tracker.tracks
    assert final.sensors == {"drone-1", "cam-2"} and final.class_name == "person"
    assert all(d.track_id != final.track_id for out in outs for d in out.deleted)
    converged = [u for u in updates(outs) if u.track_id == final.track_id and u.state_ns - T0 > 10 * NS]
    truth = [target.at((u.state_ns - T0) / NS) for u in converged]
    pos_rmse_m = np.sqrt(np.mean([np.sum((u.position_m - p) ** 2) for u, p in zip(converged, truth, strict=True)]))
    vel_rmse_mps = np.sqrt(np.mean([np.sum((u.velocity_mps - np.array(target.v_mps)) ** 2) for u in converged]))
    assert len(converged) > 300
    assert pos_rmse_m < 0.5 * 3.0, pos_rmse_m  # well under the better sensor's sigma
    assert vel_rmse_mps < 0.3, vel_rmse_mps
    versions = [u.version for u in updates(outs) if u.track_id == final.track_id]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def crossing_frames(with_ids: bool):
    """Two walkers crossing at 20 degrees, 3 m noise: close enough for long enough to be ambiguous."""
    half = np.radians(10.0)
    va, vb = 1.5 * np.array([np.cos(half), np.sin(half)]), 1.5 * np.array([np.cos(half), -np.sin(half)])
    targets = [Target("A", tuple(-va * 30), tuple(va)), Target("B", tuple(-vb * 30), tuple(vb))]
    return observe(targets, [Sensor("cam", 3.0, 100, with_ids=with_ids)], 60.0, seed=0)


def identities(outs) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for u in updates(outs):
        if u.status is TrackStatus.CONFIRMED and u.last_update_ns == u.state_ns:
            seen.setdefault(u.track_id, []).append(owner(u, "cam"))
    return seen


def test_crossing_targets_keep_their_identities_with_hints():
    with_hints = identities(feed(Tracker(), crossing_frames(with_ids=True)))
    assert len(with_hints) == 2
    assert sorted(set(v) == {v[0]} for v in with_hints.values()) == [True, True], {k: set(v) for k, v in with_hints.items()}
    assert {v[0] for v in with_hints.values()} == {"A", "B"}
    # The same measurements without per-sensor ids: geometry alone mixes the two up.
    without = identities(feed(Tracker(), crossing_frames(with_ids=False)))
    assert any(len(set(v)) > 1 for v in without.values())


def test_clutter_does_not_make_confirmed_tracks():
    target = Target("T", (0.0, 0.0), (1.0, 1.0))
    frames = observe([target], [Sensor("a", 3.0, 100), Sensor("b", 3.0, 100, 50)], 20.0, seed=5, clutter_per_frame=2)
    tracker = Tracker()
    outs = feed(tracker, frames)
    confirmed = {u.track_id for u in updates(outs) if u.status is TrackStatus.CONFIRMED}
    assert len(confirmed) == 1
    assert all(owner(u, s) == "T" for u in updates(outs) if u.track_id in confirmed for s in u.evidence)
    deleted_tentative = [d for out in outs for d in out.deleted if d.track_id not in confirmed]
    assert len(deleted_tentative) > 100  # clutter started tracks, and they went away
    tracker.process([], time_ns=frames[-1][0] + 3 * NS)
    assert [t.track_id for t in tracker.tracks] == sorted(confirmed)


def test_lost_target_coasts_then_is_deleted():
    frames = observe([Target("T", (0.0, 0.0), (1.0, 0.0), until_s=5.0)], [Sensor("a", 2.0, 100)], 5.0, seed=2)
    tracker = Tracker()
    outs = [tracker.process(ms, time_ns=t) for t, _, ms in frames]
    last_seen = max(m.time_ns for _, _, ms in frames for m in ms)
    outs += [tracker.process([], time_ns=last_seen + k * 100 * MS) for k in range(1, 120)]
    (tid,) = {u.track_id for u in updates(outs) if u.status is TrackStatus.CONFIRMED}
    coast = [u for u in updates(outs) if u.track_id == tid and u.status is TrackStatus.COASTING]
    (gone,) = [d for out in outs for d in out.deleted if d.track_id == tid]
    assert len(coast) == 1 and (coast[0].version < gone.version) and gone.status is TrackStatus.DELETED
    assert tracker.tracks == ()


def two_targets_two_sensors(seed=11):
    targets = [Target("P", (0.0, 0.0), (1.2, 0.3)), Target("Q", (40.0, 30.0), (-0.5, -1.0))]
    sensors = [Sensor("a", 2.0, 100), Sensor("b", 4.0, 200, offset_ms=50)]
    return observe(targets, sensors, 20.0, seed=seed, clutter_per_frame=1)


def test_out_of_order_within_the_window_gives_the_in_order_result():
    frames = two_targets_two_sensors()
    in_order = Tracker()
    feed(in_order, frames)
    # Sensor b's frames arrive 0.3 s late (within the 0.5 s window), interleaved with a's.
    delayed = sorted(frames, key=lambda f: f[0] + (300 * MS if f[1] == "b" else 0))
    assert delayed != frames
    late_tracker = Tracker()
    outs = feed(late_tracker, delayed)
    assert sum(len(o.dropped_late) for o in outs) == 0
    assert digest(late_tracker.tracks, with_version=False) == digest(in_order.tracks, with_version=False)
    assert len(in_order.tracks) >= 2


def test_later_than_the_window_is_dropped_counted_and_not_applied():
    frames = two_targets_two_sensors()
    end_ns = frames[-1][0]
    too_late = {i for i, f in enumerate(frames) if f[1] == "b" and f[0] < end_ns - NS}
    too_late = set(sorted(too_late)[::3])  # every third frame of sensor b arrives 0.8 s late
    arrival = sorted(range(len(frames)), key=lambda i: frames[i][0] + (800 * MS if i in too_late else 0))
    tracker = Tracker()
    outs = feed(tracker, [frames[i] for i in arrival])
    dropped = [m for o in outs for m in o.dropped_late]
    assert len(dropped) == sum(len(frames[i][2]) for i in too_late) > 0
    assert tracker.reorder.dropped_late_total == len(dropped)
    reference = Tracker()
    feed(reference, [f for i, f in enumerate(frames) if i not in too_late])
    assert digest(tracker.tracks, with_version=False) == digest(reference.tracks, with_version=False)


def test_state_round_trip_mid_run_continues_identically():
    frames = two_targets_two_sensors(seed=12)
    whole = Tracker(id_prefix="sector-9")
    whole_outs = feed(whole, frames)

    half = len(frames) // 2
    first = Tracker(id_prefix="sector-9")
    first_outs = [first.process(ms, time_ns=t) for t, _, ms in frames[:half]]
    saved = json.loads(json.dumps(first.to_state(), allow_nan=False))
    assert len(saved["reorder"]["pending"]) > 0 and saved["tracks"]
    resumed = Tracker.from_state(saved)
    assert resumed.to_state() == first.to_state()
    rest_outs = feed(resumed, frames[half:])

    assert digest(updates(first_outs + rest_outs)) == digest(updates(whole_outs))
    assert digest(resumed.tracks) == digest(whole.tracks)
    assert resumed.to_state() == whole.to_state()


def test_from_state_refuses_other_schema_prefix_or_garbage():
    state = Tracker(id_prefix="s1").to_state()
    with pytest.raises(TrackerStateError):
        Tracker.from_state({**state, "schema": "ibet.fuse.tracker.v0"})
    with pytest.raises(TrackerStateError):
        Tracker.from_state(state, id_prefix="s2")
    with pytest.raises(TrackerStateError):
        Tracker.from_state({**state, "tracks": [{"track_id": "x"}]})
    with pytest.raises(TrackerStateError):
        Tracker.from_state({**state, "reorder": {"pending": []}})


def test_track_dict_round_trip_is_exact():
    t = track("s-1-0", (0.1, 1 / 3, -2.5e-9, 7.0), var=np.pi, hits=[True, False], sensors={"b", "a"}, hints={"a": 4})
    t.class_probabilities = ClassFusion().update({}, "boat", 0.77)
    back = track_from_dict(json.loads(json.dumps(track_to_dict(t))))
    assert digest([back]) == digest([t]) and np.array_equal(back.P, t.P)


# --- properties --------------------------------------------------------------------------------


finite = st.floats(-1e3, 1e3, allow_nan=False)
spd_2x2 = st.tuples(st.floats(0.05, 1e3), st.floats(0.05, 1e3), st.floats(-0.95, 0.95)).map(
    lambda v: np.array([[v[0], v[2] * np.sqrt(v[0] * v[1])], [v[2] * np.sqrt(v[0] * v[1]), v[1]]])
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0.0, 30.0), st.tuples(finite, finite), spd_2x2, st.booleans()), min_size=1, max_size=40)
)
def test_covariance_stays_symmetric_positive_definite(steps):
    predictor, updater = ConstantVelocityPredictor(1.0), KalmanUpdater()
    x, P = np.zeros(4), np.diag([100.0, 100.0, 25.0, 25.0])
    for dt_s, z, R, do_update in steps:
        x, P = predictor.predict(x, P, dt_s)
        if do_update:
            x, P = (u := updater.update(x, P, np.array(z), R)).x, u.P
        assert np.array_equal(P, P.T)
        assert np.linalg.eigvalsh(P).min() > 0.0
        assert np.isfinite(x).all()


@st.composite
def measurement_streams(draw):
    """Frames from two sensors around a few moving points, with jitter and clutter."""
    n_frames = draw(st.integers(1, 40))
    starts = draw(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=1, max_size=3))
    frames = []
    for k in range(n_frames):
        sensor = draw(st.sampled_from(["a", "b"]))
        t_ns = T0 + k * 100 * MS + (50 * MS if sensor == "b" else 0)
        ms = []
        for i, (x0, y0) in enumerate(starts):
            if draw(st.booleans()):
                dx, dy = draw(st.floats(-3, 3)), draw(st.floats(-3, 3))
                xy = (x0 + 0.1 * k + dx, y0 + dy)
                ms.append(
                    Measurement(sensor, t_ns, xy, np.eye(2) * 4.0, "person", 0.7, draw(st.sampled_from([None, i])), f"{i}/{k}")
                )
        frames.append((t_ns, sensor, ms))
    frames.sort(key=lambda f: f[0])
    return frames


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=measurement_streams(), shuffle_seed=st.integers(0, 2**32 - 1))
def test_replay_gives_the_same_ids_and_states(frames, shuffle_seed):
    first, second = Tracker(), Tracker()
    a = updates(feed(first, frames))
    # The replay receives each frame's measurements in another order: same ids, same states.
    rng = np.random.default_rng(shuffle_seed)
    shuffled = [(t, s, [ms[i] for i in rng.permutation(len(ms))]) for t, s, ms in frames]
    b = updates(feed(second, shuffled))
    assert [u.track_id for u in a] == [u.track_id for u in b]
    assert digest(a) == digest(b) and digest(first.tracks) == digest(second.tracks)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(list(TrackStatus)[:3]),
    age_s=st.floats(0.0, 20.0),
    hits=st.lists(st.booleans(), min_size=1, max_size=5),
    var=st.floats(1e-3, 1e5),
)
def test_deleter_never_deletes_a_recently_updated_confirmed_track(status, age_s, hits, var):
    deleter = Deleter()
    t = track(status=status, hits=hits, var=var)
    now = T0 + int(age_s * NS)
    if status is TrackStatus.CONFIRMED and age_s <= deleter.coast_after_s:
        assert t not in deleter.delete_tracks([t], now)
        assert t not in deleter.coasting([t], now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=measurement_streams())
def test_tracker_never_deletes_a_confirmed_track_it_just_updated(frames):
    tracker = Tracker()
    recent: dict[str, int] = {}  # confirmed track -> last update time
    for t_ns, _, ms in frames:
        out = tracker.process(ms, time_ns=t_ns)
        for d in out.deleted:
            if d.track_id in recent:
                assert tracker.reorder.watermark_ns - recent[d.track_id] > tracker.deleter.coast_after_s * NS
        for u in out.updated:
            if u.status is TrackStatus.CONFIRMED:
                recent[u.track_id] = u.last_update_ns

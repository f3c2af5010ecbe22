"""The tracker's data: measurements in (frozen), tracks it owns (mutable), the output of a step.

Positions are metres on a local plane (x east, y north); times are event (capture) times in ns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ibet.messages import TrackStatus

__all__ = ["Measurement", "Track", "TrackStatus", "TrackerOutput"]

_SYMMETRY_RTOL = 1e-9


@dataclass(frozen=True, slots=True, eq=False)
class Measurement:
    """One georeferenced detection: a position with its covariance, from one sensor at one time.

    xy_m: (2,) float64 east, north in metres; cov_m2: (2, 2) float64 symmetric positive definite,
    in m². Both are stored as read-only copies. ``score`` in [0, 1]; ``sensor_track_id`` is the
    sensor's own (image) track id, used as an association hint; ``ref`` is opaque to the tracker
    (evidence reference) and comes back in :attr:`Track.evidence`. Invalid values raise ValueError.

    Example: ``Measurement("cam-1", 1_700_000_000_000_000_000, (12.0, -3.5), np.eye(2) * 4.0, "person", 0.8)``
    """

    sensor_id: str
    time_ns: int
    xy_m: np.ndarray
    cov_m2: np.ndarray
    class_name: str
    score: float
    sensor_track_id: int | None = None
    ref: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.sensor_id, str) or not self.sensor_id:
            raise ValueError(f"sensor_id must be a non-empty string, got {self.sensor_id!r}")
        if isinstance(self.time_ns, bool) or not isinstance(self.time_ns, int | np.integer):
            raise ValueError(f"time_ns must be an integer number of ns, got {self.time_ns!r}")
        object.__setattr__(self, "time_ns", int(self.time_ns))
        xy = np.array(self.xy_m, dtype=np.float64)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise ValueError(f"xy_m must be 2 finite numbers, got {self.xy_m!r}")
        cov = np.array(self.cov_m2, dtype=np.float64)
        if cov.shape != (2, 2) or not np.isfinite(cov).all():
            raise ValueError(f"cov_m2 must be a finite 2x2 matrix, got {self.cov_m2!r}")
        if abs(cov[0, 1] - cov[1, 0]) > _SYMMETRY_RTOL * max(1.0, float(np.abs(cov).max())):
            raise ValueError(f"cov_m2 must be symmetric, got {cov.tolist()}")
        cov = (cov + cov.T) / 2.0
        if cov[0, 0] <= 0.0 or np.linalg.det(cov) <= 0.0:
            raise ValueError(f"cov_m2 must be positive definite, got {cov.tolist()}")
        if not isinstance(self.class_name, str):
            raise ValueError(f"class_name must be a string, got {self.class_name!r}")
        score = float(self.score)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score!r}")
        sid = self.sensor_track_id
        if sid is not None and (isinstance(sid, bool) or not isinstance(sid, int | np.integer)):
            raise ValueError(f"sensor_track_id must be an integer or None, got {sid!r}")
        if not isinstance(self.ref, str):
            raise ValueError(f"ref must be a string, got {self.ref!r}")
        xy.setflags(write=False)
        cov.setflags(write=False)
        object.__setattr__(self, "xy_m", xy)
        object.__setattr__(self, "cov_m2", cov)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "sensor_track_id", None if sid is None else int(sid))

    @property
    def key(self) -> tuple:
        """Total, deterministic order and identity: time, sensor, sensor track id, position, rest.

        Measurements are processed sorted by it, so arrival order never changes a result; two
        measurements with the same key are duplicates (an at-least-once redelivery).
        """
        sid = self.sensor_track_id
        return (
            self.time_ns,
            self.sensor_id,
            sid is not None,
            -1 if sid is None else sid,
            *self.xy_m.tolist(),
            *self.cov_m2.ravel().tolist(),
            self.class_name,
            self.score,
            self.ref,
        )


@dataclass(eq=False)
class Track:
    """A fused track, owned and mutated by the tracker; compare and hash by identity.

    x: (4,) float64 state [x_m, y_m, vx_mps, vy_mps] at ``state_ns``; P: (4, 4) its covariance.
    ``hits`` holds hit (True) / miss (False) for the track's last N counted scans (M-of-N);
    ``hints`` maps sensor id -> that sensor's track id last associated; ``evidence`` maps sensor id
    -> ``ref`` of its latest associated measurement; ``version`` increases with every change
    (update, status change, deletion), once per scan at most.
    """

    track_id: str
    x: np.ndarray
    P: np.ndarray
    state_ns: int
    created_ns: int
    last_update_ns: int
    status: TrackStatus = TrackStatus.TENTATIVE
    hits: list[bool] = field(default_factory=list)
    class_probabilities: dict[str, float] = field(default_factory=dict)
    sensors: set[str] = field(default_factory=set)
    hints: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    version: int = 0

    @property
    def position_m(self) -> np.ndarray:
        """(2,) east, north in metres at ``state_ns`` (a copy)."""
        return self.x[:2].copy()

    @property
    def velocity_mps(self) -> np.ndarray:
        """(2,) east, north velocity in m/s (a copy)."""
        return self.x[2:].copy()

    @property
    def position_cov_m2(self) -> np.ndarray:
        """(2, 2) position covariance in m² (a copy)."""
        return self.P[:2, :2].copy()

    @property
    def speed_mps(self) -> float:
        """Ground speed in m/s."""
        return math.hypot(float(self.x[2]), float(self.x[3]))

    @property
    def class_name(self) -> str:
        """The most probable class (first listed on a tie), or ``"unknown"`` with no class evidence."""
        if not self.class_probabilities:
            return "unknown"
        return max(self.class_probabilities.items(), key=lambda item: item[1])[0]

    def snapshot(self) -> Track:
        """An independent copy, safe to hand out while the tracker keeps mutating this one."""
        return Track(
            track_id=self.track_id,
            x=self.x.copy(),
            P=self.P.copy(),
            state_ns=self.state_ns,
            created_ns=self.created_ns,
            last_update_ns=self.last_update_ns,
            status=self.status,
            hits=list(self.hits),
            class_probabilities=dict(self.class_probabilities),
            sensors=set(self.sensors),
            hints=dict(self.hints),
            evidence=dict(self.evidence),
            version=self.version,
        )


@dataclass(frozen=True)
class TrackerOutput:
    """What one call of the tracker changed.

    updated: a snapshot each time a live track changed, in scan order (a track appears once per
    scan that changed it; its ``version`` increases); deleted: snapshots of tracks removed, with
    status DELETED; dropped_late: measurements older than the reorder window (not applied);
    duplicates: how many exact repeats of a buffered measurement were ignored; scans: how many
    scans (distinct measurement times) were processed.
    """

    updated: tuple[Track, ...] = ()
    deleted: tuple[Track, ...] = ()
    dropped_late: tuple[Measurement, ...] = ()
    duplicates: int = 0
    scans: int = 0

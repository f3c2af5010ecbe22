"""Exact kinematics: targets walking/driving/sailing along waypoints, drones flying their routes.

Everything is a pure function of time, so the ground truth at any instant is exact (no
integration error) and every sensor sees the same world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PolylineMotion:
    """Constant speed along ``points_m`` (k, 2), from ``start_s``; gone after the last point.

    >>> m = PolylineMotion(np.array([[0.0, 0.0], [10.0, 0.0]]), speed_mps=2.0, start_s=1.0)
    >>> m.position_at(np.array([3.5]))[0].tolist()
    [[5.0, 0.0]]
    """

    points_m: np.ndarray
    speed_mps: float
    start_s: float = 0.0

    @property
    def cumulative_m(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self.points_m, axis=0), axis=1))])

    @property
    def length_m(self) -> float:
        return float(self.cumulative_m[-1])

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_m / self.speed_mps

    def at_distance(self, distance_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (n, 2) and headings (n,) in degrees clockwise from north at path distances."""
        cum = self.cumulative_m
        d = np.clip(np.asarray(distance_m, dtype=float), 0.0, cum[-1])
        seg = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(cum) - 2)
        seg_len = np.maximum(cum[seg + 1] - cum[seg], 1e-12)
        frac = ((d - cum[seg]) / seg_len)[:, None]
        a, b = self.points_m[seg], self.points_m[seg + 1]
        delta = b - a
        heading = np.degrees(np.arctan2(delta[:, 0], delta[:, 1])) % 360.0
        return a + frac * delta, heading

    def position_at(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions (n, 2), headings (n,), active (n,) bool) at scenario times ``t_s``."""
        t = np.asarray(t_s, dtype=float)
        active = (t >= self.start_s) & (t <= self.end_s)
        pos, heading = self.at_distance((t - self.start_s) * self.speed_mps)
        return pos, heading, active

    def time_at_distance(self, distance_m: float) -> float:
        return self.start_s + distance_m / self.speed_mps


@dataclass(frozen=True)
class RouteMotion:
    """A drone's route at constant speed: a closed loop, or back and forth along the waypoints."""

    path: PolylineMotion
    loop: bool

    @classmethod
    def from_waypoints(cls, waypoints_m: np.ndarray, speed_mps: float, loop: bool) -> RouteMotion:
        points = np.vstack([waypoints_m, waypoints_m[:1]]) if loop else np.asarray(waypoints_m, dtype=float)
        return cls(PolylineMotion(points, speed_mps), loop)

    def state_at(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions (n, 2), headings (n,)) at times ``t_s``; the drone never stops."""
        length = self.path.length_m
        d = np.asarray(t_s, dtype=float) * self.path.speed_mps
        if self.loop:
            return self.path.at_distance(d % length)
        phase = d % (2 * length)
        forward = phase <= length
        pos, heading = self.path.at_distance(np.where(forward, phase, 2 * length - phase))
        return pos, np.where(forward, heading, (heading + 180.0) % 360.0)

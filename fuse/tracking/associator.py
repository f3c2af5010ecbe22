"""Gated global-nearest-neighbour association of predicted tracks with one scan's measurements."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from fuse.tracking.types import Measurement, Track, TrackStatus

CHI2_2DOF_99 = 9.21
"""99 % quantile of the chi-square distribution with 2 degrees of freedom."""

HINT_BONUS = CHI2_2DOF_99
"""Default hint bonus, equal to the gate: within the gate, a measurement carrying a track's hint beats
any that does not. A per-sensor (image) tracker separates targets in pixels far better than metres of
ground uncertainty can; the gate still rejects a hint that has jumped to another object."""


def pairwise_mahalanobis_sq(pos_m: np.ndarray, pos_cov_m2: np.ndarray, z_m: np.ndarray, R_m2: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances (n, m) of n predicted positions vs m measurements.

    pos_m (n, 2), pos_cov_m2 (n, 2, 2), z_m (m, 2), R_m2 (m, 2, 2); the innovation covariance of a
    pair is S = P_pos + R. Closed-form 2x2 inverse, vectorised over all pairs; (0, m) or (n, 0)
    inputs give an empty matrix.
    """
    pos_m = np.asarray(pos_m, dtype=np.float64).reshape(-1, 2)
    z_m = np.asarray(z_m, dtype=np.float64).reshape(-1, 2)
    S = np.asarray(pos_cov_m2, dtype=np.float64).reshape(-1, 1, 2, 2) + np.asarray(R_m2, dtype=np.float64).reshape(1, -1, 2, 2)
    nu = z_m[None, :, :] - pos_m[:, None, :]
    a, b, d = S[..., 0, 0], (S[..., 0, 1] + S[..., 1, 0]) / 2.0, S[..., 1, 1]
    det = a * d - b * b
    return (d * nu[..., 0] ** 2 - 2.0 * b * nu[..., 0] * nu[..., 1] + a * nu[..., 1] ** 2) / det


class MahalanobisGnnAssociator:
    """Gated GNN: the assignment of minimum total cost, at most one measurement per sensor per track.

    Tracks must already be predicted to the scan time. A pair (track, measurement) is admissible
    when its squared Mahalanobis distance d² <= ``gate_chi2`` (9.21: 99 % for 2 dof). Its cost
    relative to leaving both unassigned is d² - gate_chi2, minus ``hint_bonus`` when the
    measurement's (sensor, sensor_track_id) equals the track's hint for that sensor, so a hint
    tips close calls but never admits a measurement outside the gate. Each sensor's measurements
    are assigned separately (scipy's ``linear_sum_assignment`` on that block of the cost matrix),
    which gives every track at most one measurement per sensor per scan. With ``confirmed_first``
    (default) confirmed and coasting tracks are assigned before tentative ones, so a tentative
    track started by an outlier next to a confirmed track cannot take that track's measurements
    and grow into a duplicate; tentative tracks share what is left.

    Example: ``MahalanobisGnnAssociator().associate(tracks, measurements, time_ns)`` ->
    ``{track: (measurement from sensor a, measurement from sensor b)}``.
    """

    def __init__(self, gate_chi2: float = CHI2_2DOF_99, hint_bonus: float = HINT_BONUS, confirmed_first: bool = True) -> None:
        if not math.isfinite(gate_chi2) or gate_chi2 <= 0.0:
            raise ValueError(f"gate_chi2 must be finite and > 0, got {gate_chi2!r}")
        if not math.isfinite(hint_bonus) or hint_bonus < 0.0:
            raise ValueError(f"hint_bonus must be finite and >= 0, got {hint_bonus!r}")
        self.gate_chi2 = float(gate_chi2)
        self.hint_bonus = float(hint_bonus)
        self.confirmed_first = bool(confirmed_first)

    def cost_matrix(self, tracks: Sequence[Track], measurements: Sequence[Measurement]) -> tuple[np.ndarray, np.ndarray]:
        """(cost (n, m), admissible (n, m) bool) for n tracks and m measurements, as described above."""
        n, m = len(tracks), len(measurements)
        if n == 0 or m == 0:
            return np.zeros((n, m)), np.zeros((n, m), dtype=bool)
        pos = np.stack([t.x[:2] for t in tracks])
        pos_cov = np.stack([t.P[:2, :2] for t in tracks])
        z = np.stack([meas.xy_m for meas in measurements])
        R = np.stack([meas.cov_m2 for meas in measurements])
        d2 = pairwise_mahalanobis_sq(pos, pos_cov, z, R)
        admissible = d2 <= self.gate_chi2
        hinted = np.zeros((n, m), dtype=bool)
        holders: dict[tuple[str, int], list[int]] = {}
        for i, t in enumerate(tracks):
            for sensor, sid in t.hints.items():
                holders.setdefault((sensor, sid), []).append(i)
        for j, meas in enumerate(measurements):
            if meas.sensor_track_id is not None:
                hinted[holders.get((meas.sensor_id, meas.sensor_track_id), []), j] = True
        cost = np.where(admissible, d2 - self.gate_chi2 - self.hint_bonus * hinted, 0.0)
        return cost, admissible

    def associate(
        self, tracks: Sequence[Track], measurements: Sequence[Measurement], time_ns: int
    ) -> dict[Track, tuple[Measurement, ...]]:
        """Track -> its measurements of this scan (one per sensor, sorted by sensor); unmatched tracks absent.

        ``time_ns`` is the scan time the tracks were predicted to (checked against ``state_ns``).
        """
        for track in tracks:
            if track.state_ns != time_ns:
                raise ValueError(f"track {track.track_id} is at {track.state_ns} ns, not predicted to the scan at {time_ns} ns")
        cost, admissible = self.cost_matrix(tracks, measurements)
        tentative = np.array([t.status is TrackStatus.TENTATIVE for t in tracks], dtype=bool)
        stages = [~tentative, tentative] if self.confirmed_first else [np.ones(len(tracks), dtype=bool)]
        taken = np.zeros(len(measurements), dtype=bool)
        pairs: dict[int, list[int]] = {}
        for sensor in sorted({meas.sensor_id for meas in measurements}):
            of_sensor = np.array([meas.sensor_id == sensor for meas in measurements], dtype=bool)
            for stage in stages:
                cols = np.flatnonzero(of_sensor & ~taken)
                rows = np.flatnonzero(stage & admissible[:, cols].any(axis=1)) if cols.size else cols
                if rows.size == 0:
                    continue
                block = cost[np.ix_(rows, cols)]
                for r, c in zip(*linear_sum_assignment(block), strict=True):
                    i, j = int(rows[r]), int(cols[c])
                    if admissible[i, j]:
                        pairs.setdefault(i, []).append(j)
                        taken[j] = True
        return {tracks[i]: tuple(measurements[j] for j in sorted(js)) for i, js in sorted(pairs.items())}

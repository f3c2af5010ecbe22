"""Gated global-nearest-neighbour association of predicted tracks with one scan's measurements."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

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
        """(cost (n, m), admissible (n, m) bool) for n tracks and m measurements, as described above
        (dense: for inspection and small cases; :meth:`associate` works on the admissible pairs only)."""
        n, m = len(tracks), len(measurements)
        cost, admissible = np.zeros((n, m)), np.zeros((n, m), dtype=bool)
        rows, cols, pair_cost = self.admissible_pairs(tracks, measurements)
        cost[rows, cols], admissible[rows, cols] = pair_cost, True
        return cost, admissible

    def admissible_pairs(self, tracks: Sequence[Track], measurements: Sequence[Measurement]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track index, measurement index, cost) of every pair inside the gate.

        A k-d tree over the measurements pre-gates by distance: d² <= gate needs
        |z - x|² <= gate * lambda_max(P_pos + R) <= gate * (lambda_max(P_pos) + max lambda_max(R)),
        so only measurements within that radius of a track are scored; the cost grows with the
        pairs near each other, not with tracks x measurements.
        """
        n, m = len(tracks), len(measurements)
        empty = np.zeros(0, dtype=np.intp)
        if n == 0 or m == 0:
            return empty, empty, np.zeros(0)
        pos = np.stack([t.x[:2] for t in tracks])
        pos_cov = np.stack([t.P[:2, :2] for t in tracks])
        z = np.stack([meas.xy_m for meas in measurements])
        R = np.stack([meas.cov_m2 for meas in measurements])
        radius = np.sqrt(self.gate_chi2 * (largest_eigenvalue(pos_cov) + largest_eigenvalue(R).max())) * (1 + 1e-9)
        near = cKDTree(z).query_ball_point(pos, radius)
        counts = np.fromiter((len(js) for js in near), dtype=np.intp, count=n)
        rows = np.repeat(np.arange(n), counts)
        cols = np.fromiter((j for js in near for j in js), dtype=np.intp, count=int(counts.sum()))
        nu = z[cols] - pos[rows]
        S = pos_cov[rows] + R[cols]
        a, b, d = S[:, 0, 0], (S[:, 0, 1] + S[:, 1, 0]) / 2.0, S[:, 1, 1]
        d2 = (d * nu[:, 0] ** 2 - 2.0 * b * nu[:, 0] * nu[:, 1] + a * nu[:, 1] ** 2) / (a * d - b * b)
        inside = d2 <= self.gate_chi2
        rows, cols, d2 = rows[inside], cols[inside], d2[inside]
        holders: dict[tuple[str, int], set[int]] = {}
        for i, t in enumerate(tracks):
            for sensor, sid in t.hints.items():
                holders.setdefault((sensor, sid), set()).add(i)
        hinted = np.fromiter((int(r) in holders.get((measurements[c].sensor_id, measurements[c].sensor_track_id), ())
                              if measurements[c].sensor_track_id is not None else False
                              for r, c in zip(rows, cols, strict=True)), dtype=bool, count=len(rows))
        return rows, cols, d2 - self.gate_chi2 - self.hint_bonus * hinted

    def associate(
        self, tracks: Sequence[Track], measurements: Sequence[Measurement], time_ns: int
    ) -> dict[Track, tuple[Measurement, ...]]:
        """Track -> its measurements of this scan (one per sensor, sorted by sensor); unmatched tracks absent.

        ``time_ns`` is the scan time the tracks were predicted to (checked against ``state_ns``).
        """
        for track in tracks:
            if track.state_ns != time_ns:
                raise ValueError(f"track {track.track_id} is at {track.state_ns} ns, not predicted to the scan at {time_ns} ns")
        rows, cols, cost = self.admissible_pairs(tracks, measurements)
        tentative = np.array([t.status is TrackStatus.TENTATIVE for t in tracks], dtype=bool)
        stages = [~tentative, tentative] if self.confirmed_first else [np.ones(len(tracks), dtype=bool)]
        sensor_of = np.array([meas.sensor_id for meas in measurements], dtype=object)
        taken = np.zeros(len(measurements), dtype=bool)
        pairs: dict[int, list[int]] = {}
        for sensor in sorted(set(sensor_of.tolist())):
            of_sensor = sensor_of == sensor
            for stage in stages:
                keep = of_sensor[cols] & ~taken[cols] & stage[rows]
                for i, j in min_cost_pairs(rows[keep], cols[keep], cost[keep]):
                    pairs.setdefault(i, []).append(j)
                    taken[j] = True
        return {tracks[i]: tuple(measurements[j] for j in sorted(js)) for i, js in sorted(pairs.items())}


def largest_eigenvalue(cov: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of each symmetric 2x2 matrix in ``cov`` (k, 2, 2), closed form."""
    a, b, d = cov[:, 0, 0], (cov[:, 0, 1] + cov[:, 1, 0]) / 2.0, cov[:, 1, 1]
    return (a + d) / 2.0 + np.sqrt(((a - d) / 2.0) ** 2 + b * b)


def min_cost_pairs(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray) -> list[tuple[int, int]]:
    """The assignment of minimum total cost over the given (row, col, cost <= 0) pairs, any other
    pair forbidden (as leaving both unassigned). Solved per connected component of the pairs, each
    with scipy's ``linear_sum_assignment`` on its own block: the same optimum as one block of all
    rows and columns, at the cost of the components' sizes."""
    if rows.size == 0:
        return []
    row_ids, r = np.unique(rows, return_inverse=True)
    col_ids, c = np.unique(cols, return_inverse=True)
    nr, nc = len(row_ids), len(col_ids)
    graph = coo_matrix((np.ones(len(r)), (r, nr + c)), shape=(nr + nc, nr + nc))
    _, label = connected_components(graph, directed=False)
    pair_label = label[r]
    order = np.argsort(pair_label, kind="stable")
    bounds = np.flatnonzero(np.diff(pair_label[order])) + 1
    chosen: list[tuple[int, int]] = []
    for group in np.split(order, bounds):
        gr, gc = r[group], c[group]
        ur, lr = np.unique(gr, return_inverse=True)
        uc, lc = np.unique(gc, return_inverse=True)
        block = np.zeros((len(ur), len(uc)))
        allowed = np.zeros((len(ur), len(uc)), dtype=bool)
        block[lr, lc], allowed[lr, lc] = cost[group], True
        for a, b in zip(*linear_sum_assignment(block), strict=True):
            if allowed[a, b]:
                chosen.append((int(row_ids[ur[a]]), int(col_ids[uc[b]])))
    return sorted(chosen)

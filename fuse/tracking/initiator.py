"""M-of-N track initiation: tentative tracks from unassociated measurements, confirmed after M hits in N scans."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from fuse.tracking.associator import CHI2_2DOF_99, largest_eigenvalue, pairwise_mahalanobis_sq
from fuse.tracking.classes import ClassFusion
from fuse.tracking.types import Measurement, Track, TrackStatus
from fuse.tracking.updater import KalmanUpdater


class MOfNInitiator:
    """Starts tentative tracks and says when they have earned confirmation.

    A new track starts at the measured position with its covariance, velocity 0 with standard
    deviation ``initial_speed_sigma_mps`` per axis (5 m/s covers walkers and most vehicles at
    2 sigma), one hit in its history, and the class evidence of the measurement. Unassociated
    measurements of the same scan from different sensors that fall in each other's gate
    (``gate_chi2``) start one track together rather than one per sensor. A tentative track is
    confirmed once it has ``m`` hits among its last ``n`` counted scans (the tracker keeps the
    history ``n`` long).

    Track ids are ``f"{id_prefix}-{time_ns}-{k}"``: the scan time and the index of the track
    among those started in that scan, in measurement order, so a replay mints the same ids.
    """

    def __init__(
        self,
        m: int = 3,
        n: int = 5,
        initial_speed_sigma_mps: float = 5.0,
        gate_chi2: float = CHI2_2DOF_99,
        updater: KalmanUpdater | None = None,
        class_fusion: ClassFusion | None = None,
    ) -> None:
        if not (isinstance(m, int) and isinstance(n, int) and 1 <= m <= n):
            raise ValueError(f"need integers 1 <= m <= n, got m={m!r}, n={n!r}")
        if not math.isfinite(initial_speed_sigma_mps) or initial_speed_sigma_mps <= 0.0:
            raise ValueError(f"initial_speed_sigma_mps must be finite and > 0, got {initial_speed_sigma_mps!r}")
        if not math.isfinite(gate_chi2) or gate_chi2 <= 0.0:
            raise ValueError(f"gate_chi2 must be finite and > 0, got {gate_chi2!r}")
        self.m, self.n = m, n
        self.initial_speed_sigma_mps = float(initial_speed_sigma_mps)
        self.gate_chi2 = float(gate_chi2)
        self.updater = updater or KalmanUpdater()
        self.class_fusion = class_fusion or ClassFusion()

    def initiate(self, unassociated: Sequence[Measurement], time_ns: int, id_prefix: str = "trk") -> set[Track]:
        """Tentative tracks at ``time_ns`` from one scan's unassociated measurements (processed in ``key`` order)."""
        started: list[Track] = []
        grid = _Grid(self.gate_chi2, [meas.cov_m2 for meas in unassociated])
        for meas in sorted(unassociated, key=lambda item: item.key):
            if meas.time_ns != time_ns:
                raise ValueError(f"measurement at {meas.time_ns} ns is not of the scan at {time_ns} ns")
            joined = self._join(started, meas, grid)
            if joined is None:
                started.append(self._start(meas, f"{id_prefix}-{time_ns}-{len(started)}"))
                grid.add(len(started) - 1, started[-1].x[:2])
            else:
                grid.move(joined, started[joined].x[:2])
        return set(started)

    def confirmed(self, tracks: Iterable[Track]) -> set[Track]:
        """The tentative tracks with at least ``m`` hits in their last ``n`` counted scans."""
        return {t for t in tracks if t.status is TrackStatus.TENTATIVE and sum(t.hits[-self.n :]) >= self.m}

    def _start(self, meas: Measurement, track_id: str) -> Track:
        P = np.zeros((4, 4))
        P[:2, :2] = meas.cov_m2
        P[2, 2] = P[3, 3] = self.initial_speed_sigma_mps**2
        track = Track(
            track_id=track_id,
            x=np.array([meas.xy_m[0], meas.xy_m[1], 0.0, 0.0]),
            P=P,
            state_ns=meas.time_ns,
            created_ns=meas.time_ns,
            last_update_ns=meas.time_ns,
            hits=[True],
        )
        self._absorb(track, meas)
        return track

    def _join(self, started: list[Track], meas: Measurement, grid: _Grid) -> int | None:
        """Update the nearest track started in this scan by another sensor, if meas is in its gate;
        its index in ``started``, or None."""
        indices = [i for i in grid.near(meas.xy_m) if meas.sensor_id not in started[i].sensors]
        candidates = [started[i] for i in indices]
        if not candidates:
            return None
        d2 = pairwise_mahalanobis_sq(
            np.stack([t.x[:2] for t in candidates]), np.stack([t.P[:2, :2] for t in candidates]), meas.xy_m, meas.cov_m2
        )[:, 0]
        best = int(np.argmin(d2))
        if d2[best] > self.gate_chi2:
            return None
        track = candidates[best]
        update = self.updater.update(track.x, track.P, meas.xy_m, meas.cov_m2)
        track.x, track.P = update.x, update.P
        self._absorb(track, meas)
        return indices[best]

    def _absorb(self, track: Track, meas: Measurement) -> None:
        track.class_probabilities = self.class_fusion.update(track.class_probabilities, meas.class_name, meas.score)
        track.sensors.add(meas.sensor_id)
        track.evidence[meas.sensor_id] = meas.ref
        if meas.sensor_track_id is not None:
            track.hints[meas.sensor_id] = meas.sensor_track_id


class _Grid:
    """Tracks started in one scan, binned by position in cells one gate radius wide.

    Within a scan every track's position covariance is at most the largest measurement covariance
    (a new track takes its measurement's; an update only shrinks it), so a measurement inside a
    track's gate is within sqrt(gate * 2 * lambda_max) of it: the 3 x 3 cells around the measurement
    hold every candidate, and the nearest is chosen among the same tracks as a scan of all of them.
    """

    def __init__(self, gate_chi2: float, covariances: Sequence[np.ndarray]) -> None:
        largest = float(largest_eigenvalue(np.stack(covariances)).max()) if len(covariances) else 1.0
        self.cell_m = max(math.sqrt(gate_chi2 * 2.0 * largest) * (1 + 1e-9), 1e-9)
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._where: dict[int, tuple[int, int]] = {}

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        return (math.floor(float(xy[0]) / self.cell_m), math.floor(float(xy[1]) / self.cell_m))

    def add(self, index: int, xy: np.ndarray) -> None:
        cell = self._cell(xy)
        self._cells.setdefault(cell, []).append(index)
        self._where[index] = cell

    def move(self, index: int, xy: np.ndarray) -> None:
        cell = self._cell(xy)
        if cell != self._where[index]:
            self._cells[self._where[index]].remove(index)
            self._cells.setdefault(cell, []).append(index)
            self._where[index] = cell

    def near(self, xy: np.ndarray) -> list[int]:
        """Indices (ascending, as in ``started``) of the tracks in the 3 x 3 cells around ``xy``."""
        cx, cy = self._cell(xy)
        return sorted(i for dx in (-1, 0, 1) for dy in (-1, 0, 1) for i in self._cells.get((cx + dx, cy + dy), ()))

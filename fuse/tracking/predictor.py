"""Constant-velocity prediction with white-noise acceleration (continuous model)."""

from __future__ import annotations

import numpy as np

NS_PER_S = 1_000_000_000


class ConstantVelocityPredictor:
    """Predicts [x, y, vx, vy] states forward in time, one track or a stack of them.

    The process noise is continuous white-noise acceleration with spectral density
    q = ``process_noise_accel_mps2``² per second on each axis, so per axis
    Q(dt) = q · [[dt³/3, dt²/2], [dt²/2, dt]] (Stone Soup's ``ConstantVelocity``). Unlike the
    piecewise-constant model, it composes: predicting dt1 then dt2 equals predicting dt1 + dt2,
    so the result does not depend on how often unsynchronised sensors make the tracker predict.

    Example: ``ConstantVelocityPredictor(1.0).predict(x, P, 0.1)`` -> (x', P') 0.1 s later.
    """

    def __init__(self, process_noise_accel_mps2: float = 1.0) -> None:
        if not np.isfinite(process_noise_accel_mps2) or process_noise_accel_mps2 < 0.0:
            raise ValueError(f"process_noise_accel_mps2 must be finite and >= 0, got {process_noise_accel_mps2!r}")
        self.process_noise_accel_mps2 = float(process_noise_accel_mps2)

    def transition(self, dt_s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F and Q for time steps ``dt_s`` (s, >= 0): shapes (4, 4) for a scalar, (n, 4, 4) for (n,)."""
        dt = np.asarray(dt_s, dtype=np.float64)
        if not np.isfinite(dt).all() or (dt < 0.0).any():
            raise ValueError(f"dt_s must be finite and >= 0 (no prediction backwards in time), got {dt_s!r}")
        q = self.process_noise_accel_mps2**2
        F = np.broadcast_to(np.eye(4), (*dt.shape, 4, 4)).copy()
        F[..., 0, 2] = dt
        F[..., 1, 3] = dt
        Q = np.zeros((*dt.shape, 4, 4))
        for pos, vel in ((0, 2), (1, 3)):
            Q[..., pos, pos] = q * dt**3 / 3.0
            Q[..., pos, vel] = Q[..., vel, pos] = q * dt**2 / 2.0
            Q[..., vel, vel] = q * dt
        return F, Q

    def predict(self, x: np.ndarray, P: np.ndarray, dt_s: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (x, P) after ``dt_s`` seconds; x (..., 4), P (..., 4, 4), dt_s scalar or (...,).

        Returns new arrays (inputs untouched); P stays exactly symmetric.
        """
        x = np.asarray(x, dtype=np.float64)
        P = np.asarray(P, dtype=np.float64)
        F, Q = self.transition(dt_s)
        x_pred = np.einsum("...ij,...j->...i", F, x)
        P_pred = F @ P @ np.swapaxes(F, -1, -2) + Q
        return x_pred, (P_pred + np.swapaxes(P_pred, -1, -2)) / 2.0

    def predict_to(self, x: np.ndarray, P: np.ndarray, from_ns: int | np.ndarray, to_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (x, P) from event time(s) ``from_ns`` to ``to_ns`` (ns)."""
        dt_ns = to_ns - np.asarray(from_ns, dtype=np.int64)
        return self.predict(x, P, dt_ns / NS_PER_S)

"""Kalman update of [x, y, vx, vy] states with position-only measurements (Joseph form)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
"""Measurement matrix: a measurement observes the position only."""


@dataclass(frozen=True)
class Update:
    """Result of an update: posterior x (..., 4), P (..., 4, 4), innovation (..., 2) m, S (..., 2, 2) m²."""

    x: np.ndarray
    P: np.ndarray
    innovation: np.ndarray
    S: np.ndarray


class KalmanUpdater:
    """Position-only Kalman update, H = [I₂ 0], with the Joseph-form covariance.

    Joseph form, P⁺ = (I - KH) P (I - KH)ᵀ + K R Kᵀ, stays symmetric positive definite under
    rounding where the short form (I - KH) P can lose it. Works on one track or a stack.

    Example: ``KalmanUpdater().update(x, P, z_m, R_m2).x`` is the posterior state.
    """

    def update(self, x: np.ndarray, P: np.ndarray, z_m: np.ndarray, R_m2: np.ndarray) -> Update:
        """Posterior of prior (x, P) given measurement z_m (..., 2) with covariance R_m2 (..., 2, 2)."""
        x = np.asarray(x, dtype=np.float64)
        P = np.asarray(P, dtype=np.float64)
        z = np.asarray(z_m, dtype=np.float64)
        R = np.asarray(R_m2, dtype=np.float64)
        innovation = z - x[..., :2]
        S = P[..., :2, :2] + R
        S = (S + np.swapaxes(S, -1, -2)) / 2.0
        PHt = P[..., :, :2]  # P Hᵀ, (..., 4, 2)
        K = np.swapaxes(np.linalg.solve(S, np.swapaxes(PHt, -1, -2)), -1, -2)  # P Hᵀ S⁻¹ (S symmetric)
        x_post = x + np.einsum("...ij,...j->...i", K, innovation)
        I_KH = np.eye(4) - K @ H
        P_post = I_KH @ P @ np.swapaxes(I_KH, -1, -2) + K @ R @ np.swapaxes(K, -1, -2)
        P_post = (P_post + np.swapaxes(P_post, -1, -2)) / 2.0
        return Update(x=x_post, P=P_post, innovation=innovation, S=S)

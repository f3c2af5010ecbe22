"""Tracker state as plain JSON-serialisable dicts, exact on round trip (floats kept as Python floats).

Saved with the committed input offsets (see the architecture), so a restarted or rebalanced fuse
worker continues the same tracks with the same ids. Changing this format needs a new ``SCHEMA``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from fuse.tracking.exceptions import TrackerStateError
from fuse.tracking.types import Measurement, Track, TrackStatus

SCHEMA = "ibet.fuse.tracker.v1"

T = TypeVar("T")


def measurement_to_dict(meas: Measurement) -> dict[str, Any]:
    """A measurement as a JSON-ready dict."""
    return {
        "sensor_id": meas.sensor_id,
        "time_ns": meas.time_ns,
        "xy_m": meas.xy_m.tolist(),
        "cov_m2": meas.cov_m2.tolist(),
        "class_name": meas.class_name,
        "score": meas.score,
        "sensor_track_id": meas.sensor_track_id,
        "ref": meas.ref,
    }


def measurement_from_dict(data: dict[str, Any]) -> Measurement:
    """Inverse of :func:`measurement_to_dict`; TrackerStateError on a malformed dict."""
    return restore("measurement", lambda: Measurement(**data))


def track_to_dict(track: Track) -> dict[str, Any]:
    """A track as a JSON-ready dict."""
    return {
        "track_id": track.track_id,
        "x": track.x.tolist(),
        "P": track.P.tolist(),
        "state_ns": track.state_ns,
        "created_ns": track.created_ns,
        "last_update_ns": track.last_update_ns,
        "status": track.status.value,
        "hits": list(track.hits),
        "class_probabilities": dict(track.class_probabilities),
        "sensors": sorted(track.sensors),
        "hints": dict(sorted(track.hints.items())),
        "evidence": dict(sorted(track.evidence.items())),
        "version": track.version,
    }


def track_from_dict(data: dict[str, Any]) -> Track:
    """Inverse of :func:`track_to_dict`; TrackerStateError on a malformed dict."""

    def build() -> Track:
        x = np.array(data["x"], dtype=np.float64)
        P = np.array(data["P"], dtype=np.float64)
        if x.shape != (4,) or P.shape != (4, 4):
            raise ValueError(f"x must be (4,) and P (4, 4), got {x.shape} and {P.shape}")
        return Track(
            track_id=str(data["track_id"]),
            x=x,
            P=P,
            state_ns=int(data["state_ns"]),
            created_ns=int(data["created_ns"]),
            last_update_ns=int(data["last_update_ns"]),
            status=TrackStatus(data["status"]),
            hits=[bool(h) for h in data["hits"]],
            class_probabilities={str(k): float(v) for k, v in data["class_probabilities"].items()},
            sensors={str(s) for s in data["sensors"]},
            hints={str(k): int(v) for k, v in data["hints"].items()},
            evidence={str(k): str(v) for k, v in data["evidence"].items()},
            version=int(data["version"]),
        )

    return restore(f"track {data.get('track_id', '?')!r}" if isinstance(data, dict) else "track", build)


def restore(what: str, build: Callable[[], T]) -> T:
    """Run ``build``; a missing or malformed field becomes a TrackerStateError naming ``what``."""
    try:
        return build()
    except TrackerStateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrackerStateError(f"cannot restore {what} from saved state: {type(exc).__name__}: {exc}") from exc

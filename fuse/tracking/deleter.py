"""Track life cycle at its end: confirmed -> coasting -> deleted, and tentative tracks that failed."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from fuse.tracking.predictor import NS_PER_S
from fuse.tracking.types import Track, TrackStatus


class Deleter:
    """Decides which tracks coast and which are deleted, at an event time; it changes nothing itself.

    - tentative: deleted once ``tentative_max_misses`` of the scans in its hit history are misses
      (3 = n - m + 1 for 3-of-5: it can no longer be confirmed in that window), or when it has
      not been updated for ``coast_after_s``.
    - confirmed: coasts after ``coast_after_s`` without an update (an update makes it confirmed
      again).
    - confirmed or coasting: deleted after ``delete_after_s`` without an update, or once coasting
      with a position covariance trace above ``max_position_trace_m2`` (5000 m²: 50 m sigma per
      axis, the track no longer says where the target is).

    So a confirmed track updated within ``coast_after_s`` is never deleted. Ages are event time
    minus ``last_update_ns``; the rules are monotone in time, so checking early never removes a
    track that a later check would keep.
    """

    def __init__(
        self,
        tentative_max_misses: int = 3,
        coast_after_s: float = 2.0,
        delete_after_s: float = 8.0,
        max_position_trace_m2: float = 5000.0,
    ) -> None:
        if not isinstance(tentative_max_misses, int) or tentative_max_misses < 1:
            raise ValueError(f"tentative_max_misses must be an integer >= 1, got {tentative_max_misses!r}")
        if not (math.isfinite(coast_after_s) and math.isfinite(delete_after_s) and 0.0 < coast_after_s < delete_after_s):
            raise ValueError(f"need 0 < coast_after_s < delete_after_s, got {coast_after_s!r} and {delete_after_s!r}")
        if not math.isfinite(max_position_trace_m2) or max_position_trace_m2 <= 0.0:
            raise ValueError(f"max_position_trace_m2 must be finite and > 0, got {max_position_trace_m2!r}")
        self.tentative_max_misses = tentative_max_misses
        self.coast_after_s = float(coast_after_s)
        self.delete_after_s = float(delete_after_s)
        self.max_position_trace_m2 = float(max_position_trace_m2)

    def coasting(self, tracks: Iterable[Track], time_ns: int) -> set[Track]:
        """Confirmed tracks that have gone ``coast_after_s`` without an update at ``time_ns``."""
        return {t for t in tracks if t.status is TrackStatus.CONFIRMED and self._age_s(t, time_ns) > self.coast_after_s}

    def delete_tracks(self, tracks: Iterable[Track], time_ns: int) -> set[Track]:
        """Tracks to delete at ``time_ns`` (see the class docstring for the rules)."""
        return {t for t in tracks if self._expired(t, time_ns)}

    def _expired(self, track: Track, time_ns: int) -> bool:
        age_s = self._age_s(track, time_ns)
        if track.status is TrackStatus.DELETED:
            return True
        if track.status is TrackStatus.TENTATIVE:
            return track.hits.count(False) >= self.tentative_max_misses or age_s > self.coast_after_s
        if age_s > self.delete_after_s:
            return True
        coasting = track.status is TrackStatus.COASTING or age_s > self.coast_after_s
        return coasting and float(np.trace(track.P[:2, :2])) > self.max_position_trace_m2

    @staticmethod
    def _age_s(track: Track, time_ns: int) -> float:
        return (time_ns - track.last_update_ns) / NS_PER_S

"""Groups: tracks of one class that move together (a party of people on foot, a convoy) are one group,
so an alert can say "3 people" and one group crossing is one alert. Pure.

Two tracks are linked when they are within ``distance_m`` of each other and their velocities differ by
at most ``speed_mps``; a group is a connected set of links (so a file of walkers a few metres apart
is one group). Pairs come from a k-d tree (scipy's ``cKDTree.query_pairs``), so the cost grows with
the tracks near each other, not with the square of all tracks. A group is named after its oldest
member (the smallest track id): it keeps its name while other members come and go, and takes
the next oldest's when that one leaves (the alert rules still match a member whose own track
had an event alerted; a member with none raises a new alert).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree


class Membership(NamedTuple):
    group_id: str
    size: int


def group_tracks(track_ids: Sequence[str], classes: Sequence[str], east_north_m: np.ndarray, velocity_mps: np.ndarray,
                 distance_m: float, speed_mps: float) -> dict[str, Membership]:
    """Each grouped track's group (tracks alone are left out). ``east_north_m`` and ``velocity_mps``:
    (n, 2) arrays on one local plane."""
    n = len(track_ids)
    if n < 2 or distance_m <= 0:
        return {}
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in cKDTree(np.asarray(east_north_m, np.float64)).query_pairs(distance_m):
        if classes[i] == classes[j] and np.hypot(*(velocity_mps[i] - velocity_mps[j])) <= speed_mps:
            parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    out = {}
    for group in members.values():
        if len(group) < 2:
            continue
        name = "grp-" + min(track_ids[i] for i in group)
        for i in group:
            out[track_ids[i]] = Membership(name, len(group))
    return out

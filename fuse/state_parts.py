"""A sector's fuse state (``SectorFusion.to_state()``) as changelog parts, and back.

Parts (see :mod:`ibet.state_changelog`):

- the head (``""``): the sector, its plane, counters, the reorder buffer's times, the event time;
- ``t/<track id>``: one track's filter state with its border memory and gathered evidence;
- ``e/<sensor>/<sensor track id>``: the evidence a sensor's track was noted with;
- ``p/<time>/<sensor>/<n>``: the reorder buffer's pending measurements of one frame (one sensor,
  one capture time), ``PAGE`` per part: written once when the frame arrives, a tombstone when the
  frame is released.

Every part stays small whatever the sector's size: a track is ~2-3 KB, a page ~``PAGE`` x 0.2 KB (~55 KB).
"""

from __future__ import annotations

from typing import Any

from ibet.state_changelog import HEAD

LAYOUT = "ibet.fuse.sector-parts.v1"
PAGE = 250


def split(state: dict[str, Any]) -> dict[str, Any]:
    """Part name -> JSON-ready value for one sector's state."""
    tracker, border = state["tracker"], state["border"]
    reorder = tracker["reorder"]
    frames: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for meas in reorder["pending"]:
        frames.setdefault((meas["time_ns"], meas["sensor_id"]), []).append(meas)
    head = {**state, "layout": LAYOUT,
            "tracker": {**tracker, "tracks": [], "reorder": {**reorder, "pending": []}},
            "border": {**border, "tracks": {}}, "sensor_evidence": [], "track_evidence": {}}
    parts: dict[str, Any] = {HEAD: head}
    tracks = {t["track_id"]: t for t in tracker["tracks"]}
    memory, evidence = border["tracks"], state["track_evidence"]
    for tid in sorted(tracks.keys() | memory.keys() | evidence.keys()):
        parts[f"t/{tid}"] = {"track": tracks.get(tid), "border": memory.get(tid), "evidence": evidence.get(tid)}
    for sensor_id, sensor_track_id, noted_ns, refs in state["sensor_evidence"]:
        parts[f"e/{sensor_id}/{sensor_track_id}"] = [noted_ns, refs]
    for (time_ns, sensor_id), pending in frames.items():
        parts.update({f"p/{time_ns}/{sensor_id}/{n // PAGE}": pending[n:n + PAGE] for n in range(0, len(pending), PAGE)})
    return parts


def is_parted(head: dict[str, Any]) -> bool:
    """True for a head written by :func:`split`; False for a whole state saved before the changelog."""
    return isinstance(head, dict) and head.get("layout") == LAYOUT


def join(parts: dict[str, Any]) -> dict[str, Any]:
    """The sector's state from its parts (inverse of :func:`split`); a whole state is returned as is.

    KeyError if the head is missing; a part of an unknown kind is ignored (written by a newer worker).
    """
    head = parts[HEAD]
    if not is_parted(head):
        return head
    state = {k: v for k, v in head.items() if k != "layout"}
    tracks, memory, evidence, noted, pages = [], {}, {}, [], {}
    for name, value in parts.items():
        kind, _, rest = name.partition("/")
        if kind == "t":
            if value.get("track") is not None:
                tracks.append(value["track"])
            if value.get("border") is not None:
                memory[rest] = value["border"]
            if value.get("evidence") is not None:
                evidence[rest] = value["evidence"]
        elif kind == "e":
            sensor_id, _, sensor_track_id = rest.rpartition("/")
            noted.append([sensor_id, int(sensor_track_id), *value])
        elif kind == "p":
            time_ns, sensor_id, n = rest.split("/")
            pages[(int(time_ns), sensor_id, int(n))] = value
    noted.sort(key=lambda item: item[2])  # oldest first, as the sector keeps them
    reorder = head["tracker"]["reorder"]
    mark = reorder["watermark_ns"]  # a frame released but its tombstone lost with a worker: not pending
    pending = [m for n in sorted(pages) for m in pages[n] if mark is None or m["time_ns"] >= mark]
    reorder = {**reorder, "pending": pending}
    state["tracker"] = {**head["tracker"], "tracks": tracks, "reorder": reorder}
    state["border"] = {**head["border"], "tracks": dict(sorted(memory.items()))}
    state["sensor_evidence"] = noted
    state["track_evidence"] = dict(sorted(evidence.items()))
    return state

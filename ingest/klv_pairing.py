"""Pair a stream's video frames with the KLV telemetry valid at their capture time (pure: no I/O).

A STANAG 4609 stream carries video and one or more KLV data streams. Each data stream is either
synchronous (its packets have a PTS on the video's timeline) or asynchronous (no PTS: the packet
is timed only by its MISB ST 0601 Precision Time Stamp, tag 2). :class:`KlvPairer` turns that into
one telemetry per frame:

- **Capture time.** Stream time (the video's PTS, in seconds) maps to UTC through an anchor: the
  first tag-2 packet of a synchronous stream (its tag 2 at its own PTS), else the first tag-2
  packet of an asynchronous one at the PTS of the first frame after it. Capture time is never the
  ingest clock; a frame matched exactly by a packet takes that packet's tag 2. A frame's PTS that runs backwards or leaps (a sender restarted) drops the anchor,
  and the next tag-2 packet sets a new one (counted as ``timeline_reset``); synchronous packets
  whose PTS runs backwards wait for that reset (the decoder may still hold the old segment's pictures).
- **Telemetry.** From the lowest-numbered data stream whose packets carry the sensor position
  (the others, e.g. timestamp-only streams, only feed the anchor). A packet within
  ``match_tolerance_s`` of the frame is used as is; a frame between two packets at most
  ``max_interpolation_gap_s`` apart gets their linear interpolation (angles the short way round);
  else the nearest packet is held if it is at most ``max_telemetry_age_s`` away; else the frame is
  refused as ``stale_telemetry``. Nothing is extrapolated.
- **Clock jumps.** A tag 2 more than ``max_clock_jump_s`` from where the anchor puts its packet is
  refused (``klv_clock_jump``). If ``reanchor_after`` such packets in a row agree with each other,
  the sender's clock really moved: the anchor follows it (logged by the caller).

A frame waits until a packet at or after its capture time has arrived, or stream time has moved
``max_interpolation_gap_s`` past it, or :meth:`finish` is called (end of stream).

    >>> from ibet.messages import Telemetry
    >>> pairer = KlvPairer()
    >>> pairer.klv(0, Telemetry(precision_ts_us=1_700_000_000_000_000, sensor_lat_deg=49.0), pts_s=1.0)
    >>> pairer.frame("f0", pts_s=1.0)
    >>> [(p.frame, p.capture_ts_ns, p.basis) for p in pairer.ready()]
    [('f0', 1700000000000000000, 'exact')]
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Literal

from ibet.messages import Telemetry

NS_PER_S = 1_000_000_000
#: Telemetry fields that are angles on a circle [0, 360): interpolated the short way round.
_WRAPPED = frozenset({"platform_heading_deg", "sensor_rel_azimuth_deg", "sensor_rel_roll_deg"})
_POSITION = ("sensor_lat_deg", "sensor_lon_deg")

Basis = Literal["exact", "interpolated", "held"]
RefusalReason = Literal["no_telemetry", "stale_telemetry"]


@dataclass(frozen=True)
class Paired:
    """A frame with its capture time and the telemetry valid then; ``basis`` says how it was found."""

    frame: Hashable
    capture_ts_ns: int
    telemetry: Telemetry
    basis: Basis
    klv_stream: int
    telemetry_age_s: float  # distance to the nearest packet used


@dataclass(frozen=True)
class Refused:
    """A frame without usable telemetry, and why (``no_telemetry``: none at all, or no capture time)."""

    frame: Hashable
    reason: RefusalReason
    capture_ts_ns: int | None
    detail: str


@dataclass(frozen=True)
class _Sample:
    utc_ns: int
    telemetry: Telemetry


@dataclass
class _Track:
    """One data stream's recent packets, ordered by their tag-2 time."""

    samples: list[_Sample] = field(default_factory=list)
    has_position: bool = False
    synchronous: bool | None = None
    last_pts_s: float | None = None

    def add(self, sample: _Sample, keep_ns: int) -> None:
        times = [s.utc_ns for s in self.samples]
        at = bisect.bisect_right(times, sample.utc_ns)
        if at and self.samples[at - 1].utc_ns == sample.utc_ns:
            self.samples[at - 1] = sample  # a repeated time stamp: the later packet wins
        else:
            self.samples.insert(at, sample)
        newest = self.samples[-1].utc_ns
        while len(self.samples) > 2 and self.samples[1].utc_ns < newest - keep_ns:
            self.samples.pop(0)


@dataclass
class PairingCounts:
    """What the pairer did, for metrics and the run's summary."""

    paired: dict[str, int] = field(default_factory=lambda: {"exact": 0, "interpolated": 0, "held": 0})
    refused: dict[str, int] = field(default_factory=lambda: {"no_telemetry": 0, "stale_telemetry": 0})
    klv_dropped: dict[str, int] = field(default_factory=lambda: {"klv_clock_jump": 0, "klv_no_time": 0,
                                                                 "klv_out_of_order": 0})
    timeline_resets: int = 0
    reanchors: int = 0


class KlvPairer:
    """Frames and KLV packets in stream order in; :class:`Paired` / :class:`Refused` frames out."""

    def __init__(self, *, match_tolerance_s: float = 0.002, max_interpolation_gap_s: float = 1.0,
                 max_telemetry_age_s: float = 0.5, max_clock_jump_s: float = 30.0, reanchor_after: int = 5,
                 max_pending_frames: int = 256, history_s: float = 30.0):
        self.match_tolerance_ns = round(match_tolerance_s * NS_PER_S)
        self.max_gap_ns = round(max_interpolation_gap_s * NS_PER_S)
        self.max_age_ns = round(max_telemetry_age_s * NS_PER_S)
        self.max_jump_ns = round(max_clock_jump_s * NS_PER_S)
        self.reanchor_after = reanchor_after
        self.max_pending = max_pending_frames
        self.history_ns = round(history_s * NS_PER_S)
        self.counts = PairingCounts()
        self._tracks: dict[int, _Track] = {}
        self._anchor: tuple[float, int] | None = None  # (stream time s, UTC ns)
        self._async_anchor_utc: int | None = None  # an async tag 2 waiting for the next frame's PTS
        self._pending: deque[tuple[Hashable, float]] = deque()  # frames waiting: (frame, pts_s)
        self._last_frame_pts: float | None = None
        self._stream_now_s: float | None = None
        self._jumped: list[int] = []  # offsets (tag 2 - expected) of consecutive refused packets
        self._next_segment: list[tuple[int, Telemetry, float]] = []  # packets whose PTS ran backwards
        self._out: list[Paired | Refused] = []

    # -- input ---------------------------------------------------------------------------------
    def klv(self, stream_index: int, telemetry: Telemetry, pts_s: float | None) -> str | None:
        """One decoded packet of data stream ``stream_index`` (``pts_s`` None: asynchronous).

        Returns None when kept, else the reason it was dropped (``klv_no_time``, ``klv_clock_jump``).
        """
        track = self._tracks.setdefault(stream_index, _Track())
        track.synchronous = pts_s is not None
        if pts_s is not None and track.last_pts_s is not None and pts_s < track.last_pts_s - 0.001:
            # PTS ran backwards: the next segment of a restarted sender. Its packets wait for the video's
            # own discontinuity (pictures of the old segment may still be in the decoder).
            if len(self._next_segment) >= self.max_pending:
                return self._drop("klv_out_of_order")
            self._next_segment.append((stream_index, telemetry, pts_s))
            return None
        if pts_s is not None:
            track.last_pts_s = pts_s
        utc_ns = telemetry.precision_ts_us * 1000 if telemetry.precision_ts_us is not None else None
        if utc_ns is None:
            if pts_s is None or self._anchor is None:
                return self._drop("klv_no_time")
            utc_ns = self._to_utc(pts_s)
        elif self._anchor is None:
            if pts_s is not None:
                self._anchor, self._async_anchor_utc = (pts_s, utc_ns), None
            elif self._async_anchor_utc is None:
                self._async_anchor_utc = utc_ns
        else:
            at_s = pts_s if pts_s is not None else self._stream_now_s
            if at_s is not None:
                offset_ns = utc_ns - self._to_utc(at_s)
                if abs(offset_ns) > self.max_jump_ns + (0 if pts_s is not None else self.max_gap_ns):
                    if not self._clock_moved(offset_ns):
                        return self._drop("klv_clock_jump")
                else:
                    self._jumped.clear()
        if any(getattr(telemetry, name) is not None for name in _POSITION):
            track.has_position = True
        track.add(_Sample(utc_ns, telemetry), self.history_ns)
        return None

    def frame(self, frame: Hashable, pts_s: float) -> None:
        """A decoded video frame at stream time ``pts_s`` (seconds); resolved later by :meth:`ready`."""
        if self._last_frame_pts is not None and not -0.001 <= pts_s - self._last_frame_pts <= self.max_jump_ns / NS_PER_S:
            self._reset_timeline()  # PTS ran backwards or leapt: a new segment (a sender restarted)
            waiting, self._next_segment = self._next_segment, []
            for stream_index, telemetry, packet_pts_s in waiting:
                self.klv(stream_index, telemetry, packet_pts_s)
        self._last_frame_pts = pts_s
        self._stream_now_s = pts_s if self._stream_now_s is None else max(self._stream_now_s, pts_s)
        if self._anchor is None and self._async_anchor_utc is not None:
            self._anchor, self._async_anchor_utc = (pts_s, self._async_anchor_utc), None
        self._pending.append((frame, pts_s))
        while len(self._pending) > self.max_pending:
            old, _ = self._pending.popleft()
            self._refuse(old, "no_telemetry", None, f"no telemetry within {self.max_pending} frames")

    def ready(self) -> list[Paired | Refused]:
        """Frames whose telemetry is settled, in arrival order."""
        while self._pending:
            frame, pts_s = self._pending[0]
            if not self._settle(frame, pts_s, final=False):
                break
            self._pending.popleft()
        out, self._out = self._out, []
        return out

    def finish(self) -> list[Paired | Refused]:
        """End of stream: every waiting frame is settled with what has arrived."""
        while self._pending:
            frame, pts_s = self._pending.popleft()
            self._settle(frame, pts_s, final=True)
        out, self._out = self._out, []
        return out

    def restart(self) -> list[Paired | Refused]:
        """The source was reopened: settle what waits (returned), then forget the timeline."""
        settled = self.finish()
        self._reset_timeline(count=False)
        self._next_segment.clear()
        return settled + self.finish()

    # -- inside --------------------------------------------------------------------------------
    def _to_utc(self, pts_s: float) -> int:
        assert self._anchor is not None
        anchor_pts, anchor_utc = self._anchor
        return anchor_utc + round((pts_s - anchor_pts) * NS_PER_S)

    def _drop(self, reason: str) -> str:
        self.counts.klv_dropped[reason] = self.counts.klv_dropped.get(reason, 0) + 1
        return reason

    def _clock_moved(self, offset_ns: int) -> bool:
        """A jumped packet: after ``reanchor_after`` in a row that agree (within 1 s), follow the clock."""
        if self._jumped and abs(offset_ns - self._jumped[-1]) > NS_PER_S:
            self._jumped.clear()
        self._jumped.append(offset_ns)
        if len(self._jumped) < self.reanchor_after:
            return False
        assert self._anchor is not None
        self._anchor = (self._anchor[0], self._anchor[1] + offset_ns)
        for track in self._tracks.values():
            track.samples.clear()
        self._jumped.clear()
        self.counts.reanchors += 1
        return True

    def _reset_timeline(self, count: bool = True) -> None:
        settled = self.finish()
        self._out.extend(settled)
        self._anchor, self._async_anchor_utc = None, None
        self._stream_now_s, self._last_frame_pts = None, None
        for track in self._tracks.values():
            track.samples.clear()
            track.last_pts_s = None
        self._jumped.clear()
        if count:
            self.counts.timeline_resets += 1

    def _primary(self) -> tuple[int, _Track] | None:
        with_position = [(i, t) for i, t in sorted(self._tracks.items()) if t.has_position and t.samples]
        return with_position[0] if with_position else None

    def _settle(self, frame: Hashable, pts_s: float, final: bool) -> bool:
        """Resolve one frame if its telemetry can no longer improve (or ``final``); False: wait."""
        if self._anchor is None:
            if final:
                self._refuse(frame, "no_telemetry", None, "no KLV packet with a precision time stamp (tag 2)")
                return True
            return False
        capture_ns = self._to_utc(pts_s)
        primary = self._primary()
        waited_out = self._stream_now_s is not None and (self._stream_now_s - pts_s) * NS_PER_S >= self.max_gap_ns
        if primary is None:
            if final or waited_out:
                self._refuse(frame, "no_telemetry", capture_ns, "no KLV packet with the sensor position (tags 13/14)")
                return True
            return False
        index, track = primary
        times = [s.utc_ns for s in track.samples]
        at = bisect.bisect_left(times, capture_ns - self.match_tolerance_ns)
        after = track.samples[at] if at < len(times) else None
        if after is None and not (final or waited_out):
            return False
        before = track.samples[at - 1] if at > 0 else None
        if after is not None and abs(after.utc_ns - capture_ns) <= self.match_tolerance_ns:
            # the packet's own time stamp: the sensor's clock, not the stream's rounding of it
            self._pair(frame, after.utc_ns, after.telemetry, "exact", index, abs(after.utc_ns - capture_ns))
        elif before is not None and after is not None and after.utc_ns - before.utc_ns <= self.max_gap_ns:
            self._pair(frame, capture_ns, _interpolate(before, after, capture_ns), "interpolated", index,
                       min(capture_ns - before.utc_ns, after.utc_ns - capture_ns))
        else:
            nearest = min((s for s in (before, after) if s is not None), key=lambda s: abs(s.utc_ns - capture_ns))
            age_ns = abs(nearest.utc_ns - capture_ns)
            if age_ns <= self.max_age_ns:
                self._pair(frame, capture_ns, nearest.telemetry, "held", index, age_ns)
            else:
                self._refuse(frame, "stale_telemetry", capture_ns,
                             f"the nearest KLV packet is {age_ns / NS_PER_S:.2f} s away "
                             f"(at most {self.max_age_ns / NS_PER_S:g} s)")
        return True

    def _pair(self, frame: Hashable, capture_ns: int, telemetry: Telemetry, basis: Basis, stream: int,
              age_ns: int) -> None:
        telemetry = telemetry.model_copy(update={"precision_ts_us": capture_ns // 1000})
        self.counts.paired[basis] += 1
        self._out.append(Paired(frame, capture_ns, telemetry, basis, stream, age_ns / NS_PER_S))

    def _refuse(self, frame: Hashable, reason: RefusalReason, capture_ns: int | None, detail: str) -> None:
        self.counts.refused[reason] += 1
        self._out.append(Refused(frame, reason, capture_ns, detail))


def _interpolate(before: _Sample, after: _Sample, at_ns: int) -> Telemetry:
    """Linear interpolation of the two packets' common fields at ``at_ns``; others from the nearer one."""
    u = (at_ns - before.utc_ns) / (after.utc_ns - before.utc_ns)
    nearer = before.telemetry if u < 0.5 else after.telemetry
    values = nearer.model_dump(exclude_none=True)
    a, b = before.telemetry, after.telemetry
    for name in type(a).model_fields:
        va, vb = getattr(a, name), getattr(b, name)
        if name == "precision_ts_us" or not isinstance(va, float) or not isinstance(vb, float):
            continue
        if name in _WRAPPED:
            delta = (vb - va + 180.0) % 360.0 - 180.0
            values[name] = (va + u * delta) % 360.0
        else:
            values[name] = va + u * (vb - va)
    return Telemetry(**values)

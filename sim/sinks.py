"""Where a simulated run goes: a folder (frames, metadata, KLV, truth) or the frames topic."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Protocol

from ibet import topics
from ibet.bus.base import OutRecord, Producer
from sim.run import SimFrame, Simulation


class FrameSink(Protocol):
    def write(self, frame: SimFrame) -> None: ...

    def close(self, sim: Simulation) -> None: ...


class DirSink:
    """``OUT/frames/<sensor>/<seq>.jpg`` (+ ``.json`` metadata and truth boxes, ``.klv``) and
    ``OUT/truth/{targets.csv,events.json,run.json}``."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.count = 0

    def write(self, frame: SimFrame) -> None:
        folder = self.out_dir / "frames" / frame.meta.sensor_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{frame.meta.sequence:06d}"
        stem.with_suffix(".jpg").write_bytes(frame.jpeg)
        if frame.klv is not None:
            stem.with_suffix(".klv").write_bytes(frame.klv)
        doc = {
            "meta": json.loads(frame.meta.to_bytes()),
            "true_time_s": frame.true_time_s,
            "truth_boxes": [{"target_id": b.target_id, "kind": b.kind, "xyxy_px": list(b.xyxy_px),
                             "visible_fraction": b.visible_fraction} for b in frame.truth_boxes],
        }
        stem.with_suffix(".json").write_text(json.dumps(doc))
        self.count += 1

    def close(self, sim: Simulation) -> None:
        write_truth(sim, self.out_dir / "truth")


TRACK_COLUMNS = ["time_s", "target_id", "kind", "east_m", "north_m", "lat_deg", "lon_deg", "heading_deg"]


def write_truth(sim: Simulation, folder: Path) -> None:
    """The exact truth of a run: target states per step, border events, and the run's set-up."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = sim.track_table()
    with open(folder / "targets.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=TRACK_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "events.json").write_text(json.dumps([e.as_dict() for e in sim.events], indent=1))
    frame = sim.world.frame
    (folder / "run.json").write_text(json.dumps({
        "scenario": sim.scenario.name, "seed": sim.seed, "start_ns": sim.start_ns,
        "origin_lat_deg": frame.origin_lat_deg, "origin_lon_deg": frame.origin_lon_deg,
        "dropped_frames": sim.dropped, "expected": sim.scenario.expected.model_dump(),
    }, indent=1))


class BusSink:
    """Each frame as one record on ``ibet.frames.v1``: key = sensor id, JPEG value, FrameMeta headers.

    With ``realtime``, frames are sent at the pace they were captured.
    """

    def __init__(self, producer: Producer, realtime: bool = False, truth_dir: Path | None = None):
        self.producer, self.realtime, self.truth_dir = producer, realtime, truth_dir
        self.count = 0
        self._wall_start: float | None = None

    def write(self, frame: SimFrame) -> None:
        if self.realtime:
            if self._wall_start is None:
                self._wall_start = time.monotonic() - frame.true_time_s
            delay = self._wall_start + frame.true_time_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.producer.send(OutRecord(topics.FRAMES, frame.meta.sensor_id.encode(), frame.jpeg,
                                     tuple(frame.meta.to_headers())))
        self.count += 1
        if self.realtime or self.count % 50 == 0:
            self.producer.flush(60)

    def close(self, sim: Simulation) -> None:
        self.producer.flush(60)
        if self.truth_dir is not None:
            write_truth(sim, self.truth_dir)


class HttpSink:
    """Drone frames pushed to the ingest push API as a drone would (multipart, bearer token, KLV).

    Fixed cameras do not push (ingest pulls them): their frames are counted and skipped.
    """

    def __init__(self, base_url: str, tokens: dict[str, str], realtime: bool = False, timeout_s: float = 30.0,
                 at_now: bool = True):
        """``at_now``: shift capture times so the run starts now (the push API refuses frames far from
        its clock; a scenario is dated on its own day)."""
        import httpx

        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.tokens, self.realtime, self.at_now = tokens, realtime, at_now
        self.count, self.skipped, self.rejected = 0, 0, []
        self._wall_start: float | None = None
        self._offset_ns: int | None = None

    def write(self, frame: SimFrame) -> None:
        sensor = frame.meta.sensor_id
        if frame.meta.telemetry is None:  # a fixed camera
            self.skipped += 1
            return
        if self.realtime:
            if self._wall_start is None:
                self._wall_start = time.monotonic() - frame.true_time_s
            delay = self._wall_start + frame.true_time_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        files = {"frame": ("frame.jpg", frame.jpeg, "image/jpeg")}
        if frame.klv is not None:
            files["klv"] = ("telemetry.klv", frame.klv, "application/octet-stream")
        if self._offset_ns is None:
            self._offset_ns = time.time_ns() - frame.meta.capture_ts_ns if self.at_now else 0
        capture_ts_ns = frame.meta.capture_ts_ns + self._offset_ns
        data = {"device_frame_id": frame.meta.device_frame_id or "", "capture_ts_ns": str(capture_ts_ns)}
        if frame.klv is None:
            data["telemetry"] = frame.meta.telemetry.model_dump_json(exclude_none=True)
        answer = self.client.post(f"/v1/sensors/{sensor}/frames", files=files, data=data,
                                  headers={"Authorization": f"Bearer {self.tokens.get(sensor, '')}"})
        if answer.status_code == 202:
            self.count += 1
        else:
            self.rejected.append((sensor, frame.meta.sequence, answer.status_code, answer.text[:200]))

    def close(self, sim: Simulation) -> None:
        self.client.close()

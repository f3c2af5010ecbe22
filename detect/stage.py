"""The detect stage: frames in, one DetectionBatch per frame out, per-sensor trackers saved.

Consumes ``ibet.frames.v1`` (keyed by sensor: every frame of a sensor reaches the same worker, in
order), produces ``ibet.detections.v1`` keyed by the sensor's sector, and saves each sensor's
tracker on the compacted ``ibet.detect-state.v1`` with the committed offsets (see the runner).

One consumed batch is handled in four steps:

1. decode every record; a bad one (headers, not a JPEG, cut short, wrong size, unknown sensor)
   becomes its own dead letter and the others go on;
2. motion gating for the sensor kinds it is on for: a frame where nothing moved is not inferred;
3. one model call per ``batch_size`` images (whole frames, or tiles of frames that are tiled),
   frames of every sensor together;
4. per frame in consumed order: filters, the sensor's tracker, score smoothing, evidence for new
   tracks, and the DetectionBatch. A skipped frame publishes the last inference's detections
   again: nothing moved, so they still hold. A frame where the model found nothing publishes an
   empty DetectionBatch, which the fuse stage takes as "seen, nothing there".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from detect import metrics
from detect.evidence import EvidenceStore, store_new_track_evidence
from detect.exceptions import DetectError
from detect.filters import class_limits
from detect.frames import DecodedFrame, decode_frame
from detect.gating import MotionGate
from detect.sensor_state import FrameDetections, SensorState
from detect.tiling import cut_tiles, tile_windows, tiled_detections
from ibet import topics
from ibet.bus.base import OutRecord, Record
from ibet.detect_config import DetectSettings
from ibet.exceptions import IbetError
from ibet.messages import Detection, DetectionArrays, DetectionBatch
from ibet.registry import Registry
from ibet.stage import Outcome

log = logging.getLogger(__name__)

# Per-detection evidence references need the optional ``Detection.evidence_ref`` field; until the
# wire contract has it, the frame's reference on the batch is the evidence.
_DETECTION_EVIDENCE = "evidence_ref" in Detection.model_fields


class Detector(Protocol):
    """What the stage needs of a model (:class:`detect.model.UltralyticsDetector` in production)."""

    class_names: tuple[str, ...]
    last_call_s: float

    def predict(self, images: Sequence[np.ndarray]) -> list[DetectionArrays]: ...


class DetectStage:
    """Stateful stage: one :class:`SensorState` per sensor this worker owns."""

    name = "detect"
    input_topics = (topics.FRAMES,)
    state_topic = topics.DETECT_STATE

    def __init__(self, registry: Registry, settings: DetectSettings, detector: Detector, model_name: str,
                 model_version: str, evidence: EvidenceStore | None = None, *, name: str = "detect",
                 frames_topic: str = topics.FRAMES, detections_topic: str = topics.DETECTIONS,
                 state_topic: str = topics.DETECT_STATE):
        # Topic and group names are the pipeline's; tests and benchmarks give their own.
        self.name, self.input_topics, self.state_topic = name, (frames_topic,), state_topic
        self.detections_topic = detections_topic
        self.registry, self.settings, self.detector = registry, settings, detector
        self.model_name, self.model_version, self.evidence = model_name, model_version, evidence
        self.limits = class_limits(settings, detector.class_names)
        self.gate = MotionGate(settings.motion)
        self.sensors: dict[str, SensorState] = {}
        self._changed: set[str] = set()

    # -- the batch ---------------------------------------------------------------------------
    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        frames: list[DecodedFrame | Exception] = []
        for record in records:
            try:
                frames.append(decode_frame(record, self.registry))
            except IbetError as exc:  # bad data: dead-lettered by the runner
                frames.append(exc)
        to_infer = [i for i, f in enumerate(frames) if isinstance(f, DecodedFrame) and self._should_infer(f)]
        raw = dict(zip(to_infer, self._infer([frames[i] for i in to_infer]), strict=True))
        outcomes = []
        for i, frame in enumerate(frames):
            if isinstance(frame, Exception):
                outcomes.append(Outcome(error=frame))
                continue
            try:
                outcomes.append(Outcome((self._publish(frame, raw.get(i)),)))
            except DetectError as exc:
                outcomes.append(Outcome(error=exc))
        return outcomes

    def _should_infer(self, frame: DecodedFrame) -> bool:
        meta = frame.meta
        infer = (frame.sensor.kind not in self.settings.motion.enabled_for
                 or self.gate.should_infer(meta.sensor_id, frame.image, meta.capture_ts_ns))
        (metrics.FRAMES_INFERRED if infer else metrics.FRAMES_SKIPPED).labels(meta.sensor_id).inc()
        return infer

    def _infer(self, frames: Sequence[DecodedFrame]) -> list[DetectionArrays]:
        """Each frame's raw detections: whole frames and tiles, ``batch_size`` images per model call."""
        tiling = self.settings.tiling
        images: list[np.ndarray] = []
        owners: list[tuple[int, np.ndarray | None]] = []  # (frame index, tile windows or None) per frame
        for k, frame in enumerate(frames):
            h, w = frame.image.shape[:2]
            if frame.sensor.kind in tiling.enabled_for and max(h, w) > tiling.tile_px:
                windows = tile_windows(w, h, tiling.tile_px, tiling.overlap_px)
                images.extend(cut_tiles(frame.image, windows, tiling.upscale))
                owners.append((k, windows))
            else:
                images.append(frame.image)
                owners.append((k, None))
        results = self._run_model(images)
        out, cursor = [], 0
        for _k, windows in owners:
            if windows is None:
                out.append(results[cursor])
                cursor += 1
            else:
                out.append(tiled_detections(results[cursor:cursor + len(windows)], windows, tiling))
                cursor += len(windows)
        return out

    def _run_model(self, images: Sequence[np.ndarray]) -> list[DetectionArrays]:
        """One model call per ``batch_size`` images of one size (the order is kept)."""
        results: list[DetectionArrays | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        size = self.settings.batch_size
        for indices in by_shape.values():
            for start in range(0, len(indices), size):
                chunk = indices[start:start + size]
                for i, dets in zip(chunk, self.detector.predict([images[i] for i in chunk]), strict=True):
                    results[i] = dets
                metrics.INFERENCE_SECONDS.labels(self.model_name).observe(self.detector.last_call_s)
                metrics.BATCH_IMAGES.labels(self.model_name).observe(len(chunk))
        return results  # type: ignore[return-value]

    # -- one frame's output ------------------------------------------------------------------
    def _publish(self, frame: DecodedFrame, raw: DetectionArrays | None) -> OutRecord:
        meta = frame.meta
        state = self.sensors.get(meta.sensor_id)
        if state is None:
            state = self.sensors[meta.sensor_id] = SensorState.new(self.settings.tracker)
        result = state.reuse_last(meta.sequence) if raw is None else \
            state.after_inference(raw, self.limits, meta.sequence, meta.capture_ts_ns / 1e9,
                                  self.settings.evidence.improve_by, self.settings.evidence.max_crops_per_track)
        self._changed.add(meta.sensor_id)
        frame_ref, crops = self._evidence(frame, result)
        batch = DetectionBatch(
            sensor_id=meta.sensor_id, sector_id=frame.sensor.sector_id, frame_sequence=meta.sequence,
            capture_ts_ns=meta.capture_ts_ns, image_width_px=meta.width_px, image_height_px=meta.height_px,
            model_name=self.model_name, model_version=self.model_version,
            detections=self._detections(result.detections, meta.width_px, meta.height_px, crops),
            telemetry=meta.telemetry, evidence_ref=frame_ref,
        )
        for class_id in result.detections.class_id:
            metrics.DETECTIONS.labels(self.detector.class_names[class_id]).inc()
        return OutRecord(self.detections_topic, frame.sensor.sector_id.encode(), batch.to_bytes())

    def _evidence(self, frame: DecodedFrame, result: FrameDetections) -> tuple[str | None, dict[int, str]]:
        if self.evidence is None or not self.settings.evidence.enabled or not len(result.evidence_indices):
            return None, {}
        dets, new = result.detections, result.evidence_indices
        meta = frame.meta
        metrics.EVIDENCE_STORED.labels(meta.sensor_id).inc(len(new))
        return store_new_track_evidence(self.evidence, self.settings.evidence, frame.image, meta.sensor_id,
                                        meta.capture_ts_ns, meta.sequence, dets.xyxy[new], dets.tracker_id[new])

    def _detections(self, dets: DetectionArrays, width_px: int, height_px: int, crops: dict[int, str]
                    ) -> tuple[Detection, ...]:
        xyxy = np.clip(dets.xyxy, 0, [width_px, height_px, width_px, height_px])
        out = []
        for box, score, class_id, track in zip(xyxy, dets.confidence, dets.class_id, dets.tracker_id, strict=True):
            extra = {"evidence_ref": crops[int(track)]} if _DETECTION_EVIDENCE and int(track) in crops else {}
            out.append(Detection(box_xyxy_px=tuple(float(v) for v in box), class_id=int(class_id),
                                 class_name=self.detector.class_names[class_id], score=float(score),
                                 sensor_track_id=int(track) if track >= 0 else None, **extra))
        return tuple(out)

    # -- state saved with the offsets --------------------------------------------------------
    def snapshot(self) -> list[OutRecord]:
        changed, self._changed = sorted(self._changed), set()
        return [OutRecord(self.state_topic, s.encode(), json.dumps(self.sensors[s].to_state()).encode())
                for s in changed if s in self.sensors]

    def restore(self, records: Sequence[Record]) -> None:
        latest = {r.key.decode(): r.value for r in records if r.key is not None}
        for sensor_id, value in latest.items():
            self.gate.forget(sensor_id)  # the sensor's next frame goes to the model
            try:
                self.sensors[sensor_id] = SensorState.from_state(json.loads(value), self.settings.tracker)
            except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
                log.warning("detect: saved state of sensor %s is unusable (%s); its tracks start afresh", sensor_id, exc)
                self.sensors.pop(sensor_id, None)

    def forget(self, keys: set[bytes]) -> None:
        for key in keys:
            self.sensors.pop(key.decode(), None)
            self.gate.forget(key.decode())

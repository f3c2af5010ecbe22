"""A stand-in detector for evaluation: the simulator's exact boxes, degraded like a real one.

Misses, false detections, box jitter and no ground-truth ids, from a seeded generator, so the
fusion stage can be scored before (and independently of) the real detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ibet.messages import Detection, DetectionBatch

CLASS_IDS = {"person": 0, "vehicle": 1, "boat": 2}


@dataclass(frozen=True)
class DetectorModel:
    """How the stand-in detector errs."""

    miss_rate: float = 0.1
    false_per_frame: float = 0.05
    jitter_px: float = 1.5
    min_visible: float = 0.5
    score_mean: float = 0.8


def degrade(boxes, width_px: int, height_px: int, model: DetectorModel, rng: np.random.Generator
            ) -> tuple[list[Detection], list[int | None]]:
    """Detections from truth boxes (``sim.render.TruthBox``), and for scoring only, the true
    target id behind each detection (None for a false detection)."""
    detections: list[Detection] = []
    truth_ids: list[int | None] = []
    for box in boxes:
        if box.visible_fraction < model.min_visible or rng.random() < model.miss_rate:
            continue
        x1, y1, x2, y2 = np.asarray(box.xyxy_px) + rng.normal(0.0, model.jitter_px, 4)
        x1, x2 = sorted((float(np.clip(x1, 0, width_px)), float(np.clip(x2, 0, width_px))))
        y1, y2 = sorted((float(np.clip(y1, 0, height_px)), float(np.clip(y2, 0, height_px))))
        score = float(np.clip(rng.normal(model.score_mean, 0.1), 0.3, 1.0))
        detections.append(Detection(box_xyxy_px=(x1, y1, x2, y2), class_id=CLASS_IDS[box.kind], class_name=box.kind,
                                    score=score))
        truth_ids.append(box.target_id)
    for _ in range(rng.poisson(model.false_per_frame)):
        w, h = rng.uniform(8, 40, 2)
        x, y = rng.uniform(0, width_px - w), rng.uniform(0, height_px - h)
        kind = str(rng.choice(list(CLASS_IDS)))
        detections.append(Detection(box_xyxy_px=(x, y, x + w, y + h), class_id=CLASS_IDS[kind], class_name=kind,
                                    score=float(rng.uniform(0.3, 0.6))))
        truth_ids.append(None)
    return detections, truth_ids


def detection_batch(frame, sector_id: str, detections: list[Detection]) -> DetectionBatch:
    """The DetectionBatch the detect stage would emit for ``frame`` (a ``sim.run.SimFrame``)."""
    meta = frame.meta
    return DetectionBatch(sensor_id=meta.sensor_id, sector_id=sector_id, frame_sequence=meta.sequence,
                          capture_ts_ns=meta.capture_ts_ns, image_width_px=meta.width_px,
                          image_height_px=meta.height_px, model_name="sim-truth-degraded", model_version="1",
                          detections=tuple(detections), telemetry=meta.telemetry)

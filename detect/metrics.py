"""Prometheus metrics of the detect stage (the runner adds the per-stage record counts)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INFERENCE_SECONDS = Histogram(
    "ibet_detect_inference_seconds", "Wall time of one model call (a batch of frames or tiles)", ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
BATCH_IMAGES = Histogram(
    "ibet_detect_batch_images", "Images (frames or tiles) per model call", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
FRAMES_INFERRED = Counter("ibet_detect_frames_inferred", "Frames that went to the model", ["sensor"])
FRAMES_SKIPPED = Counter("ibet_detect_frames_skipped", "Frames skipped by motion gating (nothing moved)", ["sensor"])
DETECTIONS = Counter("ibet_detect_detections", "Detections published, by class", ["class_name"])
EVIDENCE_STORED = Counter("ibet_detect_evidence_stored", "New per-sensor tracks whose evidence was stored", ["sensor"])

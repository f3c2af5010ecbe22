"""Detect: Ultralytics models on ``ibet.frames.v1``, one DetectionBatch per frame on ``ibet.detections.v1``.

``build_stage(config, registry)`` gives the stage the runner runs (``ibet run detect``): the model
named by ``config.detect`` from ``models/registry.yaml``, its file verified against the registered
SHA-256 (a missing or tampered file stops start-up naming the file and the expected hash).
Ultralytics is imported only inside this package and ``models/`` (see ``detect.ultralytics_env``).
"""

from __future__ import annotations


def build_stage(config, registry):
    """The detect stage with the configured model, verified and run once on a blank frame."""
    from detect.build import build_detect_stage

    return build_detect_stage(config.detect, registry)

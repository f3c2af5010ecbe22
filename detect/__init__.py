"""Detect: Ultralytics models on ``ibet.frames.v1``, one DetectionBatch per frame on ``ibet.detections.v1``.

Not built yet (issue #5). When it is, this package exposes ``build_stage(config, registry)``.
"""

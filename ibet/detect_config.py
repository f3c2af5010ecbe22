"""The ``detect`` section of the configuration: model, batching, motion gating, tiling, tracking,
per-class filters and evidence. One pydantic model per concern, unknown keys rejected.

``ibet.config.IbetConfig`` holds it as ``detect: DetectSettings = DetectSettings()``. It lives in the
kernel beside the other sections, so the kernel imports no stage; the detect stage reads it from here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SensorKind = Literal["drone", "fixed_camera"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassFilter(_Section):
    """What a detection of one class must be to be published."""

    min_score: float = Field(default=0.25, ge=0, le=1, description="published only at or above this (smoothed) score")
    min_area_px: float = Field(default=16.0, ge=0, description="smaller boxes (px², in the frame) are dropped")
    max_area_px: float | None = Field(default=None, gt=0, description="larger boxes are dropped; None: no limit")
    smoothing: float = Field(default=0.5, gt=0, le=1,
                             description="weight of the newest score in the track's running score (1: no smoothing)")


class MotionSettings(_Section):
    """Frame differencing per sensor (as Frigate does): inference is skipped while nothing moves."""

    enabled_for: tuple[SensorKind, ...] = Field(default=("fixed_camera",),
                                                description="sensor kinds gated; drones move, so they are not by default")
    analysis_width_px: int = Field(default=640, ge=32, description="frames are compared at this width (grey, blurred)")
    blur_px: int = Field(default=5, ge=1, description="Gaussian blur kernel (odd) applied before differencing")
    pixel_threshold: int = Field(default=20, ge=1, le=255, description="a pixel changed when its grey level moved this much")
    min_changed_px: int = Field(default=8, ge=1, description="motion when at least this many pixels changed (analysis scale)")
    max_skip_s: float = Field(default=10.0, gt=0, description="infer at least this often (event time) even without motion")

    @field_validator("blur_px")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd, got {value}")
        return value


class TilingSettings(_Section):
    """Sliced inference for small objects in large frames (high-altitude drones)."""

    enabled_for: tuple[SensorKind, ...] = Field(default=(), description="sensor kinds whose frames are tiled")
    tile_px: int = Field(default=640, ge=64, description="square tile side in frame pixels")
    overlap_px: int = Field(default=96, ge=0, description="overlap of neighbouring tiles, frame pixels")
    upscale: float = Field(default=1.0, ge=1.0, le=4.0, description="tiles are enlarged this much before inference")
    merge_ios: float = Field(default=0.6, gt=0, le=1,
                             description="boxes of one class overlapping by this intersection-over-smaller are merged")

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> TilingSettings:
        if self.overlap_px >= self.tile_px:
            raise ValueError(f"overlap_px ({self.overlap_px}) must be smaller than tile_px ({self.tile_px})")
        return self


class TrackerSettings(_Section):
    """The per-sensor image tracker (``detect/tracking.py``): a Kalman filter per track in pixels,
    stepped by capture times, associating by distance from the prediction. Sizes in box heights."""

    track_high_thresh: float = Field(default=0.25, ge=0, le=1, description="first association: detections at or above")
    track_low_thresh: float = Field(default=0.1, ge=0, le=1, description="second association (confirmed tracks only): above")
    new_track_thresh: float = Field(default=0.25, ge=0, le=1, description="an unmatched detection starts a track from")
    min_hits: int = Field(default=2, ge=1, description="a track is confirmed (its id reported) at this many detections")
    max_lost_s: float = Field(default=3.0, gt=0, description="a confirmed track unseen this long is dropped")
    gate_probability: float = Field(default=0.999, gt=0, lt=1, description="association gate: this share of the "
                                    "predicted centre's 2-D error distribution")
    measurement_noise_heights: float = Field(default=0.05, gt=0, description="a detection's centre error, 1 sigma")
    velocity_prior_heights_per_s: float = Field(default=1.5, gt=0, description="a new track's speed uncertainty, 1 sigma")
    accel_heights_per_s2: float = Field(default=0.5, gt=0, description="process noise: white acceleration, 1 sigma")
    iou_weight: float = Field(default=4.0, ge=0, description="weight of (1 - IoU with the prediction) in the cost")
    max_size_ratio: float = Field(default=2.0, gt=1, description="a detection this many times larger or smaller than "
                                  "the track (width and height each) is another object")
    size_smoothing: float = Field(default=0.5, gt=0, le=1, description="share of a new box's size taken into the track's")
    nominal_fps: float = Field(default=2.0, gt=0, description="frame rate assumed when a frame carries no capture time")

    @model_validator(mode="before")
    @classmethod
    def _drop_bytetrack_keys(cls, data: Any) -> Any:
        """The settings of the earlier ByteTrack tracker are ignored with a warning, not refused."""
        if isinstance(data, dict):
            old = sorted(k for k in _BYTETRACK_KEYS if k in data)
            if old:
                logging.getLogger(__name__).warning(
                    "detect.tracker: %s belonged to the earlier ByteTrack tracker and are ignored (see "
                    "detect/tracking.py for the settings now)", ", ".join(old))
                data = {k: v for k, v in data.items() if k not in _BYTETRACK_KEYS}
        return data


_BYTETRACK_KEYS = ("track_buffer", "match_thresh", "fuse_score")


class EvidenceSettings(_Section):
    """A JPEG crop and a downscaled full frame for each per-sensor track when it is confirmed, and
    again when its view improves (bounded per track)."""

    enabled: bool = True
    directory: Path = Field(default=Path("var/evidence"), description="filesystem evidence store root")
    frame_max_px: int = Field(default=640, ge=64, description="the stored full frame's longer side")
    crop_padding: float = Field(default=0.25, ge=0, le=2, description="crop margin around the box, share of its size")
    jpeg_quality: int = Field(default=85, ge=30, le=100)
    improve_by: float = Field(default=0.15, gt=0, le=1, description="a track's view is cut again when its score "
                              "beats the best cut so far by this much")
    max_crops_per_track: int = Field(default=3, ge=1, description="crops cut per track at most")


class DetectSettings(_Section):
    """The detect stage: which model, how frames are batched, gated, tiled, tracked and filtered."""

    model: str = Field(default="ibet-demo-det", description="model name in the model registry")
    model_version: str | None = Field(default=None, description="its version; None: the one registered last")
    model_registry_path: Path | None = Field(default=None, description="model registry YAML; None: models/registry.yaml")
    device: str = Field(default="cpu", description="'cpu', 'cuda:0', ... (as Ultralytics names devices)")
    torch_threads: int | None = Field(default=None, gt=0, description="CPU threads for PyTorch inference; None: every "
                                       "core (an OpenVINO model uses its own thread pool)")
    batch_size: int = Field(default=4, gt=0, description="frames (or tiles) per model call (CPU: 4 measured best)")
    max_wait_s: float = Field(default=0.05, ge=0,
                              description="longest wait to fill a batch once a frame is in hand (runner batch fill)")
    conf_floor: float = Field(default=0.1, ge=0, le=1, description="model outputs below this score are discarded")
    nms_iou: float = Field(default=0.7, gt=0, le=1, description="the model's non-maximum suppression IoU")
    filters: dict[str, ClassFilter] = Field(default_factory=dict, description="per class name; others use default_filter")
    default_filter: ClassFilter = ClassFilter()
    motion: MotionSettings = MotionSettings()
    tiling: TilingSettings = TilingSettings()
    tracker: TrackerSettings = TrackerSettings()
    evidence: EvidenceSettings = EvidenceSettings()

    def filter_for(self, class_name: str) -> ClassFilter:
        """The filter of ``class_name``: its own, else the default."""
        return self.filters.get(class_name, self.default_filter)

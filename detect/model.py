"""The Ultralytics adapter: a verified registry entry in, plain arrays out.

:class:`UltralyticsDetector` loads any Ultralytics-loadable model (``.pt``, ONNX, OpenVINO folder)
and runs one model call per list of same-sized images; each image's result becomes a
:class:`~ibet.messages.DetectionArrays` (boxes xyxy in the image's pixels, score, class id), so
nothing past this module knows Ultralytics exists.

Input size: a model registered with ``input_size: native`` runs each frame at its own size, its
sides rounded up to multiples of 32 (a 1280x720 frame runs at 1280x736, letterboxed), because the
demo detector learnt objects at the frames' native scale; a number letterboxes the longer side
to that many pixels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from detect.filters import empty_arrays
from detect.ultralytics_env import ultralytics_module, use_threads
from ibet.messages import DetectionArrays
from models.registry import ModelEntry, ModelError, verify

STRIDE = 32


def inference_shape(height_px: int, width_px: int, input_size: str | int) -> tuple[int, int]:
    """(h, w) the model runs a ``height_px`` x ``width_px`` image at, multiples of 32.

    >>> inference_shape(720, 1280, "native")
    (736, 1280)
    >>> inference_shape(720, 1280, 640)
    (384, 640)
    """
    if input_size == "native":
        scale = 1.0
    else:
        scale = int(input_size) / max(height_px, width_px)
    return (math.ceil(height_px * scale / STRIDE) * STRIDE, math.ceil(width_px * scale / STRIDE) * STRIDE)


class UltralyticsDetector:
    """One verified model; :meth:`predict` runs a batch of images in one call."""

    def __init__(self, entry: ModelEntry, device: str = "cpu", conf: float = 0.1, iou: float = 0.7,
                 threads: int | None = None):
        if entry.format == "openvino" and (device.startswith(("cuda", "mps")) or device.isdigit()):
            raise ModelError(f"model {entry.ref} is an OpenVINO export, which runs on the CPU (or an Intel device, "
                             f"'intel:gpu'), not on '{device}'; for a CUDA GPU set detect.model_version to the "
                             "PyTorch version of the model (ibet models list)")
        path = verify(entry)  # a missing or tampered file stops here, naming the file and hashes
        ultralytics = ultralytics_module()
        try:
            self._model = ultralytics.YOLO(str(path), task=entry.task)
        except Exception as exc:  # whatever the loader raises, the message names the file
            raise ModelError(f"model {entry.ref}: Ultralytics cannot load {path}: {exc}") from exc
        names = self._model.names
        model_classes = tuple(names[i] for i in sorted(names))
        if model_classes != entry.classes:
            raise ModelError(f"model {entry.ref}: {path} has classes {list(model_classes)}, "
                             f"the registry says {list(entry.classes)}")
        self.entry, self.device, self.conf, self.iou, self.threads = entry, device, conf, iou, threads
        self.class_names = entry.classes
        self.last_call_s = 0.0

    def predict(self, images: Sequence[np.ndarray]) -> list[DetectionArrays]:
        """Detections of each BGR image (H, W, 3) uint8, in order; images of one size share a call."""
        out: list[DetectionArrays | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        self.last_call_s = 0.0
        for shape, indices in by_shape.items():
            use_threads(self.threads)  # OpenMP's thread count is per calling thread: set it in this one
            start = time.perf_counter()
            results = self._model.predict([images[i] for i in indices], imgsz=inference_shape(shape[0], shape[1],
                                          self.entry.input_size), conf=self.conf, iou=self.iou, device=self.device,
                                          verbose=False, half=False, batch=len(indices))
            self.last_call_s += time.perf_counter() - start
            for i, result in zip(indices, results, strict=True):
                out[i] = to_arrays(result)
        use_threads(self.threads)  # Ultralytics' device selection (first call) resets torch's thread count
        return out  # type: ignore[return-value]

    def warm_up(self, height_px: int = 720, width_px: int = 1280) -> None:
        """One call on a blank frame, so start-up fails now if the model cannot run, and the first
        real batch does not pay for building the predictor."""
        use_threads(self.threads)
        self.predict([np.zeros((height_px, width_px, 3), np.uint8)])


def to_arrays(result) -> DetectionArrays:
    """An Ultralytics ``Results`` as plain arrays (the edge: nothing else reads Ultralytics objects)."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return empty_arrays()
    xyxy = boxes.xyxy.cpu().numpy().astype(np.float64).reshape(-1, 4)
    return DetectionArrays(xyxy, boxes.conf.cpu().numpy().astype(np.float64), boxes.cls.cpu().numpy().astype(np.int64),
                           np.full(len(xyxy), -1, np.int64))

"""Sliced inference for small objects in large frames: cut, run, map back, merge.

Tiles are squares of ``tile_px`` overlapping by at least ``overlap_px``, evenly spaced so that
every tile has the same size (one model call takes them all). Each tile can
be enlarged (``upscale``) so a few-pixel person becomes big enough for the model. Boxes found in
tiles are mapped back to frame pixels and merged class by class with greedy non-maximum merging
on intersection-over-smaller (SAHI's GREEDYNMM/IOS): the half of a person cut by a tile edge is
inside the whole one seen by the neighbouring tile, so the two become one box (their union) with
the higher score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ibet.detect_config import TilingSettings
from ibet.messages import DetectionArrays


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced starts of the fewest tiles that cover ``length`` overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [round(s) for s in np.linspace(0, length - tile, n)]


def tile_windows(width_px: int, height_px: int, tile_px: int, overlap_px: int) -> np.ndarray:
    """(k, 4) int windows x1, y1, x2, y2 covering the frame; a side shorter than a tile is one window.

    >>> tile_windows(1280, 720, 640, 64).tolist()
    [[0, 0, 640, 640], [320, 0, 960, 640], [640, 0, 1280, 640], [0, 80, 640, 720], [320, 80, 960, 720], [640, 80, 1280, 720]]
    """
    xs, ys = _starts(width_px, tile_px, overlap_px), _starts(height_px, tile_px, overlap_px)
    return np.array([[x, y, min(x + tile_px, width_px), min(y + tile_px, height_px)] for y in ys for x in xs],
                    dtype=np.int64).reshape(-1, 4)


def cut_tiles(image: np.ndarray, windows: np.ndarray, upscale: float) -> list[np.ndarray]:
    """The tile images of ``windows``, enlarged by ``upscale``."""
    tiles = []
    for x1, y1, x2, y2 in windows:
        tile = image[y1:y2, x1:x2]
        if upscale != 1.0:
            tile = cv2.resize(tile, (round((x2 - x1) * upscale), round((y2 - y1) * upscale)), interpolation=cv2.INTER_LINEAR)
        tiles.append(np.ascontiguousarray(tile))
    return tiles


def to_frame(tile_dets: Sequence[DetectionArrays], windows: np.ndarray, upscale: float) -> DetectionArrays:
    """Every tile's detections in frame pixels, concatenated (not merged yet)."""
    xyxy = [d.xyxy / upscale + np.tile(w[:2], 2) for d, w in zip(tile_dets, windows, strict=True)]
    return DetectionArrays(
        np.concatenate(xyxy).reshape(-1, 4) if xyxy else np.zeros((0, 4)),
        np.concatenate([d.confidence for d in tile_dets]) if tile_dets else np.zeros(0),
        np.concatenate([d.class_id for d in tile_dets]).astype(np.int64) if tile_dets else np.zeros(0, np.int64),
        np.full(sum(len(d) for d in tile_dets), -1, np.int64),
    )


def intersection_over_smaller(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n,) intersection area of ``box`` (4,) with each of ``boxes`` (n, 4), over the smaller area."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return iw * ih / np.maximum(np.minimum(area, areas), 1e-9)


def merge_boxes(dets: DetectionArrays, ios_threshold: float) -> DetectionArrays:
    """Greedy non-maximum merging per class: the best-scoring box absorbs every box of its class
    that overlaps it by ``ios_threshold`` (intersection over smaller); the result is their union
    with the best score. Returns a new DetectionArrays sorted by score, descending."""
    order = np.argsort(-dets.confidence, kind="stable")
    xyxy, score, cls = dets.xyxy[order], dets.confidence[order], dets.class_id[order]
    alive = np.ones(len(order), bool)
    out_box, out_score, out_cls = [], [], []
    for i in range(len(order)):
        if not alive[i]:
            continue
        group = alive & (cls == cls[i])
        group[group] = intersection_over_smaller(xyxy[i], xyxy[group]) >= ios_threshold
        group[i] = True
        members = xyxy[group]
        out_box.append([members[:, 0].min(), members[:, 1].min(), members[:, 2].max(), members[:, 3].max()])
        out_score.append(score[i])
        out_cls.append(cls[i])
        alive &= ~group
    n = len(out_box)
    return DetectionArrays(np.array(out_box, np.float64).reshape(-1, 4), np.array(out_score, np.float64),
                           np.array(out_cls, np.int64), np.full(n, -1, np.int64))


def tiled_detections(tile_dets: Sequence[DetectionArrays], windows: np.ndarray, settings: TilingSettings) -> DetectionArrays:
    """The frame's detections from its tiles' detections: mapped back and merged."""
    return merge_boxes(to_frame(tile_dets, windows, settings.upscale), settings.merge_ios)

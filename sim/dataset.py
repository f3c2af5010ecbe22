"""``ibet sim dataset``: a YOLO-format training/validation set from simulated frames.

Labels are the renderer's exact boxes. Training and validation come from disjoint seeds, so no
validation image shares a seed (noise, timing, target appearance) with any training image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from sim.run import SimFrame, simulate
from sim.scenario import Scenario

CLASSES = ("person", "vehicle", "boat")


@dataclass
class DatasetStats:
    images: dict[str, int]
    boxes: dict[str, dict[str, int]]


def yolo_lines(frame: SimFrame, min_visible: float, min_box_px: float) -> list[str]:
    """``class cx cy w h`` (normalised) for each sufficiently visible target in the frame."""
    w, h = frame.meta.width_px, frame.meta.height_px
    lines = []
    for box in frame.truth_boxes:
        x1, y1, x2, y2 = box.xyxy_px
        if box.visible_fraction < min_visible or min(x2 - x1, y2 - y1) < min_box_px:
            continue
        lines.append(f"{CLASSES.index(box.kind)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                     f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return lines


def native_crops(frame: SimFrame, crop_px: int, rng: np.random.Generator, background_share: float,
                 min_visible: float, min_box_px: float) -> list[tuple[bytes, list[str]]]:
    """Square ``crop_px`` windows cut from the frame at its native scale, with their YOLO labels.

    One window per frame that shows a target (placed at random so the target is anywhere in it),
    and a background window for ``background_share`` of the frames that show none. Training on
    native-scale crops keeps a 15-pixel person 15 pixels tall: the detector then runs on whole
    frames at their native size (``imgsz`` = frame width) and sees objects at the scale it learnt.
    """
    w, h = frame.meta.width_px, frame.meta.height_px
    size = min(crop_px, w, h)
    boxes = [b for b in frame.truth_boxes
             if b.visible_fraction >= min_visible and min(b.xyxy_px[2] - b.xyxy_px[0], b.xyxy_px[3] - b.xyxy_px[1]) >= min_box_px]
    if boxes:
        x1, y1, x2, y2 = boxes[int(rng.integers(len(boxes)))].xyxy_px
        lo_x, hi_x = max(0, int(x2) - size), min(w - size, int(x1))
        lo_y, hi_y = max(0, int(y2) - size), min(h - size, int(y1))
        ox = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else int(np.clip((x1 + x2) / 2 - size / 2, 0, w - size))
        oy = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else int(np.clip((y1 + y2) / 2 - size / 2, 0, h - size))
    elif rng.random() < background_share:
        ox, oy = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    else:
        return []
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, jpeg = cv2.imencode(".jpg", image[oy:oy + size, ox:ox + size], [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("could not encode a crop")
    lines = []
    for box in frame.truth_boxes:
        bx1, by1, bx2, by2 = box.xyxy_px
        cx1, cy1 = max(bx1, ox), max(by1, oy)
        cx2, cy2 = min(bx2, ox + size), min(by2, oy + size)
        if cx2 <= cx1 or cy2 <= cy1:
            continue
        inside = (cx2 - cx1) * (cy2 - cy1) / max((bx2 - bx1) * (by2 - by1), 1e-9)
        if box.visible_fraction * inside < min_visible or min(cx2 - cx1, cy2 - cy1) < min_box_px:
            continue
        lines.append(f"{CLASSES.index(box.kind)} {((cx1 + cx2) / 2 - ox) / size:.6f} {((cy1 + cy2) / 2 - oy) / size:.6f} "
                     f"{(cx2 - cx1) / size:.6f} {(cy2 - cy1) / size:.6f}")
    return [(jpeg.tobytes(), lines)]


def write_dataset(scenarios: Sequence[Scenario], train_seeds: Iterable[int], val_seeds: Iterable[int], out_dir: Path,
                  every_nth: int = 2, min_visible: float = 0.5, min_box_px: float = 4.0, crop_px: int | None = None,
                  background_share: float = 0.25) -> DatasetStats:
    """Render every ``every_nth`` frame of each scenario for each seed into ``out_dir``.

    With ``crop_px``, each image is a native-scale window of the frame (see :func:`native_crops`).
    """
    train_seeds, val_seeds = list(train_seeds), list(val_seeds)
    if set(train_seeds) & set(val_seeds):
        raise ValueError(f"training and validation seeds overlap: {sorted(set(train_seeds) & set(val_seeds))}")
    stats = DatasetStats({"train": 0, "val": 0}, {"train": dict.fromkeys(CLASSES, 0), "val": dict.fromkeys(CLASSES, 0)})
    jobs = [(split, sc, seed) for split, seeds in (("train", train_seeds), ("val", val_seeds)) for sc in scenarios
            for seed in seeds]
    with Progress() as progress:
        task = progress.add_task("rendering dataset", total=len(jobs))
        for split, scenario, seed in jobs:
            images, labels = out_dir / "images" / split, out_dir / "labels" / split
            images.mkdir(parents=True, exist_ok=True)
            labels.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(seed)
            for frame in simulate(scenario, seed).frames(every_nth):
                stem = f"{scenario.name}-s{seed}-{frame.meta.sensor_id}-{frame.meta.sequence:06d}"
                if crop_px:
                    samples = native_crops(frame, crop_px, rng, background_share, min_visible, min_box_px)
                else:
                    samples = [(frame.jpeg, yolo_lines(frame, min_visible, min_box_px))]
                for jpeg, lines in samples:
                    (images / f"{stem}.jpg").write_bytes(jpeg)
                    (labels / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
                    stats.images[split] += 1
                    for line in lines:
                        stats.boxes[split][CLASSES[int(line.split()[0])]] += 1
            progress.advance(task)
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    (out_dir / "data.yaml").write_text(
        f"# ibet simulator dataset: train seeds {train_seeds}, val seeds {val_seeds}\n"
        f"path: {out_dir.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    )
    return stats

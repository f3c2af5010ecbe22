"""``ibet sim dataset``: a YOLO-format training/validation set from simulated frames.

Labels are the renderer's exact boxes. Training and validation come from disjoint seeds, so no
validation image shares a seed (noise, timing, target appearance) with any training image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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


def write_dataset(scenarios: Sequence[Scenario], train_seeds: Iterable[int], val_seeds: Iterable[int], out_dir: Path,
                  every_nth: int = 2, min_visible: float = 0.5, min_box_px: float = 4.0) -> DatasetStats:
    """Render every ``every_nth`` frame of each scenario for each seed into ``out_dir``."""
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
            for frame in simulate(scenario, seed).frames(every_nth):
                stem = f"{scenario.name}-s{seed}-{frame.meta.sensor_id}-{frame.meta.sequence:06d}"
                lines = yolo_lines(frame, min_visible, min_box_px)
                (images / f"{stem}.jpg").write_bytes(frame.jpeg)
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

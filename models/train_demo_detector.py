"""Train, strip and evaluate ibet's demo detector on simulator imagery. Reproducible and resumable.

    python models/train_demo_detector.py dataset     # native-scale crops from training seeds
    python models/train_demo_detector.py train       # resumes from the last checkpoint if there is one
    python models/train_demo_detector.py publish     # strip the best weights into models/ and register them
    python models/train_demo_detector.py evaluate    # mAP on whole frames of held-out seeds, into the card

The detector learns on square windows cut at the frames' native scale (``sim.dataset.native_crops``)
and runs on whole frames at their native width, so a 15-pixel person stays 15 pixels. Nothing is
downloaded: the network comes from Ultralytics' own ``yolov8n.yaml`` (no pretrained weights),
``YOLO_OFFLINE`` is set, plots (which fetch a font) and the AMP check (which fetches weights) are off.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "ibet-demo-det"
VERSION = "1"
ARCH = "yolov8n.yaml"
SEED = 7
TRAIN_SEEDS = range(1, 7)
VAL_SEEDS = range(101, 102)  # monitors training only
TEST_SEEDS = range(201, 203)  # never rendered for training or monitoring: the model card's figures
CROP_PX = 320
EVERY_NTH = 6
IMGSZ = 320
EPOCHS = 40
BATCH = 16
CROPS = ROOT / "datasets" / "ibet-sim-crops"
HELD_OUT = ROOT / "datasets" / "ibet-sim-heldout"
RUN_DIR = ROOT / "runs" / "detect" / NAME
WEIGHTS = ROOT / "models" / f"{NAME}.pt"


def _scenarios():
    from sim.scenario import load_scenario, shipped_scenarios

    return [load_scenario(p) for p in shipped_scenarios()]


def dataset() -> None:
    from sim.dataset import write_dataset

    stats = write_dataset(_scenarios(), TRAIN_SEEDS, VAL_SEEDS, CROPS, every_nth=EVERY_NTH, crop_px=CROP_PX)
    print(f"crops: {stats.images} {stats.boxes}")


def train(epochs: int) -> None:
    from ultralytics import YOLO

    last = RUN_DIR / "weights" / "last.pt"
    if last.exists():
        YOLO(str(last)).train(resume=True)
        return
    YOLO(ARCH).train(data=str(CROPS / "data.yaml"), epochs=epochs, imgsz=IMGSZ, batch=BATCH, seed=SEED, deterministic=True,
                     workers=0, device="cpu", amp=False, plots=False, project=str(RUN_DIR.parent), name=NAME,
                     exist_ok=True, patience=epochs, mosaic=1.0, close_mosaic=5, fliplr=0.5, scale=0.3, degrees=0.0,
                     hsv_h=0.01, hsv_s=0.4, hsv_v=0.3, verbose=False)


def publish() -> None:
    from ultralytics.utils.torch_utils import strip_optimizer

    best = RUN_DIR / "weights" / "best.pt"
    tmp = WEIGHTS.with_suffix(".tmp.pt")
    shutil.copyfile(best, tmp)
    strip_optimizer(str(tmp))
    tmp.replace(WEIGHTS)
    print(f"{WEIGHTS.relative_to(ROOT)}: {WEIGHTS.stat().st_size / 1e6:.1f} MB")


def evaluate() -> dict:
    from sim.dataset import write_dataset
    from ultralytics import YOLO

    if not (HELD_OUT / "data.yaml").exists():
        write_dataset(_scenarios(), [], TEST_SEEDS, HELD_OUT, every_nth=4)
    metrics = YOLO(str(WEIGHTS)).val(data=str(HELD_OUT / "data.yaml"), split="val", imgsz=1280, rect=True, batch=4,
                                     device="cpu", plots=False, workers=0, verbose=False, project=str(RUN_DIR.parent),
                                     name=f"{NAME}-heldout", exist_ok=True)
    names = metrics.names
    result = {"mAP50": round(float(metrics.box.map50), 3), "mAP50-95": round(float(metrics.box.map), 3),
              "per_class": {names[c]: {"mAP50": round(float(metrics.box.ap50[i]), 3), "mAP50-95": round(float(metrics.box.ap[i]), 3)}
                            for i, c in enumerate(metrics.box.ap_class_index)}}
    print(result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["dataset", "train", "publish", "evaluate"])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    {"dataset": dataset, "train": lambda: train(args.epochs), "publish": publish, "evaluate": evaluate}[args.step]()

"""Train, strip and evaluate ibet's demo detector on simulator imagery. Reproducible and resumable.

    python models/train_demo_detector.py dataset     # native-scale crops from training seeds
    python models/train_demo_detector.py train       # resumes from the last checkpoint if there is one
    python models/train_demo_detector.py vehicles    # more native-scale vehicle crops (the rarest class)
    python models/train_demo_detector.py finetune    # from the best weights, on both crop sets
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
VEHICLE_SCENARIOS = ("lawful-crossing-peace-arch", "vehicle-rural-road-tower")
VEHICLE_SEEDS = range(7, 15)
VEHICLE_CROPS = ROOT / "datasets" / "ibet-sim-vehicle-crops"
FINETUNE_EPOCHS = 12
FINETUNE_DIR = ROOT / "runs" / "detect" / f"{NAME}-ft"
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


def _register(metrics: dict | None = None) -> None:
    from models.registry import load_model_registry, register
    from sim.dataset import CLASSES

    if metrics is None:  # keep the figures measured for this very file, else none yet
        try:
            old = load_model_registry().get(NAME, VERSION)
            metrics = old.metrics if old.sha256 == _sha256(WEIGHTS) else {}
        except Exception:  # noqa: BLE001 - no entry yet
            metrics = {}
    register(WEIGHTS, NAME, VERSION, CLASSES, source="models/train_demo_detector.py (YOLOv8n from scratch on "
             "simulator imagery)", licence="AGPL-3.0-or-later", metrics=metrics)


def _sha256(path: Path) -> str:
    from models.registry import model_sha256

    return model_sha256(path)


def vehicles() -> None:
    """Vehicles are the rarest class in the first crop set (91 boxes of 556): crops of every second
    frame of the two vehicle scenarios on eight more training seeds."""
    from sim.dataset import write_dataset
    from sim.scenario import load_scenario, resolve_scenario

    scenarios = [load_scenario(resolve_scenario(name)) for name in VEHICLE_SCENARIOS]
    stats = write_dataset(scenarios, VEHICLE_SEEDS, [], VEHICLE_CROPS, every_nth=2, crop_px=CROP_PX)
    print(f"vehicle crops: {stats.images} {stats.boxes}")


def finetune(epochs: int) -> None:
    """Continue from the first run's best weights on both crop sets (validation: the first set's)."""
    from ultralytics import YOLO

    last = FINETUNE_DIR / "weights" / "last.pt"
    if last.exists():
        YOLO(str(last)).train(resume=True)
        return
    data = FINETUNE_DIR.parent / f"{NAME}-ft-data.yaml"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(f"path: {ROOT}\ntrain: [{CROPS / 'images/train'}, {VEHICLE_CROPS / 'images/train'}]\n"
                    f"val: {CROPS / 'images/val'}\nnames:\n  0: person\n  1: vehicle\n  2: boat\n")
    YOLO(str(RUN_DIR / "weights" / "best.pt")).train(
        data=str(data), epochs=epochs, imgsz=IMGSZ, batch=BATCH, seed=SEED, deterministic=True, workers=0, device="cpu",
        amp=False, plots=False, project=str(FINETUNE_DIR.parent), name=FINETUNE_DIR.name, exist_ok=True,
        patience=epochs, mosaic=1.0, close_mosaic=3, fliplr=0.5, scale=0.3, degrees=0.0, hsv_h=0.01, hsv_s=0.4,
        hsv_v=0.3, lr0=0.002, warmup_epochs=0, verbose=False)


def publish() -> None:
    from ultralytics.utils.torch_utils import strip_optimizer

    finetuned = FINETUNE_DIR / "weights" / "best.pt"
    best = finetuned if finetuned.exists() else RUN_DIR / "weights" / "best.pt"
    tmp = WEIGHTS.with_suffix(".tmp.pt")
    shutil.copyfile(best, tmp)
    strip_optimizer(str(tmp))
    tmp.replace(WEIGHTS)
    _register()
    print(f"{WEIGHTS.relative_to(ROOT)}: {WEIGHTS.stat().st_size / 1e6:.1f} MB, registered in models/registry.yaml")


def evaluate() -> dict:
    from ultralytics import YOLO

    from sim.dataset import write_dataset

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
    _register({**result, "held_out": f"seeds {list(TEST_SEEDS)}, every 4th frame of every shipped scenario, "
                                     "whole frames at native size (imgsz 1280)"})
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["dataset", "train", "vehicles", "finetune", "publish", "evaluate"])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    steps = {"dataset": dataset, "train": lambda: train(args.epochs), "vehicles": vehicles,
             "finetune": lambda: finetune(args.epochs if args.epochs != EPOCHS else FINETUNE_EPOCHS),
             "publish": publish, "evaluate": evaluate}
    steps[args.step]()

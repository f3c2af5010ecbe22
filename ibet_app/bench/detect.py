"""``ibet bench detect``: the detect stage end to end against bare ``model.predict`` on the same frames.

Frames come from the simulator (seeds never used in training, 201 by default): the drone of
``foot-crossing-forest-vista`` (not motion-gated), rendered once and fed identically to every side,
in one process:

- (a) bare: ``cv2.imdecode`` of each JPEG and ``YOLO.predict`` on ``batch`` frames per call, at the
  stage's input shape (a 1280x720 frame at 1280x736), same score floor and NMS;
- (b) the detect stage through the bus: frame records produced onto a frames topic, a StageRunner
  consuming ``batch`` records per poll, decode, model call, filters, ByteTrack, evidence, one
  DetectionBatch per frame produced and flushed, offsets committed; on the in-memory bus, and on
  real Kafka when ``--bootstrap`` is given. Timed from the first poll to the last DetectionBatch.

Reported: frames/s of each and the ratio (b)/(a) (target 0.9); the batch-size curve (both sides);
motion gating on a fixed camera (``vehicle-rural-road-tower``, every frame): frames/s and recall at
IoU 0.5 with gating on and off, and the speed-up; the shipped model as PyTorch, ONNX (onnxruntime)
and OpenVINO (exported into a temporary folder), frames/s and detections found, same frames.
Every side-by-side case runs ``rounds`` times, the order rotating each round (bare and stage on
each bus, every runtime): the median is reported with the spread (min-max) of its rounds, so a
busy moment of a shared machine does not land on one side only. Torch uses every core on every side. A benchmark, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer

from detect.build import model_entry
from detect.model import UltralyticsDetector, inference_shape
from detect.scoring import RecallCounter
from detect.stage import DetectStage
from detect.ultralytics_env import ultralytics_module, use_threads
from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.memory import MemoryBus
from ibet.config import KafkaSettings, RunnerSettings
from ibet.detect_config import DetectSettings
from ibet.messages import DetectionBatch
from ibet.registry import Registry, load_registry
from ibet.runner import StageRunner
from models.registry import DEFAULT_REGISTRY_PATH, ModelEntry, ModelError, load_model_registry, verify
from sim.run import SimFrame, simulate
from sim.scenario import load_scenario, resolve_scenario

REPO = Path(__file__).resolve().parents[2]
DRONE_SCENARIO, DRONE, STATIC_SCENARIO = "foot-crossing-forest-vista", "drone-vista-1", "vehicle-rural-road-tower"


def sim_frames(scenario: str, seed: int, n: int, every_nth: int = 1, sensor: str | None = None) -> list[SimFrame]:
    """The first ``n`` frames (every ``every_nth``, of ``sensor`` if given) of a shipped scenario."""
    sc = load_scenario(resolve_scenario(scenario))
    if sensor:
        sc = sc.model_copy(update={"sensors": [s for s in sc.sensors if s.id == sensor]})
    frames = []
    for frame in simulate(sc, seed).frames(every_nth):
        frames.append(frame)
        if len(frames) >= n:
            break
    return frames


# -- (a) bare model.predict ------------------------------------------------------------------
def bare_predict_fps(model_path: Path, frames: Sequence[SimFrame], batch: int, settings: DetectSettings,
                     input_size: str | int) -> tuple[float, int]:
    """Frames/s of decode + ``YOLO.predict`` in chunks of ``batch``, and how many boxes it found."""
    yolo = ultralytics_module().YOLO(str(model_path), task="detect")
    h, w = frames[0].meta.height_px, frames[0].meta.width_px
    kwargs = dict(imgsz=inference_shape(h, w, input_size), conf=settings.conf_floor, iou=settings.nms_iou,
                  device=settings.device, verbose=False, half=False)
    yolo.predict([np.zeros((h, w, 3), np.uint8)], **kwargs)  # build the predictor outside the timing
    use_threads(settings.torch_threads)
    timing: list[float] = []
    boxes: list[int] = []

    def loop() -> None:
        start = time.perf_counter()
        for i in range(0, len(frames), batch):
            images = [cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR) for f in frames[i:i + batch]]
            use_threads(settings.torch_threads)  # as the stage's adapter does before each call
            boxes.extend(len(r.boxes) for r in yolo.predict(images, **kwargs))
        timing.append(time.perf_counter() - start)

    # In a thread of its own, as the stage runs in its runner's thread: torch's OpenMP thread
    # settings are per thread, and the main thread measured slower with the same settings.
    thread = threading.Thread(target=loop, name="bench-bare")
    thread.start()
    thread.join()
    return len(frames) / timing[0], sum(boxes)


# -- (b) the stage through a bus -------------------------------------------------------------
def stage_fps(bus, detector: UltralyticsDetector, entry: ModelEntry, registry: Registry, frames: Sequence[SimFrame],
              batch: int, settings: DetectSettings, tag: str) -> tuple[float, list[DetectionBatch]]:
    """Frames/s of the detect stage run by a StageRunner on ``bus`` over ``frames``; its outputs."""
    names = {t: f"bench-{t}-{tag}" for t in ("frames", "detections", "state")}
    bus.create_topics([*names.values(), topics.dlq_topic(names["frames"])])
    producer = bus.producer("bench-feeder")
    for f in frames:
        producer.send(OutRecord(names["frames"], f.meta.sensor_id.encode(), f.jpeg, tuple(f.meta.to_headers())))
    producer.flush(120)
    producer.close()
    stage = DetectStage(registry, settings.model_copy(update={"batch_size": batch}), detector, entry.name, entry.version,
                        None, name=f"bench-detect-{tag}", frames_topic=names["frames"],
                        detections_topic=names["detections"], state_topic=names["state"])
    runner = StageRunner(stage, bus, RunnerSettings(batch_max_records=batch, poll_timeout_s=0.05))
    started: list[float] = []
    first_poll = runner.run_once

    def timed_run_once() -> int:
        if not started:
            started.append(time.perf_counter())
        return first_poll()

    runner.run_once = timed_run_once  # the clock starts at the first poll (after the group join)
    thread = threading.Thread(target=runner.run, name=f"bench-{tag}")
    thread.start()
    while runner.stats.produced < len(frames) and thread.is_alive():
        time.sleep(0.005)
    elapsed = time.perf_counter() - started[0]
    runner.stop()
    thread.join()
    if runner.stats.produced < len(frames):
        raise RuntimeError(f"the stage produced {runner.stats.produced} of {len(frames)} batches")
    reader = bus.consumer(f"bench-reader-{tag}", "bench-reader")
    reader.subscribe([names["detections"]])
    out: list = []
    deadline = time.monotonic() + 60
    while len(out) < len(frames) and time.monotonic() < deadline:
        out += reader.poll(1000, 0.2)
    reader.close()
    return len(frames) / elapsed, [DetectionBatch.from_bytes(r.value) for r in out]


def gating_case(detector: UltralyticsDetector, entry: ModelEntry, registry: Registry, frames: Sequence[SimFrame],
                settings: DetectSettings, batch: int) -> dict:
    """Gating on vs off on a fixed camera's consecutive frames: frames/s, recall, frames inferred."""
    result = {}
    for label, kinds in (("on", ("fixed_camera",)), ("off", ())):
        cfg = settings.model_copy(update={"motion": settings.motion.model_copy(update={"enabled_for": kinds})})
        calls_before = detector_calls(detector)
        fps, out = stage_fps(MemoryBus(default_partitions=1), detector, entry, registry, frames, batch, cfg,
                             f"gate-{label}-{uuid.uuid4().hex[:6]}")
        by_seq = {b.frame_sequence: b for b in out}
        counter = RecallCounter()
        for f in frames:
            b = by_seq[f.meta.sequence]
            counter.add_frame(f.truth_boxes, b.as_arrays().xyxy, [d.class_name for d in b.detections])
        result[label] = {"fps": fps, "recall": counter.overall(), "inferred": detector_calls(detector) - calls_before,
                         "true_boxes": sum(counter.truth.values())}
    return result


def detector_calls(detector: UltralyticsDetector) -> int:
    return detector.images_seen


class CountingDetector(UltralyticsDetector):
    """The production adapter, counting the images it is given (frames the gate let through)."""

    images_seen = 0

    def predict(self, images):
        self.images_seen += len(images)
        return super().predict(images)


# -- model formats ---------------------------------------------------------------------------
def export_formats(model_path: Path, shape: tuple[int, int], out_dir: Path, formats: Sequence[str]) -> dict[str, Path]:
    """The model exported to each of ``formats`` ('onnx', 'openvino') into ``out_dir`` (dynamic batch)."""
    import shutil

    copy = out_dir / model_path.name
    shutil.copyfile(model_path, copy)
    yolo = ultralytics_module().YOLO(str(copy), task="detect")
    paths = {}
    for fmt in formats:
        paths[fmt] = Path(yolo.export(format=fmt, imgsz=shape, dynamic=True, simplify=True, device="cpu",
                                      verbose=False))
    return paths


def pytorch_entry(settings: DetectSettings) -> ModelEntry:
    """The last registered PyTorch version of the configured model (the exports' source)."""
    registry = load_model_registry(settings.model_registry_path or DEFAULT_REGISTRY_PATH)
    entries = [m for m in registry.models if m.name == settings.model and m.format == "pytorch"]
    if not entries:
        raise ModelError(f"{registry.path}: model {settings.model} has no PyTorch version to export from")
    return entries[-1]


# -- the command -----------------------------------------------------------------------------
def run_detect_bench(n_frames: int, batch: int, batch_sizes: Sequence[int], formats: Sequence[str],
                     bootstrap: str | None, seed: int, gate_frames: int, rounds: int, model: str = "ibet-demo-det",
                     model_registry: Path | None = None) -> dict:
    registry = load_registry(REPO / "config" / "registry.yaml")
    settings = DetectSettings(model=model, model_registry_path=model_registry, evidence={"enabled": False})
    entry = model_entry(settings)
    path = verify(entry)
    frames = sim_frames(DRONE_SCENARIO, seed, n_frames, every_nth=2, sensor=DRONE)  # drones are not gated
    detector = CountingDetector(entry, settings.device, conf=settings.conf_floor, iou=settings.nms_iou,
                                threads=settings.torch_threads)
    detector.warm_up(frames[0].meta.height_px, frames[0].meta.width_px)
    result: dict = {"bench": "detect", "model": entry.ref, "model_format": entry.format, "frames": len(frames), "batch": batch, "seed": seed,
                    "frame_px": f"{frames[0].meta.width_px}x{frames[0].meta.height_px}", "rounds": rounds}

    def side_by_side(b: int) -> tuple[float, float]:
        bare, memory = [], []
        for r in range(rounds):  # alternate the order so drift on the machine hits both alike
            for side in (("bare", "memory") if r % 2 == 0 else ("memory", "bare")):
                if side == "bare":
                    bare.append(bare_predict_fps(path, frames, b, settings, entry.input_size)[0])
                else:
                    memory.append(stage_fps(MemoryBus(default_partitions=1), detector, entry, registry, frames, b, settings,
                                            f"mem-{b}-{uuid.uuid4().hex[:6]}")[0])
        return statistics.median(bare), statistics.median(memory)

    bare_fps, memory_fps = side_by_side(batch)
    result.update(bare_fps=round(bare_fps, 2), memory_fps=round(memory_fps, 2), ratio=round(memory_fps / bare_fps, 3))
    if bootstrap:  # Kafka against bare predict in rounds of its own, alternated like the memory case
        from ibet.bus.kafka import KafkaBus

        kafka = KafkaBus(KafkaSettings(bootstrap_servers=[bootstrap], linger_ms=1))
        sides = {"bare": lambda: bare_predict_fps(path, frames, batch, settings, entry.input_size)[0],
                 "kafka": lambda: stage_fps(kafka, detector, entry, registry, frames, batch, settings,
                                            f"kafka-{uuid.uuid4().hex[:6]}")[0]}
        runs = alternated(sides, rounds)
        kafka_fps, kafka_bare = statistics.median(runs["kafka"]), statistics.median(runs["bare"])
        result.update(kafka_fps=round(kafka_fps, 2), kafka_ratio=round(kafka_fps / kafka_bare, 3),
                      kafka_spread=spread(runs["kafka"]))
    curve = {}
    for b in batch_sizes:
        bare_b, memory_b = (bare_fps, memory_fps) if b == batch else side_by_side(b)
        curve[b] = {"bare_fps": round(bare_b, 2), "memory_fps": round(memory_b, 2), "ratio": round(memory_b / bare_b, 3)}
    result["batch_curve"] = curve

    static = sim_frames(STATIC_SCENARIO, seed, gate_frames)
    gate = gating_case(detector, entry, registry, static, settings, batch)
    result["gating"] = {"scenario": STATIC_SCENARIO, "frames": len(static), "true_boxes": gate["on"]["true_boxes"],
                        **{f"{k}_{label}": round(v, 3) if isinstance(v, float) else v
                           for label in ("on", "off") for k, v in gate[label].items() if k != "true_boxes"},
                        "speedup": round(gate["on"]["fps"] / gate["off"]["fps"], 2)}

    # the formats are compared with the PyTorch weights the exports are made from (the registered
    # model itself may be an export: the shipped default is the OpenVINO export of version 1)
    pytorch = pytorch_entry(settings)
    pt_path = verify(pytorch)
    with tempfile.TemporaryDirectory(prefix="ibet-bench-detect-") as tmp:
        models = {"pytorch": pt_path}
        if formats:
            shape = inference_shape(frames[0].meta.height_px, frames[0].meta.width_px, pytorch.input_size)
            models.update(export_formats(pt_path, shape, Path(tmp), formats))
        boxes: dict[str, int] = {}

        def predict(name: str, model_path: Path) -> float:
            fps, boxes[name] = bare_predict_fps(model_path, frames, batch, settings, pytorch.input_size)
            return fps

        # every runtime in every round, the order rotating, so a busy moment of a shared machine
        # does not land on one runtime only; the median and the spread are reported
        runs = alternated({name: (lambda n=name, m=m: predict(n, m)) for name, m in models.items()}, rounds)
    pt_fps = statistics.median(runs["pytorch"])
    fmt_results = {"pytorch": {"fps": round(pt_fps, 2), "boxes": boxes["pytorch"], "model": pytorch.ref,
                               "spread": spread(runs["pytorch"])}}
    for name in models:
        if name != "pytorch":
            fps = statistics.median(runs[name])
            fmt_results[name] = {"fps": round(fps, 2), "boxes": boxes[name], "ratio_vs_pytorch": round(fps / pt_fps, 3),
                                 "spread": spread(runs[name])}
    result["formats"] = fmt_results
    return result


def alternated(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each side's figure once per round, the sides' order rotating from round to round."""
    names = list(sides)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            runs[name].append(sides[name]())
    return runs


def spread(values: Sequence[float]) -> str:
    """min-max of a side's rounds, as printed beside its median."""
    return f"{min(values):.2f}-{max(values):.2f}"


def table(result: dict) -> tuple[list[str], list[list]]:
    rows = [["(a) bare model.predict", result["bare_fps"], "1.000"],
            ["(b) detect stage, in-memory bus", result["memory_fps"], f"{result['ratio']:.3f}"]]
    if "kafka_fps" in result:
        rows.append([f"(b) detect stage, Kafka (rounds {result['kafka_spread']})", result["kafka_fps"],
                     f"{result['kafka_ratio']:.3f}"])
    for b, c in result["batch_curve"].items():
        rows.append([f"batch {b}: bare / stage", f"{c['bare_fps']} / {c['memory_fps']}", f"{c['ratio']:.3f}"])
    g = result["gating"]
    rows.append([f"gating off ({g['frames']} frames, recall {g['recall_off']})", g["fps_off"], "1.000"])
    rows.append([f"gating on (inferred {g['inferred_on']}, recall {g['recall_on']})", g["fps_on"], f"{g['speedup']:.2f}"])
    for fmt, r in result["formats"].items():
        rows.append([f"{fmt} ({r['boxes']} boxes; rounds {r['spread']})", r["fps"], f"{r.get('ratio_vs_pytorch', 1.0):.3f}"])
    return ["case", "frames/s", "ratio"], rows


def bench_detect_command(
    frames: Annotated[int, typer.Option(help="Drone frames (1280x720) fed to each side.")] = 32,
    batch: Annotated[int, typer.Option(help="Frames per model call, both sides.")] = 4,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes for the curve.")] = "1,4,8,16",
    formats: Annotated[str, typer.Option(help="Exports to compare with PyTorch: onnx, openvino; '' for none.")]
    = "onnx,openvino",
    bootstrap: Annotated[str | None, typer.Option(help="host:port of a Kafka broker: also run (b) on Kafka.")] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed (>= 201: never used in training).")] = 201,
    gate_frames: Annotated[int, typer.Option(help="Consecutive fixed-camera frames for the gating case.")] = 80,
    rounds: Annotated[int, typer.Option(help="Rounds per side, alternating; the median is reported.")] = 2,
    model: Annotated[str, typer.Option(help="Registered model name.")] = "ibet-demo-det",
    model_registry: Annotated[Path | None, typer.Option(help="Model registry YAML (default: models/registry.yaml).")] = None,
) -> None:
    """Detect stage end to end vs bare model.predict (ratio (b)/(a)), batch curve, motion gating, PyTorch/ONNX/OpenVINO."""
    from ibet_app.bench.report import report

    try:
        sizes = [int(b) for b in batch_sizes.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(f"batch sizes must be comma-separated integers, got {batch_sizes!r}") from None
    if min(sizes, default=1) < 1 or batch < 1 or frames < batch or rounds < 1:
        raise typer.BadParameter("need batch sizes >= 1, frames >= batch, rounds >= 1")
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = set(fmts) - {"onnx", "openvino"}
    if unknown:
        raise typer.BadParameter(f"unknown formats {sorted(unknown)}; choose from onnx, openvino")
    result = run_detect_bench(frames, batch, sizes, fmts, bootstrap, seed, gate_frames, rounds, model, model_registry)
    columns, rows = table(result)
    report("bench-detect", f"ibet bench detect: {result['model']}, {result['frames']} frames {result['frame_px']}, "
           f"batch {batch}", columns, rows, result)

"""``ibet bench scale``: frames/s of the detect consumer group with 1 and with 2 workers (separate
``ibet run detect`` processes, as deployed) on the same frames, and the ratio 2/1.

The frames are the simulator's (seeds never used in training, 201 by default): half from the drone
of ``foot-crossing-forest-vista`` and half from the drone of ``approach-turn-back-derby``. Drones
are never motion-gated, so every frame goes through the model; the two sensor ids are keys that
Kafka's default partitioner (murmur2) puts into different halves of a 4-partition frames topic, so
with the range assignor each of two workers holds a partition that carries frames (checked, and
reported, per run). The frames are produced once onto ``ibet.frames.v1`` of a local broker (started
for the bench unless ``--bootstrap`` is given).

Each run (1 or 2 workers, alternating for ``--rounds``) starts with the group ``detect`` empty and
its committed offsets reset to where the bench's frames begin, a fresh group as far as these frames
are concerned. Its workers load the model and join; the clock starts when the group is Stable with
all its workers holding every partition (frames a worker that joined early had already committed are
counted out) and stops when the group's committed offsets reach the end of the frames (lag 0).
Torch threads per worker default to cores / workers, so both configurations use every core once.

On a 2-core machine the two workers share the two cores one worker's torch already used, so the
ratio says little about a cluster of GPU nodes; it says what a second process buys on *this* machine.
It can come out above 2: one worker runs JPEG decoding, tracking, producing and committing serially
beside its (2-thread) inference, two workers overlap them, and 1-thread torch wastes less on small
convolutions. The machine's other load (a model training here) moves single runs a lot: use several
``--rounds`` (alternating, median reported), compare ``--threads 1`` too, and read the load average
in the report. A benchmark, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError, NoError
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from ibet import topics
from ibet.bus.base import OutRecord
from ibet.bus.kafka import KafkaBus
from ibet.config import KafkaSettings
from ibet.exceptions import IbetError
from ibet_app.up import Pipeline

T = TypeVar("T")
GROUP = "detect"
DRONES = (("foot-crossing-forest-vista", "drone-vista-1"), ("approach-turn-back-derby", "drone-derby-1"))


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` on a topic of ``partitions``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class GroupView:
    """One look at a consumer group: its state and each member's partitions of one topic."""

    state: str
    assignment: dict[str, frozenset[int]]  # member id -> partitions

    def holds_all(self, partitions: int) -> bool:
        """Every partition of the topic is assigned to a member, and the group is not rebalancing."""
        held = set().union(*self.assignment.values()) if self.assignment else set()
        return self.state == "Stable" and held == set(range(partitions))


def describe_group(admin: KafkaAdminClient, group: str, topic: str) -> GroupView:
    """The group's state and its members' partitions of ``topic`` (DescribeGroups)."""
    described = admin.describe_groups([group])[group]
    assignment = {}
    for member in described.get("members") or []:
        parts = (member.get("member_assignment") or {}).get("assigned_partitions") or []
        assignment[member["member_id"]] = frozenset(p for a in parts if a["topic"] == topic for p in a["partitions"])
    return GroupView(described.get("group_state") or "Unknown", assignment)


def partition_count(admin: KafkaAdminClient, topic: str) -> int:
    """How many partitions ``topic`` has on the broker."""
    return len(admin.describe_topics([topic])[0]["partitions"])


def end_offsets(admin: KafkaAdminClient, topic: str, partitions: int) -> dict[int, int]:
    """The next offset to be written, per partition."""
    got = admin.list_partition_offsets({TopicPartition(topic, p): OffsetSpec.LATEST for p in range(partitions)})
    return {tp.partition: meta.offset for tp, meta in got.items()}


def committed_offsets(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on ``topic`` (partitions it never committed are absent)."""
    got = admin.list_group_offsets(group).get(group, {})
    return {tp.partition: meta.offset for tp, meta in got.items() if tp.topic == topic and meta.offset >= 0}


def group_lag(admin: KafkaAdminClient, group: str, topic: str) -> int | None:
    """Records of ``topic`` the group has not committed yet; None before it committed anything."""
    committed = committed_offsets(admin, group, topic)
    if not committed:
        return None
    ends = end_offsets(admin, topic, partition_count(admin, topic))
    return sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())


def retrying(call: Callable[[], T], timeout_s: float = 60.0) -> T:
    """``call()``, again while Kafka answers with a retriable error (a fresh broker has no group
    coordinator until its offsets topic exists)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def produce_frames(bootstrap: str, n_frames: int, seed: int) -> dict[str, int]:
    """``n_frames`` simulator frames (half per drone of DRONES) onto the frames topic; frames per sensor."""
    from ibet_app.bench.detect import sim_frames

    per_sensor: dict[str, int] = {}
    producer = KafkaBus(KafkaSettings(bootstrap_servers=[bootstrap])).producer("ibet-bench-scale")
    try:
        for i, (scenario, sensor) in enumerate(DRONES):
            share = n_frames // len(DRONES) + (1 if i < n_frames % len(DRONES) else 0)
            for frame in sim_frames(scenario, seed, share, sensor=sensor):
                producer.send(OutRecord(topics.FRAMES, sensor.encode(), frame.jpeg, tuple(frame.meta.to_headers())))
            per_sensor[sensor] = share
        producer.flush(120)
    finally:
        producer.close()
    return per_sensor


def time_group(bootstrap: str, workers: int, start: dict[int, int], n_frames: int, env: dict[str, str], log_dir: Path,
               timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run ``workers`` detect processes from the offsets ``start`` until the group has committed
    ``n_frames`` more; frames/s from the moment all of them hold partitions (see module doc)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    pipeline = Pipeline(bootstrap, None, stages=("detect",), console=False, log_dir=log_dir, env=env,
                        replicas={"detect": workers})
    try:
        retrying(lambda: admin.delete_groups([GROUP]))  # fresh: no members, no offsets (an unknown group is fine)
        reset = retrying(lambda: admin.alter_group_offsets(
            GROUP, {TopicPartition(topics.FRAMES, p): OffsetAndMetadata(o, "", -1) for p, o in start.items()}))
        failed = {tp.partition: err.__name__ for tp, err in reset.items() if err is not NoError}
        if failed:
            raise RuntimeError(f"could not reset group {GROUP}'s offsets to the bench's frames: {failed}")
        launched = time.monotonic()
        pipeline.start()
        joined = joined_done = None
        view = GroupView("Unknown", {})
        while time.monotonic() - launched < timeout_s:
            dead = pipeline.dead()
            if dead:
                raise RuntimeError(f"detect worker {dead[0].name} died:\n{pipeline.tail(dead[0].name)}")
            done = sum(committed_offsets(admin, GROUP, topics.FRAMES).get(p, o) - o for p, o in start.items())
            now = time.monotonic()
            if joined is None:
                view = describe_group(admin, GROUP, topics.FRAMES)
                if len(view.assignment) == workers and view.holds_all(len(start)):
                    joined, joined_done = now, done
            if done >= n_frames and joined is not None:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{workers} detect worker(s) did not finish {n_frames} frames in {timeout_s:.0f} s")
    finally:
        pipeline.stop()
        admin.close()
    counted = n_frames - joined_done
    return {"workers": workers, "frames_per_s": round(counted / max(now - joined, 1e-9), 3),
            "timed_frames": counted, "timed_s": round(now - joined, 2), "join_s": round(joined - launched, 2),
            "frames_before_all_joined": joined_done,
            "partitions_per_worker": sorted(sorted(p) for p in view.assignment.values())}


def run_scale_bench(bootstrap: str, n_frames: int, worker_counts: list[int], rounds: int, partitions: int, seed: int,
                    threads: int | None, workdir: Path) -> dict[str, Any]:
    """Produce the frames once, then time each worker count ``rounds`` times, alternating."""
    cores = os.cpu_count() or 1
    env = {"IBET_BUS__KAFKA__DEFAULT_PARTITIONS": str(partitions), "IBET_RUNNER__BATCH_MAX_RECORDS": "8",
           "IBET_DETECT__EVIDENCE__DIRECTORY": str(workdir / "evidence")}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        Pipeline(bootstrap, None, stages=(), console=False, env=env).create_topics()
        n_partitions = partition_count(admin, topics.FRAMES)
        start = end_offsets(admin, topics.FRAMES, n_partitions)
        per_sensor = produce_frames(bootstrap, n_frames, seed)
    finally:
        admin.close()
    key_partitions = {sensor: key_partition(sensor, n_partitions) for sensor in per_sensor}
    loaded = set(key_partitions.values())
    runs = []
    for r in range(rounds):
        for k in worker_counts:
            worker_threads = threads or max(1, cores // k)
            run_env = {**env, "IBET_DETECT__TORCH_THREADS": str(worker_threads)}
            result = time_group(bootstrap, k, start, n_frames, run_env, workdir / f"logs-r{r}-w{k}")
            result["every_worker_had_frames"] = all(set(p) & loaded for p in result["partitions_per_worker"])
            runs.append({**result, "round": r + 1, "torch_threads_per_worker": worker_threads})
            print(f"round {r + 1}, {k} worker(s): {result['frames_per_s']} frames/s", flush=True)
    fps = {k: statistics.median(x["frames_per_s"] for x in runs if x["workers"] == k) for k in worker_counts}
    base = worker_counts[0]
    return {"bench": "scale", "baseline": f"{base} detect worker", "frames": n_frames, "seed": seed,
            "partitions": n_partitions, "frames_per_sensor": per_sensor, "sensor_partitions": key_partitions,
            "cores": cores, "load_average_1m": round(os.getloadavg()[0], 2),
            **{f"frames_per_s_{k}_workers": v for k, v in fps.items()},
            "ratio": round(fps[worker_counts[-1]] / fps[base], 3) if fps[base] else None, "runs": runs}


def bench_scale_command(
    frames: Annotated[int, typer.Option(help="Frames produced once and consumed by every run (half per drone).")] = 200,
    workers: Annotated[str, typer.Option(help="Comma-separated worker counts; the ratio is last/first.")] = "1,2",
    rounds: Annotated[int, typer.Option(help="Runs per worker count, alternating; the median is reported.")] = 1,
    partitions: Annotated[int, typer.Option(help="Partitions of the topics if the bench creates them.")] = 4,
    seed: Annotated[int, typer.Option(help="Simulator seed (>= 201: never used in training).")] = 201,
    threads: Annotated[int | None, typer.Option(help="Torch threads per worker; default: cores / workers.")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="host:port of a broker; default: start a local one.")] = None,
) -> None:
    """Frames/s of the detect group with 1 vs 2 worker processes on the same frames (ratio 2/1)."""
    from ibet_app.bench.report import report
    from ibet_testing.kafka_broker import LocalKafkaBroker

    try:
        counts = [int(w) for w in workers.split(",") if w.strip()]
    except ValueError:
        raise typer.BadParameter(f"workers must be comma-separated integers, got {workers!r}") from None
    if len(counts) < 2 or min(counts) < 1 or frames < 2 * max(counts) or rounds < 1 or partitions < max(counts):
        raise typer.BadParameter("need >= 2 worker counts >= 1, frames >= 2 x workers, rounds >= 1, "
                                 "partitions >= workers")
    workdir = Path(tempfile.mkdtemp(prefix="ibet-bench-scale-"))
    broker = None if bootstrap else LocalKafkaBroker(workdir / "kafka", heap_mb=1024)
    try:
        servers = bootstrap or broker.start()
        result = run_scale_bench(servers, frames, counts, rounds, partitions, seed, threads, workdir)
    except (KafkaError, IbetError, RuntimeError) as exc:
        typer.echo(f"error: bench scale failed: {exc} (worker logs under {workdir})", err=True)
        raise typer.Exit(1) from None
    finally:
        if broker is not None:
            broker.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    rows = [[f"{x['workers']}w r{x['round']}", x["frames_per_s"], x["timed_frames"], x["timed_s"], x["join_s"],
             x["torch_threads_per_worker"], " ".join(",".join(map(str, p)) for p in x["partitions_per_worker"])]
            for x in result["runs"]]
    report("bench-scale", f"ibet bench scale: {frames} frames, {result['cores']} cores (load {result['load_average_1m']}), "
           f"ratio {result['ratio']}", ["workers", "frames/s", "frames", "s", "join s", "threads",
                                         "partitions"], rows, result)

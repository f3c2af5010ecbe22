"""``ibet bench ingest``: the drone push API against raw kafka-python producing the same frames,
and one real drone's push latency while strangers flood the API with wrong tokens.

Both sides send the same simulator JPEGs with the same FrameMeta headers to the same broker, from
the same number of client threads (each client a different enrolled drone, as in the field),
each waiting for its frame's acknowledgement before the next
(the API answers 202 only once Kafka has the frame). Rounds alternate. Reported: frames/s and MB/s
of each side, the ratio API / raw, and the HTTP overhead per frame (mean latency API - raw).

The flood part (:func:`run_token_flood_bench`): one drone pushes frames one after another, first
alone, then while another thread sends wrong tokens at ``flood_rps`` from ever new client addresses
(X-Forwarded-For through a trusted proxy, so no per-client limit stops them and each wrong token is
checked in full). Reported: the drone's p50/p99 latency quiet and flooded, with the drones' hashes
as enrolment stores them (sha256) and, as the baseline, as it stored them before (argon2id).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from kafka import KafkaProducer

from ibet import topics
from ibet.bus.kafka import KafkaBus, producer_config
from ibet.clock import SystemClock
from ibet.config import DatabaseSettings, IngestSettings, KafkaSettings
from ibet.db import make_engine, migrate
from ibet.registry import load_registry
from ibet_testing.http_server import serve_in_thread
from ingest import credentials
from ingest.frame_store import FrameLedger
from ingest.health import FeedHealth
from ingest.push_api import create_push_app
from sim.run import SimFrame, simulate
from sim.scenario import load_scenario, resolve_scenario

DRONE = "drone-vista-1"


@dataclass
class SideResult:
    frames_per_s: float
    mb_per_s: float
    mean_latency_ms: float


def drone_frames(seconds: float) -> list[SimFrame]:
    """The vista drone's frames of the first ``seconds`` of its scenario."""
    scenario = load_scenario(resolve_scenario("foot-crossing-forest-vista"))
    scenario = scenario.model_copy(update={"duration_s": seconds, "sensors": [s for s in scenario.sensors if s.id == DRONE]})
    return list(simulate(scenario).frames())


def _run_threads(clients: int, work) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=work, args=(i, latencies[i])) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, [x for lat in latencies for x in lat]


def _api_round(url: str, tokens: dict[str, str], frames: list[SimFrame], n: int, clients: int,
               tag: str) -> tuple[float, list[float]]:
    drones = sorted(tokens)

    def work(i: int, lat: list[float]) -> None:
        drone = drones[i % len(drones)]
        with httpx.Client(base_url=url, timeout=60) as client:
            for k in range(i, n, clients):
                frame = frames[k % len(frames)]
                t0 = time.perf_counter()
                answer = client.post(
                    f"/v1/sensors/{drone}/frames",
                    files={"frame": ("f.jpg", frame.jpeg, "image/jpeg"), "klv": ("f.klv", frame.klv, "application/octet-stream")},
                    data={"device_frame_id": f"{tag}-{k}", "capture_ts_ns": str(time.time_ns())},
                    headers={"Authorization": f"Bearer {tokens[drone]}"},
                )
                lat.append(time.perf_counter() - t0)
                if answer.status_code != 202:
                    raise RuntimeError(f"push API answered {answer.status_code}: {answer.text}")

    return _run_threads(clients, work)


def _raw_round(producer: KafkaProducer, frames: list[SimFrame], n: int, clients: int) -> tuple[float, list[float]]:
    def work(i: int, lat: list[float]) -> None:
        for k in range(i, n, clients):
            frame = frames[k % len(frames)]
            t0 = time.perf_counter()
            producer.send(topics.FRAMES, key=DRONE.encode(), value=frame.jpeg, headers=frame.meta.to_headers()).get(60)
            lat.append(time.perf_counter() - t0)

    return _run_threads(clients, work)


def run_ingest_bench(kafka: KafkaSettings, n: int, clients: int, rounds: int) -> dict:
    """Alternate API and raw rounds of ``n`` frames from ``clients`` threads; medians and ratio."""
    frames = drone_frames(10.0)
    mb = statistics.mean(len(f.jpeg) for f in frames) / 1e6
    work = Path(tempfile.mkdtemp(prefix="ibet-bench-ingest-"))
    registry_path = work / "registry.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "config" / "registry.yaml", registry_path)
    drones = [s.id for s in load_registry(registry_path).sensors if s.kind == "drone"][:clients]
    if len(drones) < clients:
        raise ValueError(f"the registry has {len(drones)} drones; use at most that many clients")
    tokens = {drone: credentials.enroll(registry_path, drone) for drone in drones}
    registry = load_registry(registry_path)
    bus = KafkaBus(kafka)
    bus.create_topics([topics.FRAMES, topics.SENSOR_HEALTH])
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{work}/ibet.sqlite3"))
    migrate(engine)
    clock = SystemClock()
    producer = bus.producer("bench-ingest-api")
    health = FeedHealth({d: (registry.sensor(d).sector_id, 0.5) for d in drones})
    settings = IngestSettings(rate_limit_fps=1e6, rate_limit_burst=1_000_000)
    app = create_push_app(settings, registry, producer, FrameLedger(engine, clock), clock, health)
    raw = KafkaProducer(**producer_config(kafka, "bench-ingest-raw"))
    sides: dict[str, list[tuple[float, list[float]]]] = {"api": [], "raw": []}
    try:
        with serve_in_thread(app) as url:
            for r in range(rounds):
                for side in (("api", "raw") if r % 2 == 0 else ("raw", "api")):
                    if side == "api":
                        sides["api"].append(_api_round(url, tokens, frames, n, clients, f"r{r}"))
                    else:
                        sides["raw"].append(_raw_round(raw, frames, n, clients))
    finally:
        raw.close()
        producer.close()
        engine.dispose()
    results = {}
    for side, runs in sides.items():
        fps = statistics.median(n / elapsed for elapsed, _ in runs)
        latency = statistics.mean(x for _, lat in runs for x in lat)
        results[side] = SideResult(fps, fps * mb, latency * 1000)
    return {
        "frames": n, "clients": clients, "rounds": rounds, "mean_frame_bytes": round(mb * 1e6),
        "api_frames_per_s": round(results["api"].frames_per_s, 1), "raw_frames_per_s": round(results["raw"].frames_per_s, 1),
        "api_mb_per_s": round(results["api"].mb_per_s, 2), "raw_mb_per_s": round(results["raw"].mb_per_s, 2),
        "api_mean_latency_ms": round(results["api"].mean_latency_ms, 2),
        "raw_mean_latency_ms": round(results["raw"].mean_latency_ms, 2),
        "http_overhead_ms_per_frame": round(results["api"].mean_latency_ms - results["raw"].mean_latency_ms, 2),
        "ratio": round(results["api"].frames_per_s / results["raw"].frames_per_s, 3),
    }


def _percentiles_ms(values_s: list[float]) -> tuple[float, float]:
    ordered = sorted(values_s)
    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)
    return at(0.50), at(0.99)


def _drone_latencies(url: str, drone: str, token: str, frames: list[SimFrame], n: int, tag: str) -> list[float]:
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for k in range(n):
            frame = frames[k % len(frames)]
            t0 = time.perf_counter()
            answer = client.post(
                f"/v1/sensors/{drone}/frames",
                files={"frame": ("f.jpg", frame.jpeg, "image/jpeg"), "klv": ("f.klv", frame.klv, "application/octet-stream")},
                data={"device_frame_id": f"{tag}-{k}", "capture_ts_ns": str(time.time_ns())},
                headers={"Authorization": f"Bearer {token}"})
            latencies.append(time.perf_counter() - t0)
            if answer.status_code != 202:
                raise RuntimeError(f"push API answered {answer.status_code}: {answer.text}")
    return latencies


def _flood(url: str, drone: str, rps: float, stop: threading.Event, sent: list[int]) -> None:
    """Wrong tokens for ``drone`` at ``rps``, each from a new client address behind the trusted proxy."""
    with httpx.Client(base_url=url, timeout=60) as client:
        k = 0
        next_at = time.perf_counter()
        while not stop.is_set():
            k += 1
            client.post(f"/v1/sensors/{drone}/frames", files={"frame": ("f.jpg", b"x", "image/jpeg")},
                        headers={"Authorization": f"Bearer {credentials.new_token()}",
                                 "X-Forwarded-For": f"198.18.{k // 250 % 250}.{k % 250 + 1}"})
            sent[0] += 1
            next_at += 1.0 / rps
            stop.wait(max(0.0, next_at - time.perf_counter()))


def run_token_flood_bench(kafka: KafkaSettings, n: int, flood_rps: float) -> dict:
    """The vista drone's p50/p99 push latency, quiet and under a wrong-token flood, for sha256 and
    legacy (argon2id) stored hashes; four drones enrolled, as in the issue that measured it."""
    from argon2 import PasswordHasher

    frames = drone_frames(5.0)
    work = Path(tempfile.mkdtemp(prefix="ibet-bench-flood-"))
    bus = KafkaBus(kafka)
    bus.create_topics([topics.FRAMES, topics.SENSOR_HEALTH])
    results: dict[str, dict] = {}
    for hashes in ("sha256", "argon2id"):
        registry_path = work / f"registry-{hashes}.yaml"
        shutil.copy(Path(__file__).resolve().parents[2] / "config" / "registry.yaml", registry_path)
        drones = [s.id for s in load_registry(registry_path).sensors if s.kind == "drone"][:4]
        tokens = {d: credentials.enroll(registry_path, d) for d in drones}
        if hashes == "argon2id":
            for d, token in tokens.items():
                credentials._set_credential(registry_path, d, PasswordHasher().hash(token), expect_enrolled=True)
        registry = load_registry(registry_path)
        engine = make_engine(DatabaseSettings(url=f"sqlite:///{work}/{hashes}.sqlite3"))
        migrate(engine)
        clock = SystemClock()
        producer = bus.producer(f"bench-flood-{hashes}")
        health = FeedHealth({d: (registry.sensor(d).sector_id, 0.5) for d in drones})
        settings = IngestSettings(rate_limit_fps=1e6, rate_limit_burst=1_000_000, trusted_proxies=["127.0.0.1"])
        app = create_push_app(settings, registry, producer, FrameLedger(engine, clock), clock, health)  # no upgrades
        try:
            with serve_in_thread(app) as url:
                _drone_latencies(url, DRONE, tokens[DRONE], frames, 5, f"{hashes}-warm")
                quiet = _drone_latencies(url, DRONE, tokens[DRONE], frames, n, f"{hashes}-quiet")
                stop, sent = threading.Event(), [0]
                flooder = threading.Thread(target=_flood, args=(url, DRONE, flood_rps, stop, sent))
                started = time.perf_counter()
                flooder.start()
                try:
                    flooded = _drone_latencies(url, DRONE, tokens[DRONE], frames, n, f"{hashes}-flooded")
                finally:
                    stop.set()
                    flooder.join()
                elapsed = time.perf_counter() - started
        finally:
            producer.close()
            engine.dispose()
        (q50, q99), (f50, f99) = _percentiles_ms(quiet), _percentiles_ms(flooded)
        results[hashes] = {"quiet_p50_ms": q50, "quiet_p99_ms": q99, "flooded_p50_ms": f50, "flooded_p99_ms": f99,
                           "ratio_p50": round(f50 / q50, 2), "ratio_p99": round(f99 / q99, 2),
                           "wrong_tokens_per_s": round(sent[0] / elapsed, 2)}
    return {"pushes": n, "flood_rps": flood_rps, "drones_enrolled": 4, **results}

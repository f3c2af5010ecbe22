"""Scale-out on the real broker: workers of the detect and fuse groups are SIGKILLed mid-run and
restarted, and nothing is lost.

The pipeline runs as separate processes (ibet_app.up.Pipeline): two detect workers and two fuse workers
in their consumer groups, one alerts worker delivering to a partner's real webhook endpoint, on a
Kafka broker of this module's own. Two scenarios with a true crossing each, in different sectors,
are fed at once (``ibet sim run --to kafka``, seeds never used in training): three sensors, two
sectors. With 4 partitions per topic the sensors' keys land in both halves of the frames topic and
the sectors' keys in both halves of the detections topic, so with the range assignor each of the
two workers of each group holds partitions that carry data; that is asserted before the kill.

Once every worker has committed work and about a third of the frames are detected, with frames
still waiting, one detect worker and one fuse worker are SIGKILLed (no shutdown, no commit of the
batch in hand) and started again (session timeout 6 s, so the group notices a silent member soon). When every group has caught up
(lag 0): every frame on ibet.frames.v1 has a DetectionBatch (redelivered duplicates allowed), and
each true crossing reached the partner as exactly one alert (distinct alert ids; the partner keeps
the latest version of each). Measured and printed (and written to reports/scale-test.json), not
asserted: each group's time to recover from the kill, and frames detected per second before the
kill, while a worker was down, and after the restarted worker rejoined.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from pipeline_samples import REPO, WebhookPartner, own_broker, pipeline_config
from scale_watch import GroupWatch, rate, recovery

from ibet import topics
from ibet.bus.kafka import KafkaBus
from ibet.config import KafkaSettings
from ibet.messages import DetectionBatch, FrameMeta
from ibet_app.bench.scale import committed_offsets, group_lag, key_partition
from ibet_app.up import Pipeline
from sim.scenario import load_scenario, resolve_scenario

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(1500)]

SECRET = "scale-test-partner-secret"
SEED = 203  # training used seeds 1-6 and 101
SCENARIOS = ("foot-crossing-forest-vista", "vehicle-rural-road-tower")
PARTITIONS = 4
INPUTS = {"detect": topics.FRAMES, "fuse": topics.DETECTIONS}  # the scaled groups and their input topic
WORKERS = 2
KILLED = ("detect-1", "fuse-1")
KILL_AFTER_SHARE = 0.3  # of the scenarios' frames detected (and committed) before the kill: a before-rate to measure


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[str]:
    yield from own_broker(tmp_path_factory.mktemp("scale-kafka"))


@pytest.fixture(scope="module")
def partner() -> Iterator[WebhookPartner]:
    made = WebhookPartner(SECRET)
    yield made
    made.stop()


@pytest.fixture
def pipeline(broker, partner, tmp_path) -> Iterator[Pipeline]:
    """detect x2, fuse x2, alerts x1 as processes; registry contacts pointed at the partner."""
    config, env = pipeline_config(tmp_path, partner, {
        "runner": {"poll_timeout_s": 0.2, "batch_max_records": 4},  # small batches: a kill loses little
        "database": {"url": f"sqlite:///{tmp_path / 'ibet.sqlite3'}"},
        "alerts": {"channels": ["webhook"], "delivery_poll_s": 0.2, "api_port": 0, "exercise": True},
        "detect": {"evidence": {"directory": str(tmp_path / "evidence")}, "torch_threads": 1, "batch_size": 4},
    })
    env.update({"IBET_BUS__KAFKA__DEFAULT_PARTITIONS": str(PARTITIONS),
                "IBET_BUS__KAFKA__SESSION_TIMEOUT_MS": "6000", "IBET_BUS__KAFKA__HEARTBEAT_INTERVAL_MS": "1000"})
    made = Pipeline(broker, config, stages=("detect", "fuse", "alerts"), console=False, log_dir=tmp_path / "logs",
                    env=env, replicas={"detect": WORKERS, "fuse": WORKERS})
    made.folder = tmp_path  # type: ignore[attr-defined]
    made.start()
    yield made
    made.stop()


def _wait(what: str, pipeline: Pipeline, check: Callable[[], bool], timeout_s: float, allow_dead: bool = False) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = pipeline.dead()
        assert allow_dead or not dead, {c.name: pipeline.tail(c.name) for c in dead}
        if check():
            return
        time.sleep(0.5)
    logs = {c.name: pipeline.tail(c.name, 1500) for c in pipeline.children}
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; logs: {logs}")


def _read_all(bootstrap: str, topic: str) -> list:
    bus = KafkaBus(KafkaSettings(bootstrap_servers=[bootstrap]))
    return [r for p in range(PARTITIONS) for r in bus.read_partition(topic, p, timeout_s=120)]


def _true_crossings(out_dirs: list[Path]) -> Counter:
    """(sector, direction) -> how many true crossings the simulator wrote into its truth files."""
    found: Counter = Counter()
    for out in out_dirs:
        run = json.loads((out / "truth" / "run.json").read_text())
        sector = load_scenario(resolve_scenario(run["scenario"])).sector_id
        for event in json.loads((out / "truth" / "events.json").read_text()):
            if event["kind"] == "crossing":
                found[(sector, event["direction"])] += 1
    return found


def test_killed_detect_and_fuse_workers_lose_no_frame_and_alert_each_crossing_once(pipeline, partner):
    bootstrap = pipeline.bootstrap
    scenarios = [load_scenario(resolve_scenario(name)) for name in SCENARIOS]
    sensors = {s.id for sc in scenarios for s in sc.sensors}
    sectors = {sc.sector_id for sc in scenarios}
    assert len(sensors) >= 2 and len(sectors) >= 2
    loaded = {"detect": {key_partition(s, PARTITIONS) for s in sensors},
              "fuse": {key_partition(s, PARTITIONS) for s in sectors}}
    watch = GroupWatch(bootstrap, INPUTS).start()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    feeds: list[subprocess.Popen] = []
    try:
        def groups_complete() -> bool:
            views = [watch.latest(g) for g in INPUTS]
            return all(v is not None and len(v.assignment) == WORKERS and v.holds_all(PARTITIONS) for v in views)

        _wait("both workers of each group to join", pipeline, groups_complete, 300)
        out_dirs = [pipeline.folder / f"feed-{name}" for name in SCENARIOS]
        for name, out in zip(SCENARIOS, out_dirs, strict=True):
            log = open(pipeline.folder / f"feed-{name}.log", "wb")  # noqa: SIM115 - closed below
            feeds.append(subprocess.Popen([sys.executable, "-m", "ibet_app.cli", "sim", "run", name, "--to", "kafka",
                                           "--seed", str(SEED), "--config", str(pipeline.config), "--out", str(out)],
                                          env=pipeline.environment(), stdout=log, stderr=subprocess.STDOUT))
            log.close()

        planned = sum(int(sc.duration_s * s.frame_rate_hz) for sc in scenarios for s in sc.sensors)

        def every_worker_committed() -> bool:
            if sum(committed_offsets(admin, "detect", topics.FRAMES).values()) < KILL_AFTER_SHARE * planned:
                return False
            for group, topic in INPUTS.items():
                done = {p for p, o in committed_offsets(admin, group, topic).items() if o > 0}
                if any(not held & done for held in watch.latest(group).assignment.values()):
                    return False
            return True

        _wait(f"every worker of each group to commit work, {KILL_AFTER_SHARE:.0%} of the frames", pipeline, every_worker_committed, 600)

        # Before the kill: both workers of each group hold partitions that carry data, and the run is on.
        before = {}
        for group in INPUTS:
            view = watch.latest(group)
            assert view.holds_all(PARTITIONS) and len(view.assignment) == WORKERS, (group, view)
            for member, held in view.assignment.items():
                assert held & loaded[group], f"{group} worker {member} holds {sorted(held)}: no data there {loaded[group]}"
            before[group] = frozenset(view.assignment)
        frames_lag = group_lag(admin, "detect", topics.FRAMES)
        assert frames_lag or any(f.poll() is None for f in feeds), "the run ended before the kill"

        kill_s = time.time()
        for name in KILLED:
            process = pipeline.child(name).process
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        for name in KILLED:
            pipeline.restart(name)

        for feed, name in zip(feeds, SCENARIOS, strict=True):
            assert feed.wait(900) == 0, (pipeline.folder / f"feed-{name}.log").read_text()[-3000:]
        quiet = []

        def caught_up() -> bool:
            lags = [group_lag(admin, g, t) for g, t in (*INPUTS.items(), ("alerts", topics.EVENTS))]
            quiet.append(all(lag == 0 for lag in lags))
            return quiet[-3:] == [True] * 3

        _wait("every group to reach lag 0", pipeline, caught_up, 900)
        seen: list[int] = []

        def deliveries_settled() -> bool:  # no new webhook call for 5 s (the outbox polls every 0.2 s)
            seen.append(len(partner.documents))
            return len(seen) > 10 and seen[-1] == seen[-11]

        _wait("the partner's deliveries to settle", pipeline, deliveries_settled, 120)
    finally:
        watch.stop()
        admin.close()
        for feed in feeds:
            if feed.poll() is None:
                feed.kill()
                feed.wait(30)

    # The killed workers' groups recovered, and the restarted workers took partitions again.
    recovered = {g: recovery(watch.history(g), before[g], kill_s, PARTITIONS, WORKERS) for g in INPUTS}
    for group, rec in recovered.items():
        assert rec.failover_s is not None, f"{group}: no member left the group after the kill"
        assert rec.rejoin_s is not None, f"{group}: the restarted worker never rejoined with partitions"
        assert rec.rejoined_view.assignment[rec.restarted_member], f"{group}: the restarted worker holds nothing"

    # Every frame produced has at least one DetectionBatch (duplicates from redelivery are allowed).
    frame_records = _read_all(bootstrap, topics.FRAMES)
    frames = [FrameMeta.from_headers(r.headers) for r in frame_records]
    detection_records = _read_all(bootstrap, topics.DETECTIONS)
    batches = [DetectionBatch.from_bytes(r.value) for r in detection_records]
    # (the keys landed where the spread asserted before the kill said they would)
    assert all(r.partition == key_partition(f.sensor_id, PARTITIONS) for r, f in zip(frame_records, frames, strict=True))
    assert all(r.partition == key_partition(b.sector_id, PARTITIONS) for r, b in zip(detection_records, batches, strict=True))
    produced = {(f.sensor_id, f.sequence) for f in frames}
    detected = Counter((b.sensor_id, b.frame_sequence) for b in batches)
    assert len(produced) == len(frames) and {s for s, _ in produced} == sensors
    missing = sorted(produced - set(detected))
    assert not missing, f"{len(missing)} of {len(produced)} frames have no DetectionBatch: {missing[:20]}"

    # Each true crossing was alerted exactly once (distinct alert ids), in its sector and direction.
    truth = _true_crossings(out_dirs)
    assert sum(truth.values()) >= 2, truth
    crossing_alerts = [a for a in partner.alerts().values() if a["title"].startswith("Crossing")]
    alerted = Counter((a["sector_id"], a["direction"]) for a in crossing_alerts)
    assert alerted == truth, {"truth": dict(truth), "alerted": [(a["alert_id"], a["title"]) for a in crossing_alerts]}
    assert partner.bad_signatures == 0

    # Measured, not asserted: recovery times and detect throughput around the kill.
    stamps = [r.timestamp_ms / 1000 for r in detection_records]
    rejoined_s = kill_s + recovered["detect"].rejoin_s
    figures = {
        "frames": len(produced), "detection_batches": len(batches),
        "redelivered_duplicates": sum(n - 1 for n in detected.values()),
        **{f"{g}_{k}": round(v, 2) for g, rec in recovered.items()
           for k, v in (("failover_s", rec.failover_s), ("rejoin_s", rec.rejoin_s))},
        "kill_after_s": round(kill_s - min(stamps), 1), "detect_done_after_kill_s": round(max(stamps) - kill_s, 1),
        "frames_per_s_before_kill": round(rate(stamps, min(stamps), kill_s), 2),
        "frames_per_s_one_worker_down": round(rate(stamps, kill_s, rejoined_s) or 0.0, 2),
        "frames_per_s_after_rejoin": round(rate(stamps, rejoined_s, max(stamps)) or 0.0, 2),
        "crossings": {f"{s} {d}": n for (s, d), n in truth.items()}, "watch_errors": len(watch.errors),
    }
    print("scale test:", json.dumps(figures))
    reports = REPO / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "scale-test.json").write_text(json.dumps(figures, indent=1) + "\n")

"""A worker killed between "outputs flushed" and "offsets committed" loses nothing on restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from ibet.bus.base import OutRecord

WORKER = Path(__file__).with_name("crash_worker.py")
N = 300


def start_worker(
    bootstrap: str, topics: tuple[str, str], group: str, marker: str, idle_stop_s: float, delay_s: float = 0
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), bootstrap, *topics, group, marker, str(idle_stop_s), str(delay_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def committed_offsets(bootstrap: str, group: str) -> dict:
    """The group's committed offsets per partition (kafka-python 3 answers {group: {tp: offset}})."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return dict(admin.list_group_offsets(group).get(group, {}))
    finally:
        admin.close()


@pytest.mark.kafka
def test_sigkill_between_flush_and_commit_loses_nothing(kafka_bus, kafka_bootstrap, produce, drain, unique, tmp_path):
    in_topic, out_topic, group = f"alo-in-{unique}", f"alo-out-{unique}", f"alo-{unique}"
    kafka_bus.create_topics([in_topic, out_topic], partitions=3)
    produce([OutRecord(in_topic, str(i % 7).encode(), json.dumps({"id": i}).encode()) for i in range(N)])

    marker = tmp_path / "paused.json"
    first = start_worker(kafka_bootstrap, (in_topic, out_topic), group, str(marker), 30)
    deadline = time.monotonic() + 90
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"worker never reached the pause point: {first.communicate(timeout=5)}"
    paused = json.loads(marker.read_text())

    # Prove the kill hits the moment that matters: the batch's outputs are on the broker...
    flushed = drain(out_topic, at_least=paused["batch"], timeout_s=30)
    assert len(flushed) == paused["batch"]
    # ...and its offsets are not committed.
    assert committed_offsets(kafka_bootstrap, group) == {}
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    second = start_worker(kafka_bootstrap, (in_topic, out_topic), group, "-", 4)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]

    outputs = drain(out_topic, at_least=N + paused["batch"], timeout_s=60)
    ids = [json.loads(r.value)["id"] for r in outputs]
    assert set(ids) == set(range(N)), f"lost ids: {sorted(set(range(N)) - set(ids))[:20]}"
    # The killed batch was consumed again: its outputs are there twice (harmless duplicates).
    assert len(ids) == N + paused["batch"]
    assert json.loads(out.strip().splitlines()[-1])["consumed"] == N


@pytest.mark.kafka
def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(kafka_bus, kafka_bootstrap, produce, drain, unique):
    in_topic, out_topic, group = f"term-in-{unique}", f"term-out-{unique}", f"term-{unique}"
    kafka_bus.create_topics([in_topic, out_topic], partitions=3)
    produce([OutRecord(in_topic, str(i % 5).encode(), json.dumps({"id": i}).encode()) for i in range(N)])

    worker = start_worker(kafka_bootstrap, (in_topic, out_topic), group, "-", 60, delay_s=0.02)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not drain(out_topic, at_least=1, timeout_s=2, settle_s=0):
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)  # mid-stream: 300 records at 20 ms each take 6 s
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err[-3000:]
    consumed = json.loads(out.strip().splitlines()[-1])["consumed"]
    assert 0 < consumed < N

    committed = committed_offsets(kafka_bootstrap, group)
    assert sum(meta.offset for meta in committed.values()) == consumed  # the batch in hand was committed
    outputs = drain(out_topic, at_least=consumed)
    assert len(outputs) == consumed  # and nothing was produced twice

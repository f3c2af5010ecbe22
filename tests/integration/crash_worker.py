"""A stage worker run as its own process by test_at_least_once.py, so the test can SIGKILL it.

usage: crash_worker.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP PAUSE_MARKER|- IDLE_STOP_S [DELAY_S]

The stage copies each input ``{"id": N}`` to OUT_TOPIC. With a PAUSE_MARKER path, the worker
stops at the test-only pause point between "outputs flushed" and "offsets committed": it writes
the marker (the batch's size and offsets as JSON) and sleeps, so the test can kill it exactly
there. With "-" it runs normally until idle for IDLE_STOP_S seconds (or SIGTERM), taking
DELAY_S per record. On exit it prints its counts and the offsets it committed as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ibet.bus.base import OutRecord, Record
from ibet.bus.kafka import KafkaBus
from ibet.config import KafkaSettings, RunnerSettings
from ibet.runner import StageRunner
from ibet.stage import FunctionStage


class PauseBeforeCommit:
    def __init__(self, marker: Path):
        self.marker = marker

    def before_commit(self, records: Sequence[Record]) -> None:
        offsets = [[r.partition, r.offset] for r in records]
        self.marker.write_text(json.dumps({"batch": len(records), "offsets": offsets}))
        time.sleep(3600)  # the test kills the process here


def main(bootstrap: str, in_topic: str, out_topic: str, group: str, marker: str, idle_stop_s: str, delay_s: str = "0") -> None:
    settings = KafkaSettings(bootstrap_servers=[bootstrap], linger_ms=1, session_timeout_ms=6000, heartbeat_interval_ms=1000)

    def copy(record: Record) -> list[OutRecord]:
        time.sleep(float(delay_s))
        return [OutRecord(out_topic, record.key, record.value)]

    stage = FunctionStage(group, [in_topic], copy)
    hooks = PauseBeforeCommit(Path(marker)) if marker != "-" else None
    runner = StageRunner(stage, KafkaBus(settings), RunnerSettings(batch_max_records=50, poll_timeout_s=0.5), hooks=hooks)
    print("running", flush=True)
    runner.run(idle_stop_s=float(idle_stop_s))
    print(json.dumps({"consumed": runner.stats.consumed, "produced": runner.stats.produced}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

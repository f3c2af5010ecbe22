"""The stage runner shared by every stage: consume a batch, process it, produce, flush, commit.

At-least-once lives in one ordered method, :meth:`StageRunner.process_and_commit`. A crash at
any point before the commit means the batch is consumed again; the outputs it may already have
produced are duplicates that downstream ids make harmless.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ibet.bus.base import Bus, Record, TopicPartition, next_offsets
from ibet.bus.exceptions import CommitError, RecordTooLargeError
from ibet.config import RunnerSettings
from ibet.dead_letter import dead_letter
from ibet.metrics import StageMetrics
from ibet.stage import Stage

log = logging.getLogger(__name__)


class RunnerHooks(Protocol):
    """Points where a test can stop the runner to prove what a crash there does."""

    def before_commit(self, records: Sequence[Record]) -> None: ...


class _NoHooks:
    def before_commit(self, records: Sequence[Record]) -> None:
        return None


@dataclass
class RunStats:
    batches: int = 0
    consumed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    state_not_saved: int = 0
    commit_failures: int = 0


class StageRunner:
    """Runs one stage on a bus as a member of the consumer group named after the stage.

    A stage with ``state_topic``, ``restore``, ``forget`` and ``snapshot`` (see
    :class:`~ibet.stage.StatefulStage`) has its state saved and reloaded with its partitions. If it
    also has ``state_interval_s`` > 0, its state is saved and the input committed together at most
    that often (a checkpoint) rather than after every batch, and when the runner stops; between
    checkpoints outputs are produced and flushed as usual. A worker that dies replays the input
    since the last checkpoint from the state saved with it: duplicates, never loss, as before.
    """

    def __init__(
        self,
        stage: Stage,
        bus: Bus,
        settings: RunnerSettings | None = None,
        hooks: RunnerHooks | None = None,
        client_id: str | None = None,
    ):
        self.stage = stage
        self.settings = settings or RunnerSettings()
        self.hooks = hooks or _NoHooks()
        self.metrics = StageMetrics(stage.name)
        self.stats = RunStats()
        self.busy = False
        client_id = client_id or f"ibet-{stage.name}"
        self.bus = bus
        self.consumer = bus.consumer(group_id=stage.name, client_id=client_id)
        self.producer = bus.producer(client_id=client_id)
        self._stop = threading.Event()
        self._stateful = all(hasattr(stage, name) for name in ("state_topic", "restore", "forget", "snapshot"))
        self._restored: dict[int, set[bytes]] = {}  # input partition -> keys whose state is loaded
        self._state_interval_s = float(getattr(stage, "state_interval_s", 0.0) or 0.0) if self._stateful else 0.0
        self._last_checkpoint = float("-inf")
        self._uncommitted: dict[TopicPartition, int] = {}  # processed since the last checkpoint

    def stop(self) -> None:
        """Ask the loop to stop after the batch in hand is produced and committed."""
        self._stop.set()

    def run(self, idle_stop_s: float | None = None) -> RunStats:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT in the main thread), then close.

        With ``idle_stop_s``, also stop once no record has arrived for that many seconds while
        the consumer held partitions (waiting for a rebalance does not count as idle).
        """
        self._install_signal_handlers()
        self.consumer.subscribe(self.stage.input_topics)
        last_record = time.monotonic()
        start_workers = getattr(self.stage, "start_workers", None)  # work beside the stage (alert delivery)
        if start_workers is not None:
            start_workers(self.bus)
        try:
            while not self._stop.is_set():
                if self.run_once() or not self.consumer.assignment():
                    last_record = time.monotonic()
                elif idle_stop_s is not None and time.monotonic() - last_record >= idle_stop_s:
                    break
                elif self._uncommitted and time.monotonic() - self._last_checkpoint >= self._state_interval_s:
                    self.checkpoint()  # idle: what is processed gets saved without waiting for a batch
        except BaseException:
            self.close(checkpoint=False)  # a failure: the next owner replays from the last checkpoint
            raise
        self.close()
        return self.stats

    def run_once(self) -> int:
        """Poll one batch and take it through to the commit; return how many records it had."""
        records = self.consumer.poll(self.settings.batch_max_records, self.settings.poll_timeout_s)
        if self._stateful:
            self._forget_revoked()
        if records:
            self.busy = True  # a batch in hand: consumed from the bus, not yet produced and committed
            try:
                with self.metrics.processing_seconds.time():
                    self.process_and_commit(records)
            finally:
                self.busy = False
        self.metrics.lag(self.consumer.lag())
        return len(records)

    def process_and_commit(self, records: Sequence[Record]) -> None:
        """Process ``records`` and commit them, at least once, in this order:"""
        for r in records:
            self.metrics.consumed(r.topic)
        self.stats.consumed += len(records)

        # 0. Stateful stages: load the saved state of partitions new to this worker first.
        if self._stateful:
            self._restore_state(records)

        # 1. Process: the stage's pure function gives, per record, outputs or an error.
        outcomes = self.stage.process_batch(records)
        if len(outcomes) != len(records):
            raise RuntimeError(f"stage {self.stage.name} returned {len(outcomes)} outcomes for {len(records)} records")

        # 2. Produce the outputs; a record that failed, or whose output the bus refuses as too
        #    large, goes to its dead-letter topic instead with the error, and the batch goes on.
        for record, outcome in zip(records, outcomes, strict=True):
            error = outcome.error
            if error is None:
                try:
                    for out in outcome.outputs:
                        self.producer.send(out)
                        self.metrics.produced(out.topic)
                        self.stats.produced += 1
                except RecordTooLargeError as exc:
                    error = exc
            if error is not None:
                log.warning("%s: dead-lettering %s[%d]@%d: %s", self.stage.name, record.topic, record.partition,
                            record.offset, error)
                self.producer.send(dead_letter(record, error, self.stage.name))
                self.metrics.dead_lettered(record.topic)
                self.stats.dead_lettered += 1

        # 2b. Stateful stages: their state as of this batch goes out in the same flush as the
        #     commit, so the saved state always matches the committed offsets (or is newer, never
        #     older). With a state interval that happens at checkpoints only; between them the
        #     batch's offsets wait in ``_uncommitted``.
        due = not self._stateful or time.monotonic() - self._last_checkpoint >= self._state_interval_s
        if self._stateful and due:
            self._send_state()

        # 3. Flush: block until the bus acknowledges everything sent above. If any record is
        #    unproduced this raises, nothing is committed, and the batch will be consumed again.
        self.producer.flush(self.settings.flush_timeout_s)
        self._uncommitted.update(next_offsets(records))
        self.stats.batches += 1
        if due:
            self._commit(records)

    def checkpoint(self) -> None:
        """Save the state and commit everything processed since the last checkpoint."""
        if self._stateful:
            self._send_state()
        self.producer.flush(self.settings.flush_timeout_s)
        self._commit(())

    def _send_state(self) -> None:
        """The stage's state records. A state record over the bus's limit is not saved (an error
        log and a metric): the batch still commits, the worker keeps the state in memory and goes
        on, and a worker that takes the partition over starts that key from its last saved state.
        Never a crash that would make every successor die on the same batch."""
        for state in self.stage.snapshot():
            try:
                self.producer.send(state)
            except RecordTooLargeError as exc:
                self.metrics.state_not_saved.inc()
                self.stats.state_not_saved += 1
                log.error("%s: state of %r not saved: %s", self.stage.name,
                          (state.key or b"").decode("utf-8", "replace"), exc)

    def _commit(self, records: Sequence[Record]) -> None:
        """4. Commit the consumed offsets, now that every output is durable. A commit refused
        because the group rebalanced means the new owner re-reads the batch: duplicates, never loss."""
        self.hooks.before_commit(records)
        offsets, self._uncommitted = self._uncommitted, {}
        self._last_checkpoint = time.monotonic()
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except CommitError as exc:
            log.warning("%s: %s", self.stage.name, exc)
            self.metrics.commit_failures.inc()
            self.stats.commit_failures += 1

    def _forget_revoked(self) -> None:
        """Drop the state of partitions the group has given to another worker (and their
        uncommitted offsets: the new owner replays them from the last checkpoint)."""
        held = self.consumer.assignment()
        assigned = {tp.partition for tp in held if tp.topic in self.stage.input_topics}
        for partition in [p for p in self._restored if p not in assigned]:
            self.stage.forget(self._restored.pop(partition))
        self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp in held}

    def _restore_state(self, records: Sequence[Record]) -> None:
        """Reload the saved state of input partitions this worker did not hold yet."""
        for partition in sorted({r.partition for r in records} - set(self._restored)):
            saved = self.bus.read_partition(self.stage.state_topic, partition, self.settings.flush_timeout_s)
            self.stage.restore(saved)
            self._restored[partition] = {r.key for r in saved if r.key is not None}
        for r in records:
            if r.key is not None:
                self._restored[r.partition].add(r.key)

    def close(self, checkpoint: bool = True) -> None:
        """Stop the stage's workers, leave the group and close the producer (all produced is flushed).
        With ``checkpoint`` (a clean stop) what was processed since the last checkpoint is saved first."""
        if checkpoint and self._uncommitted:
            self.checkpoint()
        stop_workers = getattr(self.stage, "stop_workers", None)
        if stop_workers is not None:
            stop_workers()
        self.consumer.close()
        self.producer.close()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # the embedded mode's threads are stopped by their owner
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self._on_signal(signum))

    def _on_signal(self, signum: int) -> None:
        if self._stop.is_set():  # a second signal: the operator does not want to wait
            raise SystemExit(128 + signum)
        log.info("%s: %s received, finishing the batch in hand", self.stage.name, signal.Signals(signum).name)
        self.stop()

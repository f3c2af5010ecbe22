"""Deliveries sent continuously: each partner's lane keeps its own sends in flight, and no pass waits.

:class:`DeliveryPump` is what the delivery worker runs (:func:`alerts.delivery.deliver_due` is one
of its turns run until everything claimed is recorded). Each
:meth:`~DeliveryPump.step` records the sends that finished (the successes in one transaction),
claims as many due deliveries as there is room for, and starts the sends their lanes allow; sends
run on a pool of threads and wake the worker when they finish. So:

- a lane (:func:`alerts.delivery.lane_of`: one per partner and channel, one per TAK server for CoT)
  has up to ``channel.lane_concurrency`` sends in flight (1 when the channel does not say: a CoT
  stream or an SMTP session is one connection; the HTTP channels say how many their client allows);
- a lane that is full (that many in flight and ``lane_queue`` times as many waiting) is left out of
  the next claims, so one slow partner's backlog stays in the outbox and does not take the others'
  room;
- a lane whose send is to be retried (the endpoint is down or not answering) is held until that
  delivery's next attempt: what it had waiting, and what is claimed for it meanwhile, is recorded as
  not tried and retried with it, so a dead endpoint costs one timeout per retry, not one per alert.

Ordering holds as before: the outbox never hands out two versions of one alert for one partner and
channel at once (:meth:`alerts.outbox.Outbox.due`), so concurrent sends never cross versions.

    >>> pump = DeliveryPump(outbox, {"webhook": channel})  # doctest: +SKIP
    >>> pump.step()  # doctest: +SKIP
    DeliveryStats(claimed=12, delivered=0, retried=0, dead=0)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from alerts.delivery import DELIVERIES, MAX_DETAIL_CHARS, Channel, DeliveryStats, Outcome, SendResult, lane_of, record_failure
from alerts.outbox import PENDING, DeliveryJob, Outbox

log = logging.getLogger(__name__)


@dataclass
class _Lane:
    limit: int  # sends in flight at once
    waiting: deque[DeliveryJob] = field(default_factory=deque)
    in_flight: int = 0
    held_until_ns: int = 0  # while held, nothing is sent: the endpoint failed
    held_because: str = ""
    pairs: set[tuple[str, str]] = field(default_factory=set)  # (partner, channel) of its deliveries


class DeliveryPump:
    """Continuous delivery over ``channels`` (by channel name); see the module doc.

    ``batch``: most deliveries claimed in one claim. ``max_in_flight``: sends in flight at once over
    every lane (the thread pool). ``lane_queue``: claimed deliveries a lane may hold waiting, per
    send it may have in flight (few, so that none waits out its lease behind a slow endpoint).
    ``on_done``: called from a send's thread when it finished (wake the worker). ``poll_s``: the
    longest a turn goes without claiming.
    """

    def __init__(self, outbox: Outbox, channels: Mapping[str, Channel], *, batch: int = 250, max_in_flight: int = 64,
                 lane_queue: int = 4, on_done: Callable[[], None] | None = None, poll_s: float = 0.5):
        if batch < 1 or max_in_flight < 1 or lane_queue < 0:
            raise ValueError(f"batch and max_in_flight must be >= 1 and lane_queue >= 0, got {batch}, {max_in_flight}, "
                             f"{lane_queue}")
        self.outbox, self.channels = outbox, dict(channels)
        self.batch, self.max_in_flight, self.lane_queue = batch, max_in_flight, lane_queue
        self.on_done = on_done
        self._lanes: dict[Hashable, _Lane] = {}
        self._finished: queue.SimpleQueue[tuple[Hashable, DeliveryJob, SendResult]] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="alerts-send")
        self._held_jobs = 0  # claimed and not yet recorded (waiting or in flight)
        self._sent = threading.Event()  # a send finished
        self._lock = threading.Lock()  # step() and close() from different threads
        # Claims cost a query: a turn claims only when something may be due (see :meth:`recorded`),
        # its last claim filled the batch, a full lane got room, or ``poll_s`` passed (other
        # processes' records, retries coming due).
        self.poll_s = poll_s
        self._may_be_due = True
        self._claimed_at = float("-inf")

    def recorded(self) -> None:
        """Deliveries were just recorded in this process: the next turn claims."""
        self._may_be_due = True

    @property
    def holding(self) -> int:
        """Deliveries claimed and not yet recorded (waiting in a lane or being sent)."""
        return self._held_jobs

    def step(self, now_ns: int | None = None) -> DeliveryStats:
        """Record what finished, claim what there is room for, start what the lanes allow."""
        with self._lock:
            stats = DeliveryStats()
            self._record_finished(stats)
            now_ns = self.outbox.clock.now_ns() if now_ns is None else now_ns
            self._claim(now_ns, stats)
            self._start()
            return stats

    def drain(self, timeout_s: float = 300.0) -> DeliveryStats:
        """Claim nothing more; send everything claimed and record it, then return (``deliver_due``).
        Raises TimeoutError if sends are still in flight after ``timeout_s``."""
        stats = DeliveryStats()
        deadline = time.monotonic() + timeout_s
        while True:
            self._sent.clear()
            with self._lock:
                self._record_finished(stats)
                self._start()
                if self._held_jobs == 0:
                    return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._held_jobs} deliveries still unrecorded after {timeout_s} s")
            self._sent.wait(0.05)

    def close(self, timeout_s: float = 30.0) -> DeliveryStats:
        """Send nothing more; wait for the sends in flight (each ends within its channel's timeout)
        and record them. What was claimed and still waiting goes back to the outbox, due at once
        and not counted as an attempt, for whichever worker claims next."""
        with self._lock:
            waiting = [job for lane in self._lanes.values() for job in lane.waiting]
            for lane in self._lanes.values():
                lane.waiting.clear()
            self._held_jobs -= len(waiting)
            if waiting:
                self.outbox.release_many([job.key for job in waiting])
        self._pool.shutdown(wait=True, cancel_futures=False)
        with self._lock:
            stats = DeliveryStats()
            self._record_finished(stats)
            return stats

    # The turn
    def _record_finished(self, stats: DeliveryStats) -> None:
        finished = []
        while True:
            try:
                finished.append(self._finished.get_nowait())
            except queue.Empty:
                break
        if not finished:
            return
        now_ns = self.outbox.clock.now_ns()
        delivered = [job for _, job, result in finished if result.outcome is Outcome.DELIVERED]
        self.outbox.delivered_many([job.key for job in delivered], now_ns)
        for job in delivered:
            DELIVERIES.labels(job.partner_id, job.channel, "delivered").inc()
        stats.delivered += len(delivered)
        for lane_key, job, result in finished:
            lane = self._lanes[lane_key]
            if self._full(lane):
                self._may_be_due = True  # a full lane, left out of the claims, gets room
            lane.in_flight -= 1
            self._held_jobs -= 1
            if result.outcome is Outcome.DELIVERED:
                continue
            before = stats.dead
            record_failure(self.outbox, job, result, now_ns, stats)
            if result.outcome is Outcome.RETRY and stats.dead == before:
                self._hold(lane_key, job, result, now_ns, stats)

    def _hold(self, lane_key: Hashable, job: DeliveryJob, result: SendResult, now_ns: int, stats: DeliveryStats) -> None:
        """The lane's endpoint failed: nothing more is sent on it until ``job`` is due again."""
        record = self.outbox.get(job.key)
        lane = self._lanes[lane_key]
        if record is not None and record.status == PENDING:
            lane.held_until_ns = max(lane.held_until_ns, record.next_attempt_ns)
            lane.held_because = result.detail
        while lane.waiting:
            self._not_tried(lane.waiting.popleft(), lane.held_because or result.detail, now_ns, stats)

    def _not_tried(self, job: DeliveryJob, because: str, now_ns: int, stats: DeliveryStats) -> None:
        self._held_jobs -= 1
        record_failure(self.outbox, job, SendResult(Outcome.RETRY, f"not tried: {because}"[:MAX_DETAIL_CHARS]),
                        now_ns, stats)

    def _claim(self, now_ns: int, stats: DeliveryStats) -> None:
        room = min(self.batch, self.max_in_flight + self.batch - self._held_jobs)
        if room <= 0 or not (self._may_be_due or time.monotonic() - self._claimed_at >= self.poll_s):
            return
        self._may_be_due, self._claimed_at = False, time.monotonic()
        full = [pair for lane in self._lanes.values() if self._full(lane) for pair in lane.pairs]
        jobs = self.outbox.due(now_ns, room, channels=list(self.channels), excluding=full)
        self._may_be_due = len(jobs) == room  # a full claim: there may be more
        stats.claimed += len(jobs)
        self._held_jobs += len(jobs)
        for job in jobs:
            channel = self.channels[job.channel]
            key = lane_of(channel, job)
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane(max(1, int(getattr(channel, "lane_concurrency", 1))))
            lane.pairs.add((job.partner_id, job.channel))
            if lane.held_until_ns > now_ns:
                self._not_tried(job, lane.held_because, now_ns, stats)
            else:
                lane.waiting.append(job)

    def _full(self, lane: _Lane) -> bool:
        return len(lane.waiting) + lane.in_flight >= lane.limit * (1 + self.lane_queue)

    def _start(self) -> None:
        for key, lane in self._lanes.items():
            while lane.waiting and lane.in_flight < lane.limit:
                job = lane.waiting.popleft()
                lane.in_flight += 1
                self._pool.submit(self._send, key, job)

    def _send(self, lane_key: Hashable, job: DeliveryJob) -> None:
        try:
            result = self.channels[job.channel].send(job, self.outbox.clock.now_ns())
        except Exception as exc:  # noqa: BLE001 - one broken send must not lose the job
            result = SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        self._finished.put((lane_key, job, result))
        self._sent.set()
        if self.on_done is not None:
            self.on_done()

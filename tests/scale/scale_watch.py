"""What the scale test watches: consumer groups' membership over time, how long a group took to
recover after a worker was killed, and the detect stage's output rate in time windows.

Kept out of conftest.py: every test folder has one, so ``from conftest import ...`` is ambiguous.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from ibet_app.bench.scale import GroupView, describe_group


@dataclass(frozen=True)
class Snapshot:
    """One look at a group, at wall-clock time ``t_s`` (seconds since the epoch, as Kafka's timestamps)."""

    t_s: float
    view: GroupView


class GroupWatch:
    """Polls DescribeGroups for each ``group -> input topic`` every ``interval_s`` in a thread."""

    def __init__(self, bootstrap: str, groups: Mapping[str, str], interval_s: float = 0.2):
        self.bootstrap, self.groups, self.interval_s = bootstrap, dict(groups), interval_s
        self.snapshots: dict[str, list[Snapshot]] = {g: [] for g in groups}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="group-watch", daemon=True)

    def start(self) -> GroupWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def history(self, group: str) -> list[Snapshot]:
        with self._lock:
            return list(self.snapshots[group])

    def latest(self, group: str) -> GroupView | None:
        with self._lock:
            return self.snapshots[group][-1].view if self.snapshots[group] else None

    def _run(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            while not self._stop.is_set():
                for group, topic in self.groups.items():
                    try:
                        view = describe_group(admin, group, topic)
                    except KafkaError as exc:  # a coordinator busy with the rebalance: look again next time
                        self.errors.append(f"{group}: {exc}")
                        continue
                    with self._lock:
                        self.snapshots[group].append(Snapshot(time.time(), view))
                self._stop.wait(self.interval_s)
        finally:
            admin.close()


@dataclass(frozen=True)
class Recovery:
    """How a group came back after one of its members was killed at ``kill_s``.

    ``failover_s``: until the group was Stable again without the killed member, every partition held
    by live members. ``rejoin_s``: until it was Stable with ``workers`` members again, the restarted
    worker (a member id not seen before the kill) among them, every partition held.
    """

    failover_s: float | None
    rejoin_s: float | None
    killed_member: str | None
    restarted_member: str | None
    rejoined_view: GroupView | None


def recovery(history: Iterable[Snapshot], before: frozenset[str], kill_s: float, partitions: int,
             workers: int) -> Recovery:
    """Read the recovery out of a group's snapshots (see :class:`Recovery`)."""
    failover = rejoin = None
    killed = restarted = None
    rejoined_view = None
    for snap in history:
        if snap.t_s < kill_s or not snap.view.holds_all(partitions):
            continue
        members = set(snap.view.assignment)
        gone = before - members
        if failover is None and gone:
            failover, killed = snap.t_s - kill_s, min(gone)
        new = members - before
        if failover is not None and new and len(members) == workers:
            rejoin, restarted, rejoined_view = snap.t_s - kill_s, min(new), snap.view
            break
    return Recovery(failover, rejoin, killed, restarted, rejoined_view)


def rate(timestamps_s: Iterable[float], start_s: float, end_s: float) -> float | None:
    """Events per second among ``timestamps_s`` in ``[start_s, end_s]``; None for an empty window."""
    if end_s <= start_s:
        return None
    return sum(1 for t in timestamps_s if start_s <= t <= end_s) / (end_s - start_s)

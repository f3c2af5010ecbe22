"""In-memory bus with Kafka's meaning: partitioned topics, keyed partitioning, consumer groups
with committed offsets and rebalancing, explicit commits. Used by the embedded (one-process)
mode and by unit tests; integration tests use the real broker instead.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ibet.bus.base import OutRecord, Record, TopicPartition, record_size
from ibet.bus.exceptions import BusError, CommitError, RecordTooLargeError
from ibet.topics import MAX_RECORD_BYTES


def partition_for(key: bytes | None, partitions: int, counter: int) -> int:
    """Keyed records go to a stable partition (crc32 of the key); unkeyed ones round-robin."""
    if key is None:
        return counter % partitions
    return zlib.crc32(key) % partitions


@dataclass
class _Group:
    members: list[str] = field(default_factory=list)
    subscriptions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    assignment: dict[str, set[TopicPartition]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    generation: int = 0


class MemoryBus:
    """A process-local broker. Thread-safe; every stage of the embedded mode shares one."""

    def __init__(self, default_partitions: int = 6, max_record_bytes: int = MAX_RECORD_BYTES):
        self.default_partitions = default_partitions
        self.max_record_bytes = max_record_bytes
        self._logs: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count()

    # -- topics ---------------------------------------------------------------------------
    def create_topics(self, names: Sequence[str], partitions: int | None = None) -> list[str]:
        with self._cond:
            created = [name for name in names if name not in self._logs]
            for name in created:
                self._logs[name] = [[] for _ in range(partitions or self.default_partitions)]
            self._rebalance_subscribers(created)
        return created

    def records(self, topic: str) -> list[Record]:
        """Every record of ``topic`` in partition then offset order (for tests and reports)."""
        with self._cond:
            return [r for part in self._logs.get(topic, []) for r in part]

    def read_partition(self, topic: str, partition: int, timeout_s: float = 0.0) -> list[Record]:
        with self._cond:
            parts = self._logs.get(topic)
            return list(parts[partition]) if parts and partition < len(parts) else []

    def end_offset(self, tp: TopicPartition) -> int:
        with self._cond:
            return len(self._logs[tp.topic][tp.partition])

    # -- producing ------------------------------------------------------------------------
    def producer(self, client_id: str = "ibet") -> MemoryProducer:
        return MemoryProducer(self)

    def _append(self, out: OutRecord) -> tuple[int, int]:
        size = record_size(out)
        if size > self.max_record_bytes:
            raise RecordTooLargeError(out.topic, size, self.max_record_bytes)
        with self._cond:
            if out.topic not in self._logs:  # auto-create, as a broker with auto-create on would
                self._logs[out.topic] = [[] for _ in range(self.default_partitions)]
                self._rebalance_subscribers([out.topic])
            parts = self._logs[out.topic]
            p = partition_for(out.partition_key or out.key, len(parts), next(self._ids))
            offset = len(parts[p])
            parts[p].append(Record(out.topic, p, offset, out.key, out.value, out.headers, int(time.time() * 1000)))
            self._cond.notify_all()
            return p, offset

    # -- consumer groups ------------------------------------------------------------------
    def consumer(self, group_id: str, client_id: str = "ibet") -> MemoryConsumer:
        return MemoryConsumer(self, group_id, f"{client_id}-{next(self._ids)}")

    def _join(self, group_id: str, member: str, topics: tuple[str, ...]) -> None:
        with self._cond:
            group = self._groups.setdefault(group_id, _Group())
            if member not in group.members:
                group.members.append(member)
            group.subscriptions[member] = topics
            self._rebalance(group)

    def _leave(self, group_id: str, member: str) -> None:
        with self._cond:
            group = self._groups.get(group_id)
            if group and member in group.members:
                group.members.remove(member)
                group.subscriptions.pop(member, None)
                self._rebalance(group)

    def _rebalance_subscribers(self, new_topics: Sequence[str]) -> None:
        """A new topic changes the assignment only of groups subscribed to it (as in Kafka)."""
        for group in self._groups.values():
            if any(t in subs for subs in group.subscriptions.values() for t in new_topics):
                self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        """Round-robin every subscribed partition over the members, like Kafka's range/rr assignors."""
        group.generation += 1
        group.assignment = {m: set() for m in group.members}
        topics = sorted({t for ts in group.subscriptions.values() for t in ts if t in self._logs})
        for topic in topics:
            members = [m for m in group.members if topic in group.subscriptions[m]]
            for p in range(len(self._logs[topic])):
                group.assignment[members[p % len(members)]].add(TopicPartition(topic, p))
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()


class MemoryProducer:
    """Appends at once: a record is durable (in this process) as soon as send returns."""

    def __init__(self, bus: MemoryBus):
        self._bus = bus

    def send(self, record: OutRecord) -> None:
        self._bus._append(record)

    def send_and_wait(self, record: OutRecord, timeout_s: float) -> tuple[int, int]:
        return self._bus._append(record)

    def flush(self, timeout_s: float | None = None) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryConsumer:
    """A group member with its own positions; starts from the committed offset or the earliest."""

    def __init__(self, bus: MemoryBus, group_id: str, member: str):
        self._bus, self.group_id, self.member = bus, group_id, member
        self._positions: dict[TopicPartition, int] = {}
        self._generation = -1
        self._closed = False

    def subscribe(self, topics: Sequence[str]) -> None:
        self._bus._join(self.group_id, self.member, tuple(topics))

    def _sync_assignment(self) -> set[TopicPartition]:
        group = self._bus._groups[self.group_id]
        assigned = group.assignment.get(self.member, set())
        if group.generation != self._generation:
            self._generation = group.generation
            self._positions = {tp: group.committed.get(tp, 0) for tp in assigned}
        return assigned

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        if self._closed:
            raise BusError("poll on a closed consumer")
        deadline = time.monotonic() + timeout_s
        with self._bus._cond:
            while True:
                batch = self._take(max_records)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0:
                    return batch
                self._bus._cond.wait(remaining)

    def _take(self, max_records: int) -> list[Record]:
        batch: list[Record] = []
        for tp in sorted(self._sync_assignment(), key=lambda t: (t.topic, t.partition)):
            log = self._bus._logs[tp.topic][tp.partition]
            pos = self._positions[tp]
            take = log[pos : pos + max_records - len(batch)]
            batch.extend(take)
            self._positions[tp] = pos + len(take)
            if len(batch) >= max_records:
                break
        return batch

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with self._bus._cond:
            group = self._bus._groups[self.group_id]
            if group.generation != self._generation:
                raise CommitError(f"group '{self.group_id}' rebalanced since the last poll; records will be redelivered")
            for tp, offset in offsets.items():
                group.committed[tp] = max(group.committed.get(tp, 0), offset)

    def lag(self) -> dict[TopicPartition, int]:
        with self._bus._cond:
            return {tp: len(self._bus._logs[tp.topic][tp.partition]) - pos for tp, pos in self._positions.items()}

    def assignment(self) -> set[TopicPartition]:
        with self._bus._cond:
            return set(self._sync_assignment())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._leave(self.group_id, self.member)

"""The bus interface every stage talks to, with the same meaning on Kafka and in memory.

A stage never sees a Kafka record: both implementations hand out :class:`Record` and take
:class:`OutRecord`, plain frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True)
class Record:
    """One consumed record: where it came from, its key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes  # None only for a tombstone on a compacted topic (state changelogs)
    headers: Headers = ()
    timestamp_ms: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``, or None."""
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True)
class OutRecord:
    """A record to produce: topic, key, value and headers.

    ``value`` None is a tombstone: on a compacted topic it deletes its key. ``partition_key``, if
    given, picks the partition instead of ``key``: records keyed apart (a sector's track parts) land
    on the partition a record keyed ``partition_key`` (the sector) would.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())
    partition_key: bytes | None = None


def record_size(record: OutRecord) -> int:
    """Bytes of value, key and headers: what the size limit (MAX_RECORD_BYTES) is checked against."""
    return len(record.value or b"") + len(record.key or b"") + sum(len(k) + len(v) for k, v in record.headers)


def next_offsets(records: Iterable[Record]) -> dict[TopicPartition, int]:
    """The offsets to commit after ``records``: per partition, one past the highest offset seen."""
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = r.topic_partition
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets


class Producer(Protocol):
    """Produces records; :meth:`flush` returns only when every record sent so far is durable."""

    def send(self, record: OutRecord) -> None:
        """Queue ``record``; raises RecordTooLargeError at once for a record over the limit."""

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until all queued records are acknowledged; raise DeliveryError if any failed."""

    def send_and_wait(self, record: OutRecord, timeout_s: float) -> tuple[int, int]:
        """Send one record and wait until the bus acknowledges it; return (partition, offset).

        For request/response paths (the push API's 202) where one caller needs its own record
        durable, without waiting for everyone else's; raises DeliveryError on failure.
        """

    def close(self) -> None: ...


class Consumer(Protocol):
    """A member of a consumer group; offsets are committed only by an explicit :meth:`commit`."""

    def subscribe(self, topics: Sequence[str]) -> None: ...

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to ``max_records`` records from the assigned partitions, waiting up to ``timeout_s``."""

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) for the group."""

    def lag(self) -> dict[TopicPartition, int]:
        """Records not yet consumed on each assigned partition."""

    def assignment(self) -> set[TopicPartition]: ...

    def close(self) -> None: ...


class Bus(Protocol):
    """Makes producers and consumers, and creates topics."""

    def producer(self, client_id: str) -> Producer: ...

    def consumer(self, group_id: str, client_id: str) -> Consumer: ...

    def create_topics(self, names: Sequence[str], partitions: int) -> list[str]:
        """Create the missing topics among ``names``; return the ones created."""

    def read_partition(self, topic: str, partition: int, timeout_s: float) -> list[Record]:
        """Every record of one partition from its start to its current end, outside any group
        (how a stateful stage reloads the state of the partitions it was just given)."""

    def close(self) -> None: ...

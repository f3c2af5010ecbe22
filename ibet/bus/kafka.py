"""The bus on a real Apache Kafka cluster, through kafka-python.

Producer: acks=all, idempotent, lz4, sized for frames (:data:`ibet.topics.MAX_RECORD_BYTES`).
Consumer: a consumer-group member with auto-commit off; offsets are committed only by the runner.
kafka-python objects stay in this module: stages get :class:`~ibet.bus.base.Record`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from ibet.bus.base import OutRecord, Record, TopicPartition, record_size
from ibet.bus.exceptions import BusError, CommitError, DeliveryError, RecordTooLargeError
from ibet.config import KafkaSettings
from ibet.topics import MAX_RECORD_BYTES, compacted_topics

log = logging.getLogger(__name__)


def producer_config(settings: KafkaSettings, client_id: str) -> dict[str, Any]:
    """kafka-python producer settings; ``ibet bench bus`` gives the raw client the same dict."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "acks": "all",  # every in-sync replica has the record before it counts as produced
        "enable_idempotence": True,  # broker drops the producer's own retried duplicates
        "compression_type": settings.compression,
        "linger_ms": settings.linger_ms,
        "batch_size": settings.batch_size_bytes,
        "max_request_size": MAX_RECORD_BYTES,  # must agree with topics' max.message.bytes
        "delivery_timeout_ms": settings.delivery_timeout_ms,
        "request_timeout_ms": settings.request_timeout_ms,
        **settings.security_config(),
    }


def consumer_config(settings: KafkaSettings, group_id: str, client_id: str) -> dict[str, Any]:
    """kafka-python consumer settings: a group member that never commits on its own."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "group_id": group_id,
        "enable_auto_commit": False,  # the runner commits after the outputs are durable
        "auto_offset_reset": "earliest",  # a new group reads everything retained
        "max_partition_fetch_bytes": MAX_RECORD_BYTES,  # one full-size frame always fits a fetch
        "fetch_max_bytes": max(4 * MAX_RECORD_BYTES, 50 * 1024 * 1024),
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "request_timeout_ms": max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
        # A worker that joined before its topics' partitions were visible (topics just created)
        # would hold nothing until the next metadata refresh; look again every 10 s, not 5 min.
        "metadata_max_age_ms": settings.metadata_max_age_ms,
        **settings.security_config(),
    }


class KafkaBus:
    """Makes kafka-python producers and consumers from one :class:`KafkaSettings`."""

    def __init__(self, settings: KafkaSettings):
        self.settings = settings

    def producer(self, client_id: str = "ibet") -> KafkaBusProducer:
        return KafkaBusProducer(self.settings, client_id)

    def consumer(self, group_id: str, client_id: str = "ibet") -> KafkaBusConsumer:
        return KafkaBusConsumer(self.settings, group_id, client_id)

    def create_topics(self, names: Sequence[str], partitions: int | None = None) -> list[str]:
        """Create missing topics with max.message.bytes set to the frame limit; return those created."""
        admin = KafkaAdminClient(
            bootstrap_servers=self.settings.bootstrap_servers, client_id="ibet-admin", **self.settings.security_config()
        )
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(
                    name,
                    partitions or self.settings.default_partitions,
                    self.settings.replication_factor,
                    topic_configs={
                        "max.message.bytes": str(MAX_RECORD_BYTES),
                        "min.insync.replicas": str(self.settings.min_insync_replicas),
                        **({"cleanup.policy": "compact"} if name in compacted_topics() else {}),
                    },
                )
                for name in names
                if name not in existing
            ]
            if new:
                try:
                    admin.create_topics(new)
                except TopicAlreadyExistsError:  # another process created them meanwhile
                    pass
            return [t.name for t in new]
        finally:
            admin.close()

    def read_partition(self, topic: str, partition: int, timeout_s: float = 30.0) -> list[Record]:
        """Read one partition from the beginning to its end offset with an unassigned consumer."""
        config = consumer_config(self.settings, group_id="unused", client_id="ibet-state-reader")
        config.pop("group_id")
        consumer = KafkaConsumer(**config)
        try:
            ktp = KafkaTopicPartition(topic, partition)
            if partition not in (consumer.partitions_for_topic(topic) or set()):
                return []
            consumer.assign([ktp])
            consumer.seek_to_beginning(ktp)
            end = consumer.end_offsets([ktp])[ktp]
            records: list[Record] = []
            deadline = time.monotonic() + timeout_s
            while consumer.position(ktp) < end:
                if time.monotonic() > deadline:
                    raise BusError(f"reading {topic}[{partition}] did not reach offset {end} within {timeout_s} s")
                for batch in consumer.poll(timeout_ms=500).values():
                    records += [Record(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()),
                                       r.timestamp) for r in batch if r.offset < end]
            return records
        finally:
            consumer.close(autocommit=False)

    def close(self) -> None:
        return None


class KafkaBusProducer:
    """Sends asynchronously; :meth:`flush` raises if any record since the last flush failed."""

    def __init__(self, settings: KafkaSettings, client_id: str):
        self._producer = KafkaProducer(**producer_config(settings, client_id))
        self._pending: list[Any] = []

    def send(self, record: OutRecord) -> None:
        size = record_size(record)
        if size > MAX_RECORD_BYTES:
            raise RecordTooLargeError(record.topic, size, MAX_RECORD_BYTES)
        try:
            future = self._send(record)
        except KafkaError as exc:
            raise BusError(f"could not send to '{record.topic}': {exc}") from exc
        self._pending.append(future)

    def _send(self, record: OutRecord) -> Any:
        partition = None
        if record.partition_key is not None:  # where the default partitioner (murmur2, as Java's) puts that key
            partitions = sorted(self._producer.partitions_for(record.topic))
            partition = partitions[(murmur2(record.partition_key) & 0x7FFFFFFF) % len(partitions)]
        return self._producer.send(record.topic, value=record.value, key=record.key, headers=list(record.headers),
                                   partition=partition)

    def send_and_wait(self, record: OutRecord, timeout_s: float) -> tuple[int, int]:
        """Send and block on this record's own acknowledgement (thread-safe; others keep batching)."""
        size = record_size(record)
        if size > MAX_RECORD_BYTES:
            raise RecordTooLargeError(record.topic, size, MAX_RECORD_BYTES)
        try:
            future = self._send(record)
            meta = future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise DeliveryError(f"'{record.topic}' did not acknowledge the record: {exc}") from exc
        return meta.partition, meta.offset

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)
        pending, self._pending = self._pending, []
        failed = [f for f in pending if not f.is_done or f.failed()]
        if failed:
            first = failed[0].exception if failed[0].is_done else "not acknowledged before the flush timeout"
            raise DeliveryError(f"{len(failed)} of {len(pending)} records were not produced: {first}")

    def close(self) -> None:
        self._producer.close()


class KafkaBusConsumer:
    """A consumer-group member; converts kafka-python records to :class:`Record` at the edge.

    It also watches its own membership. kafka-python (3.0.12) has been seen, on a loaded machine,
    to stay out of its group for good: a member removed for a missed heartbeat that looked for its
    coordinator for 23 minutes without rejoining, and a leader that assigned before it had the
    topics' metadata and never assigned again. A member that has held no partition for
    ``stuck_member_s`` asks the broker (DescribeGroups); if its group leaves a partition of the
    input topics unheld, it closes its consumer and joins again with a new one. An idle spare (more
    workers than partitions, every partition held) is left alone.
    """

    def __init__(self, settings: KafkaSettings, group_id: str, client_id: str):
        self.group_id = group_id
        self.rejoins = 0  # times this member started over with a new consumer
        self._settings, self._client_id = settings, client_id
        self._consumer = KafkaConsumer(**consumer_config(settings, group_id, client_id))
        self._topics: list[str] = []
        self._unassigned_since: float | None = None
        self._next_check = 0.0

    def subscribe(self, topics: Sequence[str]) -> None:
        self._topics = list(topics)
        self._subscribe()

    def _subscribe(self) -> None:
        self._consumer.subscribe(self._topics)

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        if self._topics:
            self._watch_membership()
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp)
            for records in batches.values()
            for r in records
        ]

    def _watch_membership(self) -> None:
        now = time.monotonic()
        if self._consumer.assignment():
            self._unassigned_since = None
            return
        if self._unassigned_since is None:
            self._unassigned_since = now
            self._next_check = now + self._settings.stuck_member_s
            return
        if now < self._next_check:
            return
        self._next_check = now + self._settings.stuck_member_s
        unheld = self._unheld_partitions()
        if not unheld:
            return
        log.warning("group '%s': this member has held no partition for %.0f s while %s are unheld; "
                    "joining again with a new consumer", self.group_id, now - self._unassigned_since,
                    ", ".join(f"{t}[{p}]" for t, p in sorted(unheld)[:8]))
        self._consumer.close(autocommit=False)
        self._consumer = KafkaConsumer(**consumer_config(self._settings, self.group_id, self._client_id))
        self._subscribe()
        self.rejoins += 1
        self._unassigned_since = now

    def _unheld_partitions(self) -> set[tuple[str, int]]:
        """Partitions of the input topics that no member of the group holds (empty if the broker cannot say)."""
        try:
            admin = KafkaAdminClient(bootstrap_servers=self._settings.bootstrap_servers, client_id="ibet-member-check",
                                     **self._settings.security_config())
        except KafkaError as exc:
            log.warning("group '%s': could not check the group's members: %s", self.group_id, exc)
            return set()
        try:
            described = admin.describe_groups([self.group_id])[self.group_id]
            existing = {(t["name"], p["partition_index"]) for t in admin.describe_topics(self._topics)
                        for p in t.get("partitions") or []}
        except KafkaError as exc:
            log.warning("group '%s': could not check the group's members: %s", self.group_id, exc)
            return set()
        finally:
            admin.close()
        held = {(a["topic"], p) for member in described.get("members") or []
                for a in (member.get("member_assignment") or {}).get("assigned_partitions") or []
                for p in a["partitions"]}
        return existing - held

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            self._consumer.commit(
                {KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
            )
        except (CommitFailedError, RebalanceInProgressError) as exc:
            raise CommitError(f"group '{self.group_id}' rebalanced before the commit; records will be redelivered") from exc

    def lag(self) -> dict[TopicPartition, int]:
        lags = {}
        for ktp in self._consumer.assignment():
            high = self._consumer.highwater(ktp)
            if high is not None:
                lags[TopicPartition(ktp.topic, ktp.partition)] = max(0, high - self._consumer.position(ktp))
        return lags

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(t.topic, t.partition) for t in self._consumer.assignment()}

    def close(self) -> None:
        self._consumer.close(autocommit=False)

"""Re-drive dead letters after a fix: read ``<topic>.dlq``, pick the letters that match, produce
their original key, value and headers back to the source topic, and remember how far it got.

The replay is a member of its own consumer group (``dlq-replay`` by default) on the dead-letter
topic and commits after each batch is durably produced (flush, then commit, as the stage runner),
so running it again replays only what came since; letters it skips (before ``since``, before a
start offset, not matching the filter) are committed past as well. It reads each partition only
up to where it ended when the replay started: a letter that fails again lands at the end of the
dead-letter topic and waits for the next replay instead of looping. A dry run lists what would be
replayed and produces and commits nothing.

    >>> report = replay_dead_letters(bus, "ibet.frames.v1", ReplayFilter(stage="detect"), dry_run=True)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ibet.bus.base import Bus, OutRecord, Record, TopicPartition, next_offsets
from ibet.bus.exceptions import BusError
from ibet.dead_letter import DeadLetterInfo
from ibet.topics import DLQ_SUFFIX, dlq_topic

DEFAULT_GROUP = "dlq-replay"
_DLQ_HEADER_PREFIX = "ibet.dlq."


@dataclass(frozen=True)
class ReplayFilter:
    """Which dead letters to replay; every criterion given must hold (none given: all of them)."""

    error_contains: str | None = None  # a substring of the error text ("KeyError: 'cam-9'")
    error_type: str | None = None  # the exception's class name, exactly
    stage: str | None = None  # the stage that dead-lettered it
    since_ms: int | None = None  # written to the DLQ at or after this time (ms since the epoch)
    from_offsets: Mapping[int, int] = field(default_factory=dict)  # DLQ partition -> first offset to consider

    def matches(self, record: Record, info: DeadLetterInfo) -> bool:
        return ((self.error_contains is None or self.error_contains in info.error)
                and (self.error_type is None or info.error_type == self.error_type)
                and (self.stage is None or info.stage == self.stage)
                and (self.since_ms is None or record.timestamp_ms >= self.since_ms)
                and record.offset >= self.from_offsets.get(record.partition, 0))


@dataclass(frozen=True)
class ReplayItem:
    """One dead letter that is (or in a dry run would be) produced back to its source topic."""

    dlq_partition: int
    dlq_offset: int
    info: DeadLetterInfo
    key: bytes | None
    value_bytes: int


@dataclass
class ReplayReport:
    dlq_topic: str
    dry_run: bool
    replayed: list[ReplayItem] = field(default_factory=list)
    skipped: int = 0  # dead letters the filter left out
    unreadable: list[tuple[int, int, str]] = field(default_factory=list)  # (partition, offset, why): not ours

    def summary(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        return (f"{self.dlq_topic}: {verb} {len(self.replayed)}, skipped {self.skipped} not matching, "
                f"{len(self.unreadable)} without dead-letter headers")


def original_record(dead: Record, info: DeadLetterInfo) -> OutRecord:
    """The record as it was before it was dead-lettered: its source topic, key, value and headers
    (the ``ibet.dlq.*`` headers the dead-lettering added are dropped)."""
    headers = tuple((k, v) for k, v in dead.headers if not k.startswith(_DLQ_HEADER_PREFIX))
    return OutRecord(info.source_topic, dead.key, dead.value, headers)


def read_info(record: Record) -> DeadLetterInfo | str:
    """The dead letter's origin and error, or why it cannot be read as one of ours."""
    try:
        return DeadLetterInfo.from_record(record)
    except KeyError as exc:
        return f"missing header ibet.dlq.{exc.args[0]}"
    except (ValueError, UnicodeDecodeError) as exc:
        return f"bad dead-letter header: {exc}"


def plan(records: Iterable[Record], dlq: str, wanted: ReplayFilter) -> tuple[list[tuple[OutRecord, ReplayItem]], int,
                                                                            list[tuple[int, int, str]]]:
    """Pure: the records to produce for ``records`` of ``dlq``, the number skipped, the unreadable ones."""
    source = dlq[: -len(DLQ_SUFFIX)]
    chosen, skipped, unreadable = [], 0, []
    for record in records:
        info = read_info(record)
        if isinstance(info, str):
            unreadable.append((record.partition, record.offset, info))
        elif info.source_topic != source:
            unreadable.append((record.partition, record.offset, f"its source topic is {info.source_topic}, not {source}"))
        elif wanted.matches(record, info):
            chosen.append((original_record(record, info),
                           ReplayItem(record.partition, record.offset, info, record.key, len(record.value))))
        else:
            skipped += 1
    return chosen, skipped, unreadable


def dlq_name(topic: str) -> str:
    """``ibet.frames.v1`` or ``ibet.frames.v1.dlq`` -> ``ibet.frames.v1.dlq``."""
    return topic if topic.endswith(DLQ_SUFFIX) else dlq_topic(topic)


def replay_dead_letters(bus: Bus, topic: str, wanted: ReplayFilter | None = None, *, group_id: str = DEFAULT_GROUP,
                        dry_run: bool = False, batch_records: int = 500, assign_timeout_s: float = 60.0,
                        poll_timeout_s: float = 1.0, flush_timeout_s: float = 60.0) -> ReplayReport:
    """Replay the dead letters of ``topic`` (the source topic or its ``.dlq``) that match ``wanted``.

    Reads every partition of the DLQ from the group's committed offset to its end as of the start;
    per batch: produce the chosen originals, flush (raise if any is not durable), then commit.
    Raises BusError when no partition is assigned within ``assign_timeout_s``.
    """
    wanted = wanted or ReplayFilter()
    dlq = dlq_name(topic)
    report = ReplayReport(dlq, dry_run)
    consumer = bus.consumer(group_id=group_id, client_id=f"ibet-{group_id}")
    producer = None if dry_run else bus.producer(client_id=f"ibet-{group_id}")
    try:
        consumer.subscribe([dlq])
        pending, quota = _first_batch_and_quota(consumer, batch_records, assign_timeout_s, poll_timeout_s, dlq)
        done: dict[TopicPartition, int] = {}
        while True:
            batch = [r for r in pending if done.get(r.topic_partition, 0) < quota.get(r.topic_partition, 0)]
            for r in batch:
                done[r.topic_partition] = done.get(r.topic_partition, 0) + 1
            chosen, skipped, unreadable = plan(batch, dlq, wanted)
            report.replayed += [item for _, item in chosen]
            report.skipped += skipped
            report.unreadable += unreadable
            if producer is not None and batch:
                for out, _ in chosen:
                    producer.send(out)
                producer.flush(flush_timeout_s)  # 1. every replayed record is durable ...
                consumer.commit(next_offsets(batch))  # 2. ... before the group moves past its letters
            if all(done.get(tp, 0) >= n for tp, n in quota.items()):
                return report
            pending = consumer.poll(batch_records, poll_timeout_s)
    finally:
        consumer.close()
        if producer is not None:
            producer.close()


def _first_batch_and_quota(consumer, batch_records: int, assign_timeout_s: float, poll_timeout_s: float,
                           dlq: str) -> tuple[list[Record], dict[TopicPartition, int]]:
    """Join the group and find how many letters each assigned partition holds right now: the
    records polled so far plus the lag behind them. Letters added later are for the next replay."""
    pending: list[Record] = []
    deadline = time.monotonic() + assign_timeout_s
    while True:
        pending += consumer.poll(batch_records, poll_timeout_s)
        assigned, lag = consumer.assignment(), consumer.lag()
        if assigned and set(lag) >= assigned:
            counts: dict[TopicPartition, int] = {}
            for r in pending:
                counts[r.topic_partition] = counts.get(r.topic_partition, 0) + 1
            return pending, {tp: counts.get(tp, 0) + lag[tp] for tp in assigned}
        if time.monotonic() > deadline:
            raise BusError(f"no partition of '{dlq}' was assigned to the replay within {assign_timeout_s:.0f} s "
                           "(does the topic exist? is another replay running in the same group?)")


# -- command line: `ibet dlq replay` (the lead adds `app.add_typer(dlq_app, name="dlq")` in ibet_app/cli.py) --

def parse_from_offsets(values: Iterable[str]) -> dict[int, int]:
    """``["0:120", "3:7"]`` -> ``{0: 120, 3: 7}``; ValueError naming the bad value."""
    offsets = {}
    for value in values:
        partition, sep, offset = value.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"--from-offset {value!r}: expected PARTITION:OFFSET, e.g. 0:120")
        offsets[int(partition)] = int(offset)
    return offsets


def since_ms(moment: datetime | None) -> int | None:
    """A time from the command line (UTC when it names no zone) in ms since the epoch."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


dlq_app = typer.Typer(help="Dead-letter topics: re-drive their records after a fix.", no_args_is_help=True)


@dlq_app.callback()
def _dlq_group() -> None:
    """Dead-letter topics: re-drive their records after a fix."""  # keeps `replay` a subcommand


@dlq_app.command("replay")
def replay_cmd(
    topic: Annotated[str, typer.Argument(help="Source topic (ibet.frames.v1) or its dead-letter topic (….dlq).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    group: Annotated[str, typer.Option(help="Consumer group that remembers what was replayed.")] = DEFAULT_GROUP,
    since: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help="Only letters dead-lettered at or after this time: 2026-11-28T10:00:00Z, ...+01:00, or a date "
             "(UTC without a zone).")] = None,
    from_offset: Annotated[list[str] | None, typer.Option("--from-offset", help="PARTITION:OFFSET of the DLQ to "
                                                           "start from; repeatable.")] = None,
    error_contains: Annotated[str | None, typer.Option(help="Only letters whose error text contains this.")] = None,
    error_type: Annotated[str | None, typer.Option(help="Only letters whose error is of this class.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only letters dead-lettered by this stage.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be replayed; produce and commit "
                                                            "nothing.")] = False,
) -> None:
    """Produce the dead letters of TOPIC that match back to TOPIC, once per consumer group."""
    from ibet.bus import open_bus
    from ibet.cli_support import fail as _fail
    from ibet.cli_support import load_config_and_registry as _load
    from ibet.exceptions import IbetError

    cfg, _registry = _load(config)
    try:
        wanted = ReplayFilter(error_contains, error_type, stage, since_ms(since), parse_from_offsets(from_offset or []))
        report = replay_dead_letters(open_bus(cfg.bus), topic, wanted, group_id=group, dry_run=dry_run)
    except (ValueError, IbetError) as exc:
        _fail(str(exc))
    for item in report.replayed:
        typer.echo(f"{report.dlq_topic}[{item.dlq_partition}]@{item.dlq_offset} -> {item.info.source_topic} "
                   f"(from [{item.info.source_partition}]@{item.info.source_offset}, {item.value_bytes} B, "
                   f"{item.info.stage}: {item.info.error[:120]})")
    for partition, offset, why in report.unreadable:
        typer.echo(f"{report.dlq_topic}[{partition}]@{offset} not replayed: {why}", err=True)
    typer.echo(report.summary())

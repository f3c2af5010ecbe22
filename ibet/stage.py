"""What a stage is to the runner: a name, input topics, and a pure function over a batch.

A stage never touches the bus. It receives plain :class:`~ibet.bus.base.Record` values and
returns, for each one, either the records to produce or the error that makes it a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ibet.bus.base import OutRecord, Record


@dataclass(frozen=True)
class Outcome:
    """What became of one input record: its outputs, or the error that sends it to the DLQ."""

    outputs: tuple[OutRecord, ...] = ()
    error: Exception | None = None


class Stage(Protocol):
    """The runner's view of a stage. ``name`` is also its consumer group and metrics label."""

    name: str
    input_topics: tuple[str, ...]

    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """One :class:`Outcome` per input record, in order."""


class StatefulStage(Stage, Protocol):
    """A stage whose state per key (a sector) is saved with the committed offsets.

    The runner produces :meth:`snapshot` records to ``state_topic`` (compacted, keyed and
    partitioned like the input) in the same flush as the outputs, before committing; a worker
    given a partition reloads its keys' latest state with :meth:`restore` before processing it.
    """

    state_topic: str

    def restore(self, records: Sequence[Record]) -> None:
        """Load the latest state record of each key in ``records`` (oldest first)."""

    def forget(self, keys: set[bytes]) -> None:
        """Drop the state of keys this worker no longer owns."""

    def snapshot(self) -> list[OutRecord]:
        """State records of the keys changed since the last snapshot."""


class RecordStage:
    """A stage that handles records one at a time; subclasses implement :meth:`process`.

    An exception from :meth:`process` (bad bytes, invalid values, unknown sensor) turns that
    record into a dead letter and the batch goes on; stages that batch work (inference) override
    :meth:`process_batch` instead.
    """

    name: str = "stage"
    input_topics: tuple[str, ...] = ()

    def process(self, record: Record) -> Iterable[OutRecord]:
        raise NotImplementedError

    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        outcomes = []
        for record in records:
            try:
                outcomes.append(Outcome(tuple(self.process(record))))
            except Exception as exc:  # the record is bad data: the runner dead-letters it
                outcomes.append(Outcome(error=exc))
        return outcomes


class FunctionStage(RecordStage):
    """A :class:`RecordStage` made from a plain function ``record -> outputs``.

    >>> echo = FunctionStage("echo", ("in",), lambda r: [OutRecord("out", r.key, r.value)])
    """

    def __init__(self, name: str, input_topics: Sequence[str], fn: Callable[[Record], Iterable[OutRecord]]):
        self.name, self.input_topics, self._fn = name, tuple(input_topics), fn

    def process(self, record: Record) -> Iterable[OutRecord]:
        return self._fn(record)

"""Dead letters: the original bytes of a record that could not be processed, with the error and
where it came from in ``ibet.dlq.*`` headers, on ``<source topic>.dlq`` under the same key."""

from __future__ import annotations

from dataclasses import dataclass

from ibet.bus.base import OutRecord, Record
from ibet.topics import dlq_topic

ERROR_TEXT_MAX_CHARS = 4000
_PREFIX = "ibet.dlq."


def dead_letter(record: Record, error: Exception, stage: str) -> OutRecord:
    """The DLQ record for ``record``: same key, value and headers, plus the error and its origin."""
    text = f"{type(error).__name__}: {error}"[:ERROR_TEXT_MAX_CHARS]
    extra = (
        (_PREFIX + "error", text.encode()),
        (_PREFIX + "error_type", type(error).__name__.encode()),
        (_PREFIX + "stage", stage.encode()),
        (_PREFIX + "source_topic", record.topic.encode()),
        (_PREFIX + "source_partition", str(record.partition).encode()),
        (_PREFIX + "source_offset", str(record.offset).encode()),
    )
    return OutRecord(dlq_topic(record.topic), record.key, record.value, record.headers + extra)


@dataclass(frozen=True)
class DeadLetterInfo:
    """The origin and error of a dead letter, read back from its headers."""

    error: str
    error_type: str
    stage: str
    source_topic: str
    source_partition: int
    source_offset: int

    @classmethod
    def from_record(cls, record: Record) -> DeadLetterInfo:
        h = {k[len(_PREFIX) :]: v.decode() for k, v in record.headers if k.startswith(_PREFIX)}
        return cls(
            h["error"], h["error_type"], h["stage"], h["source_topic"], int(h["source_partition"]), int(h["source_offset"])
        )

"""Errors raised by the bus, named for where they come from."""

from ibet.exceptions import IbetError
from ibet.topics import MAX_FRAME_BYTES, MIB, RECORD_OVERHEAD_BYTES


class BusError(IbetError):
    """The bus (Kafka or in-memory) failed in a way the stage cannot handle per message."""


class RecordTooLargeError(BusError):
    """A record is larger than the bus accepts; the message names the limit."""

    def __init__(self, topic: str, size_bytes: int, limit_bytes: int):
        self.topic, self.size_bytes, self.limit_bytes = topic, size_bytes, limit_bytes
        super().__init__(
            f"record of {size_bytes} bytes for topic '{topic}' exceeds the limit of {limit_bytes} bytes "
            f"({limit_bytes / MIB:.2f} MiB; ibet.topics.MAX_RECORD_BYTES: frames up to {MAX_FRAME_BYTES / MIB:.0f} MiB "
            f"plus {RECORD_OVERHEAD_BYTES // 1024} KiB for key and headers)"
        )


class DeliveryError(BusError):
    """A flush ended with records that were not acknowledged by the bus."""


class CommitError(BusError):
    """Offsets could not be committed (for example the partitions were reassigned meanwhile)."""

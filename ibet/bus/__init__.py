"""The bus: one interface (:mod:`ibet.bus.base`), on Kafka or in memory; stages never know which."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ibet.bus.base import Bus, Consumer, OutRecord, Producer, Record, TopicPartition, next_offsets
from ibet.bus.memory import MemoryBus

if TYPE_CHECKING:
    from ibet.config import BusSettings

__all__ = ["Bus", "Consumer", "MemoryBus", "OutRecord", "Producer", "Record", "TopicPartition", "next_offsets", "open_bus"]


def open_bus(settings: BusSettings) -> Bus:
    """The bus the settings name: a new in-memory bus, or a client of the Kafka cluster."""
    if settings.kind == "memory":
        return MemoryBus(default_partitions=settings.kafka.default_partitions)
    from ibet.bus.kafka import KafkaBus  # imported here so the embedded mode never loads kafka-python

    return KafkaBus(settings.kafka)

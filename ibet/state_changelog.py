"""A stage's state per owner (a sector, a sensor) saved as a changelog of small records.

Saving a whole sector as one record per batch grows with the sector: at 5,000 tracks it was 11 MB,
over the bus's record limit. Instead an owner's state is split by the stage into named *parts*
(the head, one part per track, pages of a buffer), and only the parts whose bytes changed since
they were last written go out, each keyed ``owner/part`` on the owner's partition
(``partition_key``), with a tombstone for a part that is gone. Compaction keeps the latest value of
each key, so a worker that takes the partition over reads each part once.

The head is keyed by the owner alone, the key a whole-state record had, so a state saved before
the changelog is read as a head (the stage tells the two apart by the head's content).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ibet.bus.base import OutRecord, Record

SEP = "/"
"""Between the owner and the part name in a key; registry ids cannot contain it."""

HEAD = ""
"""The part name of the head: its key is the owner alone."""


def encode(value: Any) -> bytes:
    """A part as JSON bytes (orjson: exact floats and 64-bit integers, ~10x the standard library)."""
    return orjson.dumps(value)


def decode(data: bytes) -> Any:
    return orjson.loads(data)


def part_key(owner: str, part: str) -> bytes:
    return (owner if part == HEAD else f"{owner}{SEP}{part}").encode()


def split_key(key: bytes) -> tuple[str, str]:
    """(owner, part) of a changelog key; the head's part is ``HEAD``."""
    owner, _, part = key.decode("utf-8", "replace").partition(SEP)
    return owner, part


class StateChangelog:
    """Turns each owner's parts into the records that changed, and reads a partition back into parts.

    Remembers a digest of what it wrote (or read) per part, so an unchanged part costs its encoding
    and one comparison, never a record. The digest counts as written once the records are handed
    out: a flush that then fails ends the worker (the runner raises), and its successor reads the
    partition afresh. A part the bus refuses as too large is not retried until it changes.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._written: dict[str, dict[str, int]] = {}  # owner -> part -> hash of the bytes on the bus

    def records(self, owner: str, parts: Mapping[str, Any]) -> list[OutRecord]:
        """The records for ``owner``'s ``parts`` (name -> JSON-ready value) that differ from what was
        written: changed or new parts first, the head (``HEAD``) after them, then tombstones."""
        before = self._written.get(owner, {})
        now: dict[str, int] = {}
        out: list[OutRecord] = []
        head: OutRecord | None = None
        partition_key = owner.encode()
        for name, value in parts.items():
            data = encode(value)
            digest = now[name] = hash(data)
            if before.get(name) != digest:
                record = OutRecord(self.topic, part_key(owner, name), data, partition_key=partition_key)
                if name == HEAD:
                    head = record
                else:
                    out.append(record)
        if head is not None:
            out.append(head)
        out += [OutRecord(self.topic, part_key(owner, name), None, partition_key=partition_key)
                for name in sorted(before.keys() - now.keys())]
        self._written[owner] = now
        return out

    def read(self, records: Iterable[Record]) -> dict[str, dict[str, Any]]:
        """Owner -> part name -> decoded value, from a partition read oldest first (a tombstone
        removes its part). What was read counts as written."""
        latest: dict[bytes, bytes | None] = {}
        for record in records:
            if record.key is not None:
                latest[record.key] = record.value
        owners: dict[str, dict[str, Any]] = {}
        for key, data in latest.items():
            if data is None:
                continue
            owner, name = split_key(key)
            owners.setdefault(owner, {})[name] = decode(data)
            self._written.setdefault(owner, {})[name] = hash(data)
        return owners

    def forget(self, owner: str) -> None:
        """Stop tracking ``owner`` (its partition went to another worker)."""
        self._written.pop(owner, None)

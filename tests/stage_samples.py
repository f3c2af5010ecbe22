"""A small stateful stage for runner tests on both buses."""

from __future__ import annotations

from ibet.bus.base import OutRecord
from ibet.stage import Outcome


class CountingStage:
    """Counts records per key; the count is the state the runner saves with the offsets.

    With ``out_topic`` each record also produces its key's running count there.
    """

    def __init__(self, name: str = "counter", in_topic: str = "in", state_topic: str = "counter-state",
                 out_topic: str | None = "counted"):
        self.name, self.input_topics, self.state_topic, self.out_topic = name, (in_topic,), state_topic, out_topic
        self.counts: dict[bytes, int] = {}
        self.changed: set[bytes] = set()

    def process_batch(self, records):
        outcomes = []
        for r in records:
            self.counts[r.key] = self.counts.get(r.key, 0) + 1
            self.changed.add(r.key)
            out = (OutRecord(self.out_topic, r.key, str(self.counts[r.key]).encode()),) if self.out_topic else ()
            outcomes.append(Outcome(out))
        return outcomes

    def restore(self, records):
        self.counts.update({r.key: int(r.value) for r in records})

    def forget(self, keys):
        for key in keys:
            self.counts.pop(key, None)

    def snapshot(self):
        out = [OutRecord(self.state_topic, k, str(self.counts[k]).encode()) for k in sorted(self.changed)]
        self.changed.clear()
        return out

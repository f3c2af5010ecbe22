"""The fuse stage: DetectionBatches of a sector in, TrackUpdates and BorderEvents out.

Consumes ``ibet.detections.v1`` (keyed by sector, so one worker holds all sensors of a sector),
produces ``ibet.tracks.v1`` and ``ibet.events.v1`` (keyed by sector), and saves each sector's
state on the compacted ``ibet.fuse-state.v1`` with the committed offsets (see the runner): as a
changelog of small parts (a head, one per track, pages of the reorder buffer), only what changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from prometheus_client import Counter

from fuse import state_parts
from fuse.border_relation import BorderModel
from fuse.event_time import describe_time
from fuse.measurements import measurements, sigmas_from
from fuse.sector_fusion import SectorFusion
from fuse.terrain import Dem
from ibet import topics
from ibet.bus.base import OutRecord, Record
from ibet.clock import Clock, SystemClock
from ibet.config import FuseSettings
from ibet.exceptions import IbetError
from ibet.messages import DetectionBatch
from ibet.registry import Registry
from ibet.stage import Outcome
from ibet.state_changelog import HEAD, StateChangelog, split_key

log = logging.getLogger(__name__)

DEM_FALLBACK = Counter("ibet_fuse_dem_fallback", "Detections placed on flat ground because the sector's DEM had no "
                       "height along the ray (a hole, or off the raster)", ["sector"])


class FuseInputError(IbetError):
    """A detection batch that names a sector or sensor the registry does not know, or that
    disagrees with the registry about where its sensor is."""


class FuseStage:
    """Stateful: one :class:`SectorFusion` per sector this worker owns."""

    name = "fuse"
    input_topics = (topics.DETECTIONS,)
    state_topic = topics.FUSE_STATE

    def __init__(self, registry: Registry, model: BorderModel, settings: FuseSettings | None = None,
                 clock: Clock | None = None, terrains: Mapping[str, Dem] | None = None):
        self.registry, self.model, self.clock = registry, model, clock or SystemClock()
        self.terrains = dict(terrains or {})  # sector id -> DEM (fuse.sector_dems.load_sector_dems)
        self.settings = settings or FuseSettings()
        self.sigmas, self.fixed_sigmas = sigmas_from(self.settings)
        self.sectors: dict[str, SectorFusion] = {}
        self._changed: set[str] = set()
        self.changelog = StateChangelog(self.state_topic)
        self.state_interval_s = self.settings.state_interval_s  # the runner checkpoints at most this often

    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        return [self._process(record) for record in records]

    def _process(self, record: Record) -> Outcome:
        try:
            batch = DetectionBatch.from_bytes(record.value)
            sensor = self.registry.sensor(batch.sensor_id)
            self.registry.sector(batch.sector_id)
            if sensor.sector_id != batch.sector_id:
                raise FuseInputError(f"sensor {sensor.id} belongs to sector {sensor.sector_id}, not {batch.sector_id}")
            placed, _unplaced, fallback = measurements(batch, self.registry, self.sigmas, self.fixed_sigmas,
                                                       self.terrains)
        except IbetError as exc:  # bad data: dead-lettered by the runner, nothing changed
            return Outcome(error=exc)
        if fallback:
            DEM_FALLBACK.labels(batch.sector_id).inc(fallback)
        now_ns = self.clock.now_ns()
        fusion = self.sectors.get(batch.sector_id)
        if fusion is None:
            fusion = SectorFusion(batch.sector_id, self.model, self.settings)
            fusion.expect_sensors([s.id for s in self.registry.sensors_in(batch.sector_id)])
        try:
            fusion.check_time(batch.capture_ts_ns, now_ns)
        except IbetError as exc:  # a wrong clock: dead-lettered, the sector's event time untouched
            return Outcome(error=exc)
        self.sectors[batch.sector_id] = fusion
        for det in batch.detections:
            if det.evidence_ref and det.sensor_track_id is not None:
                fusion.note_evidence(batch.sensor_id, det.sensor_track_id, (det.evidence_ref, batch.evidence_ref),
                                     batch.capture_ts_ns)
        updates, events = fusion.process(placed, batch.capture_ts_ns, now_ns, batch.sensor_id)
        self._changed.add(batch.sector_id)
        key = batch.sector_id.encode()
        out = [OutRecord(topics.TRACKS, key, u.to_bytes()) for u in updates]
        out += [OutRecord(topics.EVENTS, key, e.to_bytes()) for e in events]
        return Outcome(tuple(out))

    # -- state saved with the offsets -------------------------------------------------------
    def snapshot(self) -> list[OutRecord]:
        """The changelog records of the sectors this batch changed: only their changed parts."""
        changed, self._changed = sorted(self._changed), set()
        out: list[OutRecord] = []
        for sector_id in changed:
            if sector_id in self.sectors:
                out += self.changelog.records(sector_id, state_parts.split(self.sectors[sector_id].to_state()))
        return out

    def restore(self, records: Sequence[Record]) -> None:
        now_ns = self.clock.now_ns()
        for sector_id, parts in self.changelog.read(records).items():
            if HEAD not in parts:  # parts whose head never landed (a worker died mid-flush): nothing to continue
                log.warning("sector %s: %d saved state parts without their head, ignored", sector_id, len(parts))
                continue
            state = state_parts.join(parts)
            fusion = self.sectors[sector_id] = SectorFusion.from_state(state, self.model, self.settings)
            if not state_parts.is_parted(parts[HEAD]):
                self._changed.add(sector_id)  # saved whole before the changelog: rewritten as parts
            try:
                fusion.expect_sensors([s.id for s in self.registry.sensors_in(sector_id)])
            except IbetError as exc:  # a sector no longer in the registry: its state waits, window release only
                log.warning("sector %s: saved state of a sector the registry does not have (%s)", sector_id, exc)
            repaired = fusion.repair_time(now_ns)
            if repaired is not None:
                before, after = repaired
                log.warning("sector %s: restored event time %s lies ahead of the clock; repaired to %s", sector_id,
                            describe_time(before), describe_time(after) if after >= 0 else "none (no plausible time in the state)")
                self._changed.add(sector_id)

    def forget(self, keys: set[bytes]) -> None:
        for sector_id in {split_key(key)[0] for key in keys}:
            self.sectors.pop(sector_id, None)
            self.changelog.forget(sector_id)

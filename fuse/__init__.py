"""Fuse: georeferencing, the multi-sensor tracker, border geometry and events.

``build_stage(config, registry)`` gives the stage the runner runs (``ibet run fuse``).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def build_stage(config, registry):
    """The fuse stage with the shipped (or configured) border and ports of entry, and the sectors' DEMs."""
    from fuse.border_relation import BorderModel
    from fuse.sector_dems import load_sector_dems
    from fuse.stage import FuseStage
    from ibet.border import load_border, load_ports_of_entry

    border = load_border(config.border_path)
    if border.shipped_demo and not config.alerts.exercise:
        log.warning("border line: the shipped %s (version %s), off the surveyed boundary by up to %.0f m; fine for "
                    "demos and exercises, not for duty: load the International Boundary Commission's line",
                    border.source, border.version, border.accuracy_m)
    ports = load_ports_of_entry(config.ports_of_entry_file(), sector_ids={s.id for s in registry.sectors})
    terrains = load_sector_dems(registry, config.registry_file().parent)
    return FuseStage(registry, BorderModel(border, ports), config.fuse, terrains=terrains)

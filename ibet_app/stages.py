"""The pipeline's stages in flow order, and how to build the ones that exist.

A stage package is built when it exposes ``build_stage(config, registry) -> Stage``; the CLI, the
embedded demo and the Kubernetes Deployments all start stages through :func:`build_stage`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ibet import topics
from ibet.config import IbetConfig
from ibet.exceptions import IbetError
from ibet.registry import Registry
from ibet.stage import Stage


class StageNotBuiltError(IbetError):
    """The stage is part of the design but its package does not provide it yet."""


@dataclass(frozen=True)
class StageInfo:
    name: str
    package: str
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    issue: int

    def is_built(self) -> bool:
        return hasattr(importlib.import_module(self.package), "build_stage")

    @property
    def is_source(self) -> bool:
        """Ingest brings frames in from outside (push API, pulled cameras): it has no input topic."""
        return not self.consumes


PIPELINE: tuple[StageInfo, ...] = (
    StageInfo("ingest", "ingest", (), (topics.FRAMES,), 4),
    StageInfo("detect", "detect", (topics.FRAMES,), (topics.DETECTIONS,), 5),
    StageInfo("fuse", "fuse", (topics.DETECTIONS,), (topics.TRACKS, topics.EVENTS), 6),
    StageInfo("alerts", "alerts", (topics.EVENTS,), (topics.ALERTS,), 7),
)


CONSOLE_STORE = "console-store"


def stage_info(name: str) -> StageInfo:
    for info in PIPELINE:
        if info.name == name:
            return info
    raise IbetError(f"unknown stage '{name}'; the stages are: {', '.join(s.name for s in PIPELINE)}")


def build_stage(name: str, config: IbetConfig, registry: Registry) -> Stage:
    """The stage ``name`` built from the configuration and registry, or StageNotBuiltError.

    Besides the pipeline's stages, ``console-store`` writes tracks, detections, events and sensor
    health into the console's database.
    """
    if name == CONSOLE_STORE:
        from console.store import build_console_store

        return build_console_store(config.database)
    info = stage_info(name)
    package = importlib.import_module(info.package)
    factory = getattr(package, "build_stage", None)
    if factory is None:
        raise StageNotBuiltError(f"stage '{name}' is not built yet (issue #{info.issue})")
    return factory(config, registry)

"""Fixtures of the detect tests: the registry and a detect stage on the blob detector."""

from __future__ import annotations

import pytest
from detect_samples import REPO, BlobDetector

from detect.stage import DetectStage
from ibet.detect_config import DetectSettings
from ibet.registry import Registry, load_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(REPO / "config" / "registry.yaml")


@pytest.fixture
def make_stage(registry, tmp_path):
    """A DetectStage on the blob detector: ``make_stage(**settings) -> (stage, detector)``."""

    def _make(evidence=None, **settings) -> tuple[DetectStage, BlobDetector]:
        detector = BlobDetector()
        cfg = DetectSettings(**{"evidence": {"directory": tmp_path / "evidence"}, **settings})
        return DetectStage(registry, cfg, detector, "blob", "1", evidence), detector

    return _make
